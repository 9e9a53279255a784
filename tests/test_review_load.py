"""Load on loopback: the real server under many concurrent reviewers, killed with SIGKILL
mid-stream and restarted: every acknowledged score is in the database, none twice."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from ravst.review.db import ReviewDB  # noqa: E402
from review_helpers import free_port, make_clip, make_data_dir, start_server  # noqa: E402

N_REVIEWERS = 12
N_VIDEOS = 2000  # 6000 items: more than the reviewers can finish in the load window (they finished
# 1200 in under 5 s on a quiet 2-core machine once writes were one statement each)
LOAD_S = 5.0


def reviewer_loop(base: str, token: str, stop: threading.Event, acked: list[tuple[str, int, int]],
                  errors: list[str], seed: int) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        while not stop.is_set():
            try:
                item_id = client.get("/api/next").json()["item_id"]
                if item_id is None:
                    return
                score = rng.randint(1, 4)
                for _ in range(2 if rng.random() < 0.3 else 1):  # some clients retry: must be a no-op
                    r = client.post(f"/api/items/{item_id}/score", json={"score": score, "note": f"n{seed}"})
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text}")
                        return
                    assert r.json()["status"] in ("recorded", "unchanged")
                    acked.append((token, item_id, score))
            except httpx.HTTPError:
                return  # the server was killed under us: whatever was not answered is not acknowledged


def test_acknowledged_scores_survive_kill_9(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path / "data", [f"v{i:03d}" for i in range(N_VIDEOS)],
                         clip=make_clip(tmp_path / "clip.webm", seconds=1))
    db_path = tmp_path / "reviews.sqlite"
    db = ReviewDB(db_path)
    tokens = [db.add_reviewer(f"r{i}") for i in range(N_REVIEWERS)]
    db.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(data, db_path, port, tmp_path / "server.log")
    stop = threading.Event()
    acked: list[tuple[str, int, int]] = []
    errors: list[str] = []
    threads = [threading.Thread(target=reviewer_loop, args=(base, t, stop, acked, errors, i))
               for i, t in enumerate(tokens)]
    try:
        for t in threads:
            t.start()
        time.sleep(LOAD_S)
        server.kill()  # SIGKILL while the reviewers are still submitting
        server.wait(timeout=10)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        if server.poll() is None:
            server.kill()
    print(f"acknowledged {len(acked)} scores from {N_REVIEWERS} reviewers in {LOAD_S} s")
    assert not errors, errors[:5]
    assert len(acked) > 20, f"only {len(acked)} scores acknowledged in {LOAD_S} s"

    server = start_server(data, db_path, port, tmp_path / "server.log")
    try:
        conn = sqlite3.connect(db_path)
        ids = {name: rid for rid, name in conn.execute("SELECT id, name FROM reviewers")}
        by_token = {t: ids[f"r{i}"] for i, t in enumerate(tokens)}
        rows = conn.execute("SELECT reviewer_id, item_id, score FROM scores").fetchall()
        stored: dict[tuple[int, int], list[int]] = {}
        for reviewer_id, item_id, score in rows:
            stored.setdefault((reviewer_id, item_id), []).append(score)
        for token, item_id, score in acked:
            assert stored.get((by_token[token], item_id)) == [score], (token, item_id, score)
        print(f"{len(rows)} score rows stored (acknowledged or committed just before the kill)")
        assert all(len(v) == 1 for v in stored.values())  # none twice
        assert len(rows) < 2 * 3 * N_VIDEOS, "the reviewers ran out of work before the kill: add items"
        per_item = conn.execute("SELECT COUNT(*) FROM scores GROUP BY item_id").fetchall()
        assert max(n for (n,) in per_item) <= 2
        per_item_assigned = conn.execute("SELECT COUNT(*) FROM assignments GROUP BY item_id").fetchall()
        assert max(n for (n,) in per_item_assigned) <= 2
        conn.close()
        # the restarted server answers from the same state
        me = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=10).json()
        assert me["progress"]["scored"] >= len({i for t, i, _ in acked if t == tokens[0]})
    finally:
        server.kill()
        server.wait(timeout=10)
