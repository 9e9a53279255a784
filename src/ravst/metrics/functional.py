"""Pure, vectorised metric functions (numpy only): interval IoU, box IoU, matching, frame IoU.

Nothing here knows about files, parsing or names: inputs are arrays of seconds and of boxes
``[x1, y1, x2, y2]`` in original-video pixels. A box of zero (or negative) area is "no box" and
never overlaps anything.

>>> iou_1d([[0, 10]], [[5, 15], [20, 30]]).round(3).tolist()
[[0.333, 0.0]]
>>> temporal_iou([[0, 4], [6, 10]], [0, 10])
0.8
>>> box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10]]).round(3).tolist()
[[1.0, 0.333]]
>>> frame_iou([[0, 0, 10, 10], [20, 20, 30, 30]], [[0, 0, 10, 10]])
0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "THRESHOLD_TOL",
    "TIME_TOLERANCE_S",
    "ObjectSpatialScore",
    "assign_timestamps",
    "at_least",
    "box_area",
    "box_iou",
    "frame_iou",
    "iou_1d",
    "match_one_to_one",
    "merge_intervals",
    "object_spatial_score",
    "span_iou",
    "temporal_iou",
    "track_frame_ious",
    "unserved_pred_frames",
]

TIME_TOLERANCE_S = 0.5
"""A predicted timestamp serves a GT timestamp when it is the nearest one within this distance."""

THRESHOLD_TOL = 1e-10
"""Slack of every threshold decision (R1@t, AP@t, tube_vIoU@t): ``iou >= t - THRESHOLD_TOL``.

