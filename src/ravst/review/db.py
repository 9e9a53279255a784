"""The review database: SQLite in WAL mode, writes grouped into short transactions (group commit).

Tables (see docs/review.md for every column): ``meta`` (schema version, the QA file the
database was created for, the media-signing secret), ``items`` (one row per QA), ``reviewers``
(token stored as a SHA-256 hash), ``assignments`` (each item to at most two reviewers, handed
out on demand) and ``scores`` (one row per reviewer and item, ``UNIQUE(item_id, reviewer_id)``).

A score is acknowledged only after its transaction has committed (``synchronous=FULL``), so a
server killed right after answering keeps it; re-submitting the same score is a no-op.

>>> db = ReviewDB(":memory:")
>>> token = db.add_reviewer("ana")
>>> db.reviewer_for_token(token).name
'ana'
>>> db.reviewer_for_token("wrong") is None
True
"""

from __future__ import annotations

import hashlib
import logging
import math
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ravst.review.kappa import SCALE

__all__ = [
    "REVIEWS_PER_ITEM",
    "Assignment",
    "ConflictError",
    "NotAssignedError",
    "ReviewDB",
    "ReviewDBError",
    "Reviewer",
    "ScoreResult",
    "Snapshot",
    "WriteFailed",
    "WriterStats",
    "check_reviewer_name",
    "check_score",
    "hash_token",
    "record_claim",
    "write_score",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
_Job = tuple[Callable[[sqlite3.Connection], Any], Future[Any], bool]
"""A queued write: ``fn(conn)``, its future, and whether it is one statement (``submit``)."""

SCHEMA_VERSION = 3
REVIEWS_PER_ITEM = 2
"""Each item is scored by this many different reviewers (the paper's dual scoring)."""
MAX_NOTE_CHARS = 2000
MAX_NAME_CHARS = 100
WRITE_BATCH_MAX = 256
"""At most this many queued writes share one commit (group commit, see ``ReviewDB.start_writer``)."""
_NAME_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Unicode categories refused in reviewer names: control, format (bidi overrides such as U+202E,
zero-width characters), surrogates, private use, unassigned, line and paragraph separators."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    qa_id TEXT NOT NULL UNIQUE,
    video TEXT NOT NULL,
    task TEXT NOT NULL,
    kind TEXT NOT NULL,
    position INTEGER NOT NULL,
    reviewable INTEGER NOT NULL DEFAULT 1,
    n_assigned INTEGER NOT NULL DEFAULT 0,
    n_scored INTEGER NOT NULL DEFAULT 0,
    queue_rank INTEGER NOT NULL DEFAULT 0,
    flag_reasons TEXT NOT NULL DEFAULT '',
    judge_score REAL
);
CREATE TABLE IF NOT EXISTS reviewers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    n_assigned INTEGER NOT NULL DEFAULT 0,
    n_scored INTEGER NOT NULL DEFAULT 0,
    n_half INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pool (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
    item_id INTEGER NOT NULL REFERENCES items(id),
    reviewer_id INTEGER NOT NULL REFERENCES reviewers(id),
    assigned_at REAL NOT NULL,
    scored INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (item_id, reviewer_id)
);
CREATE TABLE IF NOT EXISTS scores (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id),
    reviewer_id INTEGER NOT NULL REFERENCES reviewers(id),
    score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 4),
    note TEXT NOT NULL DEFAULT '',
    submitted_at REAL NOT NULL,
    revised_at REAL,
    UNIQUE (item_id, reviewer_id)
);
"""

_INDEXES = """
CREATE INDEX IF NOT EXISTS assignments_by_reviewer ON assignments(reviewer_id, assigned_at);
CREATE INDEX IF NOT EXISTS assignments_open ON assignments(reviewer_id, scored, assigned_at);
CREATE INDEX IF NOT EXISTS items_claim ON items(reviewable, n_assigned, queue_rank);
CREATE INDEX IF NOT EXISTS items_complete ON items(reviewable, n_scored);
CREATE INDEX IF NOT EXISTS scores_by_reviewer ON scores(reviewer_id);
"""
"""The claim query walks ``items_claim`` (no scan of all items) and the open-item query
``assignments_open``; ``progress`` reads counters kept up to date by the triggers below (``pool``
and the ``n_*`` columns of ``reviewers``, recounted from the rows by ``load_items``)."""

_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS assignment_check BEFORE INSERT ON assignments BEGIN
    SELECT RAISE(ABORT, 'item is not reviewable or already has {per_item} reviewers')
    WHERE NOT EXISTS (SELECT 1 FROM items WHERE id = NEW.item_id AND reviewable = 1 AND n_assigned < {per_item});
END;
CREATE TRIGGER IF NOT EXISTS assignment_counts AFTER INSERT ON assignments BEGIN
    UPDATE items SET n_assigned = n_assigned + 1 WHERE id = NEW.item_id;
    UPDATE reviewers SET n_assigned = n_assigned + 1,
        n_half = n_half + ((SELECT n_assigned FROM items WHERE id = NEW.item_id) < {per_item})
    WHERE id = NEW.reviewer_id;
    UPDATE pool SET value = value + 1
    WHERE key = 'full' AND (SELECT n_assigned FROM items WHERE id = NEW.item_id) = {per_item};
    UPDATE reviewers SET n_half = n_half - 1
    WHERE (SELECT n_assigned FROM items WHERE id = NEW.item_id) = {per_item} AND id IN
        (SELECT reviewer_id FROM assignments WHERE item_id = NEW.item_id AND reviewer_id != NEW.reviewer_id);
END;
CREATE TRIGGER IF NOT EXISTS score_check BEFORE INSERT ON scores BEGIN
    SELECT RAISE(ABORT, 'item is not assigned to this reviewer')
    WHERE NOT EXISTS (SELECT 1 FROM assignments WHERE item_id = NEW.item_id AND reviewer_id = NEW.reviewer_id);
END;
CREATE TRIGGER IF NOT EXISTS score_counts AFTER INSERT ON scores BEGIN
    UPDATE assignments SET scored = 1 WHERE item_id = NEW.item_id AND reviewer_id = NEW.reviewer_id;
    UPDATE items SET n_scored = n_scored + 1 WHERE id = NEW.item_id;
    UPDATE reviewers SET n_scored = n_scored + 1 WHERE id = NEW.reviewer_id;
    UPDATE pool SET value = value + 1 WHERE key = 'complete'
        AND (SELECT reviewable = 1 AND n_scored = {per_item} FROM items WHERE id = NEW.item_id);
END;
""".replace("{per_item}", str(REVIEWS_PER_ITEM))
"""Schema 3: the counters are kept by SQLite itself, so a claim or a score is ONE statement from
Python (the triggers run inside it, in SQLite's C code, without the GIL being released and taken
again per statement), and the invariants hold for every writer: at most ``REVIEWS_PER_ITEM``
reviewers per item, only reviewable items handed out, a score only for an assigned item (a
refused statement is rolled back whole, its triggers' changes included)."""

