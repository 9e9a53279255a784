"""The review database's kept counters and claim order against brute-force recounts from the
raw tables, the group-commit write queue, the invariants the triggers enforce, and the upgrade of
schema-1 and schema-2 databases."""

from __future__ import annotations

import random
import sqlite3
import threading
from pathlib import Path

import pytest

from ravst.review.db import REVIEWS_PER_ITEM, ConflictError, ReviewDB, ReviewDBError, record_claim


def brute_progress(path: Path, reviewer_id: int) -> dict[str, int]:
    """``progress`` recomputed from the raw rows with plain SQL (the definition in docs/review.md)."""
    c = sqlite3.connect(path)
    one = lambda sql, *p: c.execute(sql, p).fetchone()[0]  # noqa: E731
    scored = one("SELECT COUNT(*) FROM scores WHERE reviewer_id = ?", reviewer_id)
    assigned = one("SELECT COUNT(*) FROM assignments WHERE reviewer_id = ?", reviewer_id)
    total = one("SELECT COUNT(*) FROM items WHERE reviewable = 1")
    complete = one("""SELECT COUNT(*) FROM (SELECT s.item_id FROM scores s JOIN items i ON i.id = s.item_id
                      WHERE i.reviewable = 1 GROUP BY s.item_id HAVING COUNT(*) >= ?)""", REVIEWS_PER_ITEM)
    claimable = one("""SELECT COUNT(*) FROM items i WHERE i.reviewable = 1
                       AND (SELECT COUNT(*) FROM assignments a WHERE a.item_id = i.id) < ?
                       AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.reviewer_id = ?)""",
                    REVIEWS_PER_ITEM, reviewer_id)
    c.close()
    return {"scored": scored, "assigned": assigned, "remaining": assigned - scored + claimable,
            "items_total": total, "items_complete": complete}


