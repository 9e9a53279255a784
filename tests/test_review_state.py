"""The server's in-memory state (``ravst.review.state``) against the SQL definitions: the same
claims in the same order as ``ReviewDB.next_item``, the same progress as a brute-force recount,
recovery from a refused claim, and the hot routes' answers byte for byte as FastAPI renders them."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from concurrent.futures import Future
from pathlib import Path

import pytest

from ravst.review.db import (
    REVIEWS_PER_ITEM,
    ConflictError,
    NotAssignedError,
    ReviewDB,
    ReviewDBError,
    WriteFailed,
)
from ravst.review.state import ReviewState, StateOutOfStep
from test_review_db import brute_progress, items


def make_db(path: Path, n_items: int, names: list[str], reviewable: list[bool], seed: int) -> ReviewDB:
    db = ReviewDB(path)
    for name in names:
        db.add_reviewer(name)
    qa = items(n_items)
    db.load_items(qa, b"qa", reviewable=reviewable)
    rng = random.Random(seed)
    flags = {q[0]: ["flag"] for q in rng.sample(qa, 3)}
    judge = {q[0]: rng.choice([1.0, 2.0, 3.5]) for q in rng.sample(qa, 10)}
    db.set_priorities(flags, judge)
    return db


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_memory_claims_equal_sql_claims_and_counters_match_a_recount(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    n = 60
    reviewable = [rng.random() < 0.85 for _ in range(n)]
    names = ["a", "b", "c", "d", "e"]
    sql_db = make_db(tmp_path / "sql.sqlite", n, names, reviewable, seed)
    mem_path = tmp_path / "mem.sqlite"
    mem_db = make_db(mem_path, n, names, reviewable, seed)
    rids = [r.id for r in sql_db.reviewers()]
    assert rids == [r.id for r in mem_db.reviewers()]

    async def run() -> None:
        nonlocal mem_db
        state = ReviewState(mem_db)
        for step in range(400):
            rid = rng.choice(rids)
            action = rng.random()
            if action < 0.45:
                assert await state.next_item(rid) == sql_db.next_item(rid), step
            elif action < 0.9:
                open_items = [a.item_id for a in sql_db.assignments(rid) if a.score is None]
                if open_items:
                    item, score = rng.choice(open_items), rng.randint(1, 4)
                    got = await state.submit_score(rid, item, score, "n")
                    assert got == sql_db.submit_score(rid, item, score, "n")
                    again = await state.submit_score(rid, item, score, " n ")  # answered from memory
                    assert again.status == "unchanged"
                    with pytest.raises(ConflictError):
                        await state.submit_score(rid, item, 1 + score % 4, "n")
            elif action < 0.95:  # a restart: the state is rebuilt from the database
                mem_db.close()
                mem_db = ReviewDB(mem_path)
                state = ReviewState(mem_db)
            else:  # scoring an item one does not hold
                held = {a.item_id for a in sql_db.assignments(rid)}
                other = next((i for i in range(1, n + 1) if i not in held), None)
                if other is not None:
                    with pytest.raises(NotAssignedError):
                        await state.submit_score(rid, other, 2)
            for r in rids:
                assert state.progress(r) == brute_progress(mem_path, r) == sql_db.progress(r), (step, r)
        assert state.snapshot_counts() == ReviewState(mem_db).snapshot_counts()

    asyncio.run(run())
    assert sqlite3.connect(mem_path).execute("SELECT item_id, reviewer_id, score, note FROM scores ORDER BY id") \
        .fetchall() == sqlite3.connect(sql_db.path).execute(
            "SELECT item_id, reviewer_id, score, note FROM scores ORDER BY id").fetchall()
    per_item = sqlite3.connect(mem_path).execute("SELECT COUNT(*) FROM assignments GROUP BY item_id").fetchall()
    assert max(c for (c,) in per_item) <= REVIEWS_PER_ITEM


@pytest.mark.parametrize("loop_writes", [False, True], ids=["writer-thread", "loop-writer"])
def test_claims_and_scores_are_committed_before_the_answer(tmp_path: Path, loop_writes: bool) -> None:
    db = make_db(tmp_path / "r.sqlite", 200, [f"r{i}" for i in range(20)], [True] * 200, 0)
    if not loop_writes:
        db.start_writer()
    state = ReviewState(db, loop_writes=loop_writes)
    rids = [r.id for r in db.reviewers()]

    async def reviewer(rid: int) -> list[int]:
        got = []
        for k in range(5):
            item = await state.next_item(rid)
            assert item is not None
            # committed: another connection sees the claim as soon as it is answered
            seen = sqlite3.connect(db.path).execute(
                "SELECT 1 FROM assignments WHERE item_id = ? AND reviewer_id = ?", (item, rid)).fetchone()
            assert seen is not None
            assert (await state.submit_score(rid, item, 1 + k % 4)).status == "recorded"
            assert sqlite3.connect(db.path).execute(
                "SELECT score FROM scores WHERE item_id = ? AND reviewer_id = ?", (item, rid)).fetchone() == (1 + k % 4,)
            with pytest.raises(ConflictError):  # fails alone, inside a batch shared with the others' writes
                await state.submit_score(rid, item, 1 + (k + 1) % 4)
            got.append(item)
        return got

    async def run() -> list[list[int]]:
        out = list(await asyncio.gather(*(reviewer(r) for r in rids)))
        await state.close()
        return out

    claimed = asyncio.run(run())
    db.stop_writer()
    counts: dict[int, int] = {}
    for got in claimed:
        for item in got:
            counts[item] = counts.get(item, 0) + 1
    assert max(counts.values()) <= REVIEWS_PER_ITEM and sum(counts.values()) == 100
    for rid in rids:
        assert state.progress(rid) == brute_progress(Path(db.path), rid)


def test_a_refused_claim_puts_the_state_out_of_step_then_it_is_rebuilt(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    db = make_db(tmp_path / "r.sqlite", 10, ["a", "b"], [True] * 10, 0)
    state = ReviewState(db)
    a, b = (r.id for r in db.reviewers())

    def refuse(reviewer_id: int, item_id: int) -> Future[int]:
        failed: Future[int] = Future()
        failed.set_exception(ReviewDBError("disk I/O error"))
        return failed

    async def run() -> None:
        original = db.record_claim_future
        db.record_claim_future = refuse  # type: ignore[method-assign]
        with pytest.raises(StateOutOfStep, match="disk I/O error"):
            await state.next_item(a)
        db.record_claim_future = original  # type: ignore[method-assign]
        assert state.out_of_step
        item = await state.next_item(b)  # nothing in flight: rebuilt from the database, then served
        assert not state.out_of_step and item is not None
        for rid in (a, b):
            assert state.progress(rid) == brute_progress(Path(db.path), rid)
        assert await state.next_item(a) == item  # the refused claim left no trace: a completes b's pair

    asyncio.run(run())
    assert "could not be stored" in caplog.text and "rebuilding" in caplog.text


def test_hot_routes_answer_as_fastapi_renders(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.responses import JSONResponse
    from fastapi.testclient import TestClient

    from ravst.review.app import create_app, item_payload
    from review_helpers import make_clip, make_data_dir

    data = make_data_dir(tmp_path / "data", ["vA", "vB"], clip=make_clip(tmp_path / "c.webm", seconds=1),
                         obj='dog "é" \u2028')
    db_path = tmp_path / "r.sqlite"
    token = ReviewDB(db_path).add_reviewer("ana")
    app = create_app(data, db_path)
    client = TestClient(app)
    late = ReviewDB(db_path).add_reviewer("bo")  # added while the server runs
    h = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers={"Authorization": f"Bearer {late}"}).json()["name"] == "bo"
    nxt = client.get("/api/next", headers=h)
    item_id = nxt.json()["item_id"]
    state = app.state.review_state
    assert nxt.content == JSONResponse({"item_id": item_id, "done": False, "progress": state.progress(1)}).body
    scored = client.post(f"/api/items/{item_id}/score", json={"score": 3, "note": " é\u2028 "}, headers=h)
    assert scored.status_code == 200 and scored.json()["note"] == "é"
    got = client.get(f"/api/items/{item_id}", headers=h)
    assert got.status_code == 200 and got.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in got.headers["content-security-policy"]
    body = got.json()
    rows = {row.id: row.qa_id for row in ReviewDB(db_path).item_rows()}
    items_ = {i.qa_id: i for i in app.state.data.items}
    item = items_[rows[item_id]]
    same_video = [i for i in app.state.data.items if i.video == item.video]
    expected = {**item_payload(item, item_id, same_video), "own": {"score": 3, "note": "é"},
                "video_url": body["video_url"]}
    assert got.content == JSONResponse(expected).body
    # a lone surrogate in a note is refused (4xx), never a 500
    bad = client.post(f"/api/items/{item_id}/score", content=b'{"score": 2, "note": "\\ud800", "revise": true}',
                      headers={**h, "Content-Type": "application/json"})
    assert bad.status_code == 422
    with pytest.raises(ReviewDBError, match="not text"):
        ReviewDB(db_path).submit_score(1, item_id, 2, "\ud800", revise=True)
    assert json.loads(client.get("/api/me", headers=h).content)["progress"]["scored"] == 1


def test_loop_writer_claim_refused_by_the_database_rebuilds_the_state(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    db = make_db(tmp_path / "r.sqlite", 10, ["a", "b", "c"], [True] * 10, 0)
    state = ReviewState(db, loop_writes=True)
    a, b, c = (r.id for r in db.reviewers())
    first = db.next_item(b)  # rows changed behind the state's back: b and c hold the first item
    assert db.next_item(c) == first

    async def run() -> None:
        with pytest.raises(StateOutOfStep, match="refused by the database"):
            await state.next_item(a)  # memory still thinks the first item is free
        item = await state.next_item(a)  # rebuilt from the database, then served
        assert item is not None and item != first
        assert sqlite3.connect(db.path).execute(
            "SELECT COUNT(*) FROM assignments WHERE item_id = ?", (first,)).fetchone() == (2,)
        for rid in (a, b, c):
            assert state.progress(rid) == brute_progress(Path(db.path), rid)
        await state.close()

    asyncio.run(run())
    assert "could not be stored" in caplog.text and "rebuilding" in caplog.text


def test_loop_writer_batch_that_cannot_begin_fails_its_requests(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    db = make_db(tmp_path / "r.sqlite", 10, ["a"], [True] * 10, 0)
    state = ReviewState(db, loop_writes=True)
    (a,) = (r.id for r in db.reviewers())

    def locked() -> None:
        raise sqlite3.OperationalError("database is locked")

    async def run() -> None:
        original = db.begin_batch
        db.begin_batch = locked  # type: ignore[assignment,method-assign]
        with pytest.raises(StateOutOfStep, match="database is locked"):
            await asyncio.wait_for(state.next_item(a), 10)  # answered (503), not left hanging
        db.begin_batch = original  # type: ignore[method-assign]
        item = await state.next_item(a)  # rebuilt, then stored
        assert item is not None
        db.begin_batch = locked  # type: ignore[assignment,method-assign]
        with pytest.raises(WriteFailed, match="database is locked"):  # the route answers 503
            await asyncio.wait_for(state.submit_score(a, item, 3), 10)
        db.begin_batch = original  # type: ignore[method-assign]
        assert state.own_score(a, item) is None  # nothing applied: nothing was stored
        assert (await state.submit_score(a, item, 3)).status == "recorded"
        assert state.progress(a) == brute_progress(Path(db.path), a)
        await state.close()

    asyncio.run(run())
    assert "failed to commit" in caplog.text
