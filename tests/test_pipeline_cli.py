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
                      "split:\n  test_fraction: 0.5\nqa:\n  require_boxes: false\n")
    assert load_config(config).annotate.max_side == 160
    assert main(["build", "all", "--config", str(config), "--no-progress"]) == 0
    out = tmp_path / "out"
    summary = json.loads((out / "filter" / "summary.json").read_text())
    assert summary["train"]["dropped"] == {"too_many_events": 1}
    items = read_official(out / "qa" / "r_avst_qa.json")
    kinds = sorted({q.kind for q in items})
    assert kinds == ["spatial-silent", "spatial-sounding", "spatiotemporal", "temporal"]
    # opencv finds no dog: the dog's QAs are not written, and counted
    assert not [q for q in items if q.video == "videollama_dog_barking"]
    qa_summary = json.loads((out / "qa" / "summary.json").read_text())
    assert qa_summary["dropped"]["never_detected"] >= 3 and qa_summary["baseline"] is True
    counts = json.loads((out / "split" / "counts.json").read_text())
    assert counts["train"]["videos"] + counts["test"]["videos"] == 1
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
    from ravst.pipeline.config import AnnotateConfig

    opencv = AnnotateConfig(backend="opencv")
    local = PipelineConfig(out_dir=str(tmp_path / "local"), annotations=str(ann), videos_dir=str(vids),
                           annotate=opencv)
    run_all(local, progress=False)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        distributed = PipelineConfig(out_dir=str(tmp_path / "ray"), annotations=str(ann), videos_dir=str(vids),
                                     engine="ray", annotate=opencv)
        run_all(distributed, progress=False)
    finally:
        ray.shutdown()
    for stage in ("analyze", "annotate"):
        a = (tmp_path / "local" / stage / f"{stage}.jsonl").read_bytes()
        b = (tmp_path / "ray" / stage / f"{stage}.jsonl").read_bytes()
        assert a == b and a


def _small_ann(tmp_path: Path, *, bad: bool = False) -> Path:
    ann = tmp_path / "ann.json"
    seg = [9, 1] if bad else [1, 9]
    ann.write_text(json.dumps({"version": "t", "database": {
        f"v{i}": {"duration": 30, "subset": "test", "annotations": [
            {"segment": seg, "label": "dog barking"}, {"segment": [12, 20], "label": "man speaking"}]}
        for i in range(3)}}))
    return ann


