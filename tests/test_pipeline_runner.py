"""The resumable stage runner: outputs, failures, skipping, torn journals, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ravst.pipeline.runner import read_jsonl, run_stage

ITEMS = [(f"k{i:03d}", {"x": i}) for i in range(40)]


def _fn(payload: dict) -> dict:
    if payload["x"] % 7 == 3:
        raise ValueError(f"bad record x={payload['x']}")
    return {"x": payload["x"], "y": payload["x"] ** 2}


def _files(stage_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(stage_dir.iterdir()) if p.name != "journal.jsonl"}


def test_outputs_failures_and_skip(tmp_path: Path) -> None:
    r = run_stage(tmp_path, "sq", ITEMS, _fn, fingerprint="a", progress=False)
    assert (r.num_ok, r.num_failed, r.skipped) == (34, 6, False)
    rows = read_jsonl(r.output_path)
    assert [row["x"] for row in rows] == [i for i in range(40) if i % 7 != 3]
    failures = read_jsonl(r.failures_path)
    assert failures[0] == {"key": "k003", "error": "ValueError: bad record x=3"}
    manifest = json.loads(r.manifest_path.read_text())
    assert manifest["num_records"] == 40 and manifest["fingerprint"] == "a"
    assert not (r.stage_dir / "journal.jsonl").exists()

    calls = []
    again = run_stage(tmp_path, "sq", ITEMS, lambda p: calls.append(p) or _fn(p), fingerprint="a", progress=False,
                      retry_failed=False)
    assert again.skipped and calls == []
    # a re-run retries only the failed records; finished ones are kept; same bytes
    before = _files(r.stage_dir)
    again = run_stage(tmp_path, "sq", ITEMS, lambda p: calls.append(p["x"]) or _fn(p), fingerprint="a", progress=False)
    assert not again.skipped and calls == [3, 10, 17, 24, 31, 38] and _files(r.stage_dir) == before
    changed = run_stage(tmp_path, "sq", ITEMS[:5], _fn, fingerprint="b", progress=False)
    assert not changed.skipped and changed.num_ok == 4


def test_resume_after_torn_journal(tmp_path: Path) -> None:
    reference = run_stage(tmp_path / "ref", "sq", ITEMS, _fn, fingerprint="a", progress=False)
    stage = tmp_path / "run" / "sq"
    stage.mkdir(parents=True)
    journal = stage / "journal.jsonl"
    header = json.dumps({"stage": "sq", "fingerprint": "a"}) + "\n"
    done = "".join(json.dumps({"key": k, "ok": True, "result": _fn(p)}) + "\n" for k, p in ITEMS[:5] if p["x"] != 3)
    journal.write_text(header + done + '{"key": "k005", "ok": tr')  # cut mid-line by a crash
    seen = []
    run_stage(tmp_path / "run", "sq", ITEMS, lambda p: seen.append(p["x"]) or _fn(p), fingerprint="a", progress=False)
    assert seen[:2] == [3, 5] and len(seen) == 36  # 4 journaled records were not recomputed
    assert _files(stage) == _files(reference.stage_dir)


def test_stale_journal_is_discarded(tmp_path: Path) -> None:
    stage = tmp_path / "sq"
    stage.mkdir()
    (stage / "journal.jsonl").write_text(json.dumps({"stage": "sq", "fingerprint": "old"}) + "\n"
                                         + json.dumps({"key": "k000", "ok": True, "result": {"stale": 1}}) + "\n")
    r = run_stage(tmp_path, "sq", ITEMS[:2], _fn, fingerprint="new", progress=False)
    assert read_jsonl(r.output_path)[0] == {"x": 0, "y": 0}


_CHILD = """
import sys, time
from ravst.pipeline.runner import run_stage
def fn(p):
    time.sleep(0.02)
    if p["x"] % 7 == 3:
        raise ValueError(f"bad record x={p['x']}")
    return {"x": p["x"], "y": p["x"] ** 2}
items = [(f"k{i:03d}", {"x": i}) for i in range(40)]
run_stage(sys.argv[1], "sq", items, fn, fingerprint="a", progress=False)
"""


@pytest.mark.parametrize("kill_after_s", [0.05, 0.25, 0.45])
def test_kill9_then_rerun_gives_identical_outputs(tmp_path: Path, kill_after_s: float) -> None:
    reference = run_stage(tmp_path / "ref", "sq", ITEMS, _fn, fingerprint="a", progress=False)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    child = subprocess.Popen([sys.executable, str(script), str(out)], env=env)
    deadline = time.monotonic() + 30
    journal = out / "sq" / "journal.jsonl"
    while not journal.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(kill_after_s)
    assert child.poll() is None, "the child finished before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (out / "sq" / "manifest.json").exists()
    subprocess.run([sys.executable, str(script), str(out)], env=env, check=True)
    assert _files(out / "sq") == _files(reference.stage_dir)


def test_transient_failure_is_retried_on_rerun(tmp_path: Path) -> None:
    """A record that failed (server down, OOM) succeeds on the next run; the others are not recomputed."""
    down = {"flag": True}
    calls: list[int] = []

    def flaky(p: dict) -> dict:
        calls.append(p["x"])
        if down["flag"] and p["x"] in (2, 5):
            raise OSError("connection refused")
        return {"x": p["x"]}

    items = ITEMS[:8]
    r = run_stage(tmp_path, "net", items, flaky, fingerprint="a", progress=False)
    assert (r.num_ok, r.num_failed) == (6, 2)
    down["flag"] = False
    calls.clear()
    r = run_stage(tmp_path, "net", items, flaky, fingerprint="a", progress=False)
    assert (r.num_ok, r.num_failed, r.skipped) == (8, 0, False) and calls == [2, 5]
    assert [row["x"] for row in read_jsonl(r.output_path)] == list(range(8))
    assert read_jsonl(r.failures_path) == []
    calls.clear()
    assert run_stage(tmp_path, "net", items, flaky, fingerprint="a", progress=False).skipped and calls == []


def test_finalize_runs_before_the_manifest(tmp_path: Path) -> None:
    seen = []

    def finalize(result: object) -> None:
        seen.append((tmp_path / "sq" / "manifest.json").exists())
        (tmp_path / "sq" / "derived.json").write_text("x")

    r = run_stage(tmp_path, "sq", ITEMS[:3], _fn, fingerprint="a", progress=False, finalize=finalize)
    assert seen == [False] and r.manifest_path.exists()


class _LoadCounter:
    """Loads a 'model' lazily on first call (like the analyzer / detector) and logs each load."""

    def __init__(self, log_path: str) -> None:
        self.log_path = log_path
        self._model: object = None

    def __call__(self, payload: dict) -> dict:
        if self._model is None:
            with open(self.log_path, "a") as fh:
                fh.write(f"{os.getpid()}\n")
            self._model = object()
        return {"x": payload["x"]}

    def __getstate__(self) -> dict:
        return {"log_path": self.log_path, "_model": None}


@pytest.mark.slow
def test_ray_engine_loads_the_model_once_per_actor(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    loads = tmp_path / "loads.txt"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        r = run_stage(tmp_path, "sq", ITEMS[:24], _LoadCounter(str(loads)), fingerprint="a", progress=False,
                      engine="ray", concurrency=2)
    finally:
        ray.shutdown()
    assert [row["x"] for row in read_jsonl(r.output_path)] == list(range(24))
    assert 1 <= len(loads.read_text().splitlines()) <= 2  # one load per actor, not one per task/block
