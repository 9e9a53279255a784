"""``rewards.mode: official`` = the released AVST-Zero reward: golden values from running the
released code, the whole official test set against expectations written from the released
semantics, and the released quirks one by one."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ravst import rewards as R
from ravst.formats.official import read_official
from ravst.parsing import render_answer
from ravst.released_reward import ReleasedMapper, normalize_name, released_format, released_scores
from ravst.types import QAItem, Task

PARTS = ("format", "spatial_temporal", "object", "temporal", "spatial", "total")


@pytest.fixture(scope="module")
def items(official_qa_path: Path) -> list[QAItem]:
    return read_official(official_qa_path)


@pytest.fixture(scope="module")
def by_id(items: list[QAItem]) -> dict[str, QAItem]:
    return {it.qa_id: it for it in items}


@pytest.fixture(scope="module")
def test_vocab(shared_data: Path) -> Path:
    return shared_data / "r_avst" / "Test_gt_object_vocab.pt"


@pytest.fixture(scope="module")
def mapper(test_vocab: Path) -> ReleasedMapper:
    return ReleasedMapper(test_vocab)


@pytest.fixture(scope="module")
def golden(shared_data: Path) -> list[dict[str, Any]]:
    return json.loads((shared_data / "rewards" / "released_reward_values.json").read_text())["items"]


def _cfg(vocab: Path) -> R.RewardConfig:
    return R.RewardConfig(mode="official", official_vocab=str(vocab))


def test_gt_text_is_the_raw_official_answer(official_qa_path: Path, items: list[QAItem]) -> None:
    """Official mode scores against render_answer(GT); the released code saw the raw A text."""
    raw = json.loads(official_qa_path.read_text())
    keys = {"AV Temporal Reasoning": "temporal", "AV Spatial Reasoning": "spatial", "AV ST Reasoning": "spatiotemporal"}
    answers = {f"{v['video_name']}/{e}/{t}/{k}": qa["A"] for v in raw for e, ev in enumerate(v["annotation"])
               for key, t in keys.items() for k, qa in enumerate(ev.get(key, []))}
    assert len(answers) == len(items) == 1638
    assert all(render_answer(it.answer) == answers[it.qa_id] for it in items)


def test_golden_released_values(golden: list[dict[str, Any]], by_id: dict[str, QAItem], mapper: ReleasedMapper) -> None:
    assert len(golden) == 26
    for g in golden:
        item = by_id[g["qa_id"]]
        got = released_scores(g["text"], render_answer(item.answer), item.task, mapper)
        ref = g["released"]
        assert got.raised is None, g["label"]
        for k in PARTS:
            if ref[k] is None:
                assert getattr(got, k) is None, (g["label"], k)
            else:
                assert getattr(got, k) == pytest.approx(ref[k], abs=1e-6), (g["label"], k)
        assert list(got.pred_objects_mapped) == sorted(ref["pred_objects_mapped"]), g["label"]
        assert list(got.gt_objects) == sorted(ref["gt_objects"]), g["label"]
        assert got.n_pairs == ref["n_pairs"], g["label"]
    assert not mapper.unknown_names  # every golden name is made of words the shipped table determines


def test_golden_through_the_reward_functions(golden: list[dict[str, Any]], by_id: dict[str, QAItem],
                                             test_vocab: Path) -> None:
    """The trainer's reward functions (and so `ravst reward`) give the released total and format."""
    cfg = _cfg(test_vocab)
    funcs = {f.__name__: f for f in R.make_reward_functions(cfg)[0]}
    qa = [R.qa_json_of(by_id[g["qa_id"]]) for g in golden]
    texts = [g["text"] for g in golden]
    total, fmt = funcs["total"](texts, qa=qa), funcs["format"](texts, qa=qa)
    for g, t, f in zip(golden, total, fmt, strict=True):
        assert t == pytest.approx(g["released"]["total"], abs=1e-6), g["label"]
        assert f == g["released"]["format"], g["label"]


# ----------------------------------------------------------------------- the whole official test set
def _expected_map(vocab: Path) -> dict[str, str]:
    """Released mapping of the GT names written from its semantics: a vocabulary name's vector IS
    its vocabulary embedding; torch.max takes the first entry of the highest cosine, i.e. the first
    entry with an identical embedding (cos 1); a zero embedding has cos 0 < 0.75 and stays."""
    from ravst.word2vec import load_vocab

    names, emb = load_vocab(vocab)
    first: dict[bytes, str] = {}
    for n, e in zip(names, emb, strict=True):
        first.setdefault(e.tobytes(), n)
    return {n: (first[e.tobytes()] if np.any(e) else n) for n, e in zip(names, emb, strict=True)}


