"""Tests of ravst.formats: official QA file, UnAV-100, AVE, AVSBench-V1, predictions JSONL."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ravst.formats import FormatError
from ravst.formats.ave import ave_to_qa_items, ave_to_records, parse_ave_lines, read_ave, read_ave_splits
from ravst.formats.avsbench import avsbench_to_qa_items, read_avsbench
from ravst.formats.official import (
    items_to_official_json,
    official_json_to_items,
    parse_question,
    read_official,
    write_official,
)
from ravst.formats.predictions import (
    BadLine,
    append_predictions,
    completed_ids,
    load_predictions,
    read_predictions,
    write_prediction,
    write_predictions,
)
from ravst.formats.unav100 import (
    read_unav100,
    records_to_unav100_json,
    unav100_json_to_records,
    write_unav100,
)
from ravst.types import Answer, CoordSpace, Event, Prediction, QAItem, Span, Task, Track, VideoRecord

T_ANSWER = "<answer>\n<object>dog</object>\n<when>[1.0, 2.5]</when>\n</answer>"
S_ANSWER = (
    "<answer>\n<object>A man</object>\n<where>\n0.0: [1.0, 2.0, 3.0, 4.0]\n0.0: [5.0, 6.0, 7.0, 8.0]\n"
    "</where>\n<object>cat</object>\n<where>\n</where>\n</answer>"
)
ST_ANSWER = "<answer>\n<object>dog</object>\n<when>[1.4, 2.4]</when>\n<where>\n1.4: [1.0, 2.0, 3.0, 4.0]\n</where>\n</answer>"


def small_official() -> list[dict]:
    return [
        {
            "video_name": "vid_a",
            "duration": 12.5,
            "annotation": [
                {
                    "event_num": 1,
                    "AV Temporal Reasoning": [
                        {"Q": "When is the moment dog makes sound and is visible?", "A": T_ANSWER}
                    ],
                    "AV Spatial Reasoning": [
                        {"Q": "What visible object(s) make sound between 0.0 and 4.4319, and where is/are they?",
                         "A": S_ANSWER},
                        {"Q": "What silent object(s) can be seen between 1.0 and 2.0, and where is/are they?",
                         "A": S_ANSWER},
                    ],
                },
                {
                    "event_num": 2,
                    "AV ST Reasoning": [
                        {"Q": 'When is the moment dog makes sound and is visible, and where is the "dog"?',
                         "A": ST_ANSWER}
                    ],
                },
            ],
        },
        {"video_name": "vid_b", "duration": 60, "annotation": [
            {"event_num": 3, "AV Temporal Reasoning": [
                {"Q": "When is the moment dog makes sound and is visible?", "A": T_ANSWER}]}]},
    ]


# ------------------------------------------------------------------------------ official file


def test_official_small_file_fields_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(small_official(), indent=2), encoding="utf-8")
    items = read_official(path)
    assert [i.qa_id for i in items] == [
        "vid_a/0/temporal/0", "vid_a/0/spatial/0", "vid_a/0/spatial/1", "vid_a/1/spatiotemporal/0",
        "vid_b/0/temporal/0",
    ]
    t, s_sound, s_silent, st_item, t_b = items
    assert t.query_object == "dog" and t.answer.span == Span(1.0, 2.5) and t.kind == "temporal"
    assert s_sound.sounding and s_sound.query_span == Span(0.0, 4.4319) and s_sound.kind == "spatial-sounding"
    assert not s_silent.sounding and s_silent.kind == "spatial-silent" and s_silent.query_object is None
    assert st_item.event_num == 2 and st_item.event_index == 1 and st_item.query_object == "dog"
    assert st_item.answer.tracks[0].name == "dog"
    assert s_sound.answer.objects == ("A man", "cat") and len(s_sound.answer.tracks[1]) == 0
    assert t_b.duration_s == 60.0 and t_b.event_num == 3
    assert items_to_official_json(items) == json.loads(path.read_text())
    out = write_official(items, tmp_path / "out.json")
    assert read_official(out) == items


def test_official_real_file_counts_and_exact_round_trip(official_qa_path: Path, tmp_path: Path) -> None:
    items = read_official(official_qa_path)
    assert len(items) == 1638
    assert len({i.video for i in items}) == 1070
    assert Counter(i.kind for i in items) == {
        "temporal": 666, "spatial-sounding": 378, "spatial-silent": 288, "spatiotemporal": 306,
    }
    assert len({i.qa_id for i in items}) == 1638
    assert all(re.fullmatch(r"[^/]+/\d+/(temporal|spatial|spatiotemporal)/\d+", i.qa_id) for i in items)
    spatial = [i for i in items if i.task is Task.SPATIAL]
    assert all(i.query_span is not None for i in spatial)
    assert all(i.query_object for i in items if i.task is not Task.SPATIAL)
    assert all(i.query_object == i.answer.objects[0] for i in items if i.task is not Task.SPATIAL)
    original = json.loads(official_qa_path.read_text(encoding="utf-8"))
    assert items_to_official_json(items) == original
    # byte for byte, every answer text included
    written = write_official(items, tmp_path / "copy.json")
    assert written.read_bytes() == official_qa_path.read_bytes()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: {"videos": d}, "qa.json: expected a JSON list of videos"),
        (lambda d: [{"duration": 1.0, "annotation": []}], "qa.json: video #0: 'video_name' must be"),
        (lambda d: [{**d[0], "duration": "12"}], "video #0 'vid_a': duration: expected a finite number"),
        (lambda d: [{**d[0], "annotation": [{"AV Temporal Reasoning": []}]}],
         "video #0 'vid_a': annotation[0]['event_num']: expected an integer"),
        (lambda d: [d[0], {**d[1], "annotation": [{"event_num": 1, "AV Temporal Reasoning": [{"Q": "q"}]}]}],
         "video #1 'vid_b': annotation[0]['AV Temporal Reasoning'][0]['A']: expected a string"),
        (lambda d: [{**d[0], "annotation": [{"event_num": 1, "AV Spatial Reasoning": [
            {"Q": "q", "A": "<answer>\n<object>x</object>\n<where>\n1: [1, 2]\n</where>\n</answer>"}]}]}],
         "video #0 'vid_a': annotation[0]['AV Spatial Reasoning'][0]['A']: not in the official answer layout: "
         "line 4: expected 't: [x1, y1, x2, y2]'"),
        (lambda d: [{**d[0], "annotation": [{"event_num": 1, "AV Temporal Reasoning": [
            {"Q": "q", "A": "<answer>\n<object>x</object>\n</answer>"}]}]}],
         "a temporal answer needs a <when> interval"),
        (lambda d: [{**d[0], "annotation": [{"event_num": 1, "AV ST Reasoning": [
            {"Q": "q", "A": T_ANSWER}]}]}],
         "a spatiotemporal answer needs a <where> block"),
        (lambda d: [{**d[0], "annotation": [{"event_num": 1, "AV Spatial Reasoning": [
            {"Q": "between 5.0 and 2.0", "A": S_ANSWER}]}]}],
         "annotation[0]['AV Spatial Reasoning'][0]['Q']: question interval ends"),
        (lambda d: [{**d[0], "extra": 1}], "video #0 'vid_a': unknown key(s) ['extra']"),
        (lambda d: [{**d[0], "annotation": [{"event_num": 1, "AV Other": []}]}],
         "annotation[0]: unknown key(s) ['AV Other']"),
    ],
)
def test_official_errors_name_file_record_and_field(tmp_path: Path, mutate, message: str) -> None:
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(mutate(small_official())), encoding="utf-8")
    with pytest.raises(FormatError) as err:
        read_official(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_official_unknown_keys_warn_mode(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = small_official()
    data[0]["annotation"][0]["AV Temporal Reasoning"][0]["note"] = "x"
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(FormatError, match=r"\['AV Temporal Reasoning'\]\[0\]: unknown key\(s\) \['note'\]"):
        read_official(path)
    with caplog.at_level(logging.WARNING):
        items = read_official(path, on_unknown="warn")
    assert len(items) == 5 and "note" in caplog.text


def test_official_invalid_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    path.write_text('[\n  {"video_name": "x",\n  oops\n]', encoding="utf-8")
    with pytest.raises(FormatError, match=r"qa.json: line 3 column 3: invalid JSON"):
        read_official(path)


def test_items_to_official_json_rejects_inconsistent_items() -> None:
    items = official_json_to_items(small_official())
    with pytest.raises(ValueError, match="duplicate QA"):
        items_to_official_json([items[0], items[0]])
    other = dataclasses.replace(items[0], duration_s=3.0, k=5)
    with pytest.raises(ValueError, match=r"duration 3\.0 differs"):
        items_to_official_json([items[0], other])


def test_parse_question_unknown_template() -> None:
    assert parse_question(Task.TEMPORAL, "When does the dog bark?") == (True, None, None)
    assert parse_question(Task.SPATIAL, "Where is the dog?") == (True, None, None)


NAME = st.text(alphabet=st.characters(whitelist_categories=("L", "N", "Zs")), min_size=1, max_size=10)
FL = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@st.composite
def official_items(draw: st.DrawFn) -> list[QAItem]:
    items = []
    for v in range(draw(st.integers(1, 3))):
        video = f"v{v}"
        duration = draw(st.floats(min_value=0, max_value=100))
        for e in range(draw(st.integers(1, 2))):
            event_num = draw(st.integers(0, 5))
            for task in Task:
                for k in range(draw(st.integers(0, 2))):
                    objects = tuple(draw(st.lists(NAME, min_size=1, max_size=3, unique=True)))
                    spans: tuple[Span, ...] = ()
                    tracks: tuple[Track, ...] = ()
                    if task is not Task.SPATIAL:
                        a, b = sorted((draw(FL), draw(FL)))
                        spans = (Span(a, b),)
                    if task is not Task.TEMPORAL:
                        n = draw(st.integers(0, 3))
                        tracks = tuple(
                            Track(o, draw(st.lists(FL, min_size=n, max_size=n)),
                                  np.asarray(draw(st.lists(st.lists(FL, min_size=4, max_size=4),
                                                           min_size=n, max_size=n))).reshape(-1, 4))
                            for o in objects
                        )
                    question = draw(st.text(alphabet="abc xyz?", max_size=20))
                    items.append(QAItem(QAItem.make_id(video, e, task, k), video, duration, e, event_num, task, k,
                                        question, Answer(objects, spans, tracks)))
    return items


@settings(max_examples=60, deadline=None)
@given(official_items())
def test_official_writer_reader_writer_identity(items: list[QAItem]) -> None:
    data = items_to_official_json(items)
    again = official_json_to_items(json.loads(json.dumps(data)))
    assert items_to_official_json(again) == data
    # the generated items are in writer order (video, event, task, k): same QAs, same order
    assert [(i.video, i.task, i.answer, i.question, i.event_num) for i in again] == [
        (i.video, i.task, i.answer, i.question, i.event_num) for i in items
    ]


# ------------------------------------------------------------------------------ UnAV-100


def test_unav100_small_round_trip_and_errors(tmp_path: Path) -> None:
    data = {"version": "unav100", "database": {
        "a": {"duration": 39, "annotations": [{"segment": [0, 12.5], "label": "sailing", "label_id": 55}],
              "subset": "test"},
        "b": {"duration": 47.68, "annotations": [], "subset": "train"},
    }}
    records = unav100_json_to_records(data)
    assert records[0] == VideoRecord("a", 39.0, (Event("sailing", Span(0.0, 12.5), 55),), "test")
    out = write_unav100(records, tmp_path / "u.json")
    assert json.loads(out.read_text()) == data
    assert read_unav100(out) == records
    bad = json.loads(json.dumps(data))
    bad["database"]["a"]["annotations"][0]["segment"] = [5, 2]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(FormatError, match=r"bad.json: video #0 'a': annotations\[0\]\['segment'\]: end 2.0 is before"):
        read_unav100(tmp_path / "bad.json")
    bad["database"]["a"]["annotations"][0] = {"segment": [1, 2], "label": "x", "label_id": True}
    with pytest.raises(FormatError, match=r"\['label_id'\]: expected an integer"):
        unav100_json_to_records(bad)
    with pytest.raises(FormatError, match="expected an object with a 'database'"):
        unav100_json_to_records([])


def test_unav100_real_file(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "unav100" / "unav100_annotations.json"
    records = read_unav100(path)
    assert len(records) == 10790 and sum(len(r.events) for r in records) == 30059
    assert Counter(r.subset for r in records) == {"train": 6489, "validation": 2134, "test": 2167}
    assert len({e.label for r in records for e in r.events}) == 100
    assert records_to_unav100_json(records) == json.loads(path.read_text())


# ------------------------------------------------------------------------------ AVE


def test_ave_lines_header_and_errors() -> None:
    anns = parse_ave_lines(["Category&VideoID&Quality&StartTime&EndTime\n", "Dog&v1&good&0&10\n",
                            "\n", "Cat&v1&good&2&5"])
    assert [(a.category, a.line_index, a.start_s, a.end_s) for a in anns] == [("Dog", 0, 0.0, 10.0),
                                                                            ("Cat", 1, 2.0, 5.0)]
    items = ave_to_qa_items(anns)
    assert [i.qa_id for i in items] == ["v1/0/temporal/0", "v1/1/temporal/0"]
    assert items[1].answer == Answer(("Cat",), (Span(2.0, 5.0),)) and items[1].category == "Cat"
    assert ave_to_records(anns)[0].events[1].label == "Cat"
    with pytest.raises(FormatError, match=r"ann.txt: line 2: expected 5 '&'-separated fields"):
        parse_ave_lines(["Dog&v1&good&0&10", "Dog&v2&good&0"], source="ann.txt")
    with pytest.raises(FormatError, match=r"line 1: End: expected a number of seconds, got 'ten'"):
        parse_ave_lines(["Dog&v1&good&0&ten"])
    with pytest.raises(FormatError, match=r"line 1: Start/End: interval \[5.0, 2.0\]"):
        parse_ave_lines(["Dog&v1&good&5&2"])


def test_ave_zero_length_event_is_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    anns = parse_ave_lines(["Dog&v1&good&0&10\n", "Bell&v2&good&0&0\n", "Cat&v2&good&2&5\n"], source="ann.txt")
    assert [a.zero_length for a in anns] == [False, True, False]
    with caplog.at_level(logging.WARNING):
        items = ave_to_qa_items(anns)
    assert "ann.txt: line 2: zero-length event 'Bell'" in caplog.text and "v2" in caplog.text
    # the zero-length line still uses up its index: the other ids do not move
    assert [i.qa_id for i in items] == ["v1/0/temporal/0", "v2/1/temporal/0"]
    assert len(ave_to_records(anns)[1].events) == 2  # records keep the annotation as it is


def test_ave_real_files(shared_data: Path) -> None:
    ann_path, split_path = shared_data / "ave" / "Annotations.txt", shared_data / "ave" / "ave_splits.csv"
    anns = read_ave(ann_path, split_path)
    assert len(anns) == 4143
    assert Counter(a.split for a in anns) == {"train": 3339, "val": 402, "test": 402}
    assert len({a.category for a in anns}) == 28
    test = read_ave(ann_path, split_path, split="test")
    items = ave_to_qa_items(test)
    assert len(items) == 402 and all(i.task is Task.TEMPORAL and i.duration_s == 10.0 for i in items)
    assert len({i.qa_id for i in items}) == 402
    assert read_ave_splits(split_path) == anns
    # line 27 'Church bell&VWi2ENBuTbw&good&0&0' (train) is the only zero-length event
    zero = [a for a in anns if a.zero_length]
    assert [(a.video_id, a.line_index, a.split) for a in zero] == [("VWi2ENBuTbw", 26, "train")]
    assert zero[0].source is not None and zero[0].source.endswith("Annotations.txt: line 27")
    assert len(ave_to_qa_items(anns)) == 4142


def test_ave_split_mismatch_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "Annotations.txt").write_text("Dog&v1&good&0&10\n")
    (tmp_path / "s.csv").write_text("annotation_line_index,split,category,video_id,quality,start_s,end_s\n"
                                    "0,train,Dog,v2,good,0,10\n")
    with pytest.raises(FormatError, match=r"s\.csv: annotation_line_index 0: row .* does not match"):
        read_ave(tmp_path / "Annotations.txt", tmp_path / "s.csv")
    (tmp_path / "s.csv").write_text("index,split\n")
    with pytest.raises(FormatError, match=r"s\.csv: header: missing column"):
        read_ave(tmp_path / "Annotations.txt", tmp_path / "s.csv")


# ------------------------------------------------------------------------------ AVSBench


def _write_mask(path: Path, boxes: list[tuple[int, int, int, int]], shape: tuple[int, int] = (20, 30)) -> None:
    from PIL import Image

    mask = np.zeros(shape, dtype=np.uint8)
    for x1, y1, x2, y2 in boxes:
        mask[y1:y2, x1:x2] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(path)


def test_avsbench_masks_give_boxes(tmp_path: Path) -> None:
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("my_vid_1,dog_barking\nmy_vid_2,dog_barking\nab_0_1,\"guitar, violin\"\n")
    frames = read_avsbench(csv_path)
    masks = tmp_path / "gt_masks" / "test"
    _write_mask(masks / "dog_barking" / "my_vid" / "my_vid_1.png", [(2, 3, 6, 8)])
    _write_mask(masks / "dog_barking" / "my_vid" / "my_vid_2.png", [])
    _write_mask(masks / "ab_0" / "ab_0_1.png", [(0, 0, 2, 2), (10, 10, 12, 15)])
    dog, duo = avsbench_to_qa_items(frames, masks_dir=tmp_path / "gt_masks")
    assert dog.qa_id == "my_vid/0/spatial/0" and dog.answer.objects == ("dog barking",)
    assert dog.query_span == Span(0.0, 5.0) and dog.category == "dog_barking"
    track = dog.answer.tracks[0]
    assert track.times_s.tolist() == [0.0, 1.0]
    assert track.xyxy.tolist() == [[2.0, 3.0, 6.0, 8.0], [0.0, 0.0, 0.0, 0.0]]
    assert duo.answer.objects == ("guitar", "violin") and len(duo.answer.tracks) == 2
    assert duo.answer.tracks[1].xyxy.tolist() == [[0.0, 0.0, 12.0, 15.0]]
    (_, duo_inst) = avsbench_to_qa_items(frames, masks_dir=tmp_path / "gt_masks", instances=True)
    assert duo_inst.answer.tracks[0].xyxy.tolist() == [[0.0, 0.0, 2.0, 2.0], [10.0, 10.0, 12.0, 15.0]]
    (masks / "ab_0" / "ab_0_1.png").unlink()
    with pytest.raises(FormatError, match=r"line 3: no mask ab_0_1\.png under"):
        avsbench_to_qa_items(frames, masks_dir=tmp_path / "gt_masks")


def test_avsbench_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("vid_1,dog\nnoframe,dog\n")
    with pytest.raises(FormatError, match=r"t.csv: line 2: videoid_frame: expected '<video>_<frame number>'"):
        read_avsbench(path)
    path.write_text("vid_1,dog\nvid_2,cat\n")
    with pytest.raises(FormatError, match="line 2: category 'cat' of vid_2 differs"):
        avsbench_to_qa_items(read_avsbench(path))


def test_avsbench_real_files_without_masks(shared_data: Path, caplog: pytest.LogCaptureFixture) -> None:
    s4 = read_avsbench(shared_data / "avsbench" / "avs1_s4_test.csv")
    ms3 = read_avsbench(shared_data / "avsbench" / "avs1_ms3_test.csv")
    assert len(s4) == 3700 and len(ms3) == 320
    with caplog.at_level(logging.WARNING):
        items = avsbench_to_qa_items(s4)
    assert len(items) == 740 and "empty ground-truth tracks" in caplog.text
    assert all(len(t) == 0 for i in items for t in i.answer.tracks)
    ms3_items = avsbench_to_qa_items(ms3)
    assert len(ms3_items) == 64
    assert any(len(i.answer.objects) == 2 for i in ms3_items)
    assert Counter(f.frame for f in s4) == dict.fromkeys(range(1, 6), 740)


# ------------------------------------------------------------------------------ predictions


def test_predictions_round_trip_with_extras(tmp_path: Path) -> None:
    preds = [
        Prediction("v/0/temporal/0", "<answer>ü</answer>", model="qwen", coord_space=CoordSpace.INPUT,
                   input_wh=(640, 360), frame_times_s=(0.0, 4.0), latency_s=1.5, extra={"seed": 3}),
        Prediction("v/0/spatial/0", "", error="timeout"),
    ]
    path = tmp_path / "p.jsonl"
    assert write_predictions(path, preds) == 2
    assert read_predictions(path) == preds
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first["seed"] == 3 and first["coord_space"] == "input" and "ü" in path.read_text(encoding="utf-8")


def test_predictions_truncated_last_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "p.jsonl"
    write_predictions(path, [Prediction("a", "x"), Prediction("b", "y")])
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"qa_id": "c", "te')  # a crash mid-write
    with pytest.raises(FormatError, match=r"p.jsonl: line 3: truncated last line"):
        read_predictions(path)
    with caplog.at_level(logging.WARNING):
        assert [p.qa_id for p in read_predictions(path, on_error="skip")] == ["a", "b"]
    assert "line 3" in caplog.text
    assert completed_ids(path) == {"a", "b"}
    # resuming cuts the torn record off first (logging what it dropped): no invalid line mid-file
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        append_predictions(path, [Prediction("c", "z")])
    assert "line 3 is a torn record" in caplog.text and '{"qa_id": "c", "te' in caplog.text
    assert [p.qa_id for p in read_predictions(path)] == ["a", "b", "c"]
    assert path.read_text(encoding="utf-8").count("\n") == 3


def test_append_keeps_a_complete_last_record_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"qa_id": "a", "text": "x"}', encoding="utf-8")  # complete, only the newline missing
    append_predictions(path, [Prediction("b", "y")])
    assert [p.qa_id for p in read_predictions(path)] == ["a", "b"]
    torn = tmp_path / "torn.jsonl"
    torn.write_text('{"qa_id": "a", "te', encoding="utf-8")  # the only line is torn
    append_predictions(torn, [Prediction("b", "y")])
    assert torn.read_text(encoding="utf-8") == '{"qa_id": "b", "text": "y"}\n'


def test_load_predictions_tolerates_truncated_last_line_and_duplicates(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "p.jsonl"
    write_predictions(path, [Prediction("a", "1"), Prediction("b", "2"), Prediction("a", "3")])
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"qa_id": "c", "te')
    with caplog.at_level(logging.WARNING):
        got = load_predictions(path)
    assert [p.text for p in got.predictions] == ["1", "2", "3"] and got.n_duplicates == 1
    assert len(got.bad_lines) == 1 and got.bad_lines[0].line == 4 and got.bad_lines[0].truncated
    assert "p.jsonl: line 4: truncated last line" in caplog.text


def test_load_predictions_mid_file_error_unless_skip(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"qa_id": "a", "text": "1"}\n{"qa_id": "b", "te\n{"qa_id": "c"}\n{"qa_id": "d", "text": "4"}\n',
                    encoding="utf-8")
    with pytest.raises(FormatError, match=r"p.jsonl: line 2: invalid JSON.*--skip-bad-lines"):
        load_predictions(path)
    got = load_predictions(path, skip_bad_lines=True)
    assert [p.qa_id for p in got.predictions] == ["a", "d"]
    assert [(b.line, b.truncated) for b in got.bad_lines] == [(2, False), (3, False)]
    assert isinstance(got.bad_lines[1], BadLine) and "missing required field 'text'" in got.bad_lines[1].message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "x"}', "missing required field 'qa_id'"),
        ('{"qa_id": "a"}', "missing required field 'text'"),
        ('{"qa_id": "a", "text": 3}', "field 'text': expected a string"),
        ('{"qa_id": "", "text": "x"}', "field 'qa_id': empty string"),
        ('{"qa_id": "a", "text": "x", "coord_space": "pixels"}', "field 'coord_space': 'pixels' is not one of"),
        ('{"qa_id": "a", "text": "x", "input_wh": [1.5, 2]}', "field 'input_wh'"),
        ('{"qa_id": "a", "text": "x", "coord_space": "input"}', "coord_space 'input' needs input_wh"),
        ('{"qa_id": "a", "text": "x", "latency_s": "1"}', "field 'latency_s'"),
        ('{"qa_id": "a", "text": "x", "frame_times_s": [1, null]}', "field 'frame_times_s'"),
        ('[1, 2]', "expected a JSON object, got list"),
        ('{"qa_id": "a", "text": "x"', "invalid JSON"),
    ],
)
def test_prediction_line_errors(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"qa_id": "ok", "text": "x"}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(FormatError) as err:
        read_predictions(path)
    assert str(err.value).startswith(f"{path}: line 3: ") and message in str(err.value)


def test_prediction_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    write_predictions(path, [Prediction("a", "1"), Prediction("a", "2")])
    with pytest.raises(FormatError, match=r"line 2: field 'qa_id': duplicate 'a' \(first on line 1\)"):
        read_predictions(path)
    assert [p.text for p in read_predictions(path, on_error="skip")] == ["1"]


def test_write_prediction_rejects_clashing_extra() -> None:
    import io

    with pytest.raises(ValueError, match="clash"):
        write_prediction(io.StringIO(), Prediction("a", "x", extra={"model": "m"}))


JSONABLE = st.recursive(st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=5),
                        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                        max_leaves=5)


@st.composite
def predictions(draw: st.DrawFn) -> Prediction:
    coord = draw(st.sampled_from(list(CoordSpace)))
    wh = draw(st.tuples(st.integers(1, 5000), st.integers(1, 5000)) if coord is CoordSpace.INPUT
              else st.none() | st.tuples(st.integers(1, 5000), st.integers(1, 5000)))
    return Prediction(
        qa_id=draw(st.text(min_size=1, max_size=10)),
        text=draw(st.text(max_size=50)),
        model=draw(st.none() | st.text(max_size=5)),
        coord_space=coord,
        input_wh=wh,
        frame_times_s=draw(st.none() | st.lists(st.floats(0, 1e4), max_size=4).map(tuple)),
        latency_s=draw(st.none() | st.floats(0, 100)),
        error=draw(st.none() | st.text(max_size=5)),
        extra=draw(st.dictionaries(st.text(max_size=5).filter(lambda k: k not in {
            "qa_id", "text", "model", "coord_space", "input_wh", "frame_times_s", "latency_s", "error"}),
            JSONABLE, max_size=2)),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(predictions(), max_size=4, unique_by=lambda p: p.qa_id))
def test_predictions_writer_reader_writer_identity(tmp_path_factory: pytest.TempPathFactory,
                                                   preds: list[Prediction]) -> None:
    path = tmp_path_factory.mktemp("preds") / "p.jsonl"
    write_predictions(path, preds)
    first = path.read_bytes()
    again = read_predictions(path)
    assert again == preds
    write_predictions(path, again)
    assert path.read_bytes() == first


def test_attach_unav_categories_real(official_qa_path: Path, shared_data: Path) -> None:
    from ravst.formats.official import attach_unav_categories

    items = read_official(official_qa_path)
    records = read_unav100(shared_data / "unav100" / "unav100_annotations.json")
    with_cat = attach_unav_categories(items, records)
    assert all(i.category for i in with_cat) and len({i.category for i in with_cat}) == 100
    assert [dataclasses.replace(i, category=None) for i in with_cat] == items
    # a single-label video gets its label
    by_video = {r.video_id: r for r in records}
    single = next(i for i in with_cat if len({e.label for e in by_video[i.video].events}) == 1)
    assert single.category == by_video[single.video].events[0].label


def test_read_qa_items_recognises_each_file(shared_data: Path, tmp_path: Path) -> None:
    from ravst.formats import read_qa_items

    assert len(read_qa_items(shared_data / "r_avst" / "xml_test_QA.json")) == 1638
    assert len(read_qa_items(shared_data / "ave" / "ave_splits.csv", split="test")) == 402
    assert len(read_qa_items(shared_data / "ave" / "Annotations.txt")) == 4142  # 4,143 lines, 1 zero-length
    assert len(read_qa_items(shared_data / "avsbench" / "avs1_s4_test.csv")) == 740
    with pytest.raises(ValueError, match="applies only to an AVE split CSV"):
        read_qa_items(shared_data / "ave" / "Annotations.txt", split="test")
    odd = tmp_path / "x.txt"
    odd.write_text("hello\n")
    with pytest.raises(FormatError, match="not a recognised ground-truth file"):
        read_qa_items(odd)


@st.composite
def unav_records(draw: st.DrawFn) -> list[VideoRecord]:
    records = []
    for v in range(draw(st.integers(0, 4))):
        duration = draw(st.one_of(st.integers(0, 600).map(float), st.floats(0, 600)))
        events = []
        for _ in range(draw(st.integers(0, 3))):
            a, b = sorted((draw(st.floats(0, duration)), draw(st.floats(0, duration))))
            events.append(Event(draw(st.text(min_size=1, max_size=8)), Span(a, b), draw(st.none() | st.integers(0, 99))))
        records.append(VideoRecord(f"vid{v}", duration, tuple(events), draw(st.none() | st.sampled_from(["train", "test"]))))
    return records


@settings(max_examples=60, deadline=None)
@given(unav_records())
def test_unav100_writer_reader_writer_identity(records: list[VideoRecord]) -> None:
    data = records_to_unav100_json(records)
    again = unav100_json_to_records(json.loads(json.dumps(data)))
    assert again == records
    assert records_to_unav100_json(again) == data
