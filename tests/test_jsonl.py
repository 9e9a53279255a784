"""The one JSONL reader/writer (``ravst.jsonl``) and every resumable file that uses it (issue 14,
items 1-5): U+2028 / U+2029 / U+0085 in text, a last line torn inside a UTF-8 character, a last
record without its newline, a kill before a stage's first record."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ravst.jsonl import (
    JsonlAppender,
    JsonlError,
    append_jsonl,
    dumps_line,
    read_jsonl,
    repair_tail,
    scan_jsonl,
    write_jsonl_atomic,
)

ROOT = Path(__file__).resolve().parents[1]
BREAKERS = "\u2028\u2029\u0085\x1c\x1d\x1e\x0b\x0c\r"  # every character str.splitlines splits on, bar \n
TEXT = f"a man{BREAKERS}speaks"

# ------------------------------------------------------------------------------------ the module


def test_lines_split_on_newline_only_and_raw_separators_are_read(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    # what json.dumps(ensure_ascii=False) writes (older ravst files): the separators raw
    path.write_bytes((json.dumps({"t": TEXT}, ensure_ascii=False) + "\n" + '{"n": 2}\n').encode("utf-8"))
    assert len(path.read_text(encoding="utf-8").splitlines()) > 2  # what broke resume
    assert read_jsonl(path) == [{"t": TEXT}, {"n": 2}]
    assert [line.number for line in scan_jsonl(path)] == [1, 2]


def test_writer_escapes_the_unicode_line_separators() -> None:
    line = dumps_line({"t": TEXT})
    assert line.endswith("\n") and len(line.splitlines()) == 1
    assert "\\u2028" in line and "\\u2029" in line and "\\u0085" in line and "\u2028" not in line
    assert json.loads(line) == {"t": TEXT}
    assert "é" in dumps_line({"t": "é"})  # other non-ASCII text stays readable


@settings(max_examples=80, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=4), st.text(max_size=12) | st.integers() | st.none(), max_size=3),
                max_size=5))
def test_writer_reader_identity(tmp_path_factory: pytest.TempPathFactory, values: list) -> None:
    path = tmp_path_factory.mktemp("j") / "x.jsonl"
    assert write_jsonl_atomic(path, values) == len(values)
    assert read_jsonl(path) == values
    assert path.read_bytes().count(b"\n") == len(values)


def test_torn_last_line_and_bad_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "x.jsonl"
    good = dumps_line({"t": "é"}).encode()
    path.write_bytes(good + b"  \n" + good + good[:-4])  # torn inside the two bytes of "é"
    lines = list(scan_jsonl(path))
    assert [(x.number, x.ok, x.torn) for x in lines] == [(1, True, False), (3, True, False), (4, False, True)]
    assert "not UTF-8" in (lines[2].error or "")
    with caplog.at_level(logging.WARNING):
        assert read_jsonl(path) == [{"t": "é"}] * 2
    assert "x.jsonl:4: not UTF-8" in caplog.text and "torn last line" in caplog.text
    path.write_bytes(good + b'{"a": 1\n' + good)  # a bad line mid-file is an error, not a torn line
    with pytest.raises(JsonlError, match=r"x\.jsonl:2: invalid JSON"):
        read_jsonl(path)
    assert read_jsonl(path, skip_bad=True) == [{"t": "é"}] * 2
    path.write_bytes(good + b"[" * 100_000 + b"\n")
    with pytest.raises(JsonlError, match=r"x\.jsonl:2: invalid JSON: nested too deeply"):
        read_jsonl(path)


def test_repair_tail(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}')  # complete, only the newline is missing
    assert repair_tail(path).action == "newline-added"
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert repair_tail(path) is None
    path.write_bytes(b'{"a": 1}\n{"b": "\xc3')  # torn inside "é"
    with caplog.at_level(logging.WARNING):
        r = repair_tail(path)
    assert (r.line, r.action, r.dropped_bytes) == (2, "torn-dropped", 8) and "line 2 is a torn record" in caplog.text
    assert path.read_bytes() == b'{"a": 1}\n'
    path.write_bytes(b'{"a": ' + b"x" * 200_000)  # one torn line longer than the search block
    repair_tail(path)
    assert path.read_bytes() == b""


def test_appender_adds_the_missing_newline_first(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}', encoding="utf-8")
    assert append_jsonl(path, [{"b": 2}]) == 1
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n{"b": 2}\n'
    with JsonlAppender(path, sort_keys=True, compact=True, fsync_every_s=0.0) as out:
        out.write({"d": 1, "c": TEXT})
        with pytest.raises(TypeError):
            out.write({"x": object()})  # nothing of a record that cannot be encoded is written
    assert read_jsonl(path)[-1] == {"c": TEXT, "d": 1} and path.read_bytes().count(b"\n") == 3
    with pytest.raises(ValueError, match="outside its 'with' block"):
        out.write({})


# ------------------------------------------------------------------------- predictions (infer)


def _qa_and_videos(tmp_path: Path) -> tuple[Path, Path]:
    from infer_helpers import write_silent_clip

    videos = tmp_path / "videos"
    videos.mkdir()
    write_silent_clip(videos / "clip.mp4")
    annotation = {"event_num": 1, "AV Temporal Reasoning": [
        {"Q": f"When is the moment dog makes sound and is visible? ({k})",
         "A": "<answer>\n<object>dog</object>\n<when>[0.5, 2.0]</when>\n</answer>"} for k in range(3)]}
    qa = tmp_path / "qa.json"
    qa.write_text(json.dumps([{"video_name": "clip", "duration": 3.0, "annotation": [annotation]}]))
    return qa, videos


def _infer(qa: Path, videos: Path, out: Path, *extra: str) -> int:
    from ravst.cli import main

    return main(["infer", "--qa", str(qa), "--videos", str(videos), "--backend", "whole-frame", "--out", str(out),
                 *extra])


def _records(path: Path) -> list[dict]:
    """Every line of ``path`` must be a complete JSON object ending with a newline."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode("utf-8").split("\n")[:-1]]


