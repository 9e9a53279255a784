"""The review server's working state in memory: who holds which item, own scores, counters.

Built from the database at start-up (``ReviewDB.snapshot``) and kept in step with it by the
server's own writes, which all pass through here and through the one writer queue
(docs/review.md):

* a claim (``GET /api/next``) is DECIDED here at once, on the event loop: no SQL and no wait
  for the writer's commits; the row is then stored through the writer (group commit: the
  server's ``ravst.review.loopwriter.LoopWriter``, or ``ReviewDB``'s writer thread) and
  the request is answered only once it is committed, so a claim is permanent even across a
  ``kill -9`` (the same promise as before);
* a score is checked and stored by the writer (the SQL stays the authority for ``recorded``,
  ``unchanged``, ``revised`` and 409), then applied here once committed; an identical re-sent
  score is answered ``unchanged`` from here, with no write (what is here is committed);
* the assignment check, the own score, the progress counts and the token look-up are
  dictionary reads.

Every change runs on the event loop thread: the writer thread only resolves futures, whose
results are applied through ``loop.call_soon_threadsafe``. Claims follow the order of
``ravst.review.db.ReviewDB.next_item`` exactly (tested against it). If the writer refuses or
fails a claim, memory and database may differ: this is logged as an ERROR, writes raise
``StateOutOfStep`` (the app answers 503) while writes are still in flight, and the state is then
rebuilt from the database.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from ravst.review.db import (
    REVIEWS_PER_ITEM,
    NotAssignedError,
    ReviewDB,
    Reviewer,
    ScoreResult,
    WriterStats,
    check_score,
    hash_token,
    record_claim,
    write_score,
)
from ravst.review.loopwriter import LoopWriter

__all__ = ["ReviewState", "StateOutOfStep"]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class StateOutOfStep(RuntimeError):
    """A write the database refused left memory and database apart; retry in a moment (503)."""


class _Work:
    """One reviewer's items and counters (mutable; only ``ReviewState`` touches it)."""

    __slots__ = ("held", "id", "n_assigned", "n_half", "n_scored", "open", "scores")

    def __init__(self, reviewer_id: int, n_assigned: int, n_scored: int, n_half: int) -> None:
        self.id = reviewer_id
        self.n_assigned, self.n_scored, self.n_half = n_assigned, n_scored, n_half
        self.held: set[int] = set()
        self.open: dict[int, None] = {}  # unscored items, in hand-out order
        self.scores: dict[int, tuple[int, str]] = {}


def _half_key(n_holders: int, item_id: int, rank: int) -> tuple[int, int, int]:
    """Claim order among items that already have reviewers: most reviewers first, then queue
    rank (then id, the index's order), as ``ReviewDB.next_item``."""
    return (-n_holders, rank, item_id)