IoUs of decimal inputs are ratios of decimals that binary floats cannot hold exactly (GT
[0.0, 1.6] vs [0.0, 0.8] computed as ``len_p + len_g - inter`` is 0.49999999999999994). An IoU
of one-decimal times (seconds) or one-decimal box coordinates up to 1920 x 1080 pixels that is
truly below t is below it by at least 2.5e-10, while float rounding errors are below 1e-12, so
with this slack every decision equals the one of exact arithmetic (tested against
``fractions.Fraction``)."""


def at_least(values: object, threshold: float) -> np.ndarray:
    """``values >= threshold`` decided as exact arithmetic on decimal inputs would
    (:data:`THRESHOLD_TOL`).

    >>> at_least([0.49999999999999994, 0.4999], 0.5).tolist()
    [True, False]
    """
    return np.asarray(values, dtype=np.float64) >= threshold - THRESHOLD_TOL


def _linear_sum_assignment(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy's Hungarian solver (maximising), imported on first use (scipy.optimize takes
    ~0.4 s to import, too much for ``ravst --help``)."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(score, maximize=True)
    return rows, cols

_ONE = np.zeros(1, dtype=np.intp)
_ONE.setflags(write=False)
_NONE = np.zeros(0, dtype=np.intp)
_NONE.setflags(write=False)
_EMPTY_IOUS = np.zeros(0)
_EMPTY_IOUS.setflags(write=False)


def _as_intervals(x: object) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return a.reshape(0, 2)
    a = a.reshape(-1, 2)
    return a


def _as_boxes(x: object) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return a.reshape(0, 4)
    return a.reshape(-1, 4)


def iou_1d(a: object, b: object) -> np.ndarray:
    """IoU of every interval of ``a`` (N, 2) with every interval of ``b`` (M, 2): (N, M).

    Intervals are ``[start, end]``; two zero-length intervals have IoU 0 (empty union).
    """
    a = _as_intervals(a)
    b = _as_intervals(b)
    inter = np.clip(
        np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0, None
    )
    len_a = np.clip(a[:, 1] - a[:, 0], 0.0, None)
    len_b = np.clip(b[:, 1] - b[:, 0], 0.0, None)
    # overlapping intervals: the union is their hull, one subtraction (exact for [0, 1.6] vs [0, 0.8])
    hull = np.maximum(a[:, None, 1], b[None, :, 1]) - np.minimum(a[:, None, 0], b[None, :, 0])
    union = np.where(inter > 0, hull, len_a[:, None] + len_b[None, :] - inter)
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def merge_intervals(spans: object) -> np.ndarray:
    """Sorted, disjoint union of intervals (K, 2) -> (K', 2).

    >>> merge_intervals([[5, 8], [0, 2], [1, 3]]).tolist()
    [[0.0, 3.0], [5.0, 8.0]]
    """
    s = _as_intervals(spans)
    s = s[s[:, 1] >= s[:, 0]]
    if s.shape[0] <= 1:
        return s.copy()
    s = s[np.argsort(s[:, 0], kind="stable")]
    ends = np.maximum.accumulate(s[:, 1])
    # a new block starts where the start is beyond every end seen so far
    new_block = np.empty(s.shape[0], dtype=bool)
    new_block[0] = True
    new_block[1:] = s[1:, 0] > ends[:-1]
    block = np.cumsum(new_block) - 1
    starts = s[new_block, 0]
    block_ends = np.zeros(starts.shape[0])
    np.maximum.at(block_ends, block, s[:, 1])
    return np.stack([starts, block_ends], axis=1)


def temporal_iou(pred_spans: object, gt_span: object) -> float:
    """IoU of the UNION of the predicted intervals (K, 2) with one GT interval; 0 when K == 0.

    With a single predicted interval this is the standard 1-D IoU.
    """
    gt = _as_intervals(gt_span)
    if gt.shape[0] != 1:
        raise ValueError(f"temporal_iou: expected one GT interval, got shape {gt.shape}")
    merged = merge_intervals(pred_spans)
    if merged.shape[0] == 0:
        return 0.0
    g0, g1 = float(gt[0, 0]), float(gt[0, 1])
    if merged.shape[0] == 1:
        return span_iou(float(merged[0, 0]), float(merged[0, 1]), g0, g1)
    inter = float(np.clip(np.minimum(merged[:, 1], g1) - np.maximum(merged[:, 0], g0), 0.0, None).sum())
    union = float((merged[:, 1] - merged[:, 0]).sum()) + max(g1 - g0, 0.0) - inter
    return inter / union if union > 0 else 0.0


def span_iou(start_s: float, end_s: float, gt_start_s: float, gt_end_s: float) -> float:
    """:func:`temporal_iou` of ONE predicted interval (plain floats, same arithmetic, no arrays).

    >>> span_iou(5.0, 10.0, 0.0, 10.0), span_iou(3.0, 1.0, 0.0, 10.0)
    (0.5, 0.0)
    """
    if end_s < start_s:
        return 0.0
    inter = max(min(end_s, gt_end_s) - max(start_s, gt_start_s), 0.0)
    if inter > 0:  # overlapping: the union is the hull (one subtraction, no float-union artefact)
        return inter / (max(end_s, gt_end_s) - min(start_s, gt_start_s))
    return 0.0


def box_area(boxes: object) -> np.ndarray:
    b = _as_boxes(boxes)
    return np.maximum(b[:, 2] - b[:, 0], 0.0) * np.maximum(b[:, 3] - b[:, 1], 0.0)


def box_iou(a: object, b: object) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4): (N, M) in [0, 1].

    Boxes of zero area (``[0, 0, 0, 0]`` = "no box") have IoU 0 with everything.
    """
    a = _as_boxes(a)
    b = _as_boxes(b)
    iw = np.maximum(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0)
    ih = np.maximum(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0.0)
    inter = iw * ih
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return np.minimum(out, 1.0, out=out)


def match_one_to_one(score: object, *, min_score: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of rows to columns maximising the total score (Hungarian).

    Pairs whose score is below ``min_score`` (when given) are dropped after the assignment is
    solved on the scores with those entries zeroed, so they never displace a valid pair.
    Returns ``(rows, cols)`` index arrays of equal length.

    >>> match_one_to_one([[0.9, 0.8], [0.85, 0.1]])
    (array([0, 1]), array([1, 0]))
    """
    s = np.asarray(score, dtype=np.float64)
    if s.ndim != 2 or s.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty.copy()
    if s.shape == (1, 1):
        v = float(s[0, 0])
        ok = v > 0 if min_score is None else v >= max(min_score, np.finfo(float).tiny)
        return (_ONE, _ONE) if ok else (_NONE, _NONE)
    if min_score is not None:
        s = np.where(s >= min_score, s, 0.0)
    if s.shape[0] == 1 or s.shape[1] == 1:  # a vector: the first maximum (as the Hungarian solver)
        k = int(s.argmax())
        rows, cols = (np.array([0]), np.array([k])) if s.shape[0] == 1 else (np.array([k]), np.array([0]))
    else:
        rows, cols = _linear_sum_assignment(s)
    keep = s[rows, cols] > 0 if min_score is None else s[rows, cols] >= max(min_score, np.finfo(float).tiny)
    return rows[keep], cols[keep]


def frame_iou(pred_boxes: object, gt_boxes: object) -> float:
    """IoU of one frame: boxes matched one to one by IoU, sum of matched IoUs / max(#GT, #pred).

    Zero-area boxes are dropped first on both sides; a frame with no GT box scores 1 when the
    prediction is empty too, else 0 (callers only score frames with a GT box).
    """
    p = _as_boxes(pred_boxes)
    g = _as_boxes(gt_boxes)
    p = p[box_area(p) > 0]
    g = g[box_area(g) > 0]
    denom = max(p.shape[0], g.shape[0])
    if denom == 0:
        return 1.0
    if p.shape[0] == 0 or g.shape[0] == 0:
        return 0.0
    ious = box_iou(g, p)
    if min(ious.shape) == 1:
        return float(ious.max()) / denom
    r, c = _linear_sum_assignment(ious)
    return float(ious[r, c].sum()) / denom


def assign_timestamps(pred_times_s: object, gt_times_s: object, tol_s: float = TIME_TOLERANCE_S) -> np.ndarray:
    """For each GT time, the index of the nearest predicted time within ``tol_s`` (else -1).

    ``pred_times_s`` must be sorted ascending (ties go to the earlier one).

    >>> assign_timestamps([0.0, 2.4, 9.0], [0.0, 1.0, 2.0, 3.0]).tolist()
    [0, -1, 1, -1]
    """
    pt = np.asarray(pred_times_s, dtype=np.float64).reshape(-1)
    gt = np.asarray(gt_times_s, dtype=np.float64).reshape(-1)
    if pt.shape[0] == 0:
        return np.full(gt.shape[0], -1, dtype=np.intp)
    right = np.searchsorted(pt, gt, side="left").clip(0, pt.shape[0] - 1)
    left = (right - 1).clip(0, None)
    d_left = np.abs(gt - pt[left])
    d_right = np.abs(pt[right] - gt)
    best = np.where(d_left <= d_right, left, right)
    dist = np.minimum(d_left, d_right)
    # small epsilon: timestamps are decimal strings, 10.5 vs 10.0 must count as 0.5 exactly
    return np.where(dist <= tol_s + 1e-9, best, -1).astype(np.intp)


def track_frame_ious(
    pred_times_s: object,
    pred_xyxy: object,
    gt_times_s: object,
    gt_xyxy: object,
    tol_s: float = TIME_TOLERANCE_S,
) -> np.ndarray:
    """Frame IoU of every scorable GT frame of one object (F,), in time order.

    Rows are one box each (several rows at one time = several instances). Scorable GT frames are
    the distinct GT times with at least one non-empty box; predicted rows with empty boxes are
    dropped. Each GT frame is served by the nearest predicted time within ``tol_s`` and scored
    with :func:`frame_iou` (unserved frames score 0).
    """
    gt_t = np.asarray(gt_times_s, dtype=np.float64).reshape(-1)
    gt_b = _as_boxes(gt_xyxy)
    area_g = box_area(gt_b)
    keep_g = area_g > 0
    if not keep_g.all():
        if not keep_g.any():
            return _EMPTY_IOUS
        gt_t, gt_b, area_g = gt_t[keep_g], gt_b[keep_g], area_g[keep_g]
    pr_t = np.asarray(pred_times_s, dtype=np.float64).reshape(-1)
    pr_b = _as_boxes(pred_xyxy)
    area_p = box_area(pr_b)
    keep_p = area_p > 0
    if not keep_p.all():
        pr_t, pr_b, area_p = pr_t[keep_p], pr_b[keep_p], area_p[keep_p]
    if pr_t.shape[0] and _increasing(gt_t) and _increasing(pr_t):
        # one box per frame on both sides (the usual case): each GT frame against the box of
        # its nearest predicted time, 1 x 1 matching, denominator 1
        assign = assign_timestamps(pr_t, gt_t, tol_s)
        served = assign >= 0
        ious = _pair_iou_rows(gt_b, area_g, pr_b[assign], area_p[assign])
        return np.where(served, ious, 0.0)
    frames, ginv = np.unique(gt_t, return_inverse=True)
    n_frames = frames.shape[0]
    n_gt = np.bincount(ginv, minlength=n_frames)

    if pr_t.shape[0] == 0:
        return np.zeros(n_frames)
    ptimes, pinv = np.unique(pr_t, return_inverse=True)
    n_pred_at = np.bincount(pinv, minlength=ptimes.shape[0])
    assign = assign_timestamps(ptimes, frames, tol_s)
    served = assign >= 0
    n_pred = np.where(served, n_pred_at[assign.clip(0, None)], 0)

    ious = box_iou(gt_b, pr_b)
    valid = assign[ginv][:, None] == pinv[None, :]
    ious = np.where(valid, ious, 0.0)
    block_max = np.zeros(n_frames)
    np.maximum.at(block_max, ginv, ious.max(axis=1))
    matched = block_max
    multi = np.flatnonzero(served & (n_gt > 1) & (n_pred > 1))
    if multi.size:
        matched = block_max.copy()
        for f in multi:
            sub = ious[np.ix_(ginv == f, pinv == assign[f])]
            r, c = _linear_sum_assignment(sub)
            matched[f] = sub[r, c].sum()
    denom = np.maximum(n_gt, n_pred)
    return np.where(served, matched / denom, 0.0)


def unserved_pred_frames(
    pred_times_s: object,
    pred_xyxy: object,
    gt_times_s: object,
    gt_xyxy: object,
    tol_s: float = TIME_TOLERANCE_S,
) -> int:
    """How many predicted frames (distinct times with a non-empty box) serve no scorable GT frame
    of the object (:func:`track_frame_ious`' matching): the extra frames tube vIoU counts.

    >>> unserved_pred_frames([0.0, 1.0, 5.0], [[0, 0, 1, 1]] * 3, [0.0, 1.0], [[0, 0, 1, 1]] * 2)
    1
    """
    pr_t = np.asarray(pred_times_s, dtype=np.float64).reshape(-1)[box_area(pred_xyxy) > 0]
    if pr_t.shape[0] == 0:
        return 0
    gt_t = np.asarray(gt_times_s, dtype=np.float64).reshape(-1)[box_area(gt_xyxy) > 0]
    ptimes = np.unique(pr_t)
    assign = assign_timestamps(ptimes, np.unique(gt_t), tol_s)
    return int(ptimes.shape[0] - np.unique(assign[assign >= 0]).shape[0])


def _increasing(t: np.ndarray) -> bool:
    return bool((t[1:] > t[:-1]).all())


def _pair_iou_rows(a: np.ndarray, area_a: np.ndarray, b: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of two (K, 4) box arrays with their areas, same arithmetic as :func:`box_iou`."""
    iw = np.maximum(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0.0)
    ih = np.maximum(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0.0)
    inter = iw * ih
    union = area_a + area_b - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return np.minimum(out, 1.0, out=out)


@dataclass(frozen=True, slots=True)
class ObjectSpatialScore:
    """Spatial scores of one GT object: mean frame IoU and share of frames >= each threshold."""

    n_frames: int
    v_iou: float
    hit_rates: tuple[float, ...]


def object_spatial_score(frame_ious: object, thresholds: Sequence[float] = (0.3, 0.5)) -> ObjectSpatialScore:
    """Mean frame IoU and, per threshold t, the share of frames with IoU >= t.

    >>> object_spatial_score([1.0, 0.4, 0.0])
    ObjectSpatialScore(n_frames=3, v_iou=0.4666666666666666, hit_rates=(0.6666666666666666, 0.3333333333333333))
    """
    f = np.asarray(frame_ious, dtype=np.float64).reshape(-1)
    if f.shape[0] == 0:
        return ObjectSpatialScore(0, 0.0, tuple(0.0 for _ in thresholds))
    n = f.shape[0]  # same numbers as f.mean() and at_least(f, t).mean(): a sum divided by n
    return ObjectSpatialScore(
        n, float(f.sum()) / n, tuple(int(np.count_nonzero(at_least(f, t))) / n for t in thresholds)
    )


# ---------------------------------------------------------------------------------------------
# batched versions: one call for a whole split (segment operations over flat arrays)


def _group_starts(new: np.ndarray) -> np.ndarray:
    return np.flatnonzero(new)


def batch_temporal_iou(owner: object, pred_spans: object, gt_spans: object) -> np.ndarray:
    """:func:`temporal_iou` of many QAs at once.

    ``gt_spans`` (Q, 2) is one GT interval per QA; ``pred_spans`` (K, 2) all predicted intervals,
    ``owner`` (K,) the QA index of each. Returns (Q,) IoUs of the union of each QA's intervals.
    """
    gt = _as_intervals(gt_spans)
    q = gt.shape[0]
    own = np.asarray(owner, dtype=np.intp).reshape(-1)
    sp = _as_intervals(pred_spans)
    ok = sp[:, 1] >= sp[:, 0]
    own, sp = own[ok], sp[ok]
    out = np.zeros(q)
    if own.shape[0] == 0:
        return out
    order = np.lexsort((sp[:, 0], own))
    own, sp = own[order], sp[order]
    lo = min(float(sp.min()), 0.0)
    big = float(sp.max()) - lo + 1.0
    shift = own * big
    run_end = np.maximum.accumulate(sp[:, 1] - lo + shift)
    new = np.empty(own.shape[0], dtype=bool)
    new[0] = True
    new[1:] = (own[1:] != own[:-1]) | (sp[1:, 0] - lo + shift[1:] > run_end[:-1])
    starts = _group_starts(new)
    b_own = own[starts]
    b_start = np.minimum.reduceat(sp[:, 0], starts)
    b_end = np.maximum.reduceat(sp[:, 1], starts)
    g = gt[b_own]
    inter = np.maximum(np.minimum(b_end, g[:, 1]) - np.maximum(b_start, g[:, 0]), 0.0)
    inter_q = np.bincount(b_own, weights=inter, minlength=q)
    len_q = np.bincount(b_own, weights=b_end - b_start, minlength=q)
    n_blocks = np.bincount(b_own, minlength=q)
    has = n_blocks > 0
    union = len_q + np.maximum(gt[:, 1] - gt[:, 0], 0.0) - inter_q
    # one block overlapping the GT: the union is the hull (as span_iou)
    one = np.flatnonzero((n_blocks[b_own] == 1) & (inter > 0))
    union[b_own[one]] = np.maximum(b_end[one], g[one, 1]) - np.minimum(b_start[one], g[one, 0])
    np.divide(inter_q, union, out=out, where=has & (union > 0))
    return out


def _frames(obj: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by (obj, t): frame index of every row and the first row of every frame."""
    new = np.empty(obj.shape[0], dtype=bool)
    if obj.shape[0]:
        new[0] = True
        new[1:] = (obj[1:] != obj[:-1]) | (t[1:] != t[:-1])
    return np.cumsum(new) - 1, _group_starts(new)


def _is_sorted(obj: np.ndarray, t: np.ndarray) -> bool:
    """Whether rows are already ordered by (obj, t) (then a stable sort would not move them)."""
    if obj.shape[0] < 2:
        return True
    d = obj[1:] - obj[:-1]
    return bool(((d > 0) | ((d == 0) & (t[1:] >= t[:-1]))).all())


def _first_max(
    v: np.ndarray, starts: np.ndarray, pos: np.ndarray, prefer: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per run of ``v`` (runs begin at ``starts``): its maximum, and the ``pos`` of a maximum: the
    cell flagged in ``prefer`` when it is one (the diagonal, to break ties between duplicate
    boxes), else the first."""
    best = np.maximum.reduceat(v, starts)
    first = np.zeros(v.shape[0], dtype=bool)
    first[starts] = True
    run = np.cumsum(first) - 1
    is_max = v == best[run]
    big = np.iinfo(np.intp).max
    arg = np.minimum.reduceat(np.where(is_max, pos, big), starts)
    pref = np.flatnonzero(prefer & is_max)
    arg[run[pref]] = pos[pref]
    return best, arg


def _second_max(v: np.ndarray, starts: np.ndarray, arg: np.ndarray) -> np.ndarray:
    """Per run of ``v``: the maximum of the run without its cell at offset ``arg`` (-inf if none)."""
    rest = v.copy()
    rest[starts + arg] = -np.inf
    return np.maximum.reduceat(rest, starts)


def _match_blocks(
    pair_iou: np.ndarray, seg: np.ndarray, ng: np.ndarray, npr: np.ndarray, matched: np.ndarray, at: np.ndarray
) -> None:
    """Optimal one-to-one sums of many small IoU blocks (row-major in ``pair_iou``) -> matched[at].

    Every row maximum and column maximum of every block comes from segment reductions over the
    flat cells (no padding). A block whose smaller side has its maxima in distinct places is
    solved by those maxima (an upper bound that is reached); the rest by the Hungarian algorithm.
    """
    n_blk = seg.shape[0]
    size = ng * npr
    total = int(size.sum())
    b_start = np.cumsum(size) - size
    blk = np.repeat(np.arange(n_blk), size)
    local = np.arange(total) - b_start[blk]
    v = pair_iou[seg[blk] + local]
    np_b, ng_b = npr[blk], ng[blk]
    row = local // np_b
    col = local - row * np_b
    # rows are runs of the row-major cells; columns are runs of the column-major cells
    r_starts = np.flatnonzero(col == 0)
    r_best, r_arg = _first_max(v, r_starts, col, row == col)
    rows_side = ng <= npr
    r_blk = np.repeat(np.arange(n_blk), ng)
    c_blk = np.repeat(np.arange(n_blk), npr)
    if rows_side.all():  # no block needs its columns (e.g. square blocks)
        vc = c_best = np.zeros(c_blk.shape[0])
        c_starts = c_arg = np.zeros(c_blk.shape[0], dtype=np.intp)
    else:
        cm = b_start[blk] + col * ng_b + row
        vc = np.empty(total)
        vc[cm] = v
        rc = np.empty(total, dtype=np.intp)
        rc[cm] = row
        c_starts = np.flatnonzero(rc == 0)
        cc = np.empty(total, dtype=np.intp)
        cc[cm] = col
        c_best, c_arg = _first_max(vc, c_starts, rc, rc == cc)
    # the picks of the smaller side of each block, and whether they are distinct
    use_r = rows_side[r_blk]
    use_c = ~rows_side[c_blk]
    p_blk = np.concatenate([r_blk[use_r], c_blk[use_c]])
    p_val = np.concatenate([r_arg[use_r], c_arg[use_c]])
    width = int(max(ng.max(), npr.max())) + 1
    keys = np.sort(p_blk * width + p_val)
    dup = np.zeros(n_blk, dtype=bool)
    same = keys[1:] == keys[:-1]
    dup[keys[1:][same] // width] = True
    sums = np.where(rows_side, np.bincount(r_blk, weights=np.where(use_r, r_best, 0.0), minlength=n_blk),
                    np.bincount(c_blk, weights=np.where(use_c, c_best, 0.0), minlength=n_blk))
    ok = ~dup
    matched[at[ok]] = sums[ok]
    # a block with two rows (columns) whose maxima share a column (row) c: one of the two takes
    # c, the other its best elsewhere
    two_r = np.flatnonzero(dup & rows_side & (ng == 2))
    if two_r.size:
        i = (np.cumsum(ng) - ng)[two_r]  # the first row run of each block
        second = _second_max(v, r_starts, r_arg)
        matched[at[two_r]] = np.maximum(r_best[i] + second[i + 1], second[i] + r_best[i + 1])
    two_c = np.flatnonzero(dup & ~rows_side & (npr == 2))
    if two_c.size:
        j = (np.cumsum(npr) - npr)[two_c]
        second = _second_max(vc, c_starts, c_arg)
        matched[at[two_c]] = np.maximum(c_best[j] + second[j + 1], second[j] + c_best[j + 1])
    for k in np.flatnonzero(dup & (np.minimum(ng, npr) > 2)).tolist():
        s0, rows, cols = int(seg[k]), int(ng[k]), int(npr[k])
        block = pair_iou[s0 : s0 + rows * cols].reshape(rows, cols)
        r, c = _linear_sum_assignment(block)
        matched[at[k]] = block[r, c].sum()


def batch_frame_ious(
    gt_obj: object,
    gt_times_s: object,
    gt_xyxy: object,
    pred_obj: object,
    pred_times_s: object,
    pred_xyxy: object,
    tol_s: float = TIME_TOLERANCE_S,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`track_frame_ious` of many GT objects at once.

    GT rows carry the id of their GT object (``gt_obj``); predicted rows carry the id of the GT
    object their track was assigned to (``pred_obj``). Returns ``(frame_obj, frame_iou)``: one
    entry per scorable GT frame, sorted by object then time.
    """
    go, gt_t, gb, ga = _sorted_rows(gt_obj, gt_times_s, gt_xyxy)
    g_frame, f_start = _frames(go, gt_t)
    n_frames = f_start.shape[0]
    f_obj, f_t = go[f_start], gt_t[f_start]
    n_gt = np.diff(np.append(f_start, go.shape[0]))
    ious = np.zeros(n_frames)
    po, pt, pb, pa = _sorted_rows(pred_obj, pred_times_s, pred_xyxy)
    if n_frames == 0 or po.shape[0] == 0:
        return f_obj, ious
    _, p_start = _frames(po, pt)
    n_pf = p_start.shape[0]
    pf_obj, pf_t = po[p_start], pt[p_start]
    n_pred_pf = np.diff(np.append(p_start, po.shape[0]))
    # nearest predicted frame of the same object within tol (ties: the earlier one)
    lo = min(float(pf_t.min()), float(f_t.min()))
    big = max(float(pf_t.max()), float(f_t.max())) - lo + 2 * tol_s + 1.0
    key_p = pf_obj * big + (pf_t - lo)
    key_f = f_obj * big + (f_t - lo)
    right = np.searchsorted(key_p, key_f, side="left").clip(0, n_pf - 1)
    left = (right - 1).clip(0, None)
    d_left = np.where(pf_obj[left] == f_obj, np.abs(f_t - pf_t[left]), np.inf)
    d_right = np.where(pf_obj[right] == f_obj, np.abs(pf_t[right] - f_t), np.inf)
    best = np.where(d_left <= d_right, left, right)
    served = np.minimum(d_left, d_right) <= tol_s + 1e-9
    n_pred = np.where(served, n_pred_pf[best], 0)
    # all (GT row, predicted row) pairs of served frames, grouped by frame, GT row-major
    row_np = n_pred[g_frame]
    total = int(row_np.sum())
    first_p = p_start[best[g_frame]]
    if total == 0 or row_np.max() <= 1:  # each GT box meets at most one predicted box
        pair_g = np.flatnonzero(row_np)
        pair_p = first_p[pair_g]
    else:
        pair_g = np.repeat(np.arange(go.shape[0]), row_np)
        pair_p = first_p[pair_g] + np.arange(total) - np.repeat(np.cumsum(row_np) - row_np, row_np)
    pair_iou = _pair_iou_cols(gb, ga, pair_g, pb, pa, pair_p)
    sf = np.flatnonzero(served)
    ng_sf, np_sf = n_gt[sf], n_pred[sf]
    pairs_per_frame = ng_sf * np_sf
    seg = np.cumsum(pairs_per_frame) - pairs_per_frame
    if total == sf.shape[0]:
        matched = pair_iou
    else:
        matched = np.maximum.reduceat(pair_iou, seg) if total else np.zeros(0)
        multi = np.flatnonzero((ng_sf > 1) & (np_sf > 1))
        if multi.size:
            _match_blocks(pair_iou, seg[multi], ng_sf[multi], np_sf[multi], matched, multi)
    ious[sf] = matched / np.maximum(ng_sf, np_sf)
    return f_obj, ious


def _sorted_rows(obj: object, times_s: object, xyxy: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows with a non-empty box, ordered by (obj, time) (stable): ids, times, boxes as four
    contiguous columns (4, N), areas."""
    o = np.asarray(obj, dtype=np.intp).reshape(-1)
    t = np.asarray(times_s, dtype=np.float64).reshape(-1)
    b = _as_boxes(xyxy)
    cols = np.ascontiguousarray(b.T)
    area = np.maximum(cols[2] - cols[0], 0.0) * np.maximum(cols[3] - cols[1], 0.0)
    keep = area > 0
    idx = None if keep.all() else np.flatnonzero(keep)
    ko, kt = (o, t) if idx is None else (o[idx], t[idx])
    if not _is_sorted(ko, kt):
        # rows come in runs already sorted (one track after another): a stable sort of one
        # combined key exploits them (timsort); lexsort if the key cannot separate the rows
        lo = float(kt.min())
        order = np.argsort(ko * (float(kt.max()) - lo + 1.0) + (kt - lo), kind="stable")
        if not _is_sorted(ko[order], kt[order]):
            order = np.lexsort((kt, ko))
        idx = order if idx is None else idx[order]
    if idx is not None:
        o, t, cols, area = o[idx], t[idx], cols.take(idx, axis=1), area[idx]
    return o, t, cols, area


def _pair_iou_cols(
    a: np.ndarray, area_a: np.ndarray, ia: np.ndarray, b: np.ndarray, area_b: np.ndarray, ib: np.ndarray
) -> np.ndarray:
    """IoU of boxes ``a[:, ia[k]]`` and ``b[:, ib[k]]`` (boxes as (4, N) columns), same arithmetic
    as :func:`box_iou`."""
    iw = np.minimum(a[2][ia], b[2][ib])
    iw -= np.maximum(a[0][ia], b[0][ib])
    np.maximum(iw, 0.0, out=iw)
    ih = np.minimum(a[3][ia], b[3][ib])
    ih -= np.maximum(a[1][ia], b[1][ib])
    np.maximum(ih, 0.0, out=ih)
    inter = iw * ih
    union = area_a[ia] + area_b[ib] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return np.minimum(out, 1.0, out=out)


def segment_pairs(a_seg: object, b_seg: object, n_seg: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (a, b) pair of the same segment, a-major: the cells of many small matrices at once.

    ``a_seg`` (A,) and ``b_seg`` (B,) are the segment ids of two item lists, each sorted by
    segment. Returns ``(pa, pb)``: for each segment its ``n_a x n_b`` cells, row-major.

    >>> [x.tolist() for x in segment_pairs([0, 0, 1], [0, 1, 1], 2)]
    [[0, 1, 2, 2], [0, 0, 1, 2]]
    """
    sa = np.asarray(a_seg, dtype=np.intp).reshape(-1)
    sb = np.asarray(b_seg, dtype=np.intp).reshape(-1)
    nb = np.bincount(sb, minlength=n_seg)
    b_start = np.cumsum(nb) - nb
    reps = nb[sa]
    total = int(reps.sum())
    pa = np.repeat(np.arange(sa.shape[0]), reps)
    off = np.arange(total) - np.repeat(np.cumsum(reps) - reps, reps)
    return pa, b_start[sa][pa] + off


def batch_match_one_to_one(
    a_seg: object, b_seg: object, pa: object, pb: object, score: object, *, min_score: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`match_one_to_one` (with ``min_score``) of many small matrices at once.

    The matrices are given as in :func:`segment_pairs`: ``pa``, ``pb`` the row and column item of
    each cell (a-major within each segment), ``score`` its value. Returns the matched
    ``(a, b)`` item indices, sorted by ``a``. A segment whose valid cells (``score >= min_score``)
    share no row and no column is matched in bulk (every valid cell is in the unique optimum);
    the others, rare, are solved one by one by :func:`match_one_to_one` (same numbers).

    >>> ma, mb = batch_match_one_to_one([0, 0, 1], [0, 0, 1], [0, 0, 1, 1, 2], [0, 1, 0, 1, 2],
    ...                                 [0.9, 0.8, 0.85, 0.1, 0.2], min_score=0.5)
    >>> ma.tolist(), mb.tolist()
    ([0, 1], [1, 0])
    """
    sa = np.asarray(a_seg, dtype=np.intp).reshape(-1)
    sb = np.asarray(b_seg, dtype=np.intp).reshape(-1)
    pa = np.asarray(pa, dtype=np.intp).reshape(-1)
    pb = np.asarray(pb, dtype=np.intp).reshape(-1)
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    if s.shape[0] == 0:
        return _NONE, _NONE
    valid = s >= max(min_score, np.finfo(float).tiny)
    n_seg = int(max(sa.max(initial=-1), sb.max(initial=-1))) + 1
    bad = np.zeros(n_seg, dtype=bool)
    if min_score <= 0:  # sub-threshold cells may stay negative: only the solver is exact
        bad[sa[pa]] = True
    else:
        bad[sa[np.bincount(pa, weights=valid, minlength=sa.shape[0]) > 1]] = True
        bad[sb[np.bincount(pb, weights=valid, minlength=sb.shape[0]) > 1]] = True
    fast = valid & ~bad[sa[pa]]
    ma, mb = pa[fast], pb[fast]
    slow = np.flatnonzero(bad)
    if slow.size == 0:
        return ma, mb
    extra_a, extra_b = [ma], [mb]
    a_start = np.searchsorted(sa, slow)
    b_start = np.searchsorted(sb, slow)
    na = np.searchsorted(sa, slow, side="right") - a_start
    nb = np.searchsorted(sb, slow, side="right") - b_start
    cell = np.searchsorted(pa, a_start)  # first cell of each slow segment
    for k in range(slow.shape[0]):
        c0, rows, cols = int(cell[k]), int(na[k]), int(nb[k])
        r, c = match_one_to_one(s[c0 : c0 + rows * cols].reshape(rows, cols), min_score=min_score)
        extra_a.append(r + a_start[k])
        extra_b.append(c + b_start[k])
    ma, mb = np.concatenate(extra_a), np.concatenate(extra_b)
    order = np.argsort(ma, kind="stable")
    return ma[order], mb[order]


def batch_unserved_pred_frames(
    gt_obj: object,
    gt_times_s: object,
    gt_xyxy: object,
    pred_obj: object,
    pred_times_s: object,
    pred_xyxy: object,
    n_obj: int,
    tol_s: float = TIME_TOLERANCE_S,
) -> np.ndarray:
    """:func:`unserved_pred_frames` of many objects at once (ids as in :func:`batch_frame_ious`;
    a predicted id without GT rows has all its frames unserved). Returns (n_obj,) counts."""
    go, gt_t, _, _ = _sorted_rows(gt_obj, gt_times_s, gt_xyxy)
    po, pt, _, _ = _sorted_rows(pred_obj, pred_times_s, pred_xyxy)
    out = np.zeros(n_obj, dtype=np.intp)
    if po.shape[0] == 0:
        return out
    _, p_start = _frames(po, pt)
    pf_obj, pf_t = po[p_start], pt[p_start]
    n_pf = pf_obj.shape[0]
    used = np.zeros(n_pf, dtype=bool)
    if go.shape[0]:
        _, f_start = _frames(go, gt_t)
        f_obj, f_t = go[f_start], gt_t[f_start]
        lo = min(float(pf_t.min()), float(f_t.min()))
        big = max(float(pf_t.max()), float(f_t.max())) - lo + 2 * tol_s + 1.0
        key_p = pf_obj * big + (pf_t - lo)
        key_f = f_obj * big + (f_t - lo)
        right = np.searchsorted(key_p, key_f, side="left").clip(0, n_pf - 1)
        left = (right - 1).clip(0, None)
        d_left = np.where(pf_obj[left] == f_obj, np.abs(f_t - pf_t[left]), np.inf)
        d_right = np.where(pf_obj[right] == f_obj, np.abs(pf_t[right] - f_t), np.inf)
        best = np.where(d_left <= d_right, left, right)
        served = np.minimum(d_left, d_right) <= tol_s + 1e-9
        used[best[served]] = True
    np.add.at(out, pf_obj[~used], 1)
    return out
