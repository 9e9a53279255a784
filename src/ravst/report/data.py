"""What the report reads: the output folders of ``ravst eval`` and, optionally, the QA file.

An evaluation folder holds ``metrics.json`` (required) and ``per_qa.jsonl`` (one row per QA, as
written by :func:`ravst.evaluate.write_outputs`); ``metrics.json`` names the ground truth
(``gt``) and predictions (``pred``, or ``"gt"`` when the GT was scored against itself) it was
computed from, which is where the report finds the predicted boxes.

>>> group_of_length(12.0), group_of_length(45.0)
('short', 'long')
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ravst.types import Prediction, QAItem

__all__ = ["EvalRun", "dataset_records", "group_of_length", "load_eval", "load_predictions"]

log = logging.getLogger(__name__)

LENGTH_BOUNDS_S = (20.0, 40.0)  # short < 20 s <= medium < 40 s <= long, as in ravst.evaluate


def group_of_length(duration_s: float) -> str:
    if duration_s < LENGTH_BOUNDS_S[0]:
        return "short"
    return "medium" if duration_s < LENGTH_BOUNDS_S[1] else "long"


@dataclass(frozen=True)
class EvalRun:
    """One evaluated model: its name, folder, ``metrics.json`` and per-QA rows."""

    name: str
    path: Path
    metrics: dict[str, Any]
    rows: tuple[dict[str, Any], ...] = ()
    pred_path: Path | None = None  # predictions JSONL; None when absent or when pred was "gt"
    pred_is_gt: bool = False
    backend: str = "unknown"  # the "model" field of the predictions, when they have one
    predictions: dict[str, Prediction] = field(default_factory=dict)  # qa_id -> prediction
    _by_id: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {str(r["qa_id"]): r for r in self.rows})

    def row(self, qa_id: str) -> dict[str, Any] | None:
        """The ``per_qa.jsonl`` row of a QA, or None."""
        return self._by_id.get(qa_id)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc


def _read_rows(path: Path) -> list[dict[str, Any]]:
    from ravst.jsonl import scan_jsonl

    rows = []
    for line in scan_jsonl(path):
        if not line.ok:
            raise ValueError(f"{path}: line {line.number}: {line.error}")
        if not isinstance(line.value, dict) or "qa_id" not in line.value:
            raise ValueError(f"{path}: line {line.number}: expected an object with a 'qa_id' field")
        rows.append(line.value)
    return rows


def load_predictions(path: Path) -> tuple[dict[str, Prediction], str]:
    """``(qa_id -> prediction, backend)`` of a predictions JSONL (the last line of a qa_id wins);
    the backend is the set of ``model`` fields found."""
    from ravst.formats.predictions import read_predictions

    preds = read_predictions(path)
    models = sorted({p.model for p in preds if p.model})
    return {p.qa_id: p for p in preds}, ", ".join(models) or "unknown"


def load_eval(path: Path, *, name: str | None = None, pred: Path | None = None) -> EvalRun:
    """Read an evaluation folder. ``pred`` overrides the predictions path in ``metrics.json``."""
    path = Path(path)
    metrics_path = path / "metrics.json"
    if not metrics_path.is_file():
        raise ValueError(f"{path}: no metrics.json (is this an output folder of `ravst eval --out`?)")
    metrics = _read_json(metrics_path)
    if not isinstance(metrics, dict) or "tasks" not in metrics:
        raise ValueError(f"{metrics_path}: field 'tasks' is missing")
    rows_path = path / "per_qa.jsonl"
    rows = _read_rows(rows_path) if rows_path.is_file() else []
    if not rows:
        log.warning("%s: no per_qa.jsonl rows; worst-case samples are not available", path)
    recorded = metrics.get("pred")
    pred_is_gt = pred is None and recorded == "gt"
    pred_path = pred
    if pred_path is None and recorded and recorded != "gt":
        candidate = Path(recorded)
        pred_path = candidate if candidate.is_file() else None
        if pred_path is None:
            log.warning("%s: predictions %s named in metrics.json are not found", path, recorded)
    preds: dict[str, Prediction] = {}
    backend = "ground truth (scored against itself)" if pred_is_gt else "unknown"
    if pred_path is not None:
        preds, backend = load_predictions(pred_path)
    return EvalRun(name or metrics.get("model") or path.name, path, metrics, tuple(rows), pred_path,
                   pred_is_gt, backend, preds)


def dataset_records(items: Sequence[QAItem], categories: Mapping[str, str | None] | None = None,
                    labels: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
    """Per-video records rebuilt from QAs (:func:`ravst.pipeline.stats.records_from_qas`, the
    counter of the build's ``stats.json`` ``qa_set``), for the Figure 3 plots and counts.
    ``labels`` (qa_id -> the event's labels, from a build's sidecar) and ``categories`` (qa_id ->
    event category, e.g. from ``per_qa.jsonl``) fill in what the official layout does not carry;
    the sidecar's labels win (they hold every label of a merged event)."""
    from ravst.pipeline.stats import records_from_qas

    merged: dict[str, Sequence[str]] = {q: [c] for q, c in (categories or {}).items() if c}
    merged.update({q: list(v) for q, v in (labels or {}).items() if v})
    return records_from_qas(items, merged)
