"""QA generation in the official templates and layout; split; stats."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ravst.formats.official import read_official, write_official
from ravst.parsing import parse_answer
from ravst.pipeline.config import QAConfig, SplitConfig, StatsConfig
from ravst.pipeline.qa import TEMPLATES, box_iou, generate_checked, generate_qas, same_box_frames
from ravst.pipeline.split import split_counts, split_items
from ravst.pipeline.stats import plot_figure3, table1_counts
from ravst.types import Task

RECORD = {
    "video_id": "2WTFdWkL9Hs", "duration_s": 28.028,
    "events": [
        {"index": 0, "label": "man speaking", "start_s": 1.39314, "end_s": 4.31906,
         "objects": [{"name": "person", "audible": True}, {"name": "guitar", "audible": False}],
         "tracks": [
             {"name": "person", "times_s": [1.4, 2.4, 3.4], "xyxy": [[158, 3, 561, 719], [158, 69, 561, 719],
                                                                     [158, 59, 561, 719]]},
             {"name": "guitar", "times_s": [1.4, 2.4, 2.4, 3.4], "xyxy": [[0, 0, 0, 0], [1, 2, 30, 40],
                                                                          [50, 60, 70, 80], [0, 0, 0, 0]]},
         ]},
        {"index": 1, "label": "dog barking", "start_s": 10.0, "end_s": 12.5,
         "objects": [{"name": "dog", "audible": True}]},
    ],
}


def test_generate_all_tasks_and_roundtrip(tmp_path: Path) -> None:
    items = generate_qas(RECORD, QAConfig())
    kinds = [(q.event_index, q.kind) for q in items]
    assert kinds == [(0, "temporal"), (0, "spatial-sounding"), (0, "spatial-silent"), (0, "spatiotemporal"),
                     (1, "temporal")]  # event 1 has no boxes: temporal only
    st = items[3]
    assert st.question == 'When is the moment person makes sound and is visible, and where is the "person"?'
    assert items[1].question == "What visible object(s) make sound between 1.39314 and 4.31906, and where is/are they?"
    assert st.answer.span.as_list() == [1.4, 4.3]
    path = write_official(items, tmp_path / "qa.json")
    back = read_official(path)
    assert [q.qa_id for q in back] == [q.qa_id for q in items]
    assert back[2].answer.tracks[0] == items[2].answer.tracks[0]
    assert back[2].sounding is False and back[0].query_object == "person"
    raw = json.loads(path.read_text())
    for event in raw[0]["annotation"]:
        for qas in (v for k, v in event.items() if k != "event_num"):
            for qa in qas:
                assert parse_answer(qa["A"], strict=True).strict_ok


def test_never_detected_objects_are_dropped_and_counted() -> None:
    """An object with no box in any frame of its event is not named in any QA: not as silent, not
    with [0, 0, 0, 0] rows; every QA not written is counted by reason (counts by hand)."""
    rec = json.loads(json.dumps(RECORD))
    for t in rec["events"][0]["tracks"]:
        t["xyxy"] = [[0, 0, 0, 0]] * len(t["times_s"])
    checked = generate_checked(rec, QAConfig())
    # event 0: temporal(person), spatial-sounding(person), spatial-silent(guitar), ST(person): all dropped;
    # event 1 has no tracks (not annotated): its temporal QA stays
    assert [(q.event_index, q.kind) for q in checked.items] == [(1, "temporal")]
    assert checked.dropped == {"never_detected": 4} and checked.objects_dropped == {"never_detected": 2}
    assert len(generate_qas(rec, QAConfig(require_boxes=False))) == 1
    # only the guitar is never seen: the silent QA goes, the person's QAs stay
    rec = json.loads(json.dumps(RECORD))
    rec["events"][0]["tracks"][1]["xyxy"] = [[0, 0, 0, 0]] * 4
    checked = generate_checked(rec, QAConfig())
    assert [q.kind for q in checked.items] == ["temporal", "spatial-sounding", "spatiotemporal", "temporal"]
    assert checked.dropped == {"never_detected": 1} and checked.objects_dropped == {"never_detected": 1}
    for item in checked.items:
        assert "guitar" not in item.answer.objects
    assert QAConfig(require_boxes="spatial-silent").require_boxes == ("spatial-silent",)
    with pytest.raises(ValueError, match="require_boxes"):
        QAConfig(require_boxes=("spatial",))
    only = generate_qas(RECORD, QAConfig(temporal=False, spatial_silent=False, spatiotemporal=False))
    assert [q.kind for q in only] == ["spatial-sounding"]


def test_a_sounding_object_left_out_is_flagged() -> None:
    """A merged event where one sounding object was never detected: the QAs name the other one and
    carry an ``object_left_out`` flag naming the missing object."""
    rec = {"video_id": "v", "duration_s": 30.0, "width": 100, "height": 100, "events": [
        {"index": 0, "label": "male singing", "start_s": 1.0, "end_s": 3.0,
         "objects": [{"name": "man", "audible": True}, {"name": "piano", "audible": True}],
         "tracks": [{"name": "man", "times_s": [1.0, 2.0, 3.0], "xyxy": [[10, 10, 30, 40]] * 3},
                    {"name": "piano", "times_s": [1.0, 2.0, 3.0], "xyxy": [[0, 0, 0, 0]] * 3}]}]}
    checked = generate_checked(rec, QAConfig())
    assert [q.kind for q in checked.items] == ["temporal", "spatial-sounding", "spatiotemporal"]
    assert checked.items[0].question == "When is the moment man makes sound and is visible?"
    assert [f["reason"] for f in checked.metas[0].flags] == ["object_left_out"]
    assert checked.metas[0].flags[0]["object"] == "piano"
    assert checked.dropped == {"never_detected": 1}  # piano's spatio-temporal QA


def _flags(xyxy: list[list[float]], times: list[float], sounding: bool = True) -> list[str]:
    rec = {"video_id": "v", "duration_s": 30.0, "width": 200, "height": 100, "events": [
        {"index": 0, "label": "dog barking", "start_s": times[0], "end_s": times[-1],
         "objects": [{"name": "dog", "audible": sounding}],
         "tracks": [{"name": "dog", "times_s": times, "xyxy": xyxy}]}]}
    metas = generate_checked(rec, QAConfig()).metas
    return sorted({f["reason"] for m in metas for f in m.flags})


def test_suspicious_ground_truth_is_flagged() -> None:
    """Frame 200 x 100 px, diagonal 223.6 px; thresholds 0.5 of the diagonal (111.8 px), 0.9 of
    the frame (18,000 px2), found in >= 0.3 of the frames."""
    steady = [[10, 10, 30, 30], [12, 10, 32, 30], [14, 10, 34, 30]]
    assert _flags(steady, [1.0, 2.0, 3.0]) == []
    # centre (20, 20) -> (180, 80): 170.9 px > 111.8 px
    assert _flags([[10, 10, 30, 30], [170, 70, 190, 90]], [1.0, 2.0]) == ["box_jump"]
    # (20, 20) -> (120, 20): 100 px < 111.8 px, not a jump
    assert _flags([[10, 10, 30, 30], [110, 10, 130, 30]], [1.0, 2.0]) == []
    # 190 x 96 = 18,240 px2 > 18,000 (91 %); 180 x 100 = 18,000 is not more than 90 %
    assert _flags([[5, 2, 195, 98]], [1.0]) == ["box_covers_frame"]
    assert _flags([[10, 0, 190, 100]], [1.0]) == []
    # found in 1 of 4 frames (25 % < 30 %): rarely found; 2 of 4 is fine; a silent object is not checked
    empty = [0, 0, 0, 0]
    assert _flags([[10, 10, 30, 30], empty, empty, empty], [1.0, 2.0, 3.0, 4.0]) == ["rarely_found"]
    assert _flags([[10, 10, 30, 30], [10, 10, 30, 30], empty, empty], [1.0, 2.0, 3.0, 4.0]) == []
    assert _flags([[10, 10, 30, 30], empty, empty, empty], [1.0, 2.0, 3.0, 4.0], sounding=False) == []


def _singer(person: list[list[float]], guitar: bool = False) -> dict[str, object]:
    """A merged event: the man sings (sounding), a 'person' (and maybe a guitar) is silent.
    Frame 200 x 100 px, times 1-4 s; the man has no box at 3 s."""
    empty = [0, 0, 0, 0]
    man = [[10, 10, 50, 90], [12, 10, 52, 90], empty, [10, 10, 50, 90]]
    objects = [{"name": "man", "audible": True}, {"name": "person", "audible": False}]
    tracks = [{"name": "man", "times_s": [1.0, 2.0, 3.0, 4.0], "xyxy": man},
              {"name": "person", "times_s": [1.0, 2.0, 3.0, 4.0], "xyxy": person}]
    if guitar:
        objects.append({"name": "guitar", "audible": False})
        tracks.append({"name": "guitar", "times_s": [1.0, 2.0, 3.0, 4.0], "xyxy": [[150, 50, 190, 90]] * 4})
    return {"video_id": "v", "duration_s": 30.0, "width": 200, "height": 100, "events": [
        {"index": 0, "label": "male singing", "start_s": 1.0, "end_s": 4.0, "objects": objects, "tracks": tracks}]}


def test_a_silent_object_on_a_sounding_objects_boxes_is_left_out() -> None:
    """Boxes 40 x 80 px (3,200 px2). The silent 'person' at 1 s is the man's box (IoU 1); at 2 s
    [20, 10, 60, 90] vs the man's [12, 10, 52, 90]: overlap 32 x 80 = 2,560, union 6,400 - 2,560
    = 3,840, IoU 0.667; at 3 s the man has no box (not a shared frame); at 4 s it is elsewhere (IoU
    0). Same box in 2 of 3 shared frames > 0.5: the silent QA is not written, the man's box QAs are
    flagged. With [30, 10, 70, 90] at 2 s (overlap 22 x 80 = 1,760, IoU 1,760 / 4,640 = 0.379) it
    is 1 of 3: nothing happens."""
    assert box_iou([12, 10, 52, 90], [20, 10, 60, 90]) == pytest.approx(2560 / 3840)
    assert box_iou([12, 10, 52, 90], [30, 10, 70, 90]) == pytest.approx(1760 / 4640)
    near = [[10, 10, 50, 90], [20, 10, 60, 90], [10, 10, 50, 90], [100, 10, 140, 90]]
    rec = _singer(near)
    tracks = {t["name"]: t for t in rec["events"][0]["tracks"]}  # type: ignore[index]
    assert same_box_frames(tracks["person"], tracks["man"], 0.5) == (2, 3)
    checked = generate_checked(rec, QAConfig())
    assert [q.kind for q in checked.items] == ["temporal", "spatial-sounding", "spatiotemporal"]
    assert checked.dropped == {"silent_on_sounding": 1} and checked.objects_dropped == {"on_sounding_object": 1}
    flags = [[(f["reason"], f["object"]) for f in m.flags] for m in checked.metas]
    assert flags == [[], [("silent_on_sounding", "man")], [("silent_on_sounding", "man")]]  # temporal: no boxes
    assert checked.metas[1].flags[0]["detail"].startswith(
        "in 2 of the 3 frames where both have a box, a 'person' box is on a 'man' box (IoU >= 0.5)")
    # a stricter IoU (0.7 > 0.667): 1 of 3 frames, the person stays silent
    assert [q.kind for q in generate_checked(rec, QAConfig(same_box_iou=0.7)).items] == [
        "temporal", "spatial-sounding", "spatial-silent", "spatiotemporal"]
    # IoU 0.379 at 2 s: 1 of 3 shared frames, not most: nothing happens
    far = [[10, 10, 50, 90], [30, 10, 70, 90], [10, 10, 50, 90], [100, 10, 140, 90]]
    checked = generate_checked(_singer(far), QAConfig())
    assert [q.kind for q in checked.items] == ["temporal", "spatial-sounding", "spatial-silent", "spatiotemporal"]
    assert checked.dropped == {} and not any(m.flags for m in checked.metas)
    # a second silent object elsewhere keeps the silent QA, which names it alone and is flagged
    checked = generate_checked(_singer(near, guitar=True), QAConfig())
    silent = next(i for i, q in enumerate(checked.items) if q.kind == "spatial-silent")
    assert checked.items[silent].answer.objects == ("guitar",)
    assert [(f["reason"], f["object"]) for f in checked.metas[silent].flags] == [("silent_on_sounding", "person")]
    assert checked.dropped == {} and checked.objects_dropped == {"on_sounding_object": 1}
    with pytest.raises(ValueError, match="same_box_iou"):
        QAConfig(same_box_iou=0.0)


def test_one_answer_per_question_in_a_video() -> None:
    """Two events whose sounding object is the same ("man speaking", "man singing" -> man) do not
    ask the same question twice with two different answers."""
    rec = {"video_id": "v", "duration_s": 30.0, "events": [
        {"index": 0, "label": "man speaking", "start_s": 1.0, "end_s": 4.0, "objects": [{"name": "man", "audible": True}]},
        {"index": 1, "label": "man singing", "start_s": 10.0, "end_s": 14.0, "objects": [{"name": "man", "audible": True}]}]}
    items = generate_qas(rec, QAConfig())
    assert [(q.event_index, q.answer.span.as_list()) for q in items] == [(0, [1.0, 4.0])]
    assert len(generate_qas(rec, QAConfig(unique_questions=False))) == 2


def test_templates_match_official_questions(official_qa_path: Path) -> None:
    """Every official question is one of our templates with its slots filled."""
    patterns = {k: re.compile(re.escape(v).replace(r"\{objects\}", ".+").replace(r"\{object\}", ".+")
                              .replace(r"\{start\}", r"[\d.]+").replace(r"\{end\}", r"[\d.]+"))
                for k, v in TEMPLATES.items()}
    items = read_official(official_qa_path)
    for q in items:
        assert patterns[q.kind].fullmatch(q.question), q.question


def test_split_by_video_balanced() -> None:
    rng = np.random.default_rng(0)
    items = []
    for v in range(200):
        rec = json.loads(json.dumps(RECORD))
        rec["video_id"] = f"vid{v}"
        if rng.random() < 0.5:
            rec["events"] = rec["events"][1:]
        items.extend(generate_qas(rec, QAConfig()))
    splits = split_items(items, SplitConfig(test_fraction=0.2, seed=3))
    assert {i.video for i in splits["train"]}.isdisjoint({i.video for i in splits["test"]})
    counts = split_counts(splits)
    for task in (Task.TEMPORAL, Task.SPATIAL, Task.SPATIOTEMPORAL):
        share = counts["test"][task.value] / counts["total"][task.value]
        assert abs(share - 0.2) < 0.03, (task, share)
    again = split_items(items, SplitConfig(test_fraction=0.2, seed=3))
    assert [i.qa_id for i in again["test"]] == [i.qa_id for i in splits["test"]]


def test_stats_plots(tmp_path: Path) -> None:
    items = generate_qas(RECORD, QAConfig())
    table = table1_counts([RECORD], items)
    assert table["videos"] == 1 and table["objects"] == 3 and table["qas_per_kind"]["temporal"] == 2
    paths = plot_figure3([RECORD, {**RECORD, "video_id": "b", "duration_s": 55.0}], tmp_path, StatsConfig())
    assert [p.name for p in paths] == ["event_duration_per_category.png", "video_durations.png",
                                       "events_per_video.png", "category_wordcloud.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000