_RECOUNT = (
    "UPDATE items SET n_assigned = (SELECT COUNT(*) FROM assignments a WHERE a.item_id = items.id),"
    " n_scored = (SELECT COUNT(*) FROM scores s WHERE s.item_id = items.id)",
    "UPDATE assignments SET scored = EXISTS (SELECT 1 FROM scores s"
    " WHERE s.item_id = assignments.item_id AND s.reviewer_id = assignments.reviewer_id)",
    "UPDATE reviewers SET"
    " n_assigned = (SELECT COUNT(*) FROM assignments a WHERE a.reviewer_id = reviewers.id),"
    " n_scored = (SELECT COUNT(*) FROM scores s WHERE s.reviewer_id = reviewers.id),"
    " n_half = (SELECT COUNT(*) FROM assignments a JOIN items i ON i.id = a.item_id"
    "           WHERE a.reviewer_id = reviewers.id AND i.reviewable = 1 AND i.n_assigned < :per_item)",
    "INSERT OR REPLACE INTO pool VALUES ('reviewable', (SELECT COUNT(*) FROM items WHERE reviewable = 1))",
    "INSERT OR REPLACE INTO pool VALUES ('full',"
    " (SELECT COUNT(*) FROM items WHERE reviewable = 1 AND n_assigned >= :per_item))",
    "INSERT OR REPLACE INTO pool VALUES ('complete',"
    " (SELECT COUNT(*) FROM items WHERE reviewable = 1 AND n_scored >= :per_item))",
)
"""Every counter recomputed from the rows (at each ``load_items``, i.e. each server start)."""

# schema 1 -> 2: counters kept on the rows so that claiming and progress use indexes
_MIGRATE_1_TO_2 = (
    "ALTER TABLE items ADD COLUMN n_assigned INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE items ADD COLUMN n_scored INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE items ADD COLUMN queue_rank INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE items ADD COLUMN flag_reasons TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE items ADD COLUMN judge_score REAL",
    "ALTER TABLE assignments ADD COLUMN scored INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE reviewers ADD COLUMN n_assigned INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE reviewers ADD COLUMN n_scored INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE reviewers ADD COLUMN n_half INTEGER NOT NULL DEFAULT 0",
    "UPDATE items SET queue_rank = position",
)


def check_reviewer_name(name: str) -> str:
    """The name stripped of surrounding spaces; ``ReviewDBError`` when it is empty, too long, or
    holds a control, format (bidi override, zero-width) or separator character.

    >>> check_reviewer_name("  Ana María ")
    'Ana María'
    >>> check_reviewer_name("ana\u202egpj.exe")
    Traceback (most recent call last):
    ...
    ravst.review.db.ReviewDBError: reviewer name holds U+202E (RIGHT-TO-LEFT OVERRIDE, category Cf) at position 3: control, format and bidi characters are not allowed
    """
    import unicodedata

    if not isinstance(name, str):
        raise ReviewDBError(f"reviewer name must be text, got {type(name).__name__}")
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise ReviewDBError(f"reviewer name must be 1-{MAX_NAME_CHARS} characters, got {len(name)}")
    for i, ch in enumerate(name):
        category = unicodedata.category(ch)
        if category in _NAME_FORBIDDEN_CATEGORIES:
            label = unicodedata.name(ch, "unnamed")
            raise ReviewDBError(
                f"reviewer name holds U+{ord(ch):04X} ({label}, category {category}) at position {i}: "
                "control, format and bidi characters are not allowed"
            )
    return name


