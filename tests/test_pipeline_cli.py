"""`ravst build ...` end to end on real clips; the Ray engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ravst.cli import main
from ravst.formats.official import read_official
from ravst.pipeline.config import PipelineConfig, load_config
from ravst.pipeline.stages import run_all


def _setup(tmp_path: Path, videos_dir: Path) -> tuple[Path, Path]:
    vids = tmp_path / "videos"
    vids.mkdir()
    for name in ("unav100_--HuBNHXu9I.mp4", "videollama_dog_barking.mp4"):
        (vids / name).symlink_to(videos_dir / name)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"version": "t", "database": {
        "unav100_--HuBNHXu9I": {"duration": 60.0, "subset": "test", "annotations": [
            {"segment": [0, 4.2], "label": "man speaking", "label_id": 1},
            {"segment": [28.685, 31.0], "label": "playing piano", "label_id": 3}]},
        "videollama_dog_barking": {"duration": 7.08, "subset": "train", "annotations": [
            {"segment": [1.39, 3.2], "label": "dog barking", "label_id": 2}]},
        "too_many": {"duration": 30, "subset": "train", "annotations": [
            {"segment": [i * 5, i * 5 + 4], "label": f"label {i}"} for i in range(4)]},
    }}))
    return vids, ann


def test_build_all_from_config(tmp_path: Path, videos_dir: Path) -> None:
    vids, ann = _setup(tmp_path, videos_dir)
    config = tmp_path / "build.yaml"
    config.write_text(f"out_dir: {tmp_path / 'out'}\nannotations: {ann}\nvideos_dir: {vids}\n"
                      "filter:\n  min_et_ratio: 0.08\nannotate:\n  backend: opencv\n  max_side: 160\n"
                      "split:\n  test_fraction: 0.5\n")
    assert load_config(config).annotate.max_side == 160
    assert main(["build", "all", "--config", str(config), "--no-progress"]) == 0
    out = tmp_path / "out"
    summary = json.loads((out / "filter" / "summary.json").read_text())
    assert summary["train"]["dropped"] == {"too_many_events": 1}
    items = read_official(out / "qa" / "r_avst_qa.json")
    kinds = sorted({q.kind for q in items})
    assert kinds == ["spatial-silent", "spatial-sounding", "spatiotemporal", "temporal"]
    dog = next(q for q in items if q.video == "videollama_dog_barking" and q.kind == "spatial-sounding")
    assert dog.question == "What visible object(s) make sound between 1.39 and 3.2, and where is/are they?"
    assert dog.answer.tracks[0].times_s.tolist() == [1.4, 2.4]
    counts = json.loads((out / "split" / "counts.json").read_text())
    assert counts["train"]["videos"] + counts["test"]["videos"] == 2
    assert sorted(p.name for p in (out / "stats").glob("*.png")) == [
        "category_wordcloud.png", "event_duration_per_category.png", "events_per_video.png", "video_durations.png"]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["build", "all", "--config", str(config), "--no-progress"]) == 0
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_cli_errors_return_nonzero(tmp_path: Path) -> None:
    assert main(["build", "filter", "--annotations", str(tmp_path / "none.json"), "--out", str(tmp_path)]) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("filter:\n  min_et_ratio: 3\n")
    with pytest.raises(ValueError, match="min_et_ratio"):
        load_config(bad)
    bad.write_text("filtre: {}\n")
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(bad)


@pytest.mark.slow
def test_ray_engine_matches_local(tmp_path: Path, videos_dir: Path) -> None:
    ray = pytest.importorskip("ray")
    vids, ann = _setup(tmp_path, videos_dir)
    local = PipelineConfig(out_dir=str(tmp_path / "local"), annotations=str(ann), videos_dir=str(vids))
    run_all(local, progress=False)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        distributed = PipelineConfig(out_dir=str(tmp_path / "ray"), annotations=str(ann), videos_dir=str(vids),
                                     engine="ray")
        run_all(distributed, progress=False)
    finally:
        ray.shutdown()
    for stage in ("analyze", "annotate"):
        a = (tmp_path / "local" / stage / f"{stage}.jsonl").read_bytes()
        b = (tmp_path / "ray" / stage / f"{stage}.jsonl").read_bytes()
        assert a == b and a
