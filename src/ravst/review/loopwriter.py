"""Group commit driven from the event loop: statements on the loop thread, COMMIT on a thread.

The server's writes (claims and scores) are each ONE SQL statement (schema 3: the counters are
kept by triggers, ``ravst.review.db``). Run on the writer thread, every statement releases the
GIL around ``sqlite3_step`` and must take it back from a busy event-loop thread: that wait was
the largest part of a batch on a loaded machine. Here the loop thread, which holds the GIL
anyway, runs a batch's statements itself (about 30-40 us of CPU per write) inside ``BEGIN
IMMEDIATE``, then hands only the ``COMMIT`` (the fsync of ``synchronous=FULL``, GIL released)
to one commit thread; writes that arrive meanwhile wait for the next batch (group commit). Each
future resolves only after its batch committed, so an acknowledged write is durable, as before.

A write that raises rolls back alone (one statement: SQLite undoes it whole, triggers included)
and fails only its own future; a failed ``COMMIT`` fails every write of the batch.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ravst.review.db import ReviewDB, WriteFailed, WriterStats

__all__ = ["LoopWriter"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class LoopWriter:
    """Batches one-statement writes ``fn(conn)`` submitted on the running loop (see the module)."""

    def __init__(self, db: ReviewDB) -> None:
        self.db = db
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._busy = False  # a batch is being committed (or a flush is scheduled)
        self._idle: asyncio.Event | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ravst-review-commit")
        self.stats = WriterStats()

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``fn`` (one statement, or reads then one statement); resolves once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, future))
        if not self._busy:
            self._busy = True
            loop.call_soon(self._flush)  # the writes of this loop iteration share the batch
        return future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            self._busy = False
            if self._idle is not None:
                self._idle.set()
            return
        loop = asyncio.get_running_loop()
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            conn = self.db.begin_batch()  # waits (busy timeout) only while another process writes
        except Exception as exc:  # e.g. the database is locked or unreadable: this batch fails  # noqa: BLE001
            self._finish(batch, None, exc, 0.0, 0.0, 0.0, 0.0)
            return
        try:
            for fn, future in batch:
                try:
                    outcomes.append((future, fn(conn), None))
                except Exception as exc:  # this write fails alone
                    if not conn.in_transaction:  # an I/O error rolled the whole batch back
                        raise
                    outcomes.append((future, None, exc))
        except Exception as exc:  # nothing of the batch is stored  # noqa: BLE001
            self.db.end_batch(commit=False)
            self._finish(batch, None, exc, 0.0, 0.0, 0.0, 0.0)
            return
        statements = (time.perf_counter() - wall0, time.thread_time() - cpu0)

        def commit() -> tuple[float, float]:
            w, c = time.perf_counter(), time.thread_time()
            self.db.end_batch(commit=True)
            return time.perf_counter() - w, time.thread_time() - c

        done = self._executor.submit(commit)
        done.add_done_callback(lambda d: loop.call_soon_threadsafe(self._committed, batch, outcomes, statements, d))

    def _committed(self, batch: list[tuple[Any, asyncio.Future[Any]]],
                   outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]],
                   statements: tuple[float, float], done: Future[tuple[float, float]]) -> None:
        error = done.exception()
        if error is not None:
            self._finish(batch, None, error, *statements, 0.0, 0.0)
            return
        self._finish(batch, outcomes, None, *statements, *done.result())

    def _finish(self, batch: list[tuple[Any, asyncio.Future[Any]]],
                outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] | None,
                failure: BaseException | None, stmt_wall: float, stmt_cpu: float,
                commit_wall: float, commit_cpu: float) -> None:
        if failure is not None:
            log.error("%s: a batch of %d writes failed to commit: %s", self.db.path, len(batch), failure)
            for _, future in batch:
                if not future.done():
                    future.set_exception(WriteFailed(f"{self.db.path}: write failed: {failure}"))
        else:
            assert outcomes is not None
            for future, result, exc in outcomes:
                if future.done():  # cancelled: the write is committed all the same
                    continue
                if exc is None:
                    future.set_result(result)
                else:
                    future.set_exception(exc)
            st = self.stats
            self.stats = WriterStats(st.batches + 1, st.writes + len(batch), st.statements_wall_s + stmt_wall,
                                     st.statements_cpu_s + stmt_cpu, st.commit_wall_s + commit_wall,
                                     st.commit_cpu_s + commit_cpu)
        self._flush()  # the writes that arrived during the commit, if any

    async def close(self) -> None:
        """Wait for the queued writes to commit and stop the commit thread."""
        if self._busy:
            self._idle = asyncio.Event()
            await self._idle.wait()
        self._executor.shutdown(wait=True)
