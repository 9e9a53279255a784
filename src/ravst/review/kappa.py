"""Inter-rater agreement: quadratic weighted Cohen's kappa (pure numpy) and the review report.

The paper (appendix "Human Evaluation") scores every test item 1-4 by two reviewers
(4 excellent, 3 good, 2 fair, 1 poor) and reports a quadratic weighted kappa of 0.71, with a
mean score of 2.54 before and 2.93 after curation.

>>> round(quadratic_weighted_kappa([1, 2, 3, 4], [1, 2, 3, 4]), 6)
1.0
>>> round(quadratic_weighted_kappa([1, 2, 3, 4], [1, 2, 4, 3], labels=SCALE), 4)
0.8
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: ``ravst CMD --help`` stays light
    import numpy as np

__all__ = [
    "SCALE",
    "SCALE_LABELS",
    "AgreementStats",
    "ReviewReport",
    "agreement",
    "build_report",
    "quadratic_weighted_kappa",
]

SCALE: tuple[int, ...] = (1, 2, 3, 4)
"""The paper's 1-4 scoring scale."""

SCALE_LABELS: dict[int, str] = {
    4: "Excellent: fully accurate and consistent with both visual and audio content",
    3: "Good: mostly accurate, with minor mismatches or omissions",
    2: "Fair: partially correct, with several inconsistencies or missing details",
    1: "Poor: largely inaccurate or inconsistent with the video",
}


