"""``ravst demo`` end to end on a small synthetic set."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ravst import demo


def test_demo_end_to_end(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "d"), "--n", "2", "--seed", "3",
                              "--baselines", "full-span,random", "--similarity", "exact"])
    assert demo.run(args) == 0
    out = tmp_path / "d"
    summary = json.loads((out / "demo.json").read_text())
    report = Path(summary["report"])
    assert report.is_file() and report.stat().st_size > 10_000
    evals = summary["evals"]
    # the opencv baseline finds none of the drawn shapes: the build writes no QA to score, and says so
    assert set(evals) == {"baseline full-span", "baseline random", "oracle (GT fed back)"}
    assert any("wrote no QA to score" in n and "never_detected" in n for n in summary["notes"])
    oracle = json.loads((Path(evals["oracle (GT fed back)"]) / "metrics.json").read_text())
    for task, block in oracle["tasks"].items():
        for key, value in block.items():
            if key.startswith(("m_", "R1@", "AP@", "object_")):
                assert value == pytest.approx(100.0), (task, key)
    full = json.loads((Path(evals["baseline full-span"]) / "metrics.json").read_text())
    assert full["parse_rate"] == pytest.approx(100.0)
    assert 0.0 < full["tasks"]["temporal"]["m_tIoU"] < 100.0  # the whole clip is never the exact span
    text = report.read_text()
    for name in evals:
        assert name in text.replace("&#x27;", "'")
    assert "oracle read of the scene" in text  # the report says where the scored boxes come from
    assert "Caption analysis" in text
    assert (out / "build" / "qa" / "r_avst_qa.json").is_file()


def test_demo_config_validates() -> None:
    with pytest.raises(ValueError, match="n_clips"):
        demo.DemoConfig(out_dir=Path("x"), n_clips=0)
    with pytest.raises(ValueError, match="similarity"):
        demo.DemoConfig(out_dir=Path("x"), similarity="word2vec")