def test_infer_resume_survives_unicode_line_separators_in_an_answer(tmp_path: Path) -> None:
    qa, videos = _qa_and_videos(tmp_path)
    out = tmp_path / "pred.jsonl"
    assert _infer(qa, videos, out, "--limit", "1") == 0
    first = _records(out)[0]
    first["text"] += TEXT  # the model's answer held the separators; written raw as older writers did
    out.write_bytes((json.dumps(first, ensure_ascii=False) + "\n").encode("utf-8"))
    assert _infer(qa, videos, out) == 0
    records = _records(out)
    assert [r["qa_id"] for r in records] == [f"clip/0/temporal/{k}" for k in range(3)]
    assert records[0]["text"].endswith(TEXT)
    assert _infer(qa, videos, out) == 0 and len(_records(out)) == 3  # and again


def test_infer_resume_drops_a_last_line_torn_inside_a_utf8_character(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    qa, videos = _qa_and_videos(tmp_path)
    out = tmp_path / "pred.jsonl"
    assert _infer(qa, videos, out, "--limit", "1") == 0
    second = dumps_line({"qa_id": "clip/0/temporal/1", "text": "<answer>chien é", "model": "baseline:whole-frame"})
    raw = second.encode("utf-8")
    with out.open("ab") as fh:
        fh.write(raw[: raw.index("é".encode()) + 1])  # killed between the two bytes of "é"
    with caplog.at_level(logging.WARNING):
        assert _infer(qa, videos, out) == 0
    assert "line 2 is a torn record" in caplog.text
    assert [r["qa_id"] for r in _records(out)] == [f"clip/0/temporal/{k}" for k in range(3)]


def test_infer_resume_adds_the_missing_newline_before_appending(tmp_path: Path) -> None:
    qa, videos = _qa_and_videos(tmp_path)
    out = tmp_path / "pred.jsonl"
    assert _infer(qa, videos, out, "--limit", "1") == 0
    out.write_bytes(out.read_bytes().rstrip(b"\n"))  # copied or edited by hand
    assert _infer(qa, videos, out) == 0
    assert [r["qa_id"] for r in _records(out)] == [f"clip/0/temporal/{k}" for k in range(3)]
    assert _infer(qa, videos, out) == 0  # the next resume is clean too
    from ravst.cli import main

    assert main(["eval", "--gt", str(qa), "--pred", str(out), "--similarity", "exact", "--quiet"]) == 0


def test_infer_resume_bad_lines_name_the_file_and_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    qa, videos = _qa_and_videos(tmp_path)
    out = tmp_path / "pred.jsonl"
    assert _infer(qa, videos, out, "--limit", "1") == 0
    good = out.read_bytes()
    out.write_bytes(b"[" * 100_000 + b"\n" + good)
    assert _infer(qa, videos, out) == 2
    assert f"{out}: line 1: not a prediction record (invalid JSON: nested too deeply" in caplog.text
    out.write_bytes(good + b"[" * 100_000)  # ... as a torn last line: dropped
    assert _infer(qa, videos, out) == 0 and len(_records(out)) == 3


def test_predictions_writers_escape_separators(tmp_path: Path) -> None:
    from ravst.formats.predictions import append_predictions, read_predictions, write_predictions
    from ravst.types import Prediction

    path = tmp_path / "p.jsonl"
    write_predictions(path, [Prediction("a", TEXT)])
    append_predictions(path, [Prediction("b", TEXT)])
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    assert [p.text for p in read_predictions(path)] == [TEXT, TEXT]


# ------------------------------------------------------------------------------ pipeline journals

_CHILD = """
import sys, time, pathlib
from ravst.pipeline.runner import run_stage
TEXT = {text!r}
marker = pathlib.Path(sys.argv[2])
def fn(p):
    if not marker.exists():
        marker.write_text("started")
    time.sleep({delay})
    return {{"x": p["x"], "caption": f"{{p['x']}} " + TEXT}}
items = [(f"k{{i:03d}}", {{"x": i}}) for i in range(30)]
run_stage(sys.argv[1], "cap", items, fn, fingerprint="a", progress=False)
"""


def _child(tmp_path: Path, delay: float) -> tuple[list[str], dict[str, str]]:
    script = tmp_path / f"child_{delay}.py"
    script.write_text(_CHILD.format(text=TEXT, delay=delay))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return [sys.executable, str(script)], env


def _stage_files(stage_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(stage_dir.iterdir()) if p.name != "journal.jsonl"}


def _kill_when(child: subprocess.Popen, ready, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert child.poll() is None, "the child finished before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()


def test_kill9_mid_stage_with_unicode_separators_in_results(tmp_path: Path) -> None:
    cmd, env = _child(tmp_path, 0.02)
    subprocess.run([*cmd, str(tmp_path / "ref"), str(tmp_path / "m0")], env=env, check=True)
    out = tmp_path / "run"
    child = subprocess.Popen([*cmd, str(out), str(tmp_path / "m1")], env=env)
    journal = out / "cap" / "journal.jsonl"
    _kill_when(child, lambda: journal.exists() and journal.read_bytes().count(b"\n") >= 6)
    assert not (out / "cap" / "manifest.json").exists()
    done = subprocess.run([*cmd, str(out), str(tmp_path / "m2")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _stage_files(out / "cap") == _stage_files(tmp_path / "ref" / "cap")
    assert [row["caption"] for row in read_jsonl(out / "cap" / "cap.jsonl")][:2] == [f"0 {TEXT}", f"1 {TEXT}"]


def test_journal_written_raw_by_older_versions_resumes(tmp_path: Path) -> None:
    from ravst.pipeline.runner import run_stage

    stage = tmp_path / "cap"
    stage.mkdir()
    old = [{"stage": "cap", "fingerprint": "a"}, {"key": "k0", "ok": True, "result": {"caption": TEXT}}]
    (stage / "journal.jsonl").write_bytes("".join(json.dumps(v, ensure_ascii=False) + "\n" for v in old).encode())
    calls: list[int] = []
    r = run_stage(tmp_path, "cap", [("k0", 0), ("k1", 1)], lambda x: calls.append(x) or {"caption": str(x)},
                  fingerprint="a", progress=False)
    assert calls == [1] and read_jsonl(r.output_path) == [{"caption": TEXT}, {"caption": "1"}]


def test_journal_torn_inside_a_utf8_character_resumes(tmp_path: Path) -> None:
    from ravst.pipeline.runner import run_stage

    items = [(f"k{i}", i) for i in range(4)]
    fn = lambda x: {"caption": f"{x} é"}  # noqa: E731
    ref = run_stage(tmp_path / "ref", "cap", items, fn, fingerprint="a", progress=False)
    stage = tmp_path / "run" / "cap"
    stage.mkdir(parents=True)
    entry = dumps_line({"key": "k1", "ok": True, "result": {"caption": "1 é"}}, sort_keys=True, compact=True)
    head = dumps_line({"stage": "cap", "fingerprint": "a"}, sort_keys=True, compact=True)
    first = dumps_line({"key": "k0", "ok": True, "result": {"caption": "0 é"}}, sort_keys=True, compact=True)
    raw = entry.encode()
    (stage / "journal.jsonl").write_bytes((head + first).encode() + raw[: raw.index("é".encode()) + 1])
    calls: list[int] = []
    run_stage(tmp_path / "run", "cap", items, lambda x: calls.append(x) or fn(x), fingerprint="a", progress=False)
    assert calls == [1, 2, 3]
    assert _stage_files(stage) == _stage_files(ref.stage_dir)


def test_kill9_before_the_first_record_keeps_the_journal_header(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    cmd, env = _child(tmp_path, 30.0)  # the first record takes 30 s: killed while computing it
    out = tmp_path / "run"
    marker = tmp_path / "m1"
    child = subprocess.Popen([*cmd, str(out), str(marker)], env=env)
    _kill_when(child, marker.exists)
    journal = out / "cap" / "journal.jsonl"
    assert read_jsonl(journal) == [{"stage": "cap", "fingerprint": "a"}]  # the header is in the file
    from ravst.pipeline.runner import run_stage

    with caplog.at_level(logging.INFO):
        r = run_stage(out, "cap", [("k000", {"x": 0})], lambda p: {"x": p["x"]}, fingerprint="a", progress=False)
    assert "inputs or config changed" not in caplog.text and r.num_ok == 1


def test_empty_journal_is_not_reported_as_a_config_change(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ravst.pipeline.runner import run_stage

    (tmp_path / "cap").mkdir()
    (tmp_path / "cap" / "journal.jsonl").write_bytes(b"")  # what a kill before the header used to leave
    with caplog.at_level(logging.INFO):
        run_stage(tmp_path, "cap", [("k0", 0)], lambda x: {"x": x}, fingerprint="a", progress=False)
    assert "inputs or config changed" not in caplog.text and "no header" in caplog.text


def test_corrupt_journal_line_names_the_file_and_line(tmp_path: Path) -> None:
    from ravst.pipeline.runner import run_stage

    stage = tmp_path / "cap"
    stage.mkdir()
    head = dumps_line({"stage": "cap", "fingerprint": "a"}, sort_keys=True, compact=True)
    (stage / "journal.jsonl").write_text(head + '{"key": "k0", "ok": tr\n' + '{"key": "k1"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"journal\.jsonl:2: invalid JSON"):
        run_stage(tmp_path, "cap", [("k0", 0), ("k1", 1)], lambda x: {"x": x}, fingerprint="a", progress=False)
    (stage / "journal.jsonl").write_text(head + '{"key": "k1"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"journal\.jsonl:2: not a journal entry"):
        run_stage(tmp_path, "cap", [("k0", 0), ("k1", 1)], lambda x: {"x": x}, fingerprint="a", progress=False)


def test_corrupt_manifest_names_the_file(tmp_path: Path) -> None:
    from ravst.pipeline.runner import run_stage

    (tmp_path / "cap").mkdir()
    manifest = tmp_path / "cap" / "manifest.json"
    manifest.write_text('{"stage": "cap", "fingerprint": "a",')  # cut short by hand or a full disk
    with pytest.raises(ValueError, match=r"manifest\.json: line 1 column \d+: invalid JSON"):
        run_stage(tmp_path, "cap", [("k0", 0)], lambda x: {"x": x}, fingerprint="a", progress=False)
