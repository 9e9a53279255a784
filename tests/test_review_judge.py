"""``ravst judge``: a loopback OpenAI-compatible judge, a tiny random Qwen2.5-VL, resume on torn /
U+2028 / newline-less files, the summary (means before / after curation, kappa vs reviewers
checked against scikit-learn), and the review queue ordered by judge score."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from infer_helpers import DOG, N_QA, UNAV, write_qa_file
from ravst.cli import main
from ravst.judge import JUDGE_SYSTEM, parse_judge_score, read_judge_scores
from ravst.review.kappa import SCALE_LABELS

pytest.importorskip("httpx")

# the fake judge's score for each QA, chosen from the question (task) it is sent
SCORES = {"temporal": 4, "spatial": 2, "spatiotemporal": 1}


class _Judge(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state = self.server.state
        state["requests"].append(body)
        user = " ".join(p["text"] for p in body["messages"][-1]["content"] if p["type"] == "text")
        if "where is/are they" in user:
            score = SCORES["spatial"]
        elif "where is the" in user:
            score = SCORES["spatiotemporal"]
        else:
            score = SCORES["temporal"]
        text = state.get("reply", "Score: {s}\nReason: line\u2028separator and é").format(s=score)
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def judge_server() -> Iterator[tuple[str, dict[str, Any]]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    httpd.state = {"requests": []}  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", httpd.state  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()


def judge(qa: Path, videos: Path, out: Path, url: str, *extra: str) -> int:
    return main(["judge", "--qa", str(qa), "--videos", str(videos), "--backend", "openai", "--model", "judge-llm",
                 "--base-url", url, "--out", str(out), "--fps", "0.5", "--max-frames", "2",
                 "--max-pixels", "12544", *extra])


def test_parse_judge_score() -> None:
    assert parse_judge_score("Score: 3\nReason: ok") == (3, "ok")
    assert parse_judge_score("**Score:** 4") == (4, "")
    assert parse_judge_score("<score>2</score>") == (2, "")
    assert parse_judge_score("  1. ") == (1, "")
    for bad in ("", "Score: 5", "score: 0", "3.5", "Score: 2.5", "Scores are hard", "12"):
        assert parse_judge_score(bad)[0] is None, bad


def test_rubric_uses_the_review_scale_word_for_word() -> None:
    for k, label in SCALE_LABELS.items():
        assert f"{k} - {label}" in JUDGE_SYSTEM


def test_judge_openai_end_to_end_and_resume(judge_server, videos_dir: Path, tmp_path: Path) -> None:
    url, state = judge_server
    qa = write_qa_file(tmp_path)
    out = tmp_path / "scores.jsonl"
    assert judge(qa, videos_dir, out, url) == 0
    records, unscored = read_judge_scores(out)
    assert unscored == 0 and len(records) == N_QA
    assert {q: r.score for q, r in records.items()} == {
        f"{UNAV}/0/temporal/0": 4, f"{UNAV}/0/spatial/0": 2, f"{UNAV}/0/spatiotemporal/0": 1,
        f"{DOG}/0/temporal/0": 4}
    assert records[f"{UNAV}/0/spatial/0"].reason == "line\u2028separator and é"
    # the request carried the rubric, the question, the reference answer and frames
    body = state["requests"][0]
    assert body["messages"][0]["content"] == JUDGE_SYSTEM
    user = [p for p in body["messages"][-1]["content"] if p["type"] == "text"]
    assert any("Reference answer:\n<answer>" in p["text"] for p in user)
    assert any(p["type"] == "image_url" for p in body["messages"][-1]["content"])
    # the raw U+2028 is in the file, and a re-run does nothing
    assert "\u2028".encode() in out.read_bytes()
    assert judge(qa, videos_dir, out, url) == 0
    assert len(state["requests"]) == N_QA

    # a torn last line, cut inside a UTF-8 character: dropped, that QA judged again
    blob = out.read_bytes()
    lines = blob.split(b"\n")
    last = lines[-2]
    cut = last.index("é".encode()) + 1  # half of the two bytes of é
    out.write_bytes(b"\n".join(lines[:-2]) + b"\n" + last[:cut])
    assert judge(qa, videos_dir, out, url) == 0
    assert len(state["requests"]) == N_QA + 1
    assert out.read_bytes().count(b"\n") == N_QA and len(read_judge_scores(out)[0]) == N_QA

    # a last record without its newline (edited by hand): the next record goes on a new line
    whole = out.read_bytes().split(b"\n")
    out.write_bytes(b"\n".join(whole[:-2]))  # drop the last record and the final newline
    assert not out.read_bytes().endswith(b"\n")
    assert judge(qa, videos_dir, out, url) == 0
    assert all(json.loads(line) for line in out.read_bytes().split(b"\n") if line)
    assert len(read_judge_scores(out)[0]) == N_QA

    # another model in the same file is refused (exit 2), nothing appended
    before = out.read_bytes()
    assert main(["judge", "--qa", str(qa), "--videos", str(videos_dir), "--backend", "openai", "--model", "other",
                 "--base-url", url, "--out", str(out)]) == 2
    assert out.read_bytes() == before


def test_unparsable_answers_are_recorded_and_retried(judge_server, videos_dir: Path, tmp_path: Path) -> None:
    url, state = judge_server
    qa = write_qa_file(tmp_path)
    out = tmp_path / "scores.jsonl"
    state["reply"] = "I cannot tell."
    assert judge(qa, videos_dir, out, url) == 1  # nothing scored
    records, unscored = read_judge_scores(out)
    assert unscored == N_QA and all(r.error == "no 1-4 score in the judge's answer" for r in records.values())
    assert all(r.text == "I cannot tell." for r in records.values())
    state["reply"] = "Score: {s}"
    assert judge(qa, videos_dir, out, url) == 0  # without --retry-errors: kept as they are
    assert read_judge_scores(out)[1] == N_QA
    assert judge(qa, videos_dir, out, url, "--retry-errors") == 0
    assert read_judge_scores(out)[1] == 0


def test_judge_with_a_tiny_qwen_vl(videos_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from ravst.testing.tiny_qwen import build_tiny_qwen_vl

    model = build_tiny_qwen_vl(tmp_path / "vl")
    qa = write_qa_file(tmp_path)
    out = tmp_path / "scores.jsonl"
    argv = ["judge", "--qa", str(qa), "--videos", str(videos_dir), "--backend", "transformers", "--model", str(model),
            "--out", str(out), "--fps", "0.5", "--max-frames", "4", "--min-pixels", "3136", "--max-pixels", "12544",
            "--max-new-tokens", "8", "--device", "cpu", "--limit", "2"]
    code = main(argv)
    records, unscored = read_judge_scores(out)
    assert len(records) == 2 and all(r.model and r.backend == "transformers" for r in records.values())
    # a random model rarely writes "Score: N": whatever it wrote is recorded, scored or with the reason
    for r in records.values():
        assert (r.score is not None) or r.error == "no 1-4 score in the judge's answer"
        assert r.score == parse_judge_score(r.text)[0]
    assert code == (1 if unscored == 2 else 0)
    assert main([*argv[:-1], "4"]) in (0, 1)  # resumes: only the 2 others
    assert len(read_judge_scores(out)[0]) == N_QA


def test_summary_means_and_kappa_against_sklearn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from ravst.formats.official import read_official, write_official
    from ravst.review.app import create_app
    from ravst.review.db import ReviewDB
    from review_helpers import make_clip, make_data_dir

    videos = [f"v{i}" for i in range(4)]
    data = make_data_dir(tmp_path / "data", videos, clip=make_clip(tmp_path / "c.webm", seconds=1))
    items = read_official(data / "qa.json")
    judge_scores = {it.qa_id: 1 + (i * 7) % 4 for i, it in enumerate(items)}
    out = tmp_path / "scores.jsonl"
    out.write_text("".join(json.dumps({"qa_id": q, "task": q.split("/")[2], "score": s}) + "\n"
                           for q, s in judge_scores.items()), encoding="utf-8")
    db_path = tmp_path / "r.sqlite"
    tokens = {n: ReviewDB(db_path).add_reviewer(n) for n in ("ana", "bo")}
    client = TestClient(create_app(data, db_path, judge_scores=out))
    human: dict[str, dict[str, int]] = {"ana": {}, "bo": {}}
    for name, token in tokens.items():
        h = {"Authorization": f"Bearer {token}"}
        order = []
        while (i := client.get("/api/next", headers=h).json()["item_id"]) is not None:
            qa_id = client.get(f"/api/items/{i}", headers=h).json()["qa_id"]
            order.append(qa_id)
            s = 1 + (len(qa_id) + (name == "bo")) % 4
            human[name][qa_id] = s
            client.post(f"/api/items/{i}/score", json={"score": s}, headers=h).raise_for_status()
        if name == "ana":  # the queue went lowest judge score first
            assert [judge_scores[q] for q in order] == sorted(judge_scores[q] for q in order)
    curated = [it for it in items if it.task.value != "spatiotemporal"]
    write_official(curated, tmp_path / "curated.json")
    assert main(["judge", "summary", "--scores", str(out), "--qa", str(data / "qa.json"), "--curated",
                 str(tmp_path / "curated.json"), "--db", str(db_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    values = list(judge_scores.values())
    assert report["before"]["all"]["mean_score"] == pytest.approx(sum(values) / len(values))
    kept = [judge_scores[it.qa_id] for it in curated]
    assert report["after"]["all"]["mean_score"] == pytest.approx(sum(kept) / len(kept))
    temporal = [s for q, s in judge_scores.items() if "/temporal/" in q]
    assert report["before"]["temporal"]["mean_score"] == pytest.approx(sum(temporal) / len(temporal))
    for name in ("ana", "bo"):
        common = sorted(human[name])
        expected = metrics.cohen_kappa_score([judge_scores[q] for q in common], [human[name][q] for q in common],
                                             labels=[1, 2, 3, 4], weights="quadratic")
        assert report["judge_vs_reviewers"][name]["n_pairs"] == len(common)
        assert report["judge_vs_reviewers"][name]["kappa"] == pytest.approx(expected, abs=1e-12)
    assert main(["judge", "summary", "--scores", str(out), "--qa", str(data / "qa.json")]) == 0
    assert re.search(r"mean judge score before curation: all \d\.\d\d", capsys.readouterr().out)
    # bad files name themselves
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"qa_id": "x", "score": 9}\n', encoding="utf-8")
    assert main(["judge", "summary", "--scores", str(bad), "--qa", str(data / "qa.json")]) == 2
