"""Quadratic weighted kappa against scikit-learn, and the review report."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ravst.review.kappa import SCALE, agreement, build_report, quadratic_weighted_kappa

sklearn_metrics = pytest.importorskip("sklearn.metrics")

score = st.integers(min_value=1, max_value=4)
pairs = st.lists(st.tuples(score, score), min_size=1, max_size=60)


def sklearn_kappa(a: list[int], b: list[int], labels: list[int] | None) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return float(sklearn_metrics.cohen_kappa_score(a, b, labels=labels, weights="quadratic"))


def same(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(pairs)
def test_kappa_equals_sklearn_on_the_1_4_scale(p: list[tuple[int, int]]) -> None:
    a, b = [x for x, _ in p], [y for _, y in p]
    ours = quadratic_weighted_kappa(a, b, labels=SCALE)
    assert same(ours, sklearn_kappa(a, b, list(SCALE))), (p, ours)
    assert same(ours, quadratic_weighted_kappa(b, a, labels=SCALE))  # symmetric in the raters


@settings(max_examples=200, deadline=None)
@given(pairs)
def test_kappa_equals_sklearn_with_observed_labels(p: list[tuple[int, int]]) -> None:
    a, b = [x for x, _ in p], [y for _, y in p]
    assert same(quadratic_weighted_kappa(a, b), sklearn_kappa(a, b, None))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=40),
       st.lists(st.integers(0, 9), min_size=1, max_size=10, unique=True))
def test_kappa_equals_sklearn_with_other_label_sets(p: list[tuple[int, int]], labels: list[int]) -> None:
    a, b = [x for x, _ in p], [y for _, y in p]
    keep = [i for i in range(len(a)) if a[i] in labels and b[i] in labels]
    if not keep:  # scikit-learn divides by zero there; we return nan
        assert math.isnan(quadratic_weighted_kappa(a, b, labels=labels))
        return
    assert same(quadratic_weighted_kappa(a, b, labels=labels), sklearn_kappa(a, b, labels))


def test_kappa_known_values_and_edges() -> None:
    assert quadratic_weighted_kappa([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert quadratic_weighted_kappa([1, 4], [4, 1], labels=SCALE) == pytest.approx(-1.0)
    assert math.isnan(quadratic_weighted_kappa([3, 3], [3, 3], labels=SCALE))  # no expected disagreement
    assert math.isnan(quadratic_weighted_kappa([], [], labels=SCALE))
    with pytest.raises(ValueError, match="2 and 1"):
        quadratic_weighted_kappa([1, 2], [1])
    with pytest.raises(ValueError, match="distinct"):
        quadratic_weighted_kappa([1], [1], labels=[1, 1])


def test_agreement_and_report() -> None:
    stats = agreement([(4, 4), (4, 3), (1, 3), (2, 2)])
    assert stats.n_pairs == 4 and stats.exact_agreement == 0.5 and stats.within_one == 0.75
    assert stats.kappa == pytest.approx(sklearn_kappa([4, 4, 1, 2], [4, 3, 3, 2], list(SCALE)))
    report = build_report(
        [("temporal", [4, 4]), ("temporal", [1, 2]), ("spatial", [3, 4, 1]), ("spatial", [2]), ("spatial", [])],
        min_score=2.5,
    )
    assert report.n_items == 5 and report.n_items_by_num_scores == {2: 2, 3: 1, 1: 1, 0: 1}
    assert report.overall.n_pairs == 3 and report.per_task["spatial"].n_pairs == 1
    assert report.score_histogram == {1: 2, 2: 2, 3: 1, 4: 3}
    assert report.mean_score_all == pytest.approx((4 + 1.5 + 8 / 3 + 2) / 4)
    assert report.n_kept == 2 and report.mean_score_kept == pytest.approx((4 + 8 / 3) / 2)
    text = report.to_text()
    assert "overall" in text and "temporal" in text and "spatial" in text
    assert report.to_dict()["per_task"]["spatial"]["kappa"] == 0.0  # one disagreeing pair
    empty = build_report([("temporal", [3, 3])])
    assert "n/a" in empty.to_text() and empty.to_dict()["overall"]["kappa"] is None