class ReviewDBError(ValueError):
    """A request the database refuses (bad value, unknown item...)."""


class NotAssignedError(ReviewDBError):
    """The item is not assigned to this reviewer."""


class WriteFailed(ReviewDBError):
    """A batch of writes could not begin or commit (disk, lock): nothing of it is stored; retry."""


class ConflictError(ReviewDBError):
    """A different score was already recorded and the request did not ask to revise it."""


def hash_token(token: str) -> str:
    """SHA-256 hex of a token (tokens are 256-bit random, so a fast hash is enough)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Reviewer:
    id: int
    name: str


@dataclass(frozen=True)
class Assignment:
    item_id: int
    qa_id: str
    score: int | None
    note: str


@dataclass(frozen=True)
class ScoreResult:
    """``status`` is ``recorded`` (new), ``unchanged`` (same score resent) or ``revised``."""

    status: str
    item_id: int
    score: int
    note: str


@dataclass(frozen=True)
class Snapshot:
    """Raw rows for ``ravst.review.state``: items ``(id, reviewable, queue_rank)`` in queue
    order, reviewers ``(id, name, token_sha256, n_assigned, n_scored, n_half)``, assignments
    ``(item_id, reviewer_id, scored)`` in hand-out order, scores ``(item_id, reviewer_id, score,
    note)``, and the ``pool`` counters."""

    items: list[tuple[int, bool, int]]
    reviewers: list[tuple[int, str, str, int, int, int]]
    assignments: list[tuple[int, int, bool]]
    scores: list[tuple[int, int, int, str]]
    pool: dict[str, int]


@dataclass(frozen=True)
class WriterStats:
    """What the writer thread spent, summed over its batches (``ReviewDB.writer_stats``): wall
    and thread-CPU seconds running the batches' statements, and wall and CPU seconds in
    ``COMMIT`` (its wall time includes the fsync of ``synchronous=FULL``). Wall minus CPU of the
    statements is time the thread was runnable or waiting for the GIL, not working."""

    batches: int = 0
    writes: int = 0
    statements_wall_s: float = 0.0
    statements_cpu_s: float = 0.0
    commit_wall_s: float = 0.0
    commit_cpu_s: float = 0.0

    def summary(self) -> str:
        """One line, per batch means in milliseconds."""
        n = max(self.batches, 1)
        return (f"{self.batches} batches, {self.writes} writes ({self.writes / n:.1f} per batch); per batch: "
                f"statements {1000 * self.statements_wall_s / n:.2f} ms wall / {1000 * self.statements_cpu_s / n:.2f}"
                f" ms CPU, commit {1000 * self.commit_wall_s / n:.2f} ms wall / {1000 * self.commit_cpu_s / n:.2f} ms CPU")


@dataclass(frozen=True)
class ItemRow:
    id: int
    qa_id: str
    video: str
    task: str
    kind: str
    position: int
    reviewable: bool
    flag_reasons: tuple[str, ...] = ()
    judge_score: float | None = None


class ReviewDB:
    """Thread-safe access to the review database.

    Reads use one connection per thread (WAL: readers never wait for the writer). Every write
    goes through ONE writer connection, serialised by a lock in this process, as a ``BEGIN
    IMMEDIATE`` transaction; no two threads of a server ever contend for SQLite's write lock, so
    SQLite's polling busy handler is not on the request path (``busy_timeout`` only covers
    another process, e.g. ``add-reviewer`` while the server runs).

    ``start_writer()`` (for callers without an event loop; the server uses
    ``ravst.review.loopwriter`` over ``begin_batch`` / ``end_batch`` instead) adds a writer thread fed by a FIFO queue:
    ``submit(fn)`` returns a future; the thread takes every queued write (up to
    ``WRITE_BATCH_MAX``), runs each in its own SAVEPOINT inside one transaction, commits once
    (group commit: one fsync for the batch) and only then resolves the futures, so an
    acknowledged write is durable (``synchronous=FULL``).
    """

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 30000) -> None:
        self.path = str(path)
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._local = threading.local()
        self._memory = self.path == ":memory:"
        self._write_lock = threading.Lock()
        self._writer_conn: sqlite3.Connection | None = None
        self._queue: queue.SimpleQueue[_Job | None] | None = None
        self._writer_thread: threading.Thread | None = None
        self._stats = WriterStats()
        if not self._memory:
            parent = Path(self.path).parent
            if not parent.is_dir():
                raise ReviewDBError(f"{self.path}: folder {parent} does not exist")
        with self._write_lock:
            conn = self._wconn()
            conn.executescript(_SCHEMA)
        with self._write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                conn.execute("INSERT INTO meta VALUES ('media_secret', ?)", (secrets.token_hex(32),))
            elif int(row[0]) in (1, 2):
                if int(row[0]) == 1:
                    for statement in _MIGRATE_1_TO_2:
                        conn.execute(statement)
                _recount(conn)  # schema 2 -> 3: the triggers (below) take over the counters
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
                log.info("%s: review database upgraded from schema %s to %d", self.path, row[0], SCHEMA_VERSION)
            elif int(row[0]) != SCHEMA_VERSION:
                raise ReviewDBError(
                    f"{self.path}: schema version {row[0]}, this ravst expects {SCHEMA_VERSION}"
                )
            for statement in _INDEXES.strip().split(";"):
                if statement.strip():
                    conn.execute(statement)
            for statement in _TRIGGERS.strip().split("END;"):
                if statement.strip():
                    conn.execute(statement + "END;")

    # -- connections -------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        if not self._memory:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ReviewDBError(f"{self.path}: could not switch to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _wconn(self) -> sqlite3.Connection:
        """The writer connection (call with ``_write_lock`` held)."""
        if self._writer_conn is None:
            self._writer_conn = self._open()
        return self._writer_conn

    def _rconn(self) -> sqlite3.Connection:
        if self._memory:
            return self._wconn()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction on the writer connection: committed on normal exit, rolled
        back on error."""
        with self._write_lock:
            conn = self._wconn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if self._memory:  # one shared connection: reads queue behind writes
            with self._write_lock:
                yield self._wconn()
        else:
            yield self._rconn()

    def close(self) -> None:
        """Stop the writer thread, close the writer and this thread's reader connection."""
        self.stop_writer()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        with self._write_lock:
            if self._writer_conn is not None:
                self._writer_conn.close()
                self._writer_conn = None

    # -- the write queue (group commit) -----------------------------------------------------
    def start_writer(self) -> None:
        """Start the writer thread that ``submit`` feeds (idempotent)."""
        if self._writer_thread is not None:
            return
        self._queue = queue.SimpleQueue()
        self._writer_thread = threading.Thread(target=self._writer_loop, name="ravst-review-writer", daemon=True)
        self._writer_thread.start()

    def stop_writer(self) -> None:
        """Finish the queued writes and stop the writer thread."""
        if self._writer_thread is None or self._queue is None:
            return
        self._queue.put(None)
        self._writer_thread.join()
        self._writer_thread = None
        self._queue = None

    def submit(self, fn: Callable[[sqlite3.Connection], T], *, atomic: bool = False) -> Future[T]:
        """Run ``fn(conn)`` in a write transaction; the future resolves after the commit.

        ``atomic=True`` promises that ``fn`` writes with ONE statement (SQLite rolls a failing
        statement back whole, triggers included) and raises only before it or without having
        written: the batch then runs it without a SAVEPOINT of its own (two statements, and two
        GIL hand-overs, less per write). Without a writer thread, runs it now in its own
        transaction (the future is done)."""
        future: Future[T] = Future()
        if self._queue is None:
            try:
                with self._write() as conn:
                    future.set_result(fn(conn))
            except Exception as exc:  # handed to the caller through the future  # noqa: BLE001
                future.set_exception(exc)
            return future
        self._queue.put((fn, future, atomic))
        return future

    def _writer_loop(self) -> None:
        assert self._queue is not None
        q = self._queue
        stop = False
        while not stop:
            first = q.get()  # blocks: no polling
            if first is None:
                break
            batch = [first]
            while len(batch) < WRITE_BATCH_MAX:
                try:
                    job = q.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            self._run_batch(batch)

    def begin_batch(self) -> sqlite3.Connection:
        """Take the writer connection for a batch (``ravst.review.loopwriter``): the write lock,
        then ``BEGIN IMMEDIATE``; ``end_batch`` (possibly from another thread) ends both."""
        self._write_lock.acquire()
        try:
            conn = self._wconn()
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._write_lock.release()
            raise
        return conn

    def end_batch(self, *, commit: bool) -> None:
        """``COMMIT`` (raises when it fails, after rolling back) or roll back the batch that
        ``begin_batch`` opened, then release the write lock."""
        try:
            conn = self._wconn()
            if commit:
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            elif conn.in_transaction:
                conn.execute("ROLLBACK")
        finally:
            self._write_lock.release()

    def writer_stats(self) -> WriterStats:
        """Totals of the writer thread's batches so far (see ``WriterStats``)."""
        return self._stats

    def _run_batch(self, batch: list[_Job]) -> None:
        outcomes: list[tuple[Future[Any], Any, BaseException | None]] = []
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        wall1, cpu1 = wall0, cpu0
        try:
            with self._write() as conn:
                for fn, future, atomic in batch:
                    if atomic:  # one statement: SQLite undoes it alone if it fails
                        try:
                            outcomes.append((future, fn(conn), None))
                        except Exception as exc:  # this job fails alone
                            if not conn.in_transaction:  # an I/O error rolled the whole batch back
                                raise
                            outcomes.append((future, None, exc))
                        continue
                    conn.execute("SAVEPOINT job")
                    try:
                        result = fn(conn)
                    except Exception as exc:  # this job fails alone  # noqa: BLE001
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                        outcomes.append((future, None, exc))
                    else:
                        conn.execute("RELEASE job")
                        outcomes.append((future, result, None))
                wall1, cpu1 = time.perf_counter(), time.thread_time()  # then the COMMIT
        except Exception as exc:  # the batch or its commit failed: nothing of the batch is stored  # noqa: BLE001
            log.error("%s: a batch of %d writes failed to commit: %s", self.path, len(batch), exc)
            for _, future, _ in batch:
                future.set_exception(WriteFailed(f"{self.path}: write failed: {exc}"))
            return
        wall2, cpu2 = time.perf_counter(), time.thread_time()
        st = self._stats
        self._stats = WriterStats(st.batches + 1, st.writes + len(batch), st.statements_wall_s + wall1 - wall0,
                                  st.statements_cpu_s + cpu1 - cpu0, st.commit_wall_s + wall2 - wall1,
                                  st.commit_cpu_s + cpu2 - cpu1)
        for future, result, error in outcomes:
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    # -- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> bytes | str | None:
        with self._read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def media_secret(self) -> bytes:
        value = self.get_meta("media_secret")
        if value is None:
            raise ReviewDBError(f"{self.path}: no media secret in meta")
        return bytes.fromhex(str(value))

    # -- items --------------------------------------------------------------------------
    def load_items(
        self,
        items: Sequence[tuple[str, str, str, str]],
        source_bytes: bytes,
        *,
        reviewable: Iterable[bool] | None = None,
    ) -> None:
        """Register the QAs ``(qa_id, video, task, kind)`` of a QA file (in file order).

        The first call stores the file's bytes and SHA-256; later calls must pass the same file
        (a database belongs to one QA file), and only refresh the ``reviewable`` flags.
        """
        digest = hashlib.sha256(source_bytes).hexdigest()
        flags = list(reviewable) if reviewable is not None else [True] * len(items)
        if len(flags) != len(items):
            raise ReviewDBError("load_items: one reviewable flag per item is needed")
        with self._write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'qa_sha256'").fetchone()
            if row is not None and row[0] != digest:
                raise ReviewDBError(
                    f"{self.path}: this database was created for another QA file "
                    f"(sha256 {str(row[0])[:12]}..., this file {digest[:12]}...); use a new --db"
                )
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('qa_sha256', ?)", (digest,))
                conn.execute("INSERT INTO meta VALUES ('qa_json', ?)", (source_bytes,))
                conn.executemany(
                    "INSERT INTO items (qa_id, video, task, kind, position, reviewable, queue_rank)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(q, v, t, k, i, int(f), i)
                     for i, ((q, v, t, k), f) in enumerate(zip(items, flags, strict=True))],
                )
            else:
                conn.executemany(
                    "UPDATE items SET reviewable = ? WHERE qa_id = ?",
                    [(int(f), q) for (q, _, _, _), f in zip(items, flags, strict=True)],
                )
            _recount(conn)

    def set_priorities(
        self,
        flag_reasons: Mapping[str, Sequence[str]] | None = None,
        judge_scores: Mapping[str, float] | None = None,
    ) -> int:
        """Order the queue: flagged items first, then by judge score (lowest first, unscored
        last), then file order. Keys are qa_ids; unknown ids raise. Returns the number of items
        whose place moved from file order."""
        flag_reasons = flag_reasons or {}
        judge_scores = judge_scores or {}
        rows = self.item_rows()
        known = {row.qa_id for row in rows}
        for name, mapping in (("flags", flag_reasons), ("judge scores", judge_scores)):
            unknown = sorted(set(mapping) - known)
            if unknown:
                raise ReviewDBError(
                    f"{len(unknown)} qa_id(s) in the {name} are not in the QA file, e.g. {unknown[:3]}"
                )

        def key(row: ItemRow) -> tuple[int, float, int]:
            score = judge_scores.get(row.qa_id)
            return (0 if flag_reasons.get(row.qa_id) else 1, math.inf if score is None else float(score), row.position)

        ordered = sorted(rows, key=key)
        updates = [
            (rank, "\n".join(flag_reasons.get(row.qa_id, ())), judge_scores.get(row.qa_id), row.id)
            for rank, row in enumerate(ordered)
        ]
        with self._write() as conn:
            conn.executemany("UPDATE items SET queue_rank = ?, flag_reasons = ?, judge_score = ? WHERE id = ?", updates)
        return sum(1 for rank, row in enumerate(ordered) if rank != row.position)

    def source_bytes(self) -> bytes | None:
        """The QA file this database was created for (None before ``load_items``)."""
        value = self.get_meta("qa_json")
        if value is None:
            return None
        return value if isinstance(value, bytes) else str(value).encode("utf-8")

    def item_rows(self) -> list[ItemRow]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, qa_id, video, task, kind, position, reviewable, flag_reasons, judge_score"
                " FROM items ORDER BY position"
            ).fetchall()
        return [
            ItemRow(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]),
                    tuple(x for x in str(r[7]).split("\n") if x), None if r[8] is None else float(r[8]))
            for r in rows
        ]

    # -- reviewers ----------------------------------------------------------------------
    def add_reviewer(self, name: str) -> str:
        """Create a reviewer and return their new token (only its hash is stored)."""
        name = check_reviewer_name(name)
        token = secrets.token_urlsafe(32)
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO reviewers (name, token_sha256, created_at) VALUES (?, ?, ?)",
                    (name, hash_token(token), time.time()),
                )
        except sqlite3.IntegrityError as exc:
            raise ReviewDBError(f"{self.path}: a reviewer named {name!r} already exists") from exc
        return token

    def reviewer_for_token(self, token: str) -> Reviewer | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT id, name FROM reviewers WHERE token_sha256 = ?", (hash_token(token),)
            ).fetchone()
        return None if row is None else Reviewer(int(row[0]), str(row[1]))

    def reviewers(self) -> list[Reviewer]:
        with self._read() as conn:
            rows = conn.execute("SELECT id, name FROM reviewers ORDER BY id").fetchall()
        return [Reviewer(int(r[0]), str(r[1])) for r in rows]

    # -- assignments --------------------------------------------------------------------
    def next_item(self, reviewer_id: int) -> int | None:
        """The item this reviewer should score next, claiming a new one when needed.

        First an item already assigned to them and not scored yet; otherwise a reviewable item
        with fewer than ``REVIEWS_PER_ITEM`` assignments that they do not have, preferring items
        that already have a reviewer (so that pairs complete early), then queue order (flagged
        first, then lowest judge score, then file order: ``set_priorities``).
        """
        return self.claim_future(reviewer_id).result()

    def assignments(self, reviewer_id: int) -> list[Assignment]:
        """This reviewer's items in the order they were handed out, with their own score."""
        with self._read() as conn:
            rows = conn.execute(
                """SELECT a.item_id, i.qa_id, s.score, s.note FROM assignments a
                   JOIN items i ON i.id = a.item_id
                   LEFT JOIN scores s ON s.item_id = a.item_id AND s.reviewer_id = a.reviewer_id
                   WHERE a.reviewer_id = ? ORDER BY a.assigned_at, i.position""",
                (reviewer_id,),
            ).fetchall()
        return [Assignment(int(r[0]), str(r[1]), None if r[2] is None else int(r[2]), r[3] or "") for r in rows]

    def is_assigned(self, reviewer_id: int, item_id: int) -> bool:
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM assignments WHERE reviewer_id = ? AND item_id = ?", (reviewer_id, item_id)
            ).fetchone()
        return row is not None

    def own_score(self, reviewer_id: int, item_id: int) -> tuple[int, str] | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT score, note FROM scores WHERE reviewer_id = ? AND item_id = ?", (reviewer_id, item_id)
            ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    # -- scores -------------------------------------------------------------------------
    def submit_score(
        self, reviewer_id: int, item_id: int, score: int, note: str = "", *, revise: bool = False
    ) -> ScoreResult:
        """Record a score; returns only after the transaction has committed.

        Same score and note again: ``unchanged`` (no write). A different score or note raises
        ``ConflictError`` unless ``revise=True``, which overwrites it (``revised``).
        """
        return self.score_future(reviewer_id, item_id, score, note, revise=revise).result()

    def score_future(
        self, reviewer_id: int, item_id: int, score: int, note: str = "", *, revise: bool = False
    ) -> Future[ScoreResult]:
        """``submit_score`` through the write queue: the value is checked now (raises
        ``ReviewDBError``), the future resolves once committed."""
        note = check_score(score, note)
        return self.submit(lambda conn: write_score(conn, reviewer_id, item_id, score, note, revise), atomic=True)

    def claim_future(self, reviewer_id: int) -> Future[int | None]:
        """``next_item``: an open item of theirs is read at once (no write); a new claim goes
        through the write queue (where the open-item check is repeated)."""
        with self._read() as conn:
            item_id = _open_item(conn, reviewer_id)
        if item_id is not None:
            done: Future[int | None] = Future()
            done.set_result(item_id)
            return done
        return self.submit(lambda conn: _claim(conn, reviewer_id), atomic=True)

    def record_claim_future(self, reviewer_id: int, item_id: int) -> Future[int]:
        """Store a claim already decided in memory (``ravst.review.state``) through the write
        queue; the future resolves once committed, or fails when the rows contradict it."""
        return self.submit(lambda conn: record_claim(conn, reviewer_id, item_id), atomic=True)

    def snapshot(self) -> Snapshot:
        """Every row the in-memory state (``ravst.review.state``) is built from, read in one
        transaction (a consistent view)."""
        with self._read() as conn:
            conn.execute("BEGIN")
            try:
                items = conn.execute(
                    "SELECT id, reviewable, queue_rank FROM items ORDER BY queue_rank, id").fetchall()
                reviewers = conn.execute(
                    "SELECT id, name, token_sha256, n_assigned, n_scored, n_half FROM reviewers ORDER BY id").fetchall()
                assignments = conn.execute(
                    "SELECT a.item_id, a.reviewer_id, a.scored FROM assignments a JOIN items i ON i.id = a.item_id"
                    " ORDER BY a.assigned_at, i.position").fetchall()
                scores = conn.execute("SELECT item_id, reviewer_id, score, note FROM scores").fetchall()
                pool = dict(conn.execute("SELECT key, value FROM pool").fetchall())
            finally:
                conn.execute("COMMIT")
        return Snapshot(
            items=[(int(i), bool(r), int(q)) for i, r, q in items],
            reviewers=[(int(a), str(b), str(c), int(d), int(e), int(f)) for a, b, c, d, e, f in reviewers],
            assignments=[(int(i), int(r), bool(s)) for i, r, s in assignments],
            scores=[(int(i), int(r), int(s), str(n)) for i, r, s, n in scores],
            pool={str(k): int(v) for k, v in pool.items()},
        )

    def reviewer_row(self, token: str) -> tuple[int, str, int, int, int] | None:
        """``(id, name, n_assigned, n_scored, n_half)`` of the reviewer with this token."""
        with self._read() as conn:
            row = conn.execute("SELECT id, name, n_assigned, n_scored, n_half FROM reviewers WHERE token_sha256 = ?",
                               (hash_token(token),)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), int(row[2]), int(row[3]), int(row[4]))

    def reviewer_work(self, reviewer_id: int) -> tuple[list[tuple[int, bool]], list[tuple[int, int, str]]]:
        """One reviewer's ``[(item_id, scored)]`` in hand-out order and ``[(item_id, score, note)]``."""
        with self._read() as conn:
            conn.execute("BEGIN")
            try:
                held = conn.execute(
                    "SELECT a.item_id, a.scored FROM assignments a JOIN items i ON i.id = a.item_id"
                    " WHERE a.reviewer_id = ? ORDER BY a.assigned_at, i.position", (reviewer_id,)).fetchall()
                scores = conn.execute("SELECT item_id, score, note FROM scores WHERE reviewer_id = ?",
                                      (reviewer_id,)).fetchall()
            finally:
                conn.execute("COMMIT")
        return [(int(i), bool(s)) for i, s in held], [(int(i), int(s), str(n)) for i, s, n in scores]

    def progress(self, reviewer_id: int) -> dict[str, int]:
        """Counts for the progress bar: this reviewer's and the whole pool's (index range
        counts only)."""
        with self._read() as conn:
            return _progress(conn, reviewer_id)

    def scores_by_item(self) -> list[tuple[ItemRow, list[int]]]:
        """Every item with its scores in submission order (for kappa and export)."""
        rows = self.item_rows()
        with self._read() as conn:
            score_rows = conn.execute("SELECT item_id, score FROM scores ORDER BY submitted_at, id").fetchall()
        by_item: dict[int, list[int]] = {}
        for item_id, score in score_rows:
            by_item.setdefault(int(item_id), []).append(int(score))
        return [(row, by_item.get(row.id, [])) for row in rows]

    def scores_by_reviewer(self) -> dict[str, dict[str, int]]:
        """``{reviewer name: {qa_id: score}}`` of every score (for judge-vs-human kappa)."""
        with self._read() as conn:
            rows = conn.execute(
                """SELECT r.name, i.qa_id, s.score FROM scores s JOIN reviewers r ON r.id = s.reviewer_id
                   JOIN items i ON i.id = s.item_id ORDER BY s.id"""
            ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for name, qa_id, score in rows:
            out.setdefault(str(name), {})[str(qa_id)] = int(score)
        return out

    def all_scores(self) -> list[tuple[int, int, int, str]]:
        """``(item_id, reviewer_id, score, note)`` of every score row."""
        with self._read() as conn:
            rows = conn.execute("SELECT item_id, reviewer_id, score, note FROM scores ORDER BY id").fetchall()
        return [(int(a), int(b), int(c), str(d)) for a, b, c, d in rows]


# -- the statements of one write or read (they take a connection: the queue runs them) -------
def check_score(score: object, note: object) -> str:
    """The note, stripped; ``ReviewDBError`` when the score is not on the scale or the note is
    not text (too long, or a lone surrogate that is not UTF-8 text)."""
    if isinstance(score, bool) or not isinstance(score, int) or score not in SCALE:
        raise ReviewDBError(f"score must be one of {list(SCALE)}, got {score!r}")
    if not isinstance(note, str):
        raise ReviewDBError("note must be a string")
    note = note.strip()
    try:
        note.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ReviewDBError(f"note is not text: {exc.reason} at position {exc.start}") from exc
    if len(note) > MAX_NOTE_CHARS:
        raise ReviewDBError(f"note is {len(note)} characters, at most {MAX_NOTE_CHARS} allowed")
    return note


def _recount(conn: sqlite3.Connection) -> None:
    for statement in _RECOUNT:
        conn.execute(statement, {"per_item": REVIEWS_PER_ITEM} if ":per_item" in statement else {})


def _open_item(conn: sqlite3.Connection, reviewer_id: int) -> int | None:
    row = conn.execute(
        "SELECT item_id FROM assignments WHERE reviewer_id = ? AND scored = 0 ORDER BY assigned_at LIMIT 1",
        (reviewer_id,),
    ).fetchone()
    return None if row is None else int(row[0])


def _claim(conn: sqlite3.Connection, reviewer_id: int) -> int | None:
    item_id = _open_item(conn, reviewer_id)
    if item_id is not None:
        return item_id
    for n_assigned in range(REVIEWS_PER_ITEM - 1, -1, -1):
        row = conn.execute(
            """SELECT i.id FROM items i INDEXED BY items_claim
               WHERE i.reviewable = 1 AND i.n_assigned = ?
                 AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.reviewer_id = ?)
               ORDER BY i.queue_rank LIMIT 1""",
            (n_assigned, reviewer_id),
        ).fetchone()
        if row is None:
            continue
        item_id = int(row[0])
        _assign(conn, reviewer_id, item_id)
        return item_id
    return None


def _assign(conn: sqlite3.Connection, reviewer_id: int, item_id: int) -> None:
    """Hand ``item_id`` to ``reviewer_id``: one INSERT, the triggers keep the counters and refuse
    an item that is full or not reviewable (``ReviewDBError``; nothing is written then)."""
    try:
        conn.execute(
            "INSERT INTO assignments (item_id, reviewer_id, assigned_at) VALUES (?, ?, ?)",
            (item_id, reviewer_id, time.time()),
        )
    except sqlite3.IntegrityError as exc:
        raise ReviewDBError(f"claim of item {item_id} by reviewer {reviewer_id} refused by the database: {exc}") from exc


def record_claim(conn: sqlite3.Connection, reviewer_id: int, item_id: int) -> int:
    """Store a claim decided elsewhere (``ravst.review.state``); refuses one the rows contradict
    (an unknown, unreviewable or full item, or one already held: the triggers and the primary key)."""
    _assign(conn, reviewer_id, item_id)
    return item_id


_UPSERT_SCORE = (
    "INSERT INTO scores (item_id, reviewer_id, score, note, submitted_at) VALUES (:item, :reviewer, :score, :note, :now)"
    " ON CONFLICT (item_id, reviewer_id) DO UPDATE SET score = excluded.score, note = excluded.note,"
    " revised_at = excluded.submitted_at WHERE :revise AND (score != excluded.score OR note != excluded.note)"
    " RETURNING revised_at"
)
"""A new score (``revised_at`` NULL: ``recorded``) or, with ``revise``, a changed one (``revised``),
in one statement; no row back: the same score again, or a different one without ``revise``."""


def write_score(conn: sqlite3.Connection, reviewer_id: int, item_id: int, score: int, note: str,
           revise: bool) -> ScoreResult:
    """One statement when the score is new or revised (the triggers check the assignment and keep
    the counters); a read only to tell ``unchanged`` from a conflict. Writes nothing when it raises."""
    params = {"item": item_id, "reviewer": reviewer_id, "score": score, "note": note, "now": time.time(),
              "revise": int(revise)}
    try:
        rows = conn.execute(_UPSERT_SCORE, params).fetchall()
    except sqlite3.IntegrityError as exc:
        if "not assigned" in str(exc):
            raise NotAssignedError(f"item {item_id} is not assigned to this reviewer") from exc
        raise ReviewDBError(f"item {item_id}: score refused by the database: {exc}") from exc
    if rows:
        return ScoreResult("recorded" if rows[0][0] is None else "revised", item_id, score, note)
    row = conn.execute(
        "SELECT score, note FROM scores WHERE reviewer_id = ? AND item_id = ?", (reviewer_id, item_id)
    ).fetchone()
    if row is not None and int(row[0]) == score and str(row[1]) == note:
        return ScoreResult("unchanged", item_id, score, note)
    if row is None or revise:  # cannot happen: the upsert inserts or, with revise, updates
        raise ReviewDBError(f"item {item_id}: the score statement wrote nothing (row {row}, revise {revise})")
    raise ConflictError(f"item {item_id} already has your score {row[0]}; send revise=true to change it")


def _progress(conn: sqlite3.Connection, reviewer_id: int) -> dict[str, int]:
    mine = conn.execute("SELECT n_assigned, n_scored, n_half FROM reviewers WHERE id = ?", (reviewer_id,)).fetchone()
    if mine is None:
        raise ReviewDBError(f"no reviewer {reviewer_id}")
    pool = dict(conn.execute("SELECT key, value FROM pool").fetchall())
    assigned, scored, half = (int(x) for x in mine)
    total, full = int(pool.get("reviewable", 0)), int(pool.get("full", 0))
    claimable = total - full - half  # open items (fewer than two reviewers) that are not theirs
    return {
        "scored": scored,
        "assigned": assigned,
        "remaining": assigned - scored + claimable,
        "items_total": total,
        "items_complete": int(pool.get("complete", 0)),
    }