def test_qa_final_file_is_written_before_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash while writing r_avst_qa.json must not leave a manifest that a re-run trusts."""
    import ravst.formats.official as official
    from ravst.pipeline.stages import run_analyze, run_filter, run_qa

    cfg = PipelineConfig(out_dir=str(tmp_path / "out"), annotations=str(_small_ann(tmp_path)))
    run_filter(cfg, progress=False)
    run_analyze(cfg, progress=False)

    def crash(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt  # stands for kill -9 in the middle of the write

    monkeypatch.setattr(official, "write_official", crash)
    with pytest.raises(KeyboardInterrupt):
        run_qa(cfg, progress=False)
    assert not (tmp_path / "out" / "qa" / "manifest.json").exists()
    monkeypatch.undo()
    r = run_qa(cfg, progress=False)
    assert not r.skipped and len(read_official(tmp_path / "out" / "qa" / "r_avst_qa.json")) == 6
    # the same for filter's derived files
    (tmp_path / "out" / "filter" / "videos.jsonl").unlink()
    (tmp_path / "out" / "filter" / "manifest.json").unlink()
    import ravst.pipeline.stages as stages

    monkeypatch.setattr(stages, "write_jsonl_atomic", crash)
    with pytest.raises(KeyboardInterrupt):
        run_filter(cfg, progress=False)
    assert not (tmp_path / "out" / "filter" / "manifest.json").exists()


def test_stale_upstream_stage_is_detected(tmp_path: Path) -> None:
    """analyze ran on an older filter output: qa must not call itself up to date."""
    from ravst.pipeline.stages import run_analyze, run_filter, run_qa

    cfg = PipelineConfig(out_dir=str(tmp_path / "out"), annotations=str(_small_ann(tmp_path)))
    for stage in (run_filter, run_analyze, run_qa):
        stage(cfg, progress=False)
    import shutil  # a copied output folder is still consistent (inputs are recorded relative to it)

    shutil.copytree(tmp_path / "out", tmp_path / "copy")
    assert run_qa(PipelineConfig(out_dir=str(tmp_path / "copy")), progress=False).skipped
    (tmp_path / "out" / "filter" / "videos.jsonl").write_text("")  # filter re-ran with other results
    with pytest.raises(ValueError, match=r"analyze: stale: its input .*filter/videos\.jsonl changed"):
        run_qa(cfg, progress=False)
    assert main(["build", "qa", "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    assert not run_analyze(cfg, progress=False).skipped  # analyze reads the new filter output
    assert not run_qa(cfg, progress=False).skipped
    # the annotation file changed after filter ran: analyze refuses the stale filter output
    Path(cfg.annotations).write_text(Path(cfg.annotations).read_text().replace("man speaking", "woman speaking"))
    with pytest.raises(ValueError, match=r"filter: stale: its input .*ann\.json changed"):
        run_analyze(cfg, progress=False)
    # running the stages again in order brings everything back
    assert main(["build", "all", "--out", cfg.out_dir, "--annotations", cfg.annotations, "--no-progress"]) == 0


def test_exit_code_when_every_record_fails(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["build", "filter", "--annotations", str(_small_ann(tmp_path, bad=True)), "--out", str(out),
                 "--no-progress"]) == 1
    assert main(["build", "all", "--annotations", str(_small_ann(tmp_path, bad=True)), "--out", str(out),
                 "--no-progress"]) == 1
    assert not (out / "analyze").exists()  # later stages are not run on nothing
    assert main(["build", "all", "--annotations", str(_small_ann(tmp_path)), "--out", str(out),
                 "--no-progress"]) == 0


def test_errors_name_file_record_and_field(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ravst.pipeline.runner import read_jsonl
    from ravst.pipeline.stages import run_filter

    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"database": {
        "ok1": {"duration": 30, "annotations": [{"segment": [1, 9], "label": "dog barking"}]},
        "bad01": {"duration": 30, "annotations": [{"segment": [1, "x"], "label": "dog barking"}]}}}))
    r = run_filter(PipelineConfig(out_dir=str(tmp_path / "out"), annotations=str(ann)), progress=False)
    error = read_jsonl(r.failures_path)[0]["error"]
    assert f"{ann}: video #1 'bad01': annotations[0]['segment'][1]" in error, error
    # filter without --annotations, and with a missing file
    with caplog.at_level("ERROR"):
        assert main(["build", "filter", "--out", str(tmp_path / "o2"), "--no-progress"]) == 1
    assert "--annotations" in caplog.text and "Errno 21" not in caplog.text
    with pytest.raises(FileNotFoundError, match="not found") as info:
        run_filter(PipelineConfig(out_dir=str(tmp_path / "o3"), annotations=str(tmp_path / "none.json")))
    assert "earlier stage" not in str(info.value)
    # broken configs name the file (and line)
    bad = tmp_path / "bad.yaml"
    bad.write_text("filter:\n  max_events: [1\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: line \d+ column \d+: invalid YAML"):
        load_config(bad)
    cfg = tmp_path / "build.cfg"
    cfg.write_text("filter: {max_events: 2}\n")
    assert load_config(cfg).filter.max_events == 2
    cfg.write_text("filter: [1, 2]\n")
    with pytest.raises(ValueError, match=r"build\.cfg"):
        load_config(cfg)
    js = tmp_path / "c.json"
    js.write_text("{\n  oops\n}")
    with pytest.raises(ValueError, match=r"c\.json: line 2 column 3: invalid JSON"):
        load_config(js)
