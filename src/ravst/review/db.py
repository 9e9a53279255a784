"""The review database: SQLite in WAL mode, one short transaction per request.

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
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
    "hash_token",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
REVIEWS_PER_ITEM = 2
"""Each item is scored by this many different reviewers (the paper's dual scoring)."""
MAX_NOTE_CHARS = 2000
MAX_NAME_CHARS = 100

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
    reviewable INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS reviewers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
    item_id INTEGER NOT NULL REFERENCES items(id),
    reviewer_id INTEGER NOT NULL REFERENCES reviewers(id),
    assigned_at REAL NOT NULL,
    PRIMARY KEY (item_id, reviewer_id)
);
CREATE INDEX IF NOT EXISTS assignments_by_reviewer ON assignments(reviewer_id, assigned_at);
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


class ReviewDBError(ValueError):
    """A request the database refuses (bad value, unknown item...)."""


class NotAssignedError(ReviewDBError):
    """The item is not assigned to this reviewer."""


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
class ItemRow:
    id: int
    qa_id: str
    video: str
    task: str
    kind: str
    position: int
    reviewable: bool


class ReviewDB:
    """Thread-safe access to the review database: one connection per thread.

    Every write is a ``BEGIN IMMEDIATE`` transaction, so concurrent writers queue on SQLite's
    lock (``busy_timeout``) instead of failing.
    """

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 30000) -> None:
        self.path = str(path)
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._local = threading.local()
        self._memory_conn: sqlite3.Connection | None = None
        self._memory_lock = threading.Lock()
        if self.path != ":memory:":
            parent = Path(self.path).parent
            if not parent.is_dir():
                raise ReviewDBError(f"{self.path}: folder {parent} does not exist")
        conn = self._conn()
        conn.executescript(_SCHEMA)
        with self._write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                conn.execute("INSERT INTO meta VALUES ('media_secret', ?)", (secrets.token_hex(32),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise ReviewDBError(
                    f"{self.path}: schema version {row[0]}, this ravst expects {SCHEMA_VERSION}"
                )

    # -- connections -------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            if self._memory_conn is None:
                self._memory_conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            return self._memory_conn
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ReviewDBError(f"{self.path}: could not switch to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: committed on normal exit, rolled back on error."""
        lock = self._memory_lock if self.path == ":memory:" else None
        if lock is not None:
            lock.acquire()
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        lock = self._memory_lock if self.path == ":memory:" else None
        if lock is not None:
            lock.acquire()
        try:
            yield self._conn()
        finally:
            if lock is not None:
                lock.release()

    def close(self) -> None:
        """Close this thread's connection (other threads' connections close when they end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

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
                    "INSERT INTO items (qa_id, video, task, kind, position, reviewable) VALUES (?, ?, ?, ?, ?, ?)",
                    [(q, v, t, k, i, int(f)) for i, ((q, v, t, k), f) in enumerate(zip(items, flags, strict=True))],
                )
            else:
                conn.executemany(
                    "UPDATE items SET reviewable = ? WHERE qa_id = ?",
                    [(int(f), q) for (q, _, _, _), f in zip(items, flags, strict=True)],
                )

    def source_bytes(self) -> bytes | None:
        """The QA file this database was created for (None before ``load_items``)."""
        value = self.get_meta("qa_json")
        if value is None:
            return None
        return value if isinstance(value, bytes) else str(value).encode("utf-8")

    def item_rows(self) -> list[ItemRow]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, qa_id, video, task, kind, position, reviewable FROM items ORDER BY position"
            ).fetchall()
        return [ItemRow(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]

    # -- reviewers ----------------------------------------------------------------------
    def add_reviewer(self, name: str) -> str:
        """Create a reviewer and return their new token (only its hash is stored)."""
        name = name.strip()
        if not name or len(name) > MAX_NAME_CHARS:
            raise ReviewDBError(f"reviewer name must be 1-{MAX_NAME_CHARS} characters, got {name!r}")
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
        that already have one reviewer (so that pairs complete early), then file order.
        """
        with self._write() as conn:
            row = conn.execute(
                """SELECT a.item_id FROM assignments a
                   LEFT JOIN scores s ON s.item_id = a.item_id AND s.reviewer_id = a.reviewer_id
                   JOIN items i ON i.id = a.item_id
                   WHERE a.reviewer_id = ? AND s.id IS NULL
                   ORDER BY a.assigned_at, i.position LIMIT 1""",
                (reviewer_id,),
            ).fetchone()
            if row is not None:
                return int(row[0])
            row = conn.execute(
                """SELECT i.id FROM items i
                   LEFT JOIN assignments a ON a.item_id = i.id
                   WHERE i.reviewable = 1
                     AND i.id NOT IN (SELECT item_id FROM assignments WHERE reviewer_id = ?)
                   GROUP BY i.id
                   HAVING COUNT(a.reviewer_id) < ?
                   ORDER BY COUNT(a.reviewer_id) DESC, i.position
                   LIMIT 1""",
                (reviewer_id, REVIEWS_PER_ITEM),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "INSERT INTO assignments (item_id, reviewer_id, assigned_at) VALUES (?, ?, ?)",
                (int(row[0]), reviewer_id, time.time()),
            )
            return int(row[0])

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
        if isinstance(score, bool) or not isinstance(score, int) or score not in SCALE:
            raise ReviewDBError(f"score must be one of {list(SCALE)}, got {score!r}")
        if not isinstance(note, str):
            raise ReviewDBError("note must be a string")
        note = note.strip()
        if len(note) > MAX_NOTE_CHARS:
            raise ReviewDBError(f"note is {len(note)} characters, at most {MAX_NOTE_CHARS} allowed")
        with self._write() as conn:
            assigned = conn.execute(
                "SELECT 1 FROM assignments WHERE reviewer_id = ? AND item_id = ?", (reviewer_id, item_id)
            ).fetchone()
            if assigned is None:
                raise NotAssignedError(f"item {item_id} is not assigned to this reviewer")
            row = conn.execute(
                "SELECT score, note FROM scores WHERE reviewer_id = ? AND item_id = ?", (reviewer_id, item_id)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO scores (item_id, reviewer_id, score, note, submitted_at) VALUES (?, ?, ?, ?, ?)",
                    (item_id, reviewer_id, score, note, time.time()),
                )
                status = "recorded"
            elif int(row[0]) == score and str(row[1]) == note:
                status = "unchanged"
            elif not revise:
                raise ConflictError(
                    f"item {item_id} already has your score {row[0]}; send revise=true to change it"
                )
            else:
                conn.execute(
                    "UPDATE scores SET score = ?, note = ?, revised_at = ? WHERE reviewer_id = ? AND item_id = ?",
                    (score, note, time.time(), reviewer_id, item_id),
                )
                status = "revised"
        return ScoreResult(status, item_id, score, note)

    def progress(self, reviewer_id: int) -> dict[str, int]:
        """Counts for the progress bar: this reviewer's and the whole pool's."""
        with self._read() as conn:
            mine_scored = conn.execute(
                "SELECT COUNT(*) FROM scores WHERE reviewer_id = ?", (reviewer_id,)
            ).fetchone()[0]
            mine_assigned = conn.execute(
                "SELECT COUNT(*) FROM assignments WHERE reviewer_id = ?", (reviewer_id,)
            ).fetchone()[0]
            total = conn.execute("SELECT COUNT(*) FROM items WHERE reviewable = 1").fetchone()[0]
            complete = conn.execute(
                """SELECT COUNT(*) FROM (SELECT s.item_id FROM scores s JOIN items i ON i.id = s.item_id
                   WHERE i.reviewable = 1 GROUP BY s.item_id HAVING COUNT(*) >= ?)""",
                (REVIEWS_PER_ITEM,),
            ).fetchone()[0]
            # items this reviewer could still claim: not theirs, fewer than 2 reviewers
            claimable = conn.execute(
                """SELECT COUNT(*) FROM (SELECT i.id FROM items i LEFT JOIN assignments a ON a.item_id = i.id
                   WHERE i.reviewable = 1
                     AND i.id NOT IN (SELECT item_id FROM assignments WHERE reviewer_id = ?)
                   GROUP BY i.id HAVING COUNT(a.reviewer_id) < ?)""",
                (reviewer_id, REVIEWS_PER_ITEM),
            ).fetchone()[0]
        return {
            "scored": int(mine_scored),
            "assigned": int(mine_assigned),
            "remaining": int(mine_assigned - mine_scored + claimable),
            "items_total": int(total),
            "items_complete": int(complete),
        }

    def scores_by_item(self) -> list[tuple[ItemRow, list[int]]]:
        """Every item with its scores in submission order (for kappa and export)."""
        rows = self.item_rows()
        with self._read() as conn:
            score_rows = conn.execute("SELECT item_id, score FROM scores ORDER BY submitted_at, id").fetchall()
        by_item: dict[int, list[int]] = {}
        for item_id, score in score_rows:
            by_item.setdefault(int(item_id), []).append(int(score))
        return [(row, by_item.get(row.id, [])) for row in rows]

    def all_scores(self) -> list[tuple[int, int, int, str]]:
        """``(item_id, reviewer_id, score, note)`` of every score row."""
        with self._read() as conn:
            rows = conn.execute("SELECT item_id, reviewer_id, score, note FROM scores ORDER BY id").fetchall()
        return [(int(a), int(b), int(c), str(d)) for a, b, c, d in rows]
