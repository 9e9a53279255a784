"""Metric functions and per-QA scoring: properties (hypothesis) and hand-worked examples."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ravst.coords import convert_answer, to_original_xyxy
from ravst.metrics import functional as F
from ravst.metrics import vstar
from ravst.metrics.ravst_protocol import aggregate, assign_tracks, score_qa
from ravst.similarity import get_similarity
from ravst.types import Answer, CoordSpace, QAItem, Span, Task, Track

EXACT = get_similarity("exact")
coord = st.floats(-1000, 1000, allow_nan=False, allow_infinity=False)
length = st.floats(0.01, 500, allow_nan=False, allow_infinity=False)


@st.composite
def intervals(draw):
    a = draw(coord)
    return [a, a + draw(length)]


@st.composite
def boxes(draw):
    x, y = draw(coord), draw(coord)
    return [x, y, x + draw(length), y + draw(length)]


# ---------------------------------------------------------------------------------------------
# IoU properties


@settings(max_examples=150, deadline=None)
@given(st.lists(intervals(), min_size=1, max_size=4), st.lists(intervals(), min_size=1, max_size=4))
def test_iou_1d_properties(a, b):
    m = F.iou_1d(a, b)
    assert m.shape == (len(a), len(b))
    assert ((m >= 0) & (m <= 1 + 1e-12)).all()
    np.testing.assert_allclose(m, F.iou_1d(b, a).T, atol=1e-12)
    np.testing.assert_allclose(np.diag(F.iou_1d(a, a)), 1.0)


@settings(max_examples=150, deadline=None)
@given(intervals(), intervals(), coord, st.floats(0.1, 10))
def test_iou_1d_invariant_under_translation_and_scaling(a, b, shift, scale):
    base = F.iou_1d([a], [b])[0, 0]
    moved = F.iou_1d([[(v + shift) * scale for v in a]], [[(v + shift) * scale for v in b]])[0, 0]
    assert moved == pytest.approx(base, abs=1e-6)


@given(intervals(), length, length)
def test_iou_1d_disjoint_is_zero(a, gap, w):
    b = [a[1] + gap, a[1] + gap + w]
    assert F.iou_1d([a], [b])[0, 0] == 0.0


@settings(max_examples=150, deadline=None)
@given(st.lists(boxes(), min_size=1, max_size=4), st.lists(boxes(), min_size=1, max_size=4))
def test_box_iou_properties(a, b):
    m = F.box_iou(a, b)
    assert m.shape == (len(a), len(b))
    assert ((m >= 0) & (m <= 1)).all()
    np.testing.assert_allclose(m, F.box_iou(b, a).T, atol=1e-12)
    np.testing.assert_allclose(np.diag(F.box_iou(a, a)), 1.0)


@settings(max_examples=150, deadline=None)
@given(boxes(), boxes(), coord, coord, st.floats(0.1, 10))
def test_box_iou_invariant_under_translation_and_scaling(a, b, dx, dy, s):
    def move(box):
        return [(box[0] + dx) * s, (box[1] + dy) * s, (box[2] + dx) * s, (box[3] + dy) * s]

    assert F.box_iou([move(a)], [move(b)])[0, 0] == pytest.approx(F.box_iou([a], [b])[0, 0], abs=1e-6)


@given(boxes(), length, boxes())
def test_box_iou_disjoint_is_zero(a, gap, b):
    w, h = b[2] - b[0], b[3] - b[1]
    right = [a[2] + gap, b[1], a[2] + gap + w, b[1] + h]
    assert F.box_iou([a], [right])[0, 0] == 0.0


def test_empty_inputs_and_empty_boxes():
    assert F.iou_1d([], [[0, 1]]).shape == (0, 1)
    assert F.box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert F.box_iou([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 0.0  # "no box" never matches
    assert F.iou_1d([[3, 3]], [[3, 3]])[0, 0] == 0.0
    assert F.temporal_iou([], [0, 10]) == 0.0
    assert F.frame_iou([], []) == 1.0
    assert F.frame_iou([[0, 0, 0, 0]], [[0, 0, 5, 5]]) == 0.0
    assert F.track_frame_ious([], [], [1.0], [[0, 0, 0, 0]]).shape == (0,)
    np.testing.assert_array_equal(F.track_frame_ious([], [], [1.0, 2.0], [[0, 0, 1, 1]] * 2), [0.0, 0.0])
    r, c = F.match_one_to_one(np.zeros((0, 3)))
    assert r.size == c.size == 0


def test_temporal_iou_union_of_several_intervals():
    # union [0,4] + [6,10] = 8 s inside GT [0,10] -> 8/10
    assert F.temporal_iou([[0, 4], [6, 10]], [0, 10]) == pytest.approx(0.8)
    # overlapping predictions are merged, not double counted: union [2,12], GT [0,10] -> 8/12
    assert F.temporal_iou([[2, 8], [5, 12]], [0, 10]) == pytest.approx(8 / 12)
    assert F.temporal_iou([[0, 10]], [0, 10]) == 1.0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=4), min_size=1, max_size=4))
def test_matching_is_optimal_and_one_to_one(rows):
    width = min(len(r) for r in rows)
    s = np.array([r[:width] for r in rows])
    r, c = F.match_one_to_one(s, min_score=0.3)
    assert len(set(r.tolist())) == len(r) and len(set(c.tolist())) == len(c)
    assert (s[r, c] >= 0.3).all()
    valid = np.where(s >= 0.3, s, 0.0)
    k = max(valid.shape)
    padded = np.zeros((k, k))
    padded[: valid.shape[0], : valid.shape[1]] = valid
    best = max(sum(padded[i, j] for i, j in enumerate(perm)) for perm in itertools.permutations(range(k)))
    assert s[r, c].sum() == pytest.approx(best)


def test_frame_iou_one_to_one_over_max_count():
    gt = [[0, 0, 10, 10], [20, 0, 30, 10]]
    # one prediction covering the first GT box: 1 / max(2, 1)
    assert F.frame_iou([[0, 0, 10, 10]], gt) == 0.5
    # one prediction cannot serve two GT boxes: both predictions on box 1 -> (1 + 0) / 2
    assert F.frame_iou([[0, 0, 10, 10], [0, 0, 10, 10]], gt) == 0.5
    # extra prediction is penalised: (1 + 1) / 3
    assert F.frame_iou([*gt, [50, 50, 60, 60]], gt) == pytest.approx(2 / 3)


def _brute_track(pt, pb, gt, gb, tol=0.5):
    """Per-box reference: plain loops, brute-force matching."""
    out = []
    ptimes = sorted({t for t, b in zip(pt, pb, strict=True) if (b[2] - b[0]) > 0 and (b[3] - b[1]) > 0})
    for t in sorted({t for t, b in zip(gt, gb, strict=True) if (b[2] - b[0]) > 0 and (b[3] - b[1]) > 0}):
        g = [b for tt, b in zip(gt, gb, strict=True) if tt == t and (b[2] - b[0]) > 0 and (b[3] - b[1]) > 0]
        near = [p for p in ptimes if abs(p - t) <= tol + 1e-9]
        if not near:
            out.append(0.0)
            continue
        best_t = min(near, key=lambda p: (abs(p - t), p))
        p = [b for tt, b in zip(pt, pb, strict=True) if tt == best_t and (b[2] - b[0]) > 0 and (b[3] - b[1]) > 0]
        m = F.box_iou(g, p)
        n = max(len(g), len(p))
        best = 0.0
        small, big = (m, m.shape[1]) if m.shape[0] <= m.shape[1] else (m.T, m.shape[0])
        for perm in itertools.permutations(range(big), small.shape[0]):
            best = max(best, sum(small[i, j] for i, j in enumerate(perm)))
        out.append(best / n)
    return out


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_track_frame_ious_matches_brute_force(data):
    times = st.sampled_from([0.0, 0.5, 1.0, 1.4, 2.0, 2.6, 3.0])
    box = st.one_of(st.just([0.0, 0.0, 0.0, 0.0]), boxes())
    n_g = data.draw(st.integers(0, 6))
    n_p = data.draw(st.integers(0, 6))
    gt = [data.draw(times) for _ in range(n_g)]
    gb = [data.draw(box) for _ in range(n_g)]
    pt = [data.draw(times) for _ in range(n_p)]
    pb = [data.draw(box) for _ in range(n_p)]
    got = F.track_frame_ious(pt, pb, gt, gb)
    np.testing.assert_allclose(got, _brute_track(pt, pb, gt, gb), atol=1e-12)
    assert ((got >= 0) & (got <= 1)).all()


def test_timestamp_assignment_tolerance_and_nearest():
    g = [[0, 0, 10, 10]]
    # prediction 0.5 s away serves, 0.6 s away does not
    assert F.track_frame_ious([1.5], g, [1.0], g).tolist() == [1.0]
    assert F.track_frame_ious([1.6], g, [1.0], g).tolist() == [0.0]
    # nearest wins: the box at 1.2 is wrong, the one at 0.9 is right -> 0.9 is nearer to 1.0
    out = F.track_frame_ious([0.9, 1.2], [[0, 0, 10, 10], [50, 50, 60, 60]], [1.0], g)
    assert out.tolist() == [1.0]


# ---------------------------------------------------------------------------------------------
# per-QA scoring (hand-worked)


def _qa(task, answer, *, kind_sounding=True, qa_id="v/0/x/0", duration=30.0):
    return QAItem(qa_id, "v", duration, 0, 1, task, 0, "q", answer, sounding=kind_sounding)


def _p(answer):
    return SimpleNamespace(answer=answer)


BOX = [0.0, 0.0, 10.0, 10.0]
HALF = [0.0, 0.0, 10.0, 5.0]  # IoU 0.5 with BOX


def test_score_temporal_and_missing():
    item = _qa(Task.TEMPORAL, Answer(objects=("dog",), spans=(Span(0, 10),)))
    s = score_qa(item, _p(Answer(spans=(Span(5, 15),))), EXACT)
    assert s.t_iou == pytest.approx(5 / 15) and s.parsed
    m = score_qa(item, None, EXACT)
    assert m.t_iou == 0.0 and not m.parsed
    u = score_qa(item, _p(Answer(objects=("dog",))), EXACT)  # no <when>: unparsable for temporal
    assert u.t_iou == 0.0 and not u.parsed
    agg = aggregate([s, m])["temporal"]
    assert agg["n"] == 2 and agg["n_unparsed"] == 1
    assert agg["m_tIoU"] == pytest.approx(100 * (1 / 3) / 2)
    assert agg["R1@0.3"] == 50.0 and agg["R1@0.5"] == 0.0


def test_score_spatial_objects_and_boxes():
    gt = Answer(
        objects=("A man", "Dog", "Cars"),
        tracks=(
            Track("A man", [0.0, 1.0, 2.0, 3.0], [BOX, BOX, BOX, [0, 0, 0, 0]]),  # 3 scorable frames
            Track("Dog", [0.0, 0.0], [BOX, [20, 20, 30, 30]]),  # one frame, two instances
            Track("Cars", [], np.zeros((0, 4))),  # empty <where>: not scorable
        ),
    )
    item = _qa(Task.SPATIAL, gt)
    pred = Answer(
        objects=("man", "cat", "two cars"),
        tracks=(
            Track("man", [0.0, 1.2, 3.0], [BOX, HALF, BOX]),  # frames: 1, 0.5, (2.0 unserved) 0
            Track("cat", [0.0], [BOX]),  # wrong name: Dog gets nothing
            Track("two cars", [0.0], [BOX]),
        ),
    )
    s = score_qa(item, _p(pred), EXACT)
    # objects: man=A man, two cars=Cars match; cat does not -> acc 2/3, precision 2/3
    assert s.object_acc == pytest.approx(2 / 3) and s.object_precision == pytest.approx(2 / 3)
    assert s.object_f1 == pytest.approx(2 / 3)
    # spatial: man (1 + 0.5 + 0) / 3 = 0.5; dog 0; cars not scorable -> vIoU 0.25
    assert s.v_iou == pytest.approx(0.25)
    # AP@0.3: man 2/3 frames, dog 0 -> 1/3; AP@0.5: man 2/3 (0.5 >= 0.5) -> 1/3
    assert s.ap == pytest.approx((1 / 3, 1 / 3))
    assert s.n_frames == 4 and not s.spatial_excluded


def test_spatial_qa_with_no_scorable_frame_is_excluded_and_counted():
    gt = Answer(objects=("dog",), tracks=(Track("dog", [1.0], [[0, 0, 0, 0]]),))
    s = score_qa(_qa(Task.SPATIAL, gt), _p(gt), EXACT)
    assert s.spatial_excluded and s.v_iou is None and s.object_acc == 1.0
    agg = aggregate([s])["spatial"]
    assert agg["n_excluded"] == 1 and agg["m_vIoU"] is None and agg["object_acc"] == 100.0


def test_spatiotemporal_where_assigned_by_order_when_names_differ():
    gt = Answer(objects=("A man",), spans=(Span(0, 2),), tracks=(Track("A man", [0.0, 1.0], [BOX, BOX]),))
    item = _qa(Task.SPATIOTEMPORAL, gt)
    pred = Answer(objects=("guitar",), spans=(Span(0, 2),), tracks=(Track("guitar", [0.0, 1.0], [BOX, HALF]),))
    s = score_qa(item, _p(pred), EXACT)
    assert s.t_iou == 1.0 and s.v_iou == pytest.approx(0.75) and s.ap == (1.0, 1.0)
    # the spatial task does NOT fall back to order for a differently named object
    sp = score_qa(_qa(Task.SPATIAL, gt), _p(pred), EXACT)
    assert sp.v_iou == 0.0


def test_assign_tracks_names_then_order():
    gt = [Track("dog", [0.0], [BOX]), Track("cat", [0.0], [BOX])]
    pred = [Track("", [0.0], [BOX]), Track("cat", [0.0], [BOX])]
    assert assign_tracks(pred, gt, EXACT, by_order=False) == [0, 1]
    assert assign_tracks([Track("cow", [0.0], [BOX])], gt, EXACT, by_order=False) == [-1, -1]
    assert assign_tracks([Track("cow", [0.0], [BOX])], gt, EXACT, by_order=True) == [0, -1]


def test_vstar_semantics():
    gt = Answer(
        objects=("dog",),
        spans=(Span(0, 10),),
        tracks=(Track("dog", [1.0, 1.0, 2.0], [BOX, [20, 20, 30, 30], BOX]),),
    )
    item = _qa(Task.SPATIOTEMPORAL, gt)
    # V-STaR: first interval only; best IoU per GT row among ALL predicted boxes at that time,
    # no one-to-one (the single BOX serves row 1 fully, row 2 not), time 2.0 missing -> 0
    pred = Answer(spans=(Span(0, 5), Span(5, 10)), tracks=(Track("x", [1.0, 1.0, 3.0], [BOX, BOX, BOX]),))
    s = vstar.score_qa(item, _p(pred), EXACT)
    assert s.t_iou == 0.5
    assert s.v_iou == pytest.approx(1 / 3) and s.ap == pytest.approx((1 / 3, 1 / 3))
    # the ravst protocol on the same answer: union of intervals, one-to-one, by-order track
    r = score_qa(item, _p(pred), EXACT)
    assert r.t_iou == 1.0
    # frame 1: GT {BOX, other} vs pred {BOX, BOX}: 1 / 2; frame 2: nearest pred time 3.0 too far -> 0
    assert r.v_iou == pytest.approx(0.25)


def test_vstar_object_recall_is_not_one_to_one():
    gt = Answer(objects=("dog", "dog"), tracks=())
    s = vstar.score_qa(_qa(Task.SPATIAL, gt), _p(Answer(objects=("dogs",))), EXACT)
    assert s.object_acc == 1.0
    r = score_qa(_qa(Task.SPATIAL, gt), _p(Answer(objects=("dogs",))), EXACT)
    assert r.object_acc == 0.5 and r.object_precision == 1.0


def test_gt_against_itself_is_perfect_in_both_protocols():
    gt = Answer(
        objects=("A man", "A man"),
        tracks=(
            Track("A man", [0.0, 0.0, 1.0], [BOX, [5, 5, 20, 20], BOX]),
            Track("A man", [0.0], [[30, 30, 40, 40]]),
        ),
    )
    for fn in (score_qa, vstar.score_qa):
        s = fn(_qa(Task.SPATIAL, gt), _p(gt), EXACT)
        assert (s.object_acc, s.v_iou, s.ap) == (1.0, 1.0, (1.0, 1.0))


# ---------------------------------------------------------------------------------------------
# coordinate spaces


def test_coordinate_conversion():
    np.testing.assert_allclose(
        to_original_xyxy([[0, 0, 500, 1000]], CoordSpace.NORM1000, original_wh=(640, 360)), [[0, 0, 320, 360]]
    )
    np.testing.assert_allclose(
        to_original_xyxy([[10, 10, 20, 20]], CoordSpace.ORIGINAL), [[10, 10, 20, 20]]
    )
    with pytest.raises(ValueError, match="input_wh"):
        to_original_xyxy([[0, 0, 1, 1]], CoordSpace.INPUT, original_wh=(640, 360))
    with pytest.raises(ValueError, match="original_wh"):
        to_original_xyxy([[0, 0, 1, 1]], CoordSpace.NORM1)
    a = Answer(objects=("x",), tracks=(Track("x", [0.0, 1.0], [[0.5, 0.5, 1, 1], [0, 0, 0, 0]]),))
    c = convert_answer(a, "norm1", original_wh=(100, 50))
    np.testing.assert_allclose(c.tracks[0].xyxy, [[50, 25, 100, 50], [0, 0, 0, 0]])
    assert c.objects == ("x",)


# ---------------------------------------------------------------------------------------------
# the batched scorer gives the per-QA numbers


def _random_track(rng, name, times=(0.0, 0.5, 1.0, 1.4, 2.0, 3.0)):
    n = int(rng.integers(0, 6))
    b = rng.uniform(0, 50, (n, 4))
    b[:, 2:] += b[:, :2] * rng.uniform(0, 1.5, (n, 2))
    b[rng.random(n) < 0.15] = 0.0
    return Track(name, rng.choice(times, n), b)


def _random_answer(rng, names):
    objs = tuple(rng.choice(names, int(rng.integers(0, 3))).tolist())
    spans = []
    for _ in range(int(rng.integers(0, 3))):
        s = float(rng.uniform(0, 10))
        spans.append(Span(s, s + float(rng.uniform(0, 5))))
    tracks = tuple(_random_track(rng, str(rng.choice([*names, ""]))) for _ in range(int(rng.integers(0, 3))))
    return Answer(objs, tuple(spans), tracks)


def test_score_batch_equals_score_qa():
    from ravst.metrics.ravst_protocol import score_batch

    rng = np.random.default_rng(7)
    names = ["dog", "Dogs", "a man", "cat", "piano"]
    items, parsed = [], []
    for i in range(300):
        task = [Task.TEMPORAL, Task.SPATIAL, Task.SPATIOTEMPORAL][i % 3]
        gt = _random_answer(rng, names)
        gt = Answer(gt.objects or ("dog",), gt.spans or (Span(1.0, 4.0),), gt.tracks)
        items.append(_qa(task, gt, qa_id=f"v/{i}/{task.value}/0"))
        parsed.append(None if rng.random() < 0.1 else _p(_random_answer(rng, names)))
    batch = score_batch(items, parsed, EXACT)
    single = [score_qa(it, p, EXACT) for it, p in zip(items, parsed, strict=True)]
    for b, s in zip(batch, single, strict=True):
        for k in ("t_iou", "object_acc", "object_precision", "object_f1", "v_iou", "tube_v_iou"):
            u, w = getattr(b, k), getattr(s, k)
            assert (u is None) == (w is None), (k, b, s)
            if u is not None:
                assert u == pytest.approx(w, abs=1e-12), (k, b, s)
        assert (b.spatial_excluded, b.parsed, b.n_frames) == (s.spatial_excluded, s.parsed, s.n_frames)
        assert (b.ap is None) == (s.ap is None)
        if b.ap is not None:
            assert b.ap == pytest.approx(s.ap, abs=1e-12)
    assert aggregate(batch) == aggregate(single)


# ---------------------------------------------------------------------------------------------
# the bulk kernels of score_batch give what their per-block counterparts give


def test_segment_pairs_are_the_cells_of_each_segment():
    pa, pb = F.segment_pairs([0, 0, 2, 2, 2], [1, 2, 2], 3)
    assert list(zip(pa.tolist(), pb.tolist(), strict=True)) == [(2, 1), (2, 2), (3, 1), (3, 2), (4, 1), (4, 2)]
    pa, pb = F.segment_pairs([], [0, 1], 2)
    assert pa.size == pb.size == 0


@pytest.mark.parametrize("min_score", [0.5, 1.0, 0.0, -0.2])
def test_batch_match_one_to_one_equals_per_block(min_score):
    rng = np.random.default_rng(3)
    a_seg, b_seg, blocks = [], [], []
    for q in range(400):
        na, nb = int(rng.integers(0, 4)), int(rng.integers(0, 4))
        # coarse values: many ties, many rows / columns with several valid cells
        blocks.append(rng.choice([-0.3, 0.0, 0.5, 0.7, 1.0], size=(na, nb)))
        a_seg += [q] * na
        b_seg += [q] * nb
    pa, pb = F.segment_pairs(a_seg, b_seg, 400)
    score = np.concatenate([b.reshape(-1) for b in blocks])
    ma, mb = F.batch_match_one_to_one(a_seg, b_seg, pa, pb, score, min_score=min_score)
    want_a, want_b = [], []
    a0 = b0 = 0
    for blk in blocks:
        r, c = F.match_one_to_one(blk, min_score=min_score)
        want_a += (r + a0).tolist()
        want_b += (c + b0).tolist()
        a0, b0 = a0 + blk.shape[0], b0 + blk.shape[1]
    got = sorted(zip(ma.tolist(), mb.tolist(), strict=True))
    want = sorted(zip(want_a, want_b, strict=True))
    # ties may be broken differently by the solver: same matched rows, columns of equal score
    assert [g[0] for g in got] == [w[0] for w in want]
    s_of = {(int(a), int(b)): float(v) for a, b, v in zip(pa, pb, score, strict=True)}
    assert sum(s_of[g] for g in got) == pytest.approx(sum(s_of[w] for w in want))


def test_batch_frame_ious_duplicate_boxes_and_unsorted_rows():
    # GT with two identical boxes at t=0 (ties), rows out of time order, an empty box
    gt_t = [1.0, 0.0, 0.0, 0.0, 2.0]
    gt_b = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 0], [5, 5, 9, 9]]
    pr_t = [0.0, 0.0, 1.2, 2.4]
    pr_b = [[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 10], [5, 5, 9, 9]]
    f_obj, f_iou = F.batch_frame_ious([0] * 5, gt_t, gt_b, [0] * 4, pr_t, pr_b)
    want = F.track_frame_ious(pr_t, pr_b, gt_t, gt_b)
    assert f_obj.tolist() == [0, 0, 0]
    np.testing.assert_allclose(f_iou, want)
    np.testing.assert_allclose(f_iou, [0.75, 1.0, 1.0])


def test_batch_frame_ious_random_multi_instance_blocks():
    rng = np.random.default_rng(11)
    g_obj, g_t, g_b, p_obj, p_t, p_b, want = [], [], [], [], [], [], []
    for k in range(150):
        ng, npr = int(rng.integers(0, 12)), int(rng.integers(0, 12))
        gt_t = rng.choice([0.0, 1.0, 2.0], ng)
        gb = rng.integers(0, 6, (ng, 4)).astype(float) * 5
        gb[:, 2:] += gb[:, :2]
        if ng > 1:
            gb[1] = gb[0]  # a duplicate box
        pt = rng.choice([0.0, 1.0, 2.2], npr)
        pb = rng.integers(0, 6, (npr, 4)).astype(float) * 5
        pb[:, 2:] += pb[:, :2]
        g_obj += [k] * ng
        g_t.append(gt_t)
        g_b.append(gb)
        p_obj += [k] * npr
        p_t.append(pt)
        p_b.append(pb)
        want.append(F.track_frame_ious(pt, pb, gt_t, gb))
    _, f_iou = F.batch_frame_ious(g_obj, np.concatenate(g_t), np.concatenate(g_b), p_obj,
                                      np.concatenate(p_t), np.concatenate(p_b))
    np.testing.assert_allclose(f_iou, np.concatenate(want), atol=1e-12)


class _WordSimilarity:
    """A continuous similarity (like an embedding backend): many values near tau, and ties."""

    tau = 0.55

    def matrix(self, a, b):
        def score(x, y):
            if x == y:
                return 1.0
            sx, sy = set(x.lower().split()), set(y.lower().split())
            return len(sx & sy) / max(len(sx | sy), 1) + 0.05 * (len(x) % 3)

        return np.array([[min(score(x, y), 1.0) for y in b] for x in a]).reshape(len(a), len(b))


@pytest.mark.parametrize("similarity", [_WordSimilarity(), EXACT])
def test_score_batch_equals_score_qa_many_names(similarity):
    from ravst.metrics.ravst_protocol import score_batch

    rng = np.random.default_rng(5)
    names = ["dog", "big dog", "a man", "man", "old man", "cat", "the cat", "", "piano"]
    items, parsed = [], []
    for i in range(400):
        task = [Task.SPATIAL, Task.SPATIOTEMPORAL][i % 2]
        gt = _random_answer(rng, names[:-2])
        gt = Answer(gt.objects or ("dog",), gt.spans or (Span(1.0, 4.0),), gt.tracks)
        items.append(_qa(task, gt, qa_id=f"v/{i}/{task.value}/0"))
        parsed.append(None if rng.random() < 0.05 else _p(_random_answer(rng, names)))
    batch = score_batch(items, parsed, similarity)
    single = [score_qa(it, p, similarity) for it, p in zip(items, parsed, strict=True)]
    for b, s in zip(batch, single, strict=True):
        assert b.n_matched_objects == s.n_matched_objects and b.n_pred_objects == s.n_pred_objects
        for k in ("t_iou", "object_acc", "object_precision", "object_f1", "v_iou", "tube_v_iou"):
            u, w = getattr(b, k), getattr(s, k)
            assert (u is None) == (w is None), (k, b, s)
            if u is not None:
                assert u == pytest.approx(w, abs=1e-12), (k, b, s)
        assert (b.ap is None) == (s.ap is None)
        if b.ap is not None:
            assert b.ap == pytest.approx(s.ap, abs=1e-12)
    assert aggregate(batch) == aggregate(single)


@pytest.mark.parametrize("seed", range(4))
def test_match_blocks_equals_hungarian_on_tied_blocks(seed):
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(seed)
    shapes = [(int(rng.integers(2, 7)), int(rng.integers(2, 7))) for _ in range(300)]
    if seed == 0:
        shapes = [(2, k) for k in range(2, 6)] + [(k, 2) for k in range(2, 6)] + [(k, k) for k in range(2, 6)]
    blocks = [rng.choice([0.0, 0.25, 0.5, 0.5, 1.0], size=s) for s in shapes]  # many ties
    pair_iou = np.concatenate([b.reshape(-1) for b in blocks])
    ng = np.array([s[0] for s in shapes])
    npr = np.array([s[1] for s in shapes])
    seg = np.cumsum(ng * npr) - ng * npr
    matched = np.full(len(shapes), np.nan)
    F._match_blocks(pair_iou, seg, ng, npr, matched, np.arange(len(shapes)))
    want = []
    for b in blocks:
        r, c = linear_sum_assignment(b, maximize=True)
        want.append(b[r, c].sum())
    np.testing.assert_allclose(matched, want, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# issue 12: bugs 1-3 and tube vIoU, expected values worked out by hand

from fractions import Fraction  # noqa: E402

from ravst.parsing import parse_answer, render_answer  # noqa: E402


def _where(track):
    return "<where>\n" + "".join(f"{t!r}: [{', '.join(repr(float(v)) for v in b)}]\n"
                                  for t, b in zip(track.times_s.tolist(), track.xyxy.tolist(), strict=True)) + "</where>\n"


@pytest.mark.parametrize("prefix", ["", "<think>two objects</think>"])
def test_bug1_comma_list_in_a_strict_answer_names_both_objects(prefix):
    # the Box 2 prompt's "separated by commas", strict-valid: man and guitar, each with its block
    gt = Answer(objects=("man", "guitar"), tracks=(Track("man", [0.0, 1.0], [BOX, BOX]),
                                                   Track("guitar", [0.0, 1.0], [HALF, HALF])))
    text = "<answer>\n<object>man, guitar</object>\n" + _where(gt.tracks[0]) + _where(gt.tracks[1]) + "</answer>"
    s = score_qa(_qa(Task.SPATIAL, gt), parse_answer(prefix + text), EXACT)
    # 2 of 2 GT objects named; each block is its object's exact boxes -> every frame IoU 1
    assert (s.object_acc, s.object_precision, s.v_iou, s.ap) == (1.0, 1.0, 1.0, (1.0, 1.0))


@pytest.mark.parametrize("prefix", ["", "<think>two objects</think>"])
def test_bug1_on_the_real_qa(official_qa_path, prefix):
    from ravst.formats.official import read_official

    item = next(it for it in read_official(official_qa_path) if it.qa_id == "1QFfsvmpT0I/0/spatial/0")
    assert item.answer.objects == ("A young girl", "ukulele")  # the two GT objects of this QA
    text = ("<answer>\n<object>A young girl, ukulele</object>\n" + _where(item.answer.tracks[0])
            + _where(item.answer.tracks[1]) + "</answer>")
    parsed = parse_answer(prefix + text)
    assert parsed.strict_ok == (prefix == "")
    s = score_qa(item, parsed, EXACT)
    # both names equal the GT names, both blocks equal the GT boxes: 1 and 1 (was 0 and 0 strict)
    assert (s.object_acc, s.v_iou) == (1.0, 1.0)


def test_bug2_several_where_blocks_of_one_object_are_one_track():
    gt = Answer(objects=("dog",), tracks=(Track("dog", [0.0, 1.0], [BOX, BOX]),))
    text = ("<answer>\n<object>dog</object>\n<where>\n0.0: [0.0, 0.0, 10.0, 10.0]\n</where>\n"
            "<where>\n1.0: [0.0, 0.0, 10.0, 10.0]\n</where>\n</answer>")
    s = score_qa(_qa(Task.SPATIAL, gt), parse_answer(text), EXACT)
    # frame 0 from the first block (IoU 1), frame 1 from the second (IoU 1): vIoU 1 (was 0.5)
    assert s.v_iou == 1.0 and s.ap == (1.0, 1.0)


def test_bug3_tie_at_the_threshold_is_exact():
    # GT [0.0, 1.6] vs [0.0, 0.8]: inter 0.8, union 1.6 -> exactly 1/2
    assert F.span_iou(0.0, 0.8, 0.0, 1.6) == 0.5
    assert F.temporal_iou([[0.0, 0.8]], [0.0, 1.6]) == 0.5
    assert F.iou_1d([[0.0, 0.8]], [[0.0, 1.6]]).tolist() == [[0.5]]
    assert F.batch_temporal_iou([0], [[0.0, 0.8]], [[0.0, 1.6]]).tolist() == [0.5]
    item = _qa(Task.TEMPORAL, Answer(objects=("x",), spans=(Span(0.0, 1.6),)))
    s = score_qa(item, _p(Answer(spans=(Span(0.0, 0.8),))), EXACT)
    assert aggregate([s])["temporal"]["R1@0.5"] == 100.0
    # a decision the plain float comparison gets wrong: 0.1 + 0.2 - 0.3 style artefacts
    assert F.at_least([0.49999999999999994], 0.5).tolist() == [True]


tenths = st.integers(0, 600).map(lambda k: (k, k / 10))


def _exact_iou_1d(a, b):
    (s1, e1), (s2, e2) = a, b
    inter = max(Fraction(0), min(e1, e2) - max(s1, s2))
    union = (e1 - s1) + (e2 - s2) - inter
    return inter / union if union > 0 else Fraction(0)


@settings(max_examples=1500, deadline=None)
@given(tenths, tenths, tenths, tenths)
def test_bug3_r1_decisions_equal_exact_arithmetic_on_one_decimal_pairs(a, b, c, d):
    (ka, fa), (kb, fb) = sorted([a, b])
    (kc, fc), (kd, fd) = sorted([c, d])
    exact = _exact_iou_1d((Fraction(ka, 10), Fraction(kb, 10)), (Fraction(kc, 10), Fraction(kd, 10)))
    values = [F.span_iou(fa, fb, fc, fd), F.temporal_iou([[fa, fb]], [fc, fd]),
              F.batch_temporal_iou([0], [[fa, fb]], [[fc, fd]])[0]]
    for t in (0.3, 0.5, 0.7):
        want = exact >= Fraction(str(t))
        assert [bool(F.at_least(v, t)) for v in values] == [want] * 3, (a, b, c, d, t, exact)


def test_bug3_r1_decisions_are_exact_on_a_grid_of_ties():
    # every pair with exact IoU 0.3, 0.5 or 0.7 on a 0.1 s grid up to 6 s: all must pass
    ties = 0
    for s1, e1, s2, e2 in itertools.product(range(0, 60, 3), range(1, 61, 4), range(0, 60, 3), range(1, 61, 4)):
        if e1 <= s1 or e2 <= s2:
            continue
        exact = _exact_iou_1d((Fraction(s1), Fraction(e1)), (Fraction(s2), Fraction(e2)))
        for t in ("0.3", "0.5", "0.7"):
            if exact == Fraction(t):
                ties += 1
                assert F.at_least(F.span_iou(s1 / 10, e1 / 10, s2 / 10, e2 / 10), float(t))
    assert ties > 20


coords_tenths = st.integers(0, 200)


@settings(max_examples=1500, deadline=None)
@given(st.lists(coords_tenths, min_size=8, max_size=8))
def test_bug3_box_iou_decisions_equal_exact_arithmetic(v):
    x1, x2 = sorted(v[0:2])
    y1, y2 = sorted(v[2:4])
    u1, u2 = sorted(v[4:6])
    w1, w2 = sorted(v[6:8])
    a = [Fraction(k, 10) for k in (x1, y1, x2, y2)]
    b = [Fraction(k, 10) for k in (u1, w1, u2, w2)]
    area = lambda q: max(Fraction(0), q[2] - q[0]) * max(Fraction(0), q[3] - q[1])  # noqa: E731
    iw = max(Fraction(0), min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(Fraction(0), min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = area(a) + area(b) - inter
    exact = inter / union if area(a) > 0 and area(b) > 0 and union > 0 else Fraction(0)
    got = F.box_iou([[float(q) for q in a]], [[float(q) for q in b]])[0, 0]
    hits = F.object_spatial_score([got], (0.3, 0.5)).hit_rates
    for t, hit in zip(("0.3", "0.5"), hits, strict=True):
        assert bool(F.at_least(got, float(t))) == (exact >= Fraction(t)), (a, b, t)
        assert hit == float(exact >= Fraction(t))


def test_box_iou_tie_counts_for_ap():
    # [0, 0, 1.2, 1] vs [0, 0, 0.6, 1]: inter 0.6, union 1.2 -> exactly 0.5
    gt = Answer(objects=("x",), tracks=(Track("x", [0.0], [[0.0, 0.0, 1.2, 1.0]]),))
    pred = Answer(objects=("x",), tracks=(Track("x", [0.0], [[0.0, 0.0, 0.6, 1.0]]),))
    s = score_qa(_qa(Task.SPATIAL, gt), _p(pred), EXACT)
    assert s.ap == (1.0, 1.0)


def test_tube_viou_counts_boxes_at_times_without_gt():
    gt = Answer(objects=("dog",), spans=(Span(0, 2),), tracks=(Track("dog", [0.0, 1.0, 2.0], [BOX] * 3),))
    item = _qa(Task.SPATIOTEMPORAL, gt)
    # perfect on the 3 GT frames, plus boxes at 3 s and 4 s where the GT has none
    pred = Answer(spans=(Span(0, 2),), tracks=(Track("dog", [0.0, 1.0, 2.0, 3.0, 4.0], [BOX] * 5),))
    s = score_qa(item, _p(pred), EXACT)
    assert s.v_iou == 1.0  # extra frames cost nothing in m_vIoU
    assert s.tube_v_iou == pytest.approx(3 / 5)  # 3 frames IoU 1 / 5 frames with a box
    agg = aggregate([s])["spatiotemporal"]
    assert agg["m_tube_vIoU"] == pytest.approx(60.0)
    assert (agg["tube_vIoU@0.3"], agg["tube_vIoU@0.5"]) == (100.0, 100.0)
    # a missing GT frame: frames 0, 1 right, frame 2 absent -> (1 + 1 + 0) / 3
    short = Answer(spans=(Span(0, 2),), tracks=(Track("dog", [0.0, 1.0], [BOX] * 2),))
    assert score_qa(item, _p(short), EXACT).tube_v_iou == pytest.approx(2 / 3)
    # a spurious second box per frame: frame IoU 1/2 everywhere -> tube 1/2 (no extra frame)
    spur = Answer(spans=(Span(0, 2),), tracks=(Track("dog", [0, 0, 1, 1, 2, 2], [BOX, [50, 50, 60, 60]] * 3),))
    s2 = score_qa(item, _p(spur), EXACT)
    assert (s2.v_iou, s2.tube_v_iou, s2.ap) == (0.5, 0.5, (1.0, 1.0))


def test_tube_viou_pools_objects_and_counts_unassigned_tracks():
    gt = Answer(objects=("dog", "cat"), tracks=(Track("dog", [0.0, 1.0], [BOX] * 2), Track("cat", [0.0], [HALF])))
    item = _qa(Task.SPATIAL, gt)
    # dog perfect (2 frames), cat at IoU 1/2 (1 frame), a "car" track of 2 frames given to no GT object
    pred = Answer(objects=("dog", "cat", "car"), tracks=(
        Track("dog", [0.0, 1.0], [BOX] * 2), Track("cat", [0.0], [BOX]), Track("car", [5.0, 6.0], [BOX] * 2)))
    s = score_qa(item, _p(pred), EXACT)
    assert s.v_iou == pytest.approx((1.0 + 0.5) / 2)
    assert s.tube_v_iou == pytest.approx((1 + 1 + 0.5) / (3 + 2))
    from ravst.metrics.ravst_protocol import score_batch

    assert score_batch([item], [_p(pred)], EXACT)[0].tube_v_iou == pytest.approx(s.tube_v_iou, abs=1e-12)


def test_unserved_pred_frames_batch_equals_single():
    rng = np.random.default_rng(3)
    gt_obj, gt_t, gt_b, pr_obj, pr_t, pr_b = [], [], [], [], [], []
    want = []
    for k in range(60):
        g_times = np.sort(rng.choice(10, size=rng.integers(0, 5), replace=False)).astype(float)
        p_times = np.round(rng.uniform(0, 10, size=rng.integers(0, 6)) * 2) / 2
        gb = np.where(rng.random((g_times.size, 1)) < 0.2, 0.0, 1.0) * np.array([0, 0, 5, 5])
        pb = np.where(rng.random((p_times.size, 1)) < 0.2, 0.0, 1.0) * np.array([0, 0, 5, 5])
        want.append(F.unserved_pred_frames(p_times, pb, g_times, gb))
        gt_obj += [k] * g_times.size
        gt_t += g_times.tolist()
        gt_b += gb.tolist()
        pr_obj += [k] * p_times.size
        pr_t += p_times.tolist()
        pr_b += pb.tolist()
    got = F.batch_unserved_pred_frames(gt_obj, gt_t, np.array(gt_b).reshape(-1, 4), pr_obj, pr_t,
                                       np.array(pr_b).reshape(-1, 4), 60)
    assert got.tolist() == want


def test_gt_rendered_and_parsed_scores_one_on_tube():
    gt = Answer(objects=("dog",), spans=(Span(0, 3),), tracks=(Track("dog", [0.0, 1.0, 2.0], [BOX, HALF, [0, 0, 0, 0]]),))
    s = score_qa(_qa(Task.SPATIOTEMPORAL, gt), parse_answer(render_answer(gt)), EXACT)
    assert (s.v_iou, s.tube_v_iou) == (1.0, 1.0)
