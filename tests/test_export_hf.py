"""`ravst export hf`: a folder datasets.load_dataset reads, that round-trips to the official file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ravst.cli import main
from ravst.formats.hf import is_hf_dataset_dir, read_hf_official_json, read_hf_rows
from ravst.formats.official import read_official

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def exported(official_qa_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hf") / "r_avst_test"
    assert main(["export", "hf", "--qa", str(official_qa_path), "--video-mode", "none", "--out", str(out)]) == 0
    return out


def test_official_set_round_trips_byte_for_byte(exported: Path, official_qa_path: Path) -> None:
    assert is_hf_dataset_dir(exported)
    data = read_hf_official_json(exported)
    assert json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8") == official_qa_path.read_bytes()


def test_load_dataset_reads_the_folder(exported: Path, official_qa_path: Path) -> None:
    ds = datasets.load_dataset(str(exported))
    assert list(ds) == ["test"]
    test = ds["test"]
    assert len(test) == 1638
    raw = json.loads(official_qa_path.read_text(encoding="utf-8"))
    # The first QA, checked field by field against the official file (not against our reader).
    first_video = raw[0]
    first_event = first_video["annotation"][0]
    task_key = next(k for k in ("AV Temporal Reasoning", "AV Spatial Reasoning", "AV ST Reasoning") if k in first_event)
    row = test[0]
    assert row["video"] == first_video["video_name"]
    assert row["duration"] == first_video["duration"]
    assert row["event_num"] == first_event["event_num"]
    assert row["question"] == first_event[task_key][0]["Q"]
    assert row["answer"] == first_event[task_key][0]["A"]
    assert row["video_path"] is None
    kinds = {k: sum(1 for r in test if r["kind"] == k) for k in set(test["kind"])}
    assert kinds == {"temporal": 666, "spatial-sounding": 378, "spatial-silent": 288, "spatiotemporal": 306}
    assert test.features["tracks"].feature["xyxy"].feature.feature.dtype == "float64"


def test_parsed_fields_match_the_answer_text(exported: Path) -> None:
    rows = {r["qa_id"]: r for r in read_hf_rows(exported)}
    r = rows["1QFfsvmpT0I/0/spatial/0"]
    assert r["span"] == [] and r["task"] == "spatial" and r["query_span"]
    # every box line of the answer text is one row of one track
    n_lines = sum(1 for line in r["answer"].splitlines() if line.strip()[:1].isdigit() and ": [" in line)
    assert sum(len(t["times_s"]) for t in r["tracks"]) == n_lines
    for t in r["tracks"]:
        assert len(t["times_s"]) == len(t["xyxy"]) and all(len(b) == 4 for b in t["xyxy"])
    temporal = next(v for v in rows.values() if v["task"] == "temporal")
    assert len(temporal["span"]) == 2 and temporal["span"][0] <= temporal["span"][1]
    assert f"[{temporal['span'][0]}, {temporal['span'][1]}]" in temporal["answer"]


def test_qa_options_accept_the_folder(exported: Path, official_qa_path: Path, tmp_path: Path) -> None:
    assert read_official(exported) == read_official(official_qa_path)
    out = tmp_path / "run"
    assert main(["eval", "--gt", str(exported), "--pred", "gt", "--similarity", "exact", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_qas"] == 1638
    assert metrics["tasks"]["temporal"]["m_tIoU"] == pytest.approx(100.0)


def _one_video_qa(tmp_path: Path) -> Path:
    data = [{"video_name": "unav100_--HuBNHXu9I", "duration": 60.06, "annotation": [{"event_num": 1,
             "AV Temporal Reasoning": [{"Q": "When is the moment man makes sound and is visible?",
                                        "A": "<answer>\n<object>man</object>\n<when>[0.0, 10.2]</when>\n</answer>"}]}]}]
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


@pytest.mark.parametrize("mode", ["symlink", "copy"])
def test_videos_are_linked_or_copied(mode: str, videos_dir: Path, tmp_path: Path) -> None:
    qa = _one_video_qa(tmp_path)
    out = tmp_path / "ds"
    assert main(["export", "hf", "--qa", f"train={qa}", "--videos", str(videos_dir), "--out", str(out),
                 "--video-mode", mode]) == 0
    ds = datasets.load_dataset(str(out))
    assert list(ds) == ["train"]
    rel = ds["train"][0]["video_path"]
    assert rel == "videos/unav100_--HuBNHXu9I.mp4"
    clip = out / rel
    assert clip.is_symlink() == (mode == "symlink")
    assert clip.read_bytes()[:64] == (videos_dir / "unav100_--HuBNHXu9I.mp4").read_bytes()[:64]


def test_missing_video_is_an_error_unless_allowed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    qa = _one_video_qa(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "ds"
    with caplog.at_level(logging.ERROR):
        assert main(["export", "hf", "--qa", str(qa), "--videos", str(empty), "--out", str(out)]) == 2
    assert "1 of 1 videos not found" in caplog.text and "--allow-missing-videos" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main(["export", "hf", "--qa", str(qa), "--videos", str(empty), "--out", str(out),
                     "--allow-missing-videos"]) == 0
    assert "1 of 1 videos not found" in caplog.text
    assert read_hf_rows(out)[0]["video_path"] is None
    assert "1 videos were not found" in (out / "README.md").read_text()


def test_a_plain_folder_is_not_a_qa_file(tmp_path: Path) -> None:
    from ravst.formats import FormatError

    with pytest.raises(FormatError, match="not a dataset folder"):
        read_official(tmp_path)
