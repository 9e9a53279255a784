"""Bad records through the command line (issue 14, items 2, 6, 7, 8): a clear message naming the
file, line and qa_id, exit code 1, never a traceback; with ``--skip-bad-lines`` the bad record is
skipped and counted and the other records are scored."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ravst.cli import main

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).resolve().parents[1]
SPATIAL = 1  # line index (0-based) of vidA/0/spatial/0 in tests/golden/pred.jsonl: it has boxes


def _lines() -> list[str]:
    return (GOLDEN / "pred.jsonl").read_text(encoding="utf-8").split("\n")[:-1]


def _eval(tmp_path: Path, pred: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "out"
    rc = main(["eval", "--gt", str(GOLDEN / "gt.json"), "--pred", str(pred), "--similarity", "exact",
               "--out", str(out), "--quiet", *extra])
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8")) if rc == 0 else {}
    return rc, metrics


def _write(path: Path, lines: list[str], *, end: str = "\n") -> Path:
    path.write_bytes(("\n".join(lines) + end).encode("utf-8"))
    return path


def _with(line: str, **fields: object) -> str:
    return json.dumps({**json.loads(line), **fields})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m ravst.cli ...`` as a user runs it (stderr kept, to check for tracebacks)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "ravst.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


# ---------------------------------------------------------------------------------------- item 2


def test_eval_drops_a_last_line_torn_inside_a_utf8_character(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = _lines()
    last = json.dumps({**json.loads(lines[3]), "text": "<answer><object>chien é</object></answer>"},
                      ensure_ascii=False).encode("utf-8")
    cut = last[: last.index("é".encode()) + 1]  # the first of the two bytes of "é": not UTF-8
    pred = tmp_path / "p.jsonl"
    pred.write_bytes(("\n".join(lines[:3]) + "\n").encode() + cut)
    rc, m = _eval(tmp_path, pred)
    assert rc == 0, caplog.text
    assert m["n_bad_prediction_lines"] == 1 and m["bad_prediction_lines"] == [4] and m["n_predictions"] == 3
    assert "p.jsonl: line 4: truncated last line" in caplog.text


# ---------------------------------------------------------------------------------------- item 6

DEEP = "[" * 100_000


def test_eval_deeply_nested_line_is_a_bad_line_not_a_traceback(tmp_path: Path) -> None:
    lines = _lines()
    pred = _write(tmp_path / "p.jsonl", [lines[0], DEEP, *lines[1:]])
    done = _cli("eval", "--gt", str(GOLDEN / "gt.json"), "--pred", str(pred), "--similarity", "exact", "--quiet")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{pred}: line 2: invalid JSON: nested too deeply" in done.stderr
    assert "--skip-bad-lines" in done.stderr
    out = tmp_path / "out"
    done = _cli("eval", "--gt", str(GOLDEN / "gt.json"), "--pred", str(pred), "--similarity", "exact", "--quiet",
                "--skip-bad-lines", "--out", str(out))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["bad_prediction_lines"] == [2] and m["n_predictions"] == len(lines)


@pytest.mark.parametrize("skip", [False, True])
def test_eval_deeply_nested_torn_last_line_is_dropped(tmp_path: Path, skip: bool) -> None:
    lines = _lines()
    pred = _write(tmp_path / "p.jsonl", [*lines, DEEP], end="")  # a crash while writing it
    rc, m = _eval(tmp_path, pred, *(["--skip-bad-lines"] if skip else []))
    assert rc == 0 and m["bad_prediction_lines"] == [len(lines) + 1] and m["n_predictions"] == len(lines)


BAD_FIELDS = [
    # (fields merged into the spatial record, what the message must name)
    ({"coord_space": "input", "input_wh": [10**400, 360]}, "field 'input_wh'"),
    ({"coord_space": "norm1", "original_wh": {"w": 640, "h": 360}}, "field 'original_wh'"),
    ({"coord_space": "norm1", "original_wh": [[640], [360]]}, "field 'original_wh'"),
    # item 7
    ({"coord_space": "norm1", "original_wh": [float("nan"), 360]}, "field 'original_wh'"),
    ({"coord_space": "norm1", "original_wh": [float("inf"), 360]}, "field 'original_wh'"),
    ({"coord_space": "norm1", "original_wh": "640x360"}, "field 'original_wh'"),
    ({"coord_space": "norm1", "original_wh": [640, 10**400]}, "field 'original_wh'"),
    ({"frame_times_s": [0.0, 10**400]}, "field 'frame_times_s'"),
    ({"latency_s": 10**400}, "field 'latency_s'"),
]


@pytest.mark.parametrize(("fields", "named"), BAD_FIELDS)
def test_eval_bad_field_is_reported_with_file_line_and_qa_id_and_skippable(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, fields: dict, named: str) -> None:
    lines = _lines()
    lines[SPATIAL] = _with(lines[SPATIAL], **fields)
    pred = _write(tmp_path / "p.jsonl", lines)
    if '"original_wh": [Infinity' in lines[SPATIAL]:
        lines[SPATIAL] = lines[SPATIAL].replace("Infinity", "1e400")  # how it looks in a real file
        _write(pred, lines)
    with caplog.at_level(logging.ERROR):
        rc, _ = _eval(tmp_path, pred)
    assert rc == 1
    assert f"{pred}: line {SPATIAL + 1}: qa_id 'vidA/0/spatial/0': {named}" in caplog.text
    caplog.clear()
    rc, m = _eval(tmp_path, pred, "--skip-bad-lines")
    assert rc == 0, caplog.text
    assert m["bad_prediction_lines"] == [SPATIAL + 1] and m["n_predictions"] == len(lines) - 1


def test_eval_original_wh_good_values_still_convert(tmp_path: Path) -> None:
    """The validation keeps real sizes: norm1 boxes with original_wh [100, 100] score like the
    pixel boxes they stand for (independent reference: the unconverted golden file)."""
    lines = _lines()
    rec = json.loads(lines[SPATIAL])
    rec["text"] = rec["text"].replace("[0, 0, 100, 40]", "[0, 0, 1, 0.4]").replace("[0, 0, 100, 100]", "[0, 0, 1, 1]")
    rec["text"] = rec["text"].replace("[200, 0, 300, 100]", "[2, 0, 3, 1]")
    lines[SPATIAL] = json.dumps({**rec, "coord_space": "norm1", "original_wh": [100, 100]})
    pred = _write(tmp_path / "p.jsonl", lines)
    rc, converted = _eval(tmp_path, pred)
    assert rc == 0 and converted["n_coord_converted"] == 1
    rc, reference = _eval(tmp_path, GOLDEN / "pred.jsonl")
    assert converted["tasks"]["spatial"] == reference["tasks"]["spatial"]


@pytest.mark.parametrize(("sizes", "named"), [
    ({"vidA": 5}, "'vidA'"),
    ({"vidA": [640]}, "'vidA'"),
    ({"vidA": [640, float("nan")]}, "'vidA'"),
    ({"vidA": "640x360"}, "'vidA'"),
    ([[640, 360]], "expected a JSON object"),
])
def test_eval_bad_video_sizes_name_the_file_and_video(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                       sizes: object, named: str) -> None:
    path = tmp_path / "sizes.json"
    path.write_text(json.dumps(sizes))
    rc, _ = _eval(tmp_path, GOLDEN / "pred.jsonl", "--video-sizes", str(path))
    assert rc == 1 and f"{path}: " in caplog.text and named in caplog.text


def test_eval_video_sizes_typeerror_case_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "sizes.json"
    path.write_text('{"v": 5}')
    done = _cli("eval", "--gt", str(GOLDEN / "gt.json"), "--pred", "gt", "--similarity", "exact", "--quiet",
                "--video-sizes", str(path))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{path}: video 'v'" in done.stderr


# ---------------------------------------------------------------------------------------- item 8


def test_eval_video_sizes_syntax_error_names_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "sizes.json"
    path.write_text('{"vidA": [640, 360],\n "vidB": [640 360]}')
    rc, _ = _eval(tmp_path, GOLDEN / "pred.jsonl", "--video-sizes", str(path))
    assert rc == 1 and f"{path}: line 2" in caplog.text and "invalid JSON" in caplog.text
    path.write_bytes(b'{"vid\xe9": [640, 360]}')  # Latin-1, not UTF-8
    rc, _ = _eval(tmp_path, GOLDEN / "pred.jsonl", "--video-sizes", str(path))
    assert rc == 1 and f"{path}: " in caplog.text and "not UTF-8" in caplog.text


def _unav100(tmp_path: Path, label: str) -> dict:
    return {"database": {"vidA": {"duration": 15.0, "subset": "test", "annotations": [
        {"segment": [2.0, 8.0], "label": label}]}}}


def test_eval_non_utf8_annotation_file_names_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "unav100.json"
    path.write_bytes(json.dumps(_unav100(tmp_path, "dog barking")).replace("barking", "ladr\xe9").encode("latin-1"))
    rc, _ = _eval(tmp_path, GOLDEN / "pred.jsonl", "--unav100", str(path))
    assert rc == 1 and f"{path}: " in caplog.text and "not UTF-8" in caplog.text and "line 1" in caplog.text
    caplog.clear()
    gt = tmp_path / "gt.json"
    gt.write_bytes((GOLDEN / "gt.json").read_text(encoding="utf-8").replace("A dog", "A d\xe9g").encode("latin-1"))
    rc = main(["eval", "--gt", str(gt), "--pred", "gt", "--similarity", "exact", "--quiet"])
    assert rc == 1 and f"{gt}: " in caplog.text and "not UTF-8" in caplog.text


@pytest.mark.parametrize("fmt", ["ave", "avsbench"])
def test_eval_non_utf8_text_gt_names_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture, fmt: str) -> None:
    gt = tmp_path / "gt.txt"
    if fmt == "ave":
        gt.write_bytes("Category&VideoID&Quality&StartTime&EndTime\nChurch bell&v1&good&0&10\n"
                       "Caf\xe9&v2&good&0&10\n".encode("latin-1"))
    else:
        gt.write_bytes("videoid_frame,category\nv1_1,dog\nv2_1,caf\xe9\n".encode("latin-1"))
    rc = main(["eval", "--gt", str(gt), "--gt-format", fmt, "--pred", "gt", "--similarity", "exact", "--quiet"])
    assert rc == 1 and f"{gt}: line 3: not UTF-8" in caplog.text


def test_eval_deeply_nested_gt_json_names_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gt = tmp_path / "gt.json"
    gt.write_text("[" * 100_000 + "]" * 100_000)
    rc = main(["eval", "--gt", str(gt), "--pred", "gt", "--similarity", "exact", "--quiet"])
    assert rc == 1 and f"{gt}: " in caplog.text and "nested too deeply" in caplog.text
