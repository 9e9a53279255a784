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
    batch_frame_ious,
    batch_temporal_iou,
    match_one_to_one,
    object_spatial_score,
    temporal_iou,
    track_frame_ious,
)
from ravst.types import Answer, QAItem, Task, Track

__all__ = [
    "KINDS",
    "R1_THRESHOLDS",
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
    ``v_iou`` and ``ap`` are None.
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
) -> tuple[float | None, tuple[float, ...] | None, int]:
    assigned = assign_tracks(pred_tracks, gt_tracks, similarity, by_order=by_order)
    v_ious: list[float] = []
    hits: list[tuple[float, ...]] = []
    n_frames = 0
    for j, g in enumerate(gt_tracks):
        i = assigned[j]
        if i >= 0:
            p = pred_tracks[i]
            f = track_frame_ious(p.times_s, p.xyxy, g.times_s, g.xyxy)
        else:
            f = track_frame_ious((), (), g.times_s, g.xyxy)
        if f.shape[0] == 0:
            continue  # this GT object has no scorable frame
        s = object_spatial_score(f, V_THRESHOLDS)
        n_frames += s.n_frames
        v_ious.append(s.v_iou)
        hits.append(s.hit_rates)
    if not v_ious:
        return None, None, 0
    ap = tuple(float(v) for v in np.mean(np.asarray(hits), axis=0))
    return float(np.mean(v_ious)), ap, n_frames


def score_qa(item: QAItem, parsed: HasAnswer | None, similarity: _Similarity) -> QAScore:
    """Score one QA under the ``ravst`` protocol (``parsed=None``: no prediction, all zeros)."""
    answer = parsed.answer if parsed is not None else Answer()
    gt = item.answer
    ok = parsed is not None and is_parsed(item.task, answer)
    fields: dict[str, Any] = {"qa_id": item.qa_id, "kind": item.kind, "parsed": ok}
    if item.task in (Task.TEMPORAL, Task.SPATIOTEMPORAL) and gt.span is not None:
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
        v, ap, n = _spatial(answer.tracks, gt.tracks, similarity, by_order=item.task is Task.SPATIOTEMPORAL)
        fields.update(v_iou=v, ap=ap, n_frames=n, spatial_excluded=v is None)
    return QAScore(**fields)