def _expected(item: QAItem, mapping: dict[str, str]) -> tuple[float, float]:
    """(format, spatial_temporal) of a GT answer fed back, from the released semantics."""
    a = item.answer
    if item.task is Task.TEMPORAL:  # <object>..</object>\n<when>[s, e]</when>: tIoU with itself
        s = a.spans[0]
        return 0.0, 1.0 if s.end_s > s.start_s else 0.0
    # objects with at least one row; the GT keeps its normalised names, the prediction is mapped
    gt_tracks = [t for t in a.tracks if len(t.times_s)] if item.task is Task.SPATIAL else \
        [t for t in a.tracks[:1] if len(t.times_s) and t.name == a.objects[0]]  # ST: object-when-where adjacent
    pred_tracks = [t for t in a.tracks if len(t.times_s)]
    gt_names = {normalize_name(t.name) for t in (t for t in a.tracks if len(t.times_s))}
    pred_names = {mapping.get(normalize_name(t.name), normalize_name(t.name)) for t in pred_tracks}
    obj = len(gt_names & pred_names) / len(gt_names) if gt_names else 0.0
    gt_groups: dict[tuple[int, str], list[np.ndarray]] = defaultdict(list)
    pred_groups: dict[tuple[int, str], list[np.ndarray]] = defaultdict(list)
    for t in gt_tracks:
        for time, box in zip(t.times_s, t.xyxy, strict=True):
            gt_groups[round(float(time)), normalize_name(t.name)].append(box)
    for t in pred_tracks:
        name = mapping.get(normalize_name(t.name), normalize_name(t.name))
        for time, box in zip(t.times_s, t.xyxy, strict=True):
            pred_groups[round(float(time)), name].append(box)
    pairs = gt_groups.keys() & pred_groups.keys()
    # each GT box finds itself among the predicted boxes (IoU 1) unless it has no area (IoU 0)
    values = [np.mean([float((b[2] - b[0]) * (b[3] - b[1]) > 0) for b in gt_groups[k]]) for k in pairs]
    spatial = float(np.mean(values)) if values else None
    if item.task is Task.SPATIAL:
        return 0.0, (obj + spatial) / 2 if spatial is not None else obj / 2
    s = a.spans[0]
    tiou = 1.0 if s.end_s > s.start_s else 0.0
    return 0.0, (tiou + spatial) / 2 if spatial is not None else tiou / 2


def test_gt_of_the_whole_test_set(items: list[QAItem], test_vocab: Path) -> None:
    cfg = _cfg(test_vocab)
    funcs = {f.__name__: f for f in R.make_reward_functions(cfg)[0]}
    qa = [R.qa_json_of(it) for it in items]
    texts = [render_answer(it.answer) for it in items]
    before = dict(R.COUNTERS)
    total, fmt = funcs["total"](texts, qa=qa), funcs["format"](texts, qa=qa)
    assert R.COUNTERS["official_raised"] == before.get("official_raised", 0)
    assert R.COUNTERS["error"] == before.get("error", 0)
    assert sum(fmt) == 0.0  # format 1 on none of them
    mapping = _expected_map(test_vocab)
    from ravst.word2vec import WordVectors

    wv = WordVectors.load()
    per_task: dict[Task, list[float]] = defaultdict(list)
    undetermined = 0
    for it, t in zip(items, total, strict=True):
        if any(wv.unknown_tokens(normalize_name(tr.name)) for tr in it.answer.tracks):
            undetermined += 1  # the shipped table cannot give GoogleNews' vector of this name
            continue
        f, st = _expected(it, mapping)
        assert t == pytest.approx(f + st, abs=1e-9), it.qa_id
        per_task[it.task].append(t)
    assert undetermined < 0.05 * len(items)
    means = {task: float(np.mean(v)) for task, v in per_task.items()}
    # the released semantics cost the GT: name ties (person -> '1 person'), [0,0,0,0] rows, ST
    # objects after the first, degenerate spans
    assert means[Task.TEMPORAL] == pytest.approx(1.0, abs=0.01)
    assert means[Task.SPATIAL] < 1.0 and means[Task.SPATIOTEMPORAL] < 1.0
    print({t.value: round(m, 4) for t, m in means.items()})


# ---------------------------------------------------------------------------------- the quirks
def test_first_index_wins_ties(shared_data: Path, mapper: ReleasedMapper) -> None:
    train = ReleasedMapper(shared_data / "r_avst" / "Train_gt_object_vocab.pt")
    assert train("man") == "a man" and train("The man") == "a man"
    assert mapper("person") == "1 person" and mapper("Cars") == "3 cars"


