"""benchmarks/bench_reward_dynamics.py on a tiny run (1 SFT step, 2 GRPO steps per rule): the
script keeps working on the real trainers, and its bookkeeping is consistent."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Any:
    path = ROOT / "benchmarks" / "bench_reward_dynamics.py"
    spec = importlib.util.spec_from_file_location("bench_reward_dynamics", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_both_rules_from_one_warm_start(bench: Any, tmp_path: Path) -> None:
    setup = bench.Setup(n_clips=2, num_generations=2, prompts_per_step=1, max_completion_length=12)
    report = bench.run(tmp_path, setup, sft_steps=1, grpo_steps=2, rules=("old", "new"))
    rows = report["rows"]
    by = {rule: [r for r in rows if r["rule"] == rule] for rule in ("old", "new")}
    assert [r["step"] for r in by["old"]] == [r["step"] for r in by["new"]] == [1, 2]
    for r in rows:
        for m in ("format", "total", "total_gated", "total_ungated"):
            assert r[m] is not None and 0.0 <= r[m] <= 2.0, (r, m)
        assert r["total_gated"] <= r["total_ungated"] + 1e-9  # the gate only takes away
        # the total the rule pays is the matching zero-weight recorder, on the same completions
        paid = r["total_ungated"] if r["rule"] == "old" else r["total_gated"]
        assert r["total"] == pytest.approx(paid, abs=1e-6)
    # same seed, same checkpoint: the first batch of completions is the same under both rules
    first_old, first_new = by["old"][0], by["new"][0]
    for m in ("completion_tokens", "format", "total_gated", "total_ungated"):
        assert first_old[m] == pytest.approx(first_new[m]), m
    # the files
    data = json.loads((tmp_path / "curves.json").read_text())
    assert data["rows"] == rows and data["sft_steps"] == 1 and data["machine_start"]["cpus"] >= 1
    with (tmp_path / "curves.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 4
    curves, goals = (tmp_path / "table.md").read_text().split("\n\n")
    assert curves.count("\n| old | 1-1 |") == curves.count("\n| new | 2-2 |") == 1  # blocks of 2 // 6 = 1 step
    assert goals.count("\n| old | 0 |") == goals.count("\n| new | 0 |") == 1
    assert [(g["rule"], g["moves"]) for g in report["goals"]] == [("old", 1), ("new", 1)]
    assert set(report["final_samples"]) == {"old_s0", "new_s0"} and report["final_samples"]["new_s0"]


def test_main_refuses_zero_steps(bench: Any, tmp_path: Path) -> None:
    assert bench.main(["--sft-steps", "0", "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "curves.json").exists()