class _TableSimilarity:
    """Similarities of a whole split computed in one call, looked up per QA (same numbers)."""

    MAX_CELLS = 4_000_000

    def __init__(self, similarity: _Similarity, pred: Iterable[str], gt: Iterable[str]) -> None:
        self.tau = similarity.tau
        self._p = {n: i for i, n in enumerate(dict.fromkeys(pred))}
        self._g = {n: i for i, n in enumerate(dict.fromkeys(gt))}
        self._table = similarity.matrix(list(self._p), list(self._g))

    def matrix(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        if len(a) == 1 and len(b) == 1:
            i, j = self._p[a[0]], self._g[b[0]]
            return self._table[i : i + 1, j : j + 1]
        ia = [self._p[x] for x in a]
        ib = [self._g[y] for y in b]
        return self._table[np.ix_(ia, ib)]


def score_batch(
    items: Sequence[QAItem], parsed: Sequence[HasAnswer | None], similarity: _Similarity
) -> list[QAScore]:
    """:func:`score_qa` of a whole split at once (same numbers, up to float summation order).

    Temporal IoUs and every frame of every GT object are computed in a few array operations over
    the whole split; only name matching (tiny matrices) runs per QA.
    """
    if len(items) != len(parsed):
        raise ValueError(f"score_batch: {len(items)} items but {len(parsed)} parsed answers")
    answers = [p.answer if p is not None else Answer() for p in parsed]
    n = len(items)
    pred_names = {x for i, a in enumerate(answers) if items[i].task is not Task.TEMPORAL
                  for x in (*a.objects, *(t.name for t in a.tracks))}
    gt_names = {x for it in items if it.task is not Task.TEMPORAL
                for x in (*it.answer.objects, *(t.name for t in it.answer.tracks))}
    if len(pred_names) * len(gt_names) <= _TableSimilarity.MAX_CELLS:
        similarity = _TableSimilarity(similarity, sorted(pred_names), sorted(gt_names))
    # temporal, all QAs at once
    t_rows = [i for i, it in enumerate(items) if it.task is not Task.SPATIAL and it.answer.span is not None]
    t_iou = np.full(n, np.nan)
    if t_rows:
        gt_spans = np.array([items[i].answer.span.as_list() for i in t_rows])  # type: ignore[union-attr]
        owner = [k for k, i in enumerate(t_rows) for _ in answers[i].spans]
        spans = [[s.start_s, s.end_s] for i in t_rows for s in answers[i].spans]
        t_iou[t_rows] = batch_temporal_iou(owner, spans, gt_spans)
    # names (per QA, tiny) and the rows of every GT object and of its assigned predicted track
    obj: list[tuple[float, float, float, int, int, int] | None] = [None] * n
    g_obj, g_t, g_b, p_obj, p_t, p_b = [], [], [], [], [], []
    obj_qa: list[int] = []
    for i, it in enumerate(items):
        if it.task is Task.TEMPORAL:
            continue
        a, gt = answers[i], it.answer
        if it.task is Task.SPATIAL and gt.objects:
            names = predicted_names(a)
            acc, prec, f1, m = object_scores(names, list(gt.objects), similarity)
            obj[i] = (acc, prec, f1, len(gt.objects), len(names), m)
        assigned = assign_tracks(a.tracks, gt.tracks, similarity, by_order=it.task is Task.SPATIOTEMPORAL)
        for j, g in enumerate(gt.tracks):
            k = len(obj_qa)
            obj_qa.append(i)
            g_obj.append(np.full(len(g), k))
            g_t.append(g.times_s)
            g_b.append(g.xyxy)
            if assigned[j] >= 0:
                pr = a.tracks[assigned[j]]
                p_obj.append(np.full(len(pr), k))
                p_t.append(pr.times_s)
                p_b.append(pr.xyxy)

    def cat(parts: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(shape)

    n_obj = len(obj_qa)
    f_obj, f_iou = batch_frame_ious(
        cat(g_obj, (0,)).astype(np.intp), cat(g_t, (0,)), cat(g_b, (0, 4)),
        cat(p_obj, (0,)).astype(np.intp), cat(p_t, (0,)), cat(p_b, (0, 4)),
    )
    nf = np.bincount(f_obj, minlength=n_obj)
    has = nf > 0
    denom = np.maximum(nf, 1)
    o_v = np.bincount(f_obj, weights=f_iou, minlength=n_obj) / denom
    o_h = [np.bincount(f_obj, weights=(f_iou >= t).astype(np.float64), minlength=n_obj) / denom for t in V_THRESHOLDS]
    qa_of = np.asarray(obj_qa, dtype=np.intp)[has]
    q_cnt = np.bincount(qa_of, minlength=n)
    q_frames = np.bincount(qa_of, weights=nf[has], minlength=n)
    q_den = np.maximum(q_cnt, 1)
    q_v = np.bincount(qa_of, weights=o_v[has], minlength=n) / q_den
    q_h = [np.bincount(qa_of, weights=h[has], minlength=n) / q_den for h in o_h]
    out = []
    for i, it in enumerate(items):
        f: dict[str, Any] = {"qa_id": it.qa_id, "kind": it.kind,
                             "parsed": parsed[i] is not None and is_parsed(it.task, answers[i])}
        if not np.isnan(t_iou[i]):
            f["t_iou"] = float(t_iou[i])
        if obj[i] is not None:
            acc, prec, f1, ng, npred, m = obj[i]  # type: ignore[misc]
            f.update(object_acc=acc, object_precision=prec, object_f1=f1,
                     n_gt_objects=ng, n_pred_objects=npred, n_matched_objects=m)
        if it.task is not Task.TEMPORAL:
            if q_cnt[i]:
                f.update(v_iou=float(q_v[i]), ap=tuple(float(h[i]) for h in q_h), n_frames=int(q_frames[i]))
            else:
                f.update(spatial_excluded=True)
        out.append(QAScore(**f))
    return out


def _pct(values: Iterable[float]) -> float | None:
    arr = np.fromiter(values, dtype=np.float64)
    if arr.size == 0:
        return None
    return round(float(arr.mean()) * 100.0, 6)


def _temporal_block(scores: Sequence[QAScore]) -> dict[str, Any]:
    t = [s.t_iou for s in scores if s.t_iou is not None]
    out: dict[str, Any] = {"n": len(scores), "n_unparsed": sum(not s.parsed for s in scores), "m_tIoU": _pct(t)}
    for th in R1_THRESHOLDS:
        out[f"R1@{th}"] = _pct(float(v >= th) for v in t)
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