def test_format_quirks() -> None:
    gt_spatial = "<answer>\n<object>dog</object>\n<where>\n1.0: [1.0, 2.0, 3.0, 4.0]\n</where>\n</answer>"
    gt_st = "<answer>\n<object>dog</object>\n<when>[0.0, 2.0]</when>\n<where>\n1.0: [1.0, 2.0, 3.0, 4.0]\n</where>\n</answer>"
    assert released_format(gt_spatial) == 0.0 and released_format(gt_st) == 0.0
    box2 = "<answer>\n<when>[0.0, 2.0]</when>\n<object>dog</object>\n<where>\n</where>\n</answer>"
    assert released_format(box2) == 1.0  # an empty <where> is valid
    assert released_format(box2.replace("[0.0, 2.0]", "[-1.0, 2.0]")) == 0.0  # no negative numbers
    assert released_format(box2.replace("<where>\n</where>", "<where>\n1: [1, 2, 3, -4]\n</where>")) == 0.0


def test_where_the_released_code_raises_it_is_zero_and_counted(by_id: dict[str, QAItem], test_vocab: Path,
                                                              mapper: ReleasedMapper,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    item = next(it for it in by_id.values() if it.task is Task.TEMPORAL)
    good = render_answer(item.answer)
    for bad in (good + "\\x", good + "\\"):  # a truncated escape; a backslash at the end
        r = released_scores(bad, good, item.task, mapper)
        assert r.raised is not None and r.total == 0.0
    cfg = _cfg(test_vocab)
    n = R.COUNTERS["official_raised"]
    out = R.total_reward([good + "\\x"], qa=[R.qa_json_of(item)], config=cfg)
    assert out == [0.0] and R.COUNTERS["official_raised"] == n + 1
    assert "released code raises" in caplog.text
    # an escape the codec accepts is decoded, as released: a literal "\n" becomes a newline
    assert released_scores(good.replace("\n", "\\n"), good, item.task, mapper).temporal == 1.0


def test_temporal_quirks(by_id: dict[str, QAItem], mapper: ReleasedMapper) -> None:
    item = next(it for it in by_id.values() if it.task is Task.TEMPORAL)
    s = item.answer.spans[0]
    gt = render_answer(item.answer)

    def tiou(text: str) -> float:
        return released_scores(text, gt, item.task, mapper).temporal

    assert tiou(f"<when>[{s.start_s}, {s.end_s}]</when>") == 1.0
    assert tiou(f"<when> [{s.start_s}, {s.end_s}] </when>") == 0.0  # spaces inside <when>
    assert tiou(f"<when>[{s.start_s}, {s.end_s}, 3]</when>") == 0.0  # three numbers
    assert tiou(f"<when>[0, 0.1]</when><when>[{s.start_s}, {s.end_s}]</when>") < 1.0  # first only
    assert tiou(f"'answer': '<when>[{s.start_s}, {s.end_s}]</when>'}}") == 1.0  # dict-style extraction


def test_spatial_rounding_is_pythons(by_id: dict[str, QAItem], mapper: ReleasedMapper) -> None:
    """round() is half-to-even: a GT row at 2.5 is second 2, at 3.5 second 4."""
    gt = "<answer>\n<object>dog</object>\n<where>\n2.5: [0.0, 0.0, 10.0, 10.0]\n3.5: [0.0, 0.0, 10.0, 10.0]\n</where>\n</answer>"
    pred = "<object>dog</object><where>2: [0, 0, 10, 10]\n4: [0, 0, 10, 10]</where>"
    r = released_scores(pred, gt, Task.SPATIAL, mapper)
    assert r.n_pairs == 2 and r.spatial == 1.0
    bad_line = "<object>dog</object><where>2: [0, 0, 10, 10]\nx: [0, 0, 10, 10]\n4: [0, 0, 10, 10]</where>"
    assert released_scores(bad_line, gt, Task.SPATIAL, mapper).n_pairs == 1  # a bad line ends the block


def test_config_needs_a_vocabulary() -> None:
    with pytest.raises(ValueError, match="official_vocab"):
        R.RewardConfig(mode="official")
    cfg = R.RewardConfig(mode="official", official_vocab="v.pt")
    assert cfg.official_word2vec is None  # the shipped table
    assert cfg.weights("spatial") == (1.0, 0.5, 0.0, 0.5) and cfg.weights("temporal") == (1.0, 0.0, 1.0, 0.0)
