"""The review app's HTTP API through FastAPI's TestClient, the database and the CLI."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from ravst.review import cli as review_cli
from ravst.review.app import STATIC_DIR, create_app
from ravst.review.db import ReviewDB
from review_helpers import XSS_OBJECT, XSS_QUESTION, make_clip, make_data_dir

VIDEOS = ["vidA", "vidB", "vidC"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.webm")


@pytest.fixture()
def env(tmp_path: Path, clip: Path):
    data = make_data_dir(tmp_path / "data", VIDEOS, clip=clip, obj=XSS_OBJECT, suffix=XSS_QUESTION,
                         missing=("vidC",))
    db_path = tmp_path / "reviews.sqlite"
    db = ReviewDB(db_path)
    tokens = {name: db.add_reviewer(name) for name in ("ana", "bo", "cy")}
    app = create_app(data, db_path)
    client = TestClient(app)
    return client, tokens, db, data


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claim(client: TestClient, token: str) -> int | None:
    r = client.get("/api/next", headers=auth(token))
    assert r.status_code == 200
    return r.json()["item_id"]


def test_auth_is_required_on_every_api_call(env) -> None:
    client, tokens, _, _ = env
    for path in ("/api/me", "/api/next", "/api/assignments", "/api/items/1"):
        r = client.get(path)
        assert r.status_code == 401 and "token" in r.json()["detail"]
        assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.get(path, headers={"Authorization": tokens["ana"]}).status_code == 401
        # a cookie or a query parameter is not a way in
        client.cookies.set("token", tokens["ana"])
        assert client.get(path, params={"token": tokens["ana"]}).status_code == 401
        client.cookies.clear()
    assert client.post("/api/items/1/score", json={"score": 3}).status_code == 401
    me = client.get("/api/me", headers=auth(tokens["ana"]))
    assert me.status_code == 200 and me.json()["name"] == "ana"


def test_db_stores_only_token_hashes(env) -> None:
    _, tokens, db, _ = env
    raw = sqlite3.connect(db.path).execute("SELECT token_sha256 FROM reviewers").fetchall()
    stored = {row[0] for row in raw}
    assert len(stored) == 3 and not stored & set(tokens.values())
    assert sqlite3.connect(db.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_items_go_to_two_reviewers_and_missing_videos_are_not_handed_out(env) -> None:
    client, tokens, _, _ = env
    seen: dict[str, list[int]] = {}
    for name, token in tokens.items():
        while (item_id := claim(client, token)) is not None:
            seen.setdefault(name, []).append(item_id)
            r = client.post(f"/api/items/{item_id}/score", json={"score": 4}, headers=auth(token))
            assert r.status_code == 200 and r.json()["status"] == "recorded"
    per_item: dict[int, int] = {}
    for ids in seen.values():
        assert len(ids) == len(set(ids))
        for i in ids:
            per_item[i] = per_item.get(i, 0) + 1
    # vidC has no file: its 3 items are never handed out; the 6 others get exactly 2 reviewers
    assert sorted(per_item.values()) == [2] * 6
    assert len(seen["ana"]) == 6 and len(seen["bo"]) == 6 and "cy" not in seen
    me = client.get("/api/me", headers=auth(tokens["cy"])).json()["progress"]
    assert me == {"scored": 0, "assigned": 0, "remaining": 0, "items_total": 6, "items_complete": 6}


def test_scoring_is_blind(env) -> None:
    client, tokens, _, _ = env
    a = claim(client, tokens["ana"])
    r = client.post(f"/api/items/{a}/score", json={"score": 1, "note": "SECRET-NOTE-ana"}, headers=auth(tokens["ana"]))
    assert r.status_code == 200
    b = claim(client, tokens["bo"])
    assert b == a  # pairs are completed first
    for path in (f"/api/items/{b}", "/api/assignments", "/api/me", "/api/next"):
        body = client.get(path, headers=auth(tokens["bo"])).text
        assert "SECRET-NOTE-ana" not in body
    item = client.get(f"/api/items/{b}", headers=auth(tokens["bo"])).json()
    assert item["own"] is None
    assert all(a_["score"] is None for a_ in client.get("/api/assignments", headers=auth(tokens["bo"])).json()["assignments"])
    # ana sees her own score and note back
    mine = client.get(f"/api/items/{a}", headers=auth(tokens["ana"])).json()
    assert mine["own"] == {"score": 1, "note": "SECRET-NOTE-ana"}


def test_submission_is_idempotent_and_validated(env) -> None:
    client, tokens, db, _ = env
    item_id = claim(client, tokens["ana"])
    url, h = f"/api/items/{item_id}/score", auth(tokens["ana"])
    first = client.post(url, json={"score": 3, "note": " ok "}, headers=h)
    assert first.status_code == 200 and first.json()["status"] == "recorded" and first.json()["note"] == "ok"
    again = client.post(url, json={"score": 3, "note": "ok"}, headers=h)
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    assert again.json()["progress"]["scored"] == 1
    conflict = client.post(url, json={"score": 2}, headers=h)
    assert conflict.status_code == 409 and "revise" in conflict.json()["detail"]
    revised = client.post(url, json={"score": 2, "revise": True}, headers=h)
    assert revised.status_code == 200 and revised.json()["status"] == "revised"
    assert db.all_scores() == [(item_id, 1, 2, "")]
    for bad in ({"score": 0}, {"score": 5}, {"score": "3"}, {"score": True}, {"score": 2.5},
                {}, {"score": 3, "extra": 1}, {"score": 3, "note": "x" * 2001}, {"score": 3, "note": 7}):
        r = client.post(url, json=bad, headers=h)
        assert r.status_code == 422, (bad, r.status_code)
    r = client.post(url, content=b"{not json", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 422
    assert db.all_scores() == [(item_id, 1, 2, "")]


def test_items_outside_ones_assignments_are_refused(env) -> None:
    client, tokens, _, _ = env
    a = claim(client, tokens["ana"])
    assert client.get(f"/api/items/{a}", headers=auth(tokens["bo"])).status_code == 403
    r = client.post(f"/api/items/{a}/score", json={"score": 4}, headers=auth(tokens["bo"]))
    assert r.status_code == 403 and "not assigned" in r.json()["detail"]
    assert client.get("/api/items/9999", headers=auth(tokens["ana"])).status_code == 404
    assert client.post("/api/items/9999/score", json={"score": 4}, headers=auth(tokens["ana"])).status_code == 404
    assert client.get("/api/items/abc", headers=auth(tokens["ana"])).status_code == 422


def test_item_payload_has_ground_truth_and_untrusted_text_verbatim(env) -> None:
    client, tokens, _, _ = env
    ids = []
    while (i := claim(client, tokens["ana"])) is not None:
        ids.append(i)
        client.post(f"/api/items/{i}/score", json={"score": 4}, headers=auth(tokens["ana"]))
    items = [client.get(f"/api/items/{i}", headers=auth(tokens["ana"])).json() for i in ids]
    spatial = next(it for it in items if it["task"] == "spatial")
    assert spatial["answer"]["objects"] == [XSS_OBJECT]
    assert spatial["question"].endswith(XSS_QUESTION)
    track = spatial["answer"]["tracks"][0]
    assert track["times_s"] == [0.0, 1.0, 2.0, 3.0] and track["xyxy"][1] == [30.0, 40.0, 70.0, 80.0]
    assert spatial["query_span"] == [0.0, 3.5]
    assert spatial["timeline"] == [{"event_index": 0, "span": [0.0, 3.5], "objects": [XSS_OBJECT], "current": True}]
    assert spatial["video_url"].startswith("/media/")


def test_static_page_is_safe(env) -> None:
    client, _, _, _ = env
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    source = (STATIC_DIR / "app.js").read_text() + (STATIC_DIR / "index.html").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source


def video_url(client: TestClient, token: str) -> str:
    item_id = claim(client, token)
    return client.get(f"/api/items/{item_id}", headers=auth(token)).json()["video_url"]


def test_video_range_requests(env, clip: Path) -> None:
    client, tokens, _, _ = env
    url = video_url(client, tokens["ana"])
    blob = clip.read_bytes()
    full = client.get(url)
    assert full.status_code == 200 and full.content == blob
    assert full.headers["accept-ranges"] == "bytes" and full.headers["content-type"] == "video/webm"
    part = client.get(url, headers={"Range": "bytes=100-299"})
    assert part.status_code == 206 and part.content == blob[100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{len(blob)}"
    tail = client.get(url, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == blob[-50:]
    open_end = client.get(url, headers={"Range": f"bytes={len(blob) - 10}-"})
    assert open_end.status_code == 206 and open_end.content == blob[-10:]
    beyond = client.get(url, headers={"Range": f"bytes={len(blob) + 10}-{len(blob) + 20}"})
    assert beyond.status_code == 416
    assert client.get(url, headers={"Range": "lines=1-2"}).status_code == 400
    head = client.head(url)
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) == len(blob)


def test_video_links_are_signed(env) -> None:
    client, tokens, _, _ = env
    url = video_url(client, tokens["ana"])
    path, _, query = url.partition("?")
    params = dict(p.split("=") for p in query.split("&"))
    assert client.get(url).status_code == 200
    forged = {**params, "sig": "0" * 64}
    assert client.get(path, params=forged).status_code == 403
    other_reviewer = {**params, "r": str(int(params["r"]) + 1)}
    assert client.get(path, params=other_reviewer).status_code == 403
    expired = {**params, "exp": str(int(time.time()) - 1)}
    assert client.get(path, params=expired).status_code == 403
    assert client.get("/media/99", params=params).status_code == 404
    assert client.get(path).status_code == 422  # no signature at all


@pytest.mark.parametrize(
    "path",
    [
        "/media/../qa.json",
        "/media/..%2Fqa.json",
        "/media/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static/../db.py",
        "/static/..%2Fdb.py",
        "/static/%2e%2e%2fapp.py",
        "/static/..%2F..%2F..%2Fqa.json",
        "/static/index.html",
        "/videos/vidA.webm",
        "/qa.json",
        "/reviews.sqlite",
    ],
)
def test_path_traversal_is_refused(env, path: str) -> None:
    client, _, _, _ = env
    r = client.get(path)
    assert 400 <= r.status_code < 500
    assert b"video_name" not in r.content and b"import" not in r.content and b"root:" not in r.content


def test_symlinked_video_outside_data_folder_is_not_served(tmp_path: Path, clip: Path) -> None:
    data = make_data_dir(tmp_path / "data", ["vidA"], clip=clip, missing=("vidA",))
    outside = tmp_path / "outside.webm"
    outside.write_bytes(clip.read_bytes())
    (data / "videos").mkdir(exist_ok=True)
    os.symlink(outside, data / "videos" / "vidA.webm")
    db_path = tmp_path / "r.sqlite"
    ReviewDB(db_path).add_reviewer("ana")
    # its only video is not servable, so nothing can be reviewed: an error with the reason
    with pytest.raises(ValueError, match=r"0 reviewable items.*real path is outside.*--allow-root"):
        create_app(data, db_path)
    # the user can allow the folder the link points into
    client = TestClient(create_app(data, db_path, allow_roots=[tmp_path]))
    token = ReviewDB(db_path).add_reviewer("bo")
    assert claim(client, token) is not None


def test_database_belongs_to_one_qa_file(tmp_path: Path, clip: Path) -> None:
    data = make_data_dir(tmp_path / "data", ["vidA"], clip=clip)
    db_path = tmp_path / "r.sqlite"
    create_app(data, db_path)
    create_app(data, db_path)  # same file again: fine
    records = json.loads((data / "qa.json").read_text(encoding="utf-8"))
    records[0]["annotation"][0]["AV Temporal Reasoning"][0]["Q"] += " (edited)"
    (data / "qa.json").write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(ValueError, match="another QA file"):
        create_app(data, db_path)
    (data / "qa.json").write_text(json.dumps([]), encoding="utf-8")
    with pytest.raises(ValueError, match="holds no QA"):
        create_app(data, db_path)
    with pytest.raises(ValueError, match=r"no qa\.json"):
        create_app(tmp_path, db_path)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    review_cli.add_arguments(parser)
    return review_cli.run(parser.parse_args(argv))


def test_cli_add_reviewer_kappa_and_export(tmp_path: Path, clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ravst.formats.official import read_official

    data = make_data_dir(tmp_path / "data", VIDEOS, clip=clip)
    db_path = tmp_path / "r.sqlite"
    tokens = []
    for name in ("ana", "bo"):
        assert run_cli(["add-reviewer", name, "--db", str(db_path)]) == 0
        tokens.append(capsys.readouterr().out.strip())
    assert run_cli(["add-reviewer", "ana", "--db", str(db_path)]) == 1  # names are unique
    assert capsys.readouterr().out == ""
    client = TestClient(create_app(data, db_path))
    # ana and bo score the 9 items: qa_id -> (ana, bo)
    plan = {"temporal": (4, 4), "spatial": (3, 2), "spatiotemporal": (1, 2)}
    for token, who in zip(tokens, (0, 1), strict=True):
        while (i := claim(client, token)) is not None:
            task = client.get(f"/api/items/{i}", headers=auth(token)).json()["task"]
            client.post(f"/api/items/{i}/score", json={"score": plan[task][who]}, headers=auth(token))
    assert run_cli(["kappa", "--db", str(db_path), "--json", "--min-score", "2.5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_items"] == 9 and report["n_items_by_num_scores"] == {"2": 9}
    assert report["overall"]["n_pairs"] == 9
    assert report["per_task"]["temporal"]["exact_agreement"] == 1.0
    assert report["mean_score_all"] == pytest.approx((4 + 2.5 + 1.5) / 3)
    assert report["n_kept"] == 6 and report["mean_score_kept"] == pytest.approx(3.25)
    assert run_cli(["kappa", "--db", str(db_path)]) == 0
    assert "overall" in capsys.readouterr().out

    out = tmp_path / "curated.json"
    assert run_cli(["export", "--db", str(db_path), "--min-score", "2.5", "--out", str(out)]) == 0
    kept = read_official(out)
    assert sorted(i.qa_id for i in kept) == sorted(f"{v}/0/{t}/0" for v in VIDEOS for t in ("temporal", "spatial"))
    originals = {i.qa_id: i for i in read_official(data / "qa.json")}
    assert all(i.answer == originals[i.qa_id].answer and i.question == originals[i.qa_id].question for i in kept)
    assert run_cli(["export", "--db", str(tmp_path / "absent.sqlite"), "--min-score", "3", "--out", str(out)]) == 1


def test_cli_errors_are_clear(tmp_path: Path, clip: Path) -> None:
    import socket

    db_path = tmp_path / "r.sqlite"
    assert run_cli(["add-reviewer", "ana", "--db", str(db_path)]) == 0
    out_missing_dir = tmp_path / "no" / "such" / "c.json"
    assert run_cli(["export", "--db", str(db_path), "--min-score", "3", "--out", str(out_missing_dir)]) == 1
    assert run_cli(["export", "--db", str(db_path), "--min-score", "9", "--out", str(tmp_path / "c.json")]) == 1
    assert run_cli(["kappa", "--db", str(db_path), "--min-score", "0"]) == 1
    data = make_data_dir(tmp_path / "data", VIDEOS, clip=clip)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert run_cli(["serve", "--data", str(data), "--db", str(db_path), "--port", str(port)]) == 1