class ReviewState:
    """In-memory assignments, scores and counters of one server over ``db`` (see the module)."""

    def __init__(self, db: ReviewDB, *, loop_writes: bool = False) -> None:
        """``loop_writes``: store claims and scores through a ``ravst.review.loopwriter.LoopWriter``
        (statements on the event loop thread, COMMIT on a commit thread: the server) instead of
        ``db``'s writer thread (``db.start_writer()``) or, without one, at once."""
        self.db = db
        self._loop_writer = LoopWriter(db) if loop_writes else None
        self.out_of_step = False
        self._in_flight = 0
        self._load()

    # -- building -----------------------------------------------------------------------
    def _load(self) -> None:
        snap = self.db.snapshot()
        self._by_token: dict[str, Reviewer] = {}
        self._work: dict[int, _Work] = {}
        for rid, name, token_sha256, n_assigned, n_scored, n_half in snap.reviewers:
            self._by_token[token_sha256] = Reviewer(rid, name)
            self._work[rid] = _Work(rid, n_assigned, n_scored, n_half)
        self._rank: dict[int, int] = {}
        self._holders: dict[int, list[int]] = {}
        self._n_scored: dict[int, int] = {}
        self._reviewable: set[int] = set()
        queue_order: list[int] = []
        for item_id, reviewable, rank in snap.items:  # in queue order
            self._rank[item_id] = rank
            self._holders[item_id] = []
            self._n_scored[item_id] = 0
            if reviewable:
                self._reviewable.add(item_id)
                queue_order.append(item_id)
        for item_id, rid, scored in snap.assignments:  # in hand-out order
            self._holders[item_id].append(rid)
            work = self._work[rid]
            work.held.add(item_id)
            if not scored:
                work.open[item_id] = None
        for item_id, rid, score, note in snap.scores:
            self._work[rid].scores[item_id] = (score, note)
            self._n_scored[item_id] += 1
        self._queue = queue_order  # reviewable items in queue order: the unheld ones are claimed in turn
        self._queue_at = 0
        self._half = sorted(_half_key(len(self._holders[i]), i, self._rank[i]) for i in queue_order
                            if 0 < len(self._holders[i]) < REVIEWS_PER_ITEM)
        self._total = int(snap.pool.get("reviewable", 0))
        self._full = int(snap.pool.get("full", 0))
        self._complete = int(snap.pool.get("complete", 0))
        self._pending_claims: dict[tuple[int, int], asyncio.Future[int]] = {}

    def _check_step(self) -> None:
        if not self.out_of_step:
            return
        if self._in_flight:
            raise StateOutOfStep("the review state is being rebuilt after a failed write; retry in a moment")
        log.warning("%s: rebuilding the review state from the database after a failed write", self.db.path)
        self._load()
        self.out_of_step = False

    def _write_claim(self, reviewer_id: int, item_id: int) -> Future[int] | asyncio.Future[int]:
        if self._loop_writer is not None:
            return self._loop_writer.submit(lambda conn: record_claim(conn, reviewer_id, item_id))
        return self.db.record_claim_future(reviewer_id, item_id)

    def _write_score(self, reviewer_id: int, item_id: int, score: int, note: str,
                     revise: bool) -> Future[ScoreResult] | asyncio.Future[ScoreResult]:
        if self._loop_writer is not None:
            return self._loop_writer.submit(lambda conn: write_score(conn, reviewer_id, item_id, score, note, revise))
        return self.db.score_future(reviewer_id, item_id, score, note, revise=revise)

    def writer_stats(self) -> WriterStats:
        """The statistics of whichever writer stores this state's writes."""
        return self._loop_writer.stats if self._loop_writer is not None else self.db.writer_stats()

    async def close(self) -> None:
        """Wait for the writes in flight to commit (the loop writer's commit thread stops)."""
        if self._loop_writer is not None:
            await self._loop_writer.close()

    def _track(self, future: Future[T] | asyncio.Future[T], apply: Callable[[T], R], *,
               claim: bool = False) -> asyncio.Future[R]:
        """An asyncio future resolved, on the loop, with ``apply(result)`` once the writer has
        committed ``future`` (or with its exception). A failed claim puts the state out of step."""
        loop = asyncio.get_running_loop()
        out: asyncio.Future[R] = loop.create_future()
        self._in_flight += 1

        def finish(done: Future[T] | asyncio.Future[T]) -> None:
            self._in_flight -= 1
            try:
                value = apply(done.result())
            except Exception as exc:  # handed to the waiting request  # noqa: BLE001
                if claim:
                    self.out_of_step = True
                    log.error("%s: a claim could not be stored (%s); the in-memory state will be rebuilt",
                              self.db.path, exc)
                if not out.done():
                    out.set_exception(exc)
                else:
                    log.error("%s: write failed with no request waiting: %s", self.db.path, exc)
                return
            if not out.done():
                out.set_result(value)

        if isinstance(future, asyncio.Future):  # resolved on this loop already
            future.add_done_callback(finish)
        else:  # resolved by the writer thread
            future.add_done_callback(lambda done: loop.call_soon_threadsafe(finish, done))
        return out

    # -- reviewers ----------------------------------------------------------------------
    def reviewer_for_token(self, token: str) -> Reviewer | None:
        """The reviewer of ``token``; a token not seen yet (``add-reviewer`` while the server
        runs) is looked up in the database."""
        digest = hash_token(token)
        found = self._by_token.get(digest)
        if found is not None:
            return found
        row = self.db.reviewer_row(token)
        if row is None:
            return None
        rid, name, n_assigned, n_scored, n_half = row
        if rid not in self._work:
            work = _Work(rid, n_assigned, n_scored, n_half)
            held, scores = self.db.reviewer_work(rid)
            for item_id, scored in held:
                work.held.add(item_id)
                if not scored:
                    work.open[item_id] = None
            for item_id, score, note in scores:
                work.scores[item_id] = (score, note)
            self._work[rid] = work
        found = Reviewer(rid, name)
        self._by_token[digest] = found
        return found

    def is_assigned(self, reviewer_id: int, item_id: int) -> bool:
        return item_id in self._work[reviewer_id].held

    def own_score(self, reviewer_id: int, item_id: int) -> tuple[int, str] | None:
        return self._work[reviewer_id].scores.get(item_id)

    def progress(self, reviewer_id: int) -> dict[str, int]:
        """As ``ReviewDB.progress`` (same definition, docs/review.md), from the counters here."""
        work = self._work[reviewer_id]
        claimable = self._total - self._full - work.n_half
        return {
            "scored": work.n_scored,
            "assigned": work.n_assigned,
            "remaining": work.n_assigned - work.n_scored + claimable,
            "items_total": self._total,
            "items_complete": self._complete,
        }

    # -- claims -------------------------------------------------------------------------
    def _choose(self, work: _Work) -> int | None:
        for _, _, item_id in self._half:  # short: at most about one per reviewer
            if work.id not in self._holders[item_id]:
                return item_id
        queue, at = self._queue, self._queue_at
        while at < len(queue) and self._holders[queue[at]]:
            at += 1
        self._queue_at = at
        return queue[at] if at < len(queue) else None

    def _apply_claim(self, work: _Work, item_id: int) -> None:
        holders = self._holders[item_id]
        n = len(holders)
        if n:
            key = _half_key(n, item_id, self._rank[item_id])
            del self._half[bisect.bisect_left(self._half, key)]
        holders.append(work.id)
        work.held.add(item_id)
        work.open[item_id] = None
        work.n_assigned += 1
        if n + 1 >= REVIEWS_PER_ITEM:  # full: no longer half-held by the others
            self._full += 1
            for other in holders[:-1]:
                self._work[other].n_half -= 1
        else:
            work.n_half += 1
            bisect.insort(self._half, _half_key(n + 1, item_id, self._rank[item_id]))

    async def next_item(self, reviewer_id: int) -> int | None:
        """``ReviewDB.next_item``: the reviewer's oldest unscored item, else a new claim, decided
        here and answered once committed."""
        self._check_step()
        work = self._work[reviewer_id]
        if work.open:
            held = next(iter(work.open))
            pending = self._pending_claims.get((reviewer_id, held))
            if pending is not None:  # claimed by a concurrent request, not committed yet
                await self._claim_committed(asyncio.shield(pending))
            return held
        item_id = self._choose(work)
        if item_id is None:
            return None
        self._apply_claim(work, item_id)
        key = (reviewer_id, item_id)

        def committed(stored: int) -> int:
            self._pending_claims.pop(key, None)
            return stored

        done = self._track(self._write_claim(reviewer_id, item_id), committed, claim=True)
        self._pending_claims[key] = done
        await self._claim_committed(asyncio.shield(done))
        return item_id

    async def _claim_committed(self, waiting: asyncio.Future[int]) -> None:
        try:
            await waiting
        except StateOutOfStep:
            raise
        except Exception as exc:
            raise StateOutOfStep(f"the claim could not be stored ({exc}); retry in a moment") from exc

    # -- scores -------------------------------------------------------------------------
    def _apply_score(self, work: _Work, result: ScoreResult) -> ScoreResult:
        item_id = result.item_id
        if result.status == "recorded":
            work.scores[item_id] = (result.score, result.note)
            work.open.pop(item_id, None)
            work.n_scored += 1
            self._n_scored[item_id] += 1
            if item_id in self._reviewable and self._n_scored[item_id] == REVIEWS_PER_ITEM:
                self._complete += 1
        elif result.status == "revised":
            work.scores[item_id] = (result.score, result.note)
        return result

    async def submit_score(self, reviewer_id: int, item_id: int, score: int, note: str = "", *,
                           revise: bool = False) -> ScoreResult:
        """``ReviewDB.submit_score`` through the write queue, answered once committed; an
        identical score already committed is ``unchanged`` without a write."""
        self._check_step()
        work = self._work[reviewer_id]
        if item_id not in work.held:
            raise NotAssignedError(f"item {item_id} is not assigned to this reviewer")
        note = check_score(score, note)
        if work.scores.get(item_id) == (score, note):
            return ScoreResult("unchanged", item_id, score, note)
        future = self._write_score(reviewer_id, item_id, score, note, revise)
        return await asyncio.shield(self._track(future, lambda result: self._apply_score(work, result)))

    def snapshot_counts(self) -> dict[str, Any]:
        """The pool counters and per-reviewer counters (for tests against the database)."""
        return {"pool": {"reviewable": self._total, "full": self._full, "complete": self._complete},
                "reviewers": {rid: (w.n_assigned, w.n_scored, w.n_half) for rid, w in self._work.items()}}
