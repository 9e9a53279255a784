"""`ravst reward`: the trainer's numbers per completion, released values in official mode."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ravst.cli import main


def _golden(shared_data: Path) -> list[dict]:
    return json.loads((shared_data / "rewards" / "released_reward_values.json").read_text())["items"]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_official_mode_gives_the_released_values(tmp_path: Path, shared_data: Path, official_qa_path: Path) -> None:
    golden = _golden(shared_data)
    comp = _write(tmp_path / "c.jsonl", [{"qa_id": g["qa_id"], "text": g["text"]} for g in golden])
    out = tmp_path / "r.jsonl"
    rc = main(["reward", "--qa", str(official_qa_path), "--completions", str(comp), "--mode", "official",
               "--vocab", str(shared_data / "r_avst" / "Test_gt_object_vocab.pt"), "--out", str(out)])
    assert rc == 0
    rows = _read(out)
    assert [r["qa_id"] for r in rows] == [g["qa_id"] for g in golden]
    for r, g in zip(rows, golden, strict=True):
        assert set(r) == {"qa_id", "format", "object", "temporal", "spatial", "total"}
        ref = g["released"]
        assert r["total"] == pytest.approx(ref["total"], abs=1e-6), g["label"]
        assert r["format"] == ref["format"], g["label"]
        if g["task"] == "temporal":
            assert r["object"] is None and r["spatial"] is None and r["temporal"] == pytest.approx(ref["temporal"])
        else:
            assert r["spatial"] == (None if ref["spatial"] is None else pytest.approx(ref["spatial"])), g["label"]
        if g["task"] == "spatial":
            assert r["temporal"] is None and r["object"] == pytest.approx(ref["object"]), g["label"]


def test_ravst_mode_gt_and_gated_garbage(tmp_path: Path, official_qa_path: Path) -> None:
    from ravst.formats.official import read_official
    from ravst.parsing import render_answer

    items = read_official(official_qa_path)[:30]
    rows = [{"qa_id": it.qa_id, "text": render_answer(it.answer)} for it in items]
    rows.append({"qa_id": items[0].qa_id, "text": render_answer(items[0].answer).replace("</answer>", "")})
    comp = _write(tmp_path / "c.jsonl", rows)
    out = tmp_path / "r.jsonl"
    assert main(["reward", "--qa", str(official_qa_path), "--completions", str(comp), "--similarity", "exact",
                 "--out", str(out)]) == 0
    res = _read(out)
    assert all(r["format"] == 1.0 and r["total"] == 2.0 for r in res[:-1])  # lambda_f 1 + content weights summing to 1
    assert res[-1]["format"] == 0.0 and res[-1]["total"] == 0.0  # no </answer>: content not paid
    assert main(["reward", "--qa", str(official_qa_path), "--completions", str(comp), "--similarity", "exact",
                 "--content-ungated", "--out", str(out)]) == 0
    assert _read(out)[-1]["total"] > 0.0


def test_bad_input_names_the_line(tmp_path: Path, official_qa_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    comp = tmp_path / "c.jsonl"
    out = tmp_path / "r.jsonl"
    cases = {
        '{"qa_id": "x", "text": 3}\n': "c.jsonl:1: field 'text'",
        '\n{"qa_id": "nope/0/temporal/0", "text": ""}\n': "c.jsonl:2: qa_id 'nope/0/temporal/0' is not in",
        "{broken\n": "c.jsonl:1: not JSON",
    }
    for content, message in cases.items():
        comp.write_text(content)
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert main(["reward", "--qa", str(official_qa_path), "--completions", str(comp), "--similarity",
                         "exact", "--out", str(out)]) == 1
        assert message in caplog.text and "Traceback" not in caplog.text
    assert main(["reward", "--qa", str(official_qa_path), "--completions", str(comp), "--mode", "official",
                 "--out", str(out)]) == 1
    assert "--vocab" in caplog.text
