"""`ravst build split --hf` / `split.hf`: BUILD/split/hf/ is a dataset folder `datasets.load_dataset`
reads, written by ravst.formats.hf (the one writer), that round-trips to split/<name>.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ravst.cli import main
from ravst.formats.hf import official_json_bytes, read_hf_official_json
from ravst.formats.official import read_official

datasets = pytest.importorskip("datasets")


CLIPS = {"unav100_--HuBNHXu9I.mp4": (60.0, [[0, 4.2, "man speaking"], [28.685, 31.0, "playing piano"]]),
         "moviepy_chaplin.mp4": (7.0, [[0.5, 5.0, "man speaking"]])}


def _build(tmp_path: Path, videos_dir: Path) -> Path:
    """Two real clips (opencv finds people in both), half of the QAs in test: both splits have rows."""
    vids = tmp_path / "videos"
    vids.mkdir()
    database = {}
    for clip, (duration, events) in CLIPS.items():
        (vids / clip).symlink_to(videos_dir / clip)
        database[Path(clip).stem] = {"duration": duration, "subset": "test", "annotations": [
            {"segment": [s, e], "label": label, "label_id": i} for i, (s, e, label) in enumerate(events)]}
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"version": "t", "database": database}))
    config = tmp_path / "build.yaml"
    config.write_text(f"out_dir: {tmp_path / 'out'}\nannotations: {ann}\nvideos_dir: {vids}\n"
                      "filter:\n  min_et_ratio: 0.08\nannotate:\n  backend: opencv\n  max_side: 320\n"
                      "qa:\n  require_boxes: false\nsplit:\n  test_fraction: 0.5\n")
    return config


@pytest.fixture(scope="module")
def build(videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("split_hf")
    config = _build(tmp, videos_dir)
    assert main(["build", "all", "--config", str(config), "--no-progress"]) == 0
    out = tmp / "out"
    assert not (out / "split" / "hf").exists()  # only when asked
    assert main(["build", "split", "--hf", "--config", str(config), "--no-progress"]) == 0
    return config, out


def test_load_dataset_reads_split_hf(build: tuple[Path, Path]) -> None:
    _, out = build
    hf = out / "split" / "hf"
    ds = datasets.load_dataset(str(hf))
    assert sorted(ds) == ["test", "train"]
    for name in ("train", "test"):
        items = read_official(out / "split" / f"{name}.json")
        assert items and len(ds[name]) == len(items)
        assert [r["qa_id"] for r in ds[name]] == [it.qa_id for it in items]
        for row in ds[name]:  # the clip is linked next to the card, at the path the row names
            assert row["video_path"] == f"videos/{row['video']}.mp4"
            assert (hf / row["video_path"]).is_file() and os.path.islink(hf / row["video_path"])
    assert {r["video"] for name in ds for r in ds[name]} == {Path(c).stem for c in CLIPS}
    card = (hf / "README.md").read_text(encoding="utf-8")
    assert "license: other" in card
    assert "## Provenance" in card and "BASELINE detector opencv" in card  # never silently a baseline
    manifest = json.loads((out / "split" / "manifest.json").read_text())
    assert manifest["hf"] == "hf"


def test_split_hf_round_trips_to_the_official_split_files(build: tuple[Path, Path]) -> None:
    _, out = build
    for name in ("train", "test"):
        data = read_hf_official_json(out / "split" / "hf", split=name)
        assert data and official_json_bytes(data) == (out / "split" / f"{name}.json").read_bytes()


def test_hf_rerun_is_up_to_date_and_rewrites_a_deleted_folder(build: tuple[Path, Path]) -> None:
    import shutil

    config, out = build
    card = out / "split" / "hf" / "README.md"
    before = card.stat().st_mtime_ns
    assert main(["build", "split", "--hf", "--config", str(config), "--no-progress"]) == 0
    assert card.stat().st_mtime_ns == before  # up to date: not rewritten
    shutil.rmtree(out / "split" / "hf")
    assert main(["build", "split", "--hf", "--config", str(config), "--no-progress"]) == 0
    assert card.is_file()


def test_without_hf_a_stale_folder_is_removed_and_old_builds_stay_current(tmp_path: Path,
                                                                          videos_dir: Path) -> None:
    import hashlib

    from ravst.pipeline.config import PipelineConfig, SplitConfig, config_fingerprint
    from ravst.pipeline.stages import _split_fingerprint

    # the fingerprint of a split section without hf is the one builds made before split.hf existed
    legacy = json.dumps({"seed": 3, "test_fraction": 0.3}, sort_keys=True, default=str)
    assert _split_fingerprint(PipelineConfig(split=SplitConfig(test_fraction=0.3, seed=3))) == \
        hashlib.sha256(legacy.encode()).hexdigest()[:16]
    assert _split_fingerprint(PipelineConfig(split=SplitConfig(hf=True))) != config_fingerprint(SplitConfig())
    config = _build(tmp_path, videos_dir)
    assert main(["build", "all", "--hf", "--config", str(config), "--no-progress"]) == 0
    assert (tmp_path / "out" / "split" / "hf" / "README.md").is_file()
    assert main(["build", "split", "--config", str(config), "--no-progress"]) == 0
    assert not (tmp_path / "out" / "split" / "hf").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace(f"videos_dir: {tmp_path / 'videos'}\n", "")
                   + "split:\n  hf: true\n  test_fraction: 0.4\n")
    assert main(["build", "split", "--config", str(bad), "--no-progress"]) == 1  # needs videos_dir


def test_hf_videos_is_validated() -> None:
    from ravst.pipeline.config import SplitConfig

    with pytest.raises(ValueError, match="hf_videos"):
        SplitConfig(hf_videos="hardlink")


def test_an_empty_split_is_left_out_and_said(tmp_path: Path, official_qa_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    from ravst.formats.hf import export_hf

    items = read_official(official_qa_path)[:5]
    result = export_hf({"train": items, "test": []}, tmp_path / "hf", videos_dir=None, video_mode="none")
    assert result.empty_splits == ("test",) and result.n_rows == {"train": 5}
    assert "no QA and are not written" in caplog.text
    card = (tmp_path / "hf" / "README.md").read_text(encoding="utf-8")
    assert "Split(s) with no QA, not written: `test`" in card
    assert list(datasets.load_dataset(str(tmp_path / "hf"))) == ["train"]
    with pytest.raises(ValueError, match="no QA to export"):
        export_hf({"test": []}, tmp_path / "hf2", videos_dir=None, video_mode="none")