def quadratic_weighted_kappa(
    rater_a: Sequence[int] | np.ndarray,
    rater_b: Sequence[int] | np.ndarray,
    *,
    labels: Sequence[int] | None = None,
) -> float:
    """Cohen's kappa with quadratic weights ``(i - j)**2`` over the positions of ``labels``.

    ``labels=None`` uses the sorted union of the observed values (scikit-learn's default, where
    the weight is the distance between label *positions*); pass ``labels=SCALE`` to weigh by the
    distance on the full 1-4 scale even when a score never occurs. Pairs whose value is not in
    ``labels`` are ignored (as scikit-learn does). Returns ``nan`` when the expected weighted
    disagreement is zero (for example both raters always give the same single score).
    """
    import numpy as np

    a = np.asarray(rater_a).reshape(-1)
    b = np.asarray(rater_b).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"kappa: the two raters have {a.size} and {b.size} scores")
    if labels is None:
        label_arr = np.unique(np.concatenate([a, b]))
    else:
        label_arr = np.asarray(list(labels))
        if np.unique(label_arr).size != label_arr.size:
            raise ValueError(f"kappa: labels must be distinct, got {list(labels)}")
    n = label_arr.size
    if n == 0 or a.size == 0:
        return math.nan
    index = {value.item(): i for i, value in enumerate(label_arr)}
    ia = np.array([index.get(v.item(), -1) for v in a], dtype=np.int64)
    ib = np.array([index.get(v.item(), -1) for v in b], dtype=np.int64)
    keep = (ia >= 0) & (ib >= 0)
    ia, ib = ia[keep], ib[keep]
    if ia.size == 0:
        return math.nan
    observed = np.zeros((n, n), dtype=np.float64)
    np.add.at(observed, (ia, ib), 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    positions = np.arange(n, dtype=np.float64)
    weights = (positions[:, None] - positions[None, :]) ** 2
    denominator = float((weights * expected).sum())
    if denominator == 0.0:
        return math.nan
    return 1.0 - float((weights * observed).sum()) / denominator


@dataclass(frozen=True)
class AgreementStats:
    """Agreement of one group of doubly scored items."""

    n_pairs: int
    kappa: float
    exact_agreement: float  # share of pairs with the same score
    within_one: float  # share of pairs at most one point apart


def agreement(pairs: Sequence[tuple[int, int]]) -> AgreementStats:
    """Quadratic weighted kappa (on the 1-4 scale) and raw agreement of score pairs.

    >>> agreement([(4, 4), (3, 2), (1, 1)]).exact_agreement
    0.6666666666666666
    """
    import numpy as np

    if not pairs:
        return AgreementStats(0, math.nan, math.nan, math.nan)
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    diff = np.abs(arr[:, 0] - arr[:, 1])
    return AgreementStats(
        n_pairs=int(arr.shape[0]),
        kappa=quadratic_weighted_kappa(arr[:, 0], arr[:, 1], labels=SCALE),
        exact_agreement=float(np.mean(diff == 0)),
        within_one=float(np.mean(diff <= 1)),
    )


@dataclass(frozen=True)
class ReviewReport:
    """What ``ravst review kappa`` prints.

    ``overall`` and ``per_task`` use items with (at least) two scores: the first two scores in
    submission order are rater A and rater B. ``mean_score_all`` is the mean over items of the
    item's mean score (every scored item); ``mean_score_kept`` the same over items whose mean
    score is >= ``min_score`` (the curated set), when a threshold is given.
    """

    n_items: int
    n_items_by_num_scores: dict[int, int]
    overall: AgreementStats
    per_task: dict[str, AgreementStats]
    mean_score_all: float
    min_score: float | None = None
    n_kept: int | None = None
    mean_score_kept: float | None = None
    score_histogram: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        def stats(s: AgreementStats) -> dict[str, object]:
            return {
                "n_pairs": s.n_pairs,
                "kappa": _json_float(s.kappa),
                "exact_agreement": _json_float(s.exact_agreement),
                "within_one": _json_float(s.within_one),
            }

        return {
            "n_items": self.n_items,
            "n_items_by_num_scores": {str(k): v for k, v in self.n_items_by_num_scores.items()},
            "overall": stats(self.overall),
            "per_task": {task: stats(s) for task, s in self.per_task.items()},
            "mean_score_all": _json_float(self.mean_score_all),
            "min_score": self.min_score,
            "n_kept": self.n_kept,
            "mean_score_kept": None if self.mean_score_kept is None else _json_float(self.mean_score_kept),
            "score_histogram": {str(k): v for k, v in self.score_histogram.items()},
        }

    def to_text(self) -> str:
        lines = [f"items: {self.n_items}"]
        counts = ", ".join(f"{k} score(s): {v}" for k, v in sorted(self.n_items_by_num_scores.items()))
        lines.append(f"items by number of scores: {counts}")
        hist = ", ".join(f"{k}: {self.score_histogram.get(k, 0)}" for k in SCALE)
        lines.append(f"scores given: {hist}")
        lines.append("")
        lines.append(f"{'group':<16} {'pairs':>6} {'kappa(qw)':>10} {'exact':>7} {'within1':>8}")
        rows = [("overall", self.overall), *sorted(self.per_task.items())]
        for name, s in rows:
            lines.append(
                f"{name:<16} {s.n_pairs:>6} {_fmt(s.kappa):>10} {_fmt(s.exact_agreement):>7} "
                f"{_fmt(s.within_one):>8}"
            )
        lines.append("")
        lines.append(f"mean score (all scored items): {_fmt(self.mean_score_all)}")
        if self.min_score is not None:
            lines.append(
                f"mean score (items with mean >= {self.min_score:g}, fully scored): "
                f"{_fmt(self.mean_score_kept if self.mean_score_kept is not None else math.nan)}"
                f" over {self.n_kept} items"
            )
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def build_report(
    item_scores: Iterable[tuple[str, Sequence[int]]],
    *,
    min_score: float | None = None,
    required_scores: int = 2,
) -> ReviewReport:
    """Report over ``(task, scores in submission order)`` per item (items with no score too).

    >>> r = build_report([("temporal", [4, 4]), ("spatial", [2, 3]), ("spatial", [])], min_score=3)
    >>> r.overall.n_pairs, r.mean_score_all, r.n_kept, r.mean_score_kept
    (2, 3.25, 1, 4.0)
    """
    import numpy as np

    n_items = 0
    by_count: dict[int, int] = {}
    hist: dict[int, int] = dict.fromkeys(SCALE, 0)
    pairs_all: list[tuple[int, int]] = []
    pairs_task: dict[str, list[tuple[int, int]]] = {}
    item_means: list[float] = []
    kept_means: list[float] = []
    for task, scores in item_scores:
        n_items += 1
        scores = [int(s) for s in scores]
        by_count[len(scores)] = by_count.get(len(scores), 0) + 1
        for s in scores:
            hist[s] = hist.get(s, 0) + 1
        if len(scores) >= 2:
            pair = (scores[0], scores[1])
            pairs_all.append(pair)
            pairs_task.setdefault(task, []).append(pair)
        if scores:
            mean = float(np.mean(scores))
            item_means.append(mean)
            if min_score is not None and len(scores) >= required_scores and mean >= min_score:
                kept_means.append(mean)
    return ReviewReport(
        n_items=n_items,
        n_items_by_num_scores=by_count,
        overall=agreement(pairs_all),
        per_task={task: agreement(p) for task, p in pairs_task.items()},
        mean_score_all=float(np.mean(item_means)) if item_means else math.nan,
        min_score=min_score,
        n_kept=None if min_score is None else len(kept_means),
        mean_score_kept=None
        if min_score is None
        else (float(np.mean(kept_means)) if kept_means else math.nan),
        score_histogram=hist,
    )
