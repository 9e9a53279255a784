"""The ``vstar`` protocol: V-STaR ``eval.py`` semantics applied to R-AVST QAs, for comparison.

What V-STaR's ``eval.py`` does (and this module reproduces):

* temporal: IoU of ONE predicted ``[start, end]`` (the first one here) with the GT interval,
  0 when there is none; ``R1@t`` counts ``tIoU >= t``;
* spatial: per sample, every GT box row (a timestamp; several instances = several rows) takes the
  BEST IoU among ALL predicted boxes at exactly the same timestamp (names are ignored, no
  one-to-one matching, extra predicted boxes/frames cost nothing, a missing frame scores 0);
  ``m_vIoU`` is the mean over rows, "AP@t" the share of rows with IoU >= t; both averaged over
  samples.

Adaptations, each needed to run it on R-AVST and stated in docs/metrics.md: GT rows with an empty
box (``[0, 0, 0, 0]``) are skipped and a QA with no non-empty GT box is excluded (V-STaR has no
empty GT boxes; scoring them 0 would make GT-vs-GT score below 100); object accuracy (not in
V-STaR) follows the official R-AVST reward: a GT object is found when ANY predicted name reaches
``tau`` (no one-to-one matching).

>>> from types import SimpleNamespace
>>> from ravst.types import Answer, QAItem, Task, Track
>>> from ravst.similarity import get_similarity
>>> g = Track("dog", [1.0, 2.0], [[0, 0, 10, 10], [0, 0, 10, 10]])
>>> item = QAItem("v/0/spatial/0", "v", 10.0, 0, 1, Task.SPATIAL, 0, "What?",
...               Answer(objects=("dog",), tracks=(g,)))
>>> p = Track("cat", [1.0], [[0, 0, 10, 5]])
>>> s = score_qa(item, SimpleNamespace(answer=Answer(objects=("cat",), tracks=(p,))), get_similarity("exact"))
>>> (s.v_iou, s.ap, s.object_acc)
(0.25, (0.5, 0.5), 0.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ravst.metrics.functional import box_area, box_iou, iou_1d
from ravst.metrics.ravst_protocol import (
    V_THRESHOLDS,
    HasAnswer,
    QAScore,
    _Similarity,
    is_parsed,
    predicted_names,
)
from ravst.types import Answer, QAItem, Task, Track

__all__ = ["TIME_MATCH_EPS_S", "object_recall", "score_qa", "spatial_rows"]

TIME_MATCH_EPS_S = 1e-6
"""V-STaR looks predicted frames up by their timestamp key: equal times, up to float noise."""


def _stack(tracks: tuple[Track, ...]) -> tuple[np.ndarray, np.ndarray]:
    if not tracks:
        return np.zeros(0), np.zeros((0, 4))
    return np.concatenate([t.times_s for t in tracks]), np.concatenate([t.xyxy for t in tracks])


def spatial_rows(pred_tracks: tuple[Track, ...], gt_tracks: tuple[Track, ...]) -> np.ndarray:
    """Best IoU of every non-empty GT row among all predicted boxes at the same time (R,)."""
    gt_t, gt_b = _stack(gt_tracks)
    keep = box_area(gt_b) > 0
    gt_t, gt_b = gt_t[keep], gt_b[keep]
    pr_t, pr_b = _stack(pred_tracks)
    if gt_t.shape[0] == 0 or pr_t.shape[0] == 0:
        return np.zeros(gt_t.shape[0])
    same_time = np.abs(gt_t[:, None] - pr_t[None, :]) <= TIME_MATCH_EPS_S
    ious = np.where(same_time, box_iou(gt_b, pr_b), 0.0)
    return ious.max(axis=1)


def object_recall(pred: list[str], gt: list[str], similarity: _Similarity) -> tuple[float, float, float, int]:
    """Official R-AVST object reward: share of GT names reached by any predicted name (>= tau)."""
    if not gt or not pred:
        return 0.0, 0.0, 0.0, 0
    ok = similarity.matrix(pred, gt) >= similarity.tau
    found = int(ok.any(axis=0).sum())
    acc = found / len(gt)
    prec = float(ok.any(axis=1).sum()) / len(pred)
    f1 = 2 * acc * prec / (acc + prec) if acc + prec else 0.0
    return acc, prec, f1, found


def score_qa(item: QAItem, parsed: HasAnswer | None, similarity: _Similarity) -> QAScore:
    """Score one QA with V-STaR semantics (``parsed=None``: no prediction, all zeros)."""
    answer = parsed.answer if parsed is not None else Answer()
    gt = item.answer
    fields: dict[str, Any] = {
        "qa_id": item.qa_id,
        "kind": item.kind,
        "parsed": parsed is not None and is_parsed(item.task, answer),
    }
    if item.task in (Task.TEMPORAL, Task.SPATIOTEMPORAL) and gt.span is not None:
        if answer.spans:
            first = answer.spans[0]
            fields["t_iou"] = float(iou_1d([[first.start_s, first.end_s]], [gt.span.as_list()])[0, 0])
        else:
            fields["t_iou"] = 0.0
    if item.task is Task.SPATIAL and gt.objects:
        names = predicted_names(answer)
        acc, prec, f1, m = object_recall(names, list(gt.objects), similarity)
        fields.update(
            object_acc=acc,
            object_precision=prec,
            object_f1=f1,
            n_gt_objects=len(gt.objects),
            n_pred_objects=len(names),
            n_matched_objects=m,
        )
    if item.task in (Task.SPATIAL, Task.SPATIOTEMPORAL):
        rows = spatial_rows(answer.tracks, gt.tracks)
        if rows.shape[0] == 0:
            fields.update(spatial_excluded=True)
        else:
            fields.update(
                v_iou=float(rows.mean()),
                ap=tuple(float((rows >= t).mean()) for t in V_THRESHOLDS),
                n_frames=int(rows.shape[0]),
            )
    return QAScore(**fields)
