"""The ``ravst`` metric protocol (DESIGN.md "Metric protocol"): per-QA scores and their aggregation.

``score_qa(item, parsed, similarity)`` scores one QA from the parsed model answer (anything with
an ``.answer`` attribute holding a :class:`ravst.types.Answer`, e.g. ``ParseResult``; ``None``
means no prediction). It is pure, does no I/O and is what the GRPO rewards call.
``aggregate(scores)`` turns a list of :class:`QAScore` into the ``tasks`` block of ``metrics.json``
(percentages).

>>> from ravst.types import Answer, QAItem, Span, Task
>>> from types import SimpleNamespace
>>> from ravst.similarity import get_similarity
>>> gt = QAItem("v/0/temporal/0", "v", 30.0, 0, 1, Task.TEMPORAL, 0, "When?",
...             Answer(objects=("dog",), spans=(Span(0.0, 10.0),)))
>>> s = score_qa(gt, SimpleNamespace(answer=Answer(spans=(Span(5.0, 10.0),))), get_similarity("exact"))
>>> s.t_iou
0.5
>>> aggregate([s])["temporal"]["R1@0.5"]
100.0
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from ravst.metrics.functional import (
    at_least,
    batch_frame_ious,
    batch_match_one_to_one,
    batch_temporal_iou,
    batch_unserved_pred_frames,
    match_one_to_one,
    object_spatial_score,
    segment_pairs,
    span_iou,
    temporal_iou,
    track_frame_ious,
    unserved_pred_frames,
)
from ravst.types import Answer, QAItem, Task, Track

__all__ = [
    "KINDS",
    "R1_THRESHOLDS",
    "TUBE_THRESHOLDS",
    "V_THRESHOLDS",
    "HasAnswer",
    "QAScore",
    "aggregate",
    "assign_tracks",
    "is_parsed",
    "object_scores",
    "score_batch",
    "score_qa",
    "spans_array",
]

R1_THRESHOLDS = (0.3, 0.5, 0.7)
"""tIoU thresholds of the temporal ``R1@t`` figures."""
V_THRESHOLDS = (0.3, 0.5)
"""Frame-IoU thresholds of the spatial ``AP@t`` figures (a per-frame hit rate, see docs)."""
TUBE_THRESHOLDS = (0.3, 0.5)
"""Tube-vIoU thresholds of ``tube_vIoU@t`` (share of QAs whose tube vIoU >= t, as VidSTG / HC-STVG)."""
KINDS = ("temporal", "spatial-sounding", "spatial-silent", "spatiotemporal")


class HasAnswer(Protocol):
    @property
    def answer(self) -> Answer: ...


class _Similarity(Protocol):
    tau: float

    def matrix(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class QAScore:
    """Scores of one QA (fractions in [0, 1]; ``None`` where a figure does not apply).

    ``parsed`` is False when the answer had none of the fields the task is scored on (or no
    prediction at all). ``spatial_excluded`` is True when the GT has no scorable frame; then
    ``v_iou``, ``ap`` and ``tube_v_iou`` are None. ``tube_v_iou`` (VidSTG / HC-STVG tube vIoU):
    sum of frame IoUs over the GT frames / (GT frames + predicted frames that serve no GT frame),
    pooled over the QA's objects (predicted tracks given to no GT object count all their frames).
    """

    qa_id: str
    kind: str
    parsed: bool
    t_iou: float | None = None
    object_acc: float | None = None
    object_precision: float | None = None
    object_f1: float | None = None
    v_iou: float | None = None
    ap: tuple[float, ...] | None = None
    spatial_excluded: bool = False
    n_frames: int = 0
    n_gt_objects: int = 0
    n_pred_objects: int = 0
    n_matched_objects: int = 0
    tube_v_iou: float | None = None

    @property
    def task(self) -> str:
        return "spatial" if self.kind.startswith("spatial-") else self.kind

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ap"] = None if self.ap is None else {f"AP@{t}": v for t, v in zip(V_THRESHOLDS, self.ap, strict=True)}
        return d


def spans_array(answer: Answer) -> np.ndarray:
    return np.array([[s.start_s, s.end_s] for s in answer.spans], dtype=np.float64).reshape(-1, 2)


def is_parsed(task: Task, answer: Answer) -> bool:
    """Whether an answer holds at least one field the task is scored on."""
    if task is Task.TEMPORAL:
        return bool(answer.spans)
    if task is Task.SPATIAL:
        return bool(answer.objects) or bool(answer.tracks)
    return bool(answer.spans) or bool(answer.tracks)


def predicted_names(answer: Answer) -> list[str]:
    """``<object>`` names, or the names of the ``<where>`` blocks when there is no object tag."""
    if answer.objects:
        return [n for n in answer.objects if n.strip()]
    return [t.name for t in answer.tracks if t.name.strip()]


def object_scores(pred: Sequence[str], gt: Sequence[str], similarity: _Similarity) -> tuple[float, float, float, int]:
    """One-to-one matching by maximum total similarity among pairs with similarity >= tau.

    Returns (accuracy = matched / #GT, precision = matched / #pred, F1, matched).
    """
    if not gt:
        return 0.0, 0.0, 0.0, 0
    if not pred:
        return 0.0, 0.0, 0.0, 0
    sim = similarity.matrix(pred, gt)
    rows, _ = match_one_to_one(sim, min_score=similarity.tau)
    m = int(rows.shape[0])
    acc = m / len(gt)
    prec = m / len(pred)
    f1 = 2 * acc * prec / (acc + prec) if m else 0.0
    return acc, prec, f1, m


def assign_tracks(
    pred: Sequence[Track], gt: Sequence[Track], similarity: _Similarity, *, by_order: bool
) -> list[int]:
    """For each GT track, the index of its predicted track (or -1).

    Named predicted tracks are matched to GT tracks one to one by name similarity (>= tau).
    Then the predicted tracks left over are given to the GT tracks left over in order: all of
    them when ``by_order`` (spatio-temporal: the question names the object), else only the
    unnamed ones.
    """
    out = [-1] * len(gt)
    if not pred or not gt:
        return out
    named = [i for i, t in enumerate(pred) if t.name.strip()]
    used: set[int] = set()
    if named:
        sim = similarity.matrix([pred[i].name for i in named], [t.name for t in gt])
        rows, cols = match_one_to_one(sim, min_score=similarity.tau)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            out[c] = named[r]
            used.add(named[r])
    left = [i for i in range(len(pred)) if i not in used and (by_order or not pred[i].name.strip())]
    free = [j for j in range(len(gt)) if out[j] < 0]
    for j, i in zip(free, left, strict=False):
        out[j] = i
    return out


def _spatial(
    pred_tracks: Sequence[Track], gt_tracks: Sequence[Track], similarity: _Similarity, *, by_order: bool
) -> tuple[float | None, tuple[float, ...] | None, int, float | None]:
    """(vIoU, AP@t, scorable frames, tube vIoU) of one QA; the first, second and last are None
    when the GT has no scorable frame."""
    assigned = assign_tracks(pred_tracks, gt_tracks, similarity, by_order=by_order)
    v_ious: list[float] = []
    hits: list[tuple[float, ...]] = []
    n_frames = 0
    tube_sum = 0.0
    extra = 0  # predicted frames that serve no GT frame
    for j, g in enumerate(gt_tracks):
        i = assigned[j]
        if i >= 0:
            p = pred_tracks[i]
            f = track_frame_ious(p.times_s, p.xyxy, g.times_s, g.xyxy)
            extra += unserved_pred_frames(p.times_s, p.xyxy, g.times_s, g.xyxy)
        else:
            f = track_frame_ious((), (), g.times_s, g.xyxy)
        if f.shape[0] == 0:
            continue  # this GT object has no scorable frame
        s = object_spatial_score(f, V_THRESHOLDS)
        n_frames += s.n_frames
        tube_sum += float(f.sum())
        v_ious.append(s.v_iou)
        hits.append(s.hit_rates)
    for i in set(range(len(pred_tracks))) - set(assigned):
        extra += unserved_pred_frames(pred_tracks[i].times_s, pred_tracks[i].xyxy, (), ())
    if not v_ious:
        return None, None, 0, None
    tube = tube_sum / (n_frames + extra)
    if len(v_ious) == 1:  # the mean of one value is that value
        return v_ious[0], hits[0], n_frames, tube
    ap = tuple(float(v) for v in np.mean(np.asarray(hits), axis=0))
    return float(np.mean(v_ious)), ap, n_frames, tube


def score_qa(item: QAItem, parsed: HasAnswer | None, similarity: _Similarity) -> QAScore:
    """Score one QA under the ``ravst`` protocol (``parsed=None``: no prediction, all zeros)."""
    answer = parsed.answer if parsed is not None else Answer()
    gt = item.answer
    ok = parsed is not None and is_parsed(item.task, answer)
    fields: dict[str, Any] = {"qa_id": item.qa_id, "kind": item.kind, "parsed": ok}
    if item.task in (Task.TEMPORAL, Task.SPATIOTEMPORAL) and gt.span is not None:
        if len(answer.spans) == 1:
            one = answer.spans[0]
            fields["t_iou"] = span_iou(one.start_s, one.end_s, gt.span.start_s, gt.span.end_s)
        else:
            fields["t_iou"] = temporal_iou(spans_array(answer), [gt.span.start_s, gt.span.end_s])
    if item.task is Task.SPATIAL and gt.objects:
        names = predicted_names(answer)
        acc, prec, f1, m = object_scores(names, list(gt.objects), similarity)
        fields.update(
            object_acc=acc,
            object_precision=prec,
            object_f1=f1,
            n_gt_objects=len(gt.objects),
            n_pred_objects=len(names),
            n_matched_objects=m,
        )
    if item.task in (Task.SPATIAL, Task.SPATIOTEMPORAL):
        v, ap, n, tube = _spatial(answer.tracks, gt.tracks, similarity, by_order=item.task is Task.SPATIOTEMPORAL)
        fields.update(v_iou=v, ap=ap, n_frames=n, spatial_excluded=v is None, tube_v_iou=tube)
    return QAScore(**fields)


_CHUNK_NAMES = 128
"""Names per similarity call in :func:`_match_names` (small tables: cost ~ names, not names^2)."""


def _match_names(
    similarity: _Similarity, a: Sequence[str], a_seg: np.ndarray, b: Sequence[str], b_seg: np.ndarray, n_seg: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`object_scores`' matching of names ``a`` to names ``b`` within each segment (QA),
    for all segments at once: returns the matched ``(a, b)`` indices.

    Similarities come from one ``similarity.matrix`` call per run of consecutive segments with
    about ``_CHUNK_NAMES`` names, over the distinct names of that run, gathered for every
    (a, b) pair of each segment; the matchings are then solved together
    (:func:`batch_match_one_to_one`).
    """
    pa, pb = segment_pairs(a_seg, b_seg, n_seg)
    if pa.shape[0] == 0:
        return pa, pb
    # chunk boundaries in segment space: every ~_CHUNK_NAMES a-names
    counts = np.bincount(a_seg, minlength=n_seg)
    cum = np.cumsum(counts)
    cut = np.flatnonzero(np.diff(cum // _CHUNK_NAMES, prepend=0) > 0)
    bounds = [0, *(cut + 1).tolist()]
    if bounds[-1] < n_seg:
        bounds.append(n_seg)
    seg_a = np.searchsorted(a_seg, bounds).tolist()
    seg_b = np.searchsorted(b_seg, bounds).tolist()
    seg_c = np.searchsorted(pa, seg_a).tolist()
    sim = np.empty(pa.shape[0])
    for k in range(len(bounds) - 1):
        c0, c1 = seg_c[k], seg_c[k + 1]
        if c0 == c1:
            continue
        a0, a1, b0, b1 = seg_a[k], seg_a[k + 1], seg_b[k], seg_b[k + 1]
        ua: dict[str, int] = {}
        ub: dict[str, int] = {}
        ia = np.array([ua.setdefault(x, len(ua)) for x in a[a0:a1]], dtype=np.intp)
        ib = np.array([ub.setdefault(y, len(ub)) for y in b[b0:b1]], dtype=np.intp)
        table = np.asarray(similarity.matrix(list(ua), list(ub)), dtype=np.float64)
        sim[c0:c1] = table[ia[pa[c0:c1] - a0], ib[pb[c0:c1] - b0]]
    return batch_match_one_to_one(a_seg, b_seg, pa, pb, sim, min_score=similarity.tau)


def _rank_in_segment(seg: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal (sorted) segment ids."""
    return np.arange(seg.shape[0]) - np.searchsorted(seg, seg)


def _int_list(counts: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    return np.repeat(np.arange(n), np.asarray(counts, dtype=np.intp))


def score_batch(
    items: Sequence[QAItem], parsed: Sequence[HasAnswer | None], similarity: _Similarity
) -> list[QAScore]:
    """:func:`score_qa` of a whole split at once (same numbers, up to float summation order).

    Everything runs on flat arrays of the whole split with segment (QA / object) ids: temporal
    IoUs, name matching (similarities of a run of QAs per ``similarity.matrix`` call, all small
    one-to-one matchings at once, the rare ambiguous ones by the Hungarian solver), the
    assignment of tracks to GT objects, and every frame of every GT object. Python touches each QA only to read its fields and to build its
    :class:`QAScore`.
    """
    if len(items) != len(parsed):
        raise ValueError(f"score_batch: {len(items)} items but {len(parsed)} parsed answers")
    n = len(items)
    empty = Answer()
    answers = [empty if p is None else p.answer for p in parsed]
    gts = [it.answer for it in items]
    tasks = [it.task for it in items]
    temporal, spatial, spatiotemporal = Task.TEMPORAL, Task.SPATIAL, Task.SPATIOTEMPORAL
    parsed_ok = [
        p is not None and bool(a.spans if t is temporal else (a.objects or a.tracks) if t is spatial
                               else (a.spans or a.tracks))
        for p, a, t in zip(parsed, answers, tasks, strict=True)
    ]
    # ---- temporal: every QA with a GT interval, all at once
    t_rows = [i for i in range(n) if tasks[i] is not spatial and gts[i].spans]
    t_iou: list[float | None] = [None] * n
    if t_rows:
        gt_spans = np.array([(gts[i].spans[0].start_s, gts[i].spans[0].end_s) for i in t_rows]).reshape(-1, 2)
        pred_spans = [(s.start_s, s.end_s) for i in t_rows for s in answers[i].spans]
        owner = _int_list([len(answers[i].spans) for i in t_rows], len(t_rows))
        values = batch_temporal_iou(owner, np.array(pred_spans).reshape(-1, 2), gt_spans).tolist()
        for i, v in zip(t_rows, values, strict=True):
            t_iou[i] = v
    # ---- spatial and spatio-temporal QAs: flat lists of tracks and names, segment = QA position
    s_rows = [i for i in range(n) if tasks[i] is not temporal]
    ns = len(s_rows)
    g_tracks = [g for i in s_rows for g in gts[i].tracks]
    p_tracks = [t for i in s_rows for t in answers[i].tracks]
    g_seg = _int_list([len(gts[i].tracks) for i in s_rows], ns)
    p_seg = _int_list([len(answers[i].tracks) for i in s_rows], ns)
    p_names = [t.name for t in p_tracks]
    g_names = [g.name for g in g_tracks]
    # object names of spatial QAs (object_scores)
    o_rows = [k for k, i in enumerate(s_rows) if tasks[i] is spatial and gts[i].objects]
    o_pred = [predicted_names(answers[s_rows[k]]) for k in o_rows]
    o_gt = [gts[s_rows[k]].objects for k in o_rows]
    # one name matching for both: objects of spatial QAs (segments 0..no-1), then the named
    # predicted tracks against the GT tracks of every QA (segments no + QA position)
    no = len(o_rows)
    n_pred = np.array([len(x) for x in o_pred], dtype=np.intp)
    n_gt = np.array([len(x) for x in o_gt], dtype=np.intp)
    named = np.array([bool(x.strip()) for x in p_names], dtype=bool)
    nidx = np.flatnonzero(named)
    o_a_seg = _int_list(n_pred, no)
    ma, mb = _match_names(
        similarity,
        [x for names in o_pred for x in names] + [p_names[i] for i in nidx.tolist()],
        np.concatenate([o_a_seg, p_seg[nidx] + no]),
        [x for names in o_gt for x in names] + g_names,
        np.concatenate([_int_list(n_gt, no), g_seg + no]),
        no + ns,
    )
    n_oa, n_ob = o_a_seg.shape[0], int(n_gt.sum())
    is_obj = ma < n_oa
    # object accuracy / precision / F1 (None where not scored)
    none_col: list[Any] = [None] * n
    zero_col: list[int] = [0] * n
    o_acc, o_prec, o_f1 = list(none_col), list(none_col), list(none_col)
    o_ng, o_np, o_m = list(zero_col), list(zero_col), list(zero_col)
    if no:
        m = np.bincount(o_a_seg[ma[is_obj]], minlength=no)
        acc = m / n_gt
        prec = np.divide(m, n_pred, out=np.zeros(no), where=n_pred > 0)
        f1 = np.divide(2 * acc * prec, acc + prec, out=np.zeros(no), where=m > 0)
        for col, values in ((o_acc, acc), (o_prec, prec), (o_f1, f1), (o_ng, n_gt), (o_np, n_pred), (o_m, m)):
            for k, v in zip(o_rows, values.tolist(), strict=True):
                col[s_rows[k]] = v
    # tracks -> GT objects: by name (one to one, >= tau), then the rest in order
    target = np.full(len(p_tracks), -1, dtype=np.intp)  # GT track served by each predicted track
    if p_tracks and g_tracks:
        tr_a, tr_b = nidx[ma[~is_obj] - n_oa], mb[~is_obj] - n_ob
        assigned = np.full(len(g_tracks), -1, dtype=np.intp)
        assigned[tr_b] = tr_a
        used = np.zeros(len(p_tracks), dtype=bool)
        used[tr_a] = True
        by_order = np.array([tasks[i] is spatiotemporal for i in s_rows], dtype=bool)
        left = np.flatnonzero(~used & (by_order[p_seg] | ~named))
        free = np.flatnonzero(assigned < 0)
        if left.size and free.size:
            width = max(len(p_tracks), len(g_tracks)) + 1
            key_l = p_seg[left] * width + _rank_in_segment(p_seg[left])
            key_f = g_seg[free] * width + _rank_in_segment(g_seg[free])
            at = np.searchsorted(key_l, key_f).clip(0, left.shape[0] - 1)
            hit = key_l[at] == key_f
            assigned[free[hit]] = left[at[hit]]
        ok = assigned >= 0
        target[assigned[ok]] = np.flatnonzero(ok)

    # ---- every frame of every GT object
    def rows_of(tracks: list[Track]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not tracks:
            return np.zeros(0, dtype=np.intp), np.zeros(0), np.zeros((0, 4))
        lens = np.array([t.times_s.shape[0] for t in tracks], dtype=np.intp)
        return (lens, np.concatenate([t.times_s for t in tracks]), np.concatenate([t.xyxy for t in tracks]))

    n_obj = len(g_tracks)
    g_len, g_t, g_b = rows_of(g_tracks)
    sel = np.flatnonzero(target >= 0).tolist()
    p_len, p_t, p_b = rows_of([p_tracks[k] for k in sel])
    f_obj, f_iou = batch_frame_ious(
        np.repeat(np.arange(n_obj), g_len), g_t, g_b, np.repeat(target[sel], p_len), p_t, p_b
    )
    nf = np.bincount(f_obj, minlength=n_obj)
    has = nf > 0
    denom = np.maximum(nf, 1)
    o_v = np.bincount(f_obj, weights=f_iou, minlength=n_obj) / denom
    o_h = [np.bincount(f_obj, weights=at_least(f_iou, t).astype(np.float64), minlength=n_obj) / denom
           for t in V_THRESHOLDS]
    # tube vIoU: predicted frames serving no GT frame (ids >= n_obj: tracks given to no GT object)
    p_id = target.copy()
    spare = np.flatnonzero(p_id < 0)
    p_id[spare] = n_obj + np.arange(spare.shape[0])
    a_len, a_t, a_b = rows_of(p_tracks)
    unserved = batch_unserved_pred_frames(
        np.repeat(np.arange(n_obj), g_len), g_t, g_b, np.repeat(p_id, a_len), a_t, a_b, n_obj + spare.shape[0]
    )
    id_qa = np.concatenate([g_seg, p_seg[spare]]).astype(np.intp)
    q_extra = np.bincount(id_qa, weights=unserved, minlength=ns)
    q_iou_sum = np.bincount(g_seg, weights=np.bincount(f_obj, weights=f_iou, minlength=n_obj), minlength=ns)
    qa_of = g_seg[has]
    q_cnt = np.bincount(qa_of, minlength=ns)
    q_den = np.maximum(q_cnt, 1)
    q_frames = np.bincount(qa_of, weights=nf[has], minlength=ns).astype(np.intp).tolist()
    q_v = (np.bincount(qa_of, weights=o_v[has], minlength=ns) / q_den).tolist()
    q_h = list(zip(*[(np.bincount(qa_of, weights=h[has], minlength=ns) / q_den).tolist() for h in o_h],
                   strict=True)) if ns else []
    q_cnt_l = q_cnt.tolist()
    q_tube = (q_iou_sum / np.maximum(np.asarray(q_frames, dtype=np.float64) + q_extra, 1.0)).tolist()
    # ---- one QAScore per QA
    v_col, ap_col, ex_col, nf_col = list(none_col), list(none_col), [False] * n, list(zero_col)
    tube_col = list(none_col)
    for k, i in enumerate(s_rows):
        if q_cnt_l[k]:
            v_col[i], ap_col[i], nf_col[i], tube_col[i] = q_v[k], q_h[k], q_frames[k], q_tube[k]
        else:
            ex_col[i] = True
    return list(map(QAScore, [it.qa_id for it in items], [it.kind for it in items], parsed_ok, t_iou,
                    o_acc, o_prec, o_f1, v_col, ap_col, ex_col, nf_col, o_ng, o_np, o_m, tube_col))


def _pct(values: Iterable[float]) -> float | None:
    arr = np.fromiter(values, dtype=np.float64)
    if arr.size == 0:
        return None
    return round(float(arr.mean()) * 100.0, 6)


def _temporal_block(scores: Sequence[QAScore]) -> dict[str, Any]:
    t = [s.t_iou for s in scores if s.t_iou is not None]
    out: dict[str, Any] = {"n": len(scores), "n_unparsed": sum(not s.parsed for s in scores), "m_tIoU": _pct(t)}
    for th in R1_THRESHOLDS:
        out[f"R1@{th}"] = _pct(at_least(t, th).astype(np.float64))
    return out


def _spatial_block(scores: Sequence[QAScore]) -> dict[str, Any]:
    kept = [s for s in scores if not s.spatial_excluded and s.v_iou is not None]
    out: dict[str, Any] = {
        "n_excluded": sum(s.spatial_excluded for s in scores),
        "n_scored": len(kept),
        "m_vIoU": _pct(s.v_iou for s in kept if s.v_iou is not None),
    }
    for k, th in enumerate(V_THRESHOLDS):
        out[f"AP@{th}"] = _pct(s.ap[k] for s in kept if s.ap is not None)
    tube = [s.tube_v_iou for s in kept if s.tube_v_iou is not None]
    out["m_tube_vIoU"] = _pct(tube)
    for th in TUBE_THRESHOLDS:
        out[f"tube_vIoU@{th}"] = _pct(at_least(tube, th).astype(np.float64))
    return out


def aggregate(scores: Sequence[QAScore]) -> dict[str, dict[str, Any]]:
    """The ``tasks`` block of ``metrics.json`` (percentages; ``None`` where nothing was scored)."""
    by_task: dict[str, list[QAScore]] = {"temporal": [], "spatial": [], "spatiotemporal": []}
    for s in scores:
        by_task[s.task].append(s)
    temporal = _temporal_block(by_task["temporal"])
    sp = by_task["spatial"]
    spatial: dict[str, Any] = {
        "n": len(sp),
        "n_unparsed": sum(not s.parsed for s in sp),
        "object_acc": _pct(s.object_acc for s in sp if s.object_acc is not None),
        "object_precision": _pct(s.object_precision for s in sp if s.object_precision is not None),
        "object_f1": _pct(s.object_f1 for s in sp if s.object_f1 is not None),
        **_spatial_block(sp),
    }
    st = by_task["spatiotemporal"]
    spatiotemporal = {**_temporal_block(st), **_spatial_block(st)}
    return {"temporal": temporal, "spatial": spatial, "spatiotemporal": spatiotemporal}