def items(n: int) -> list[tuple[str, str, str, str]]:
    return [(f"v{i}/0/temporal/0", f"v{i}", "temporal", "temporal") for i in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counters_match_a_recount_through_random_work_and_restarts(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "r.sqlite"
    qa = items(40)
    reviewable = [rng.random() < 0.8 for _ in qa]
    db = ReviewDB(path)
    rids = []
    for name in ("a", "b", "c", "d"):
        db.add_reviewer(name)
    rids = [r.id for r in db.reviewers()]
    db.load_items(qa, b"qa", reviewable=reviewable)
    for step in range(300):
        rid = rng.choice(rids)
        action = rng.random()
        if action < 0.45:
            db.next_item(rid)
        elif action < 0.9:
            open_items = [a.item_id for a in db.assignments(rid) if a.score is None]
            if open_items:
                item = rng.choice(open_items)
                db.submit_score(rid, item, rng.randint(1, 4))
        elif action < 0.95:  # restart with other reviewable flags: counters recounted
            reviewable = [rng.random() < 0.8 for _ in qa]
            db.close()
            db = ReviewDB(path)
            db.load_items(qa, b"qa", reviewable=reviewable)
        else:
            db.add_reviewer(f"late{step}")
            rids = [r.id for r in db.reviewers()]
        for r in rids:
            assert db.progress(r) == brute_progress(path, r), (step, r)
    # no item ever has more than two reviewers
    c = sqlite3.connect(path)
    assert max(n for (n,) in c.execute("SELECT COUNT(*) FROM assignments GROUP BY item_id")) <= REVIEWS_PER_ITEM


def test_claim_order_flags_then_judge_score_then_file_order(tmp_path: Path) -> None:
    db = ReviewDB(tmp_path / "r.sqlite")
    a = db.reviewer_for_token(db.add_reviewer("a"))
    b = db.reviewer_for_token(db.add_reviewer("b"))
    assert a is not None and b is not None
    qa = items(6)
    db.load_items(qa, b"qa")
    moved = db.set_priorities({"v4/0/temporal/0": ["box covers > 90 % of the frame"]},
                              {"v1/0/temporal/0": 3.0, "v3/0/temporal/0": 1.0, "v5/0/temporal/0": 2.0})
    assert moved > 0
    order = []
    while (item := db.next_item(a.id)) is not None:
        order.append(item)
        db.submit_score(a.id, item, 3)
    ids = {row.qa_id: row.id for row in db.item_rows()}
    expected = ["v4", "v3", "v5", "v1", "v0", "v2"]
    assert order == [ids[f"{v}/0/temporal/0"] for v in expected]
    assert next(r for r in db.item_rows() if r.qa_id == "v4/0/temporal/0").flag_reasons == (
        "box covers > 90 % of the frame",)
    with pytest.raises(ValueError, match="not in the QA file"):
        db.set_priorities({}, {"nope/0/temporal/0": 1.0})


def test_group_commit_queue_is_exactly_once_and_isolates_failures(tmp_path: Path) -> None:
    db = ReviewDB(tmp_path / "r.sqlite")
    tokens = [db.add_reviewer(f"r{i}") for i in range(8)]
    db.load_items(items(100), b"qa")
    rids = [r.id for r in db.reviewers()]
    db.start_writer()
    results: list[tuple[int, int]] = []
    conflicts: list[int] = []
    lock = threading.Lock()

    def work(rid: int) -> None:
        for _ in range(10):
            item = db.next_item(rid)
            assert item is not None
            db.submit_score(rid, item, 2)
            assert db.submit_score(rid, item, 2).status == "unchanged"
            try:
                db.submit_score(rid, item, 3)  # a conflict fails alone, inside a shared batch
            except ConflictError:
                with lock:
                    conflicts.append(item)
            with lock:
                results.append((rid, item))

    threads = [threading.Thread(target=work, args=(r,)) for r in rids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.stop_writer()
    assert len(conflicts) == 80 and len(tokens) == 8
    rows = sqlite3.connect(db.path).execute("SELECT reviewer_id, item_id, score FROM scores").fetchall()
    assert sorted((r, i) for r, i, _ in rows) == sorted(results) and all(s == 2 for _, _, s in rows)


SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE items (id INTEGER PRIMARY KEY, qa_id TEXT NOT NULL UNIQUE, video TEXT NOT NULL, task TEXT NOT NULL,
    kind TEXT NOT NULL, position INTEGER NOT NULL, reviewable INTEGER NOT NULL DEFAULT 1);
CREATE TABLE reviewers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_sha256 TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL);
CREATE TABLE assignments (item_id INTEGER NOT NULL, reviewer_id INTEGER NOT NULL, assigned_at REAL NOT NULL,
    PRIMARY KEY (item_id, reviewer_id));
CREATE INDEX assignments_by_reviewer ON assignments(reviewer_id, assigned_at);
CREATE TABLE scores (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL, reviewer_id INTEGER NOT NULL,
    score INTEGER NOT NULL, note TEXT NOT NULL DEFAULT '', submitted_at REAL NOT NULL, revised_at REAL,
    UNIQUE (item_id, reviewer_id));
INSERT INTO meta VALUES ('schema_version', '1'), ('media_secret', 'ab'), ('qa_sha256', 'x');
INSERT INTO items VALUES (1, 'v0/0/temporal/0', 'v0', 'temporal', 'temporal', 0, 1),
                         (2, 'v1/0/temporal/0', 'v1', 'temporal', 'temporal', 1, 1),
                         (3, 'v2/0/temporal/0', 'v2', 'temporal', 'temporal', 2, 1);
INSERT INTO reviewers VALUES (1, 'a', 'h1', 0), (2, 'b', 'h2', 0);
INSERT INTO assignments VALUES (1, 1, 1.0), (1, 2, 2.0), (2, 1, 3.0);
INSERT INTO scores VALUES (1, 1, 1, 4, '', 1.5, NULL), (2, 1, 2, 3, '', 2.5, NULL);
"""


def test_schema_1_database_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_1)
    conn.close()
    db = ReviewDB(path)
    assert db.get_meta("schema_version") == "3"
    assert db.progress(1) == brute_progress(path, 1) == {
        "scored": 1, "assigned": 2, "remaining": 2, "items_total": 3, "items_complete": 1}
    assert db.progress(2) == brute_progress(path, 2)
    assert db.next_item(1) == 2  # a's open item first
    assert db.next_item(2) == 2  # b completes the pair


def test_invariants_hold_for_any_writer(tmp_path: Path) -> None:
    """The schema-3 triggers refuse what the server never does, for every connection: a third
    reviewer, an unreviewable item, a score for an item not assigned; a refused statement leaves
    every counter as it was."""
    db = ReviewDB(tmp_path / "r.sqlite")
    for name in ("a", "b", "c"):
        db.add_reviewer(name)
    db.load_items(items(3), b"qa", reviewable=[True, True, False])
    assert db.next_item(1) == 1 and db.next_item(2) == 1
    before = [db.progress(r) for r in (1, 2, 3)]
    raw = sqlite3.connect(db.path)
    for sql in ("INSERT INTO assignments (item_id, reviewer_id, assigned_at) VALUES (1, 3, 0)",  # full
                "INSERT INTO assignments (item_id, reviewer_id, assigned_at) VALUES (3, 3, 0)",  # not reviewable
                "INSERT INTO assignments (item_id, reviewer_id, assigned_at) VALUES (1, 1, 0)",  # held
                "INSERT INTO scores (item_id, reviewer_id, score, submitted_at) VALUES (2, 3, 2, 0)"):  # not assigned
        with pytest.raises(sqlite3.IntegrityError):
            raw.execute(sql)
    raw.commit()
    raw.close()
    assert [db.progress(r) for r in (1, 2, 3)] == before == [brute_progress(db.path, r) for r in (1, 2, 3)]
    with pytest.raises(ReviewDBError, match="refused by the database"):
        db.submit(lambda conn: record_claim(conn, 3, 1), atomic=True).result()


def test_schema_2_database_is_upgraded_and_recounted(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    db = ReviewDB(path)
    db.add_reviewer("a")
    db.add_reviewer("b")
    db.load_items(items(4), b"qa")
    db.submit_score(1, db.next_item(1), 3)
    db.close()
    raw = sqlite3.connect(path)  # as schema 2 left it: no triggers, and a counter off
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        raw.execute(f"DROP TRIGGER {name}")
    raw.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    raw.execute("UPDATE reviewers SET n_scored = 7")
    raw.commit()
    raw.close()
    db = ReviewDB(path)
    assert db.get_meta("schema_version") == "3"
    assert db.progress(1) == brute_progress(path, 1) and db.progress(2) == brute_progress(path, 2)
    item = db.next_item(2)  # the pair completes through the triggers
    assert item == 1
    db.submit_score(2, item, 4)
    assert db.progress(2) == brute_progress(path, 2) and db.progress(2)["items_complete"] == 1
