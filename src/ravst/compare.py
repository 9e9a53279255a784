"""Uncertainty of the figures: bootstrap over videos (``ravst eval --bootstrap``) and the paired
comparison of two runs (``ravst compare RUN_A RUN_B``).

QAs of one video are correlated (same clip, same events), so replicates resample **videos** with
replacement, each drawn video bringing all its QAs. A figure of a replicate is the figure of
``metrics.json`` computed on that multiset of QAs (:func:`figure_columns` gives, per figure, each
QA's contribution and whether it enters the figure, so a replicate is two weighted sums). The
interval is the 2.5 / 97.5 percentile of the replicates. ``numpy.random.default_rng(seed)``
draws every replicate, so a seed gives exactly the same intervals.

``ravst compare`` pairs the QAs of two evaluation directories by ``qa_id`` and resamples videos
once for both runs: per figure the difference B - A, its 95 % interval and a two-sided
paired-bootstrap p-value, ``(1 + #{|d_b - d| >= |d|}) / (N + 1)`` (the replicates centred on the
observed difference ``d`` stand in for the null distribution).

>>> rows = [{"qa_id": f"v{i}/0/temporal/0", "video": f"v{i}", "kind": "temporal",
...          "lenient": {"kind": "temporal", "parsed": True, "t_iou": i / 10}} for i in range(10)]
>>> point, ci = bootstrap_figures(rows, "lenient", n=200, seed=0)
>>> point["temporal.m_tIoU"], ci["temporal.m_tIoU"][0] < 45.0 < ci["temporal.m_tIoU"][1]
(45.0, True)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ravst.metrics.functional import at_least
from ravst.metrics.ravst_protocol import R1_THRESHOLDS, TUBE_THRESHOLDS, V_THRESHOLDS

__all__ = [
    "CI_LEVEL",
    "add_arguments",
    "bootstrap_figures",
    "compare_runs",
    "figure_columns",
    "format_comparison",
    "nest",
    "run",
]

log = logging.getLogger(__name__)

CI_LEVEL = 95.0
"""Confidence level of every interval, in percent."""

Column = tuple[np.ndarray, np.ndarray]  # (value of each QA in percent, whether it enters the figure)


def _spatial_kind(kind: str) -> bool:
    return kind.startswith("spatial-")


def figure_columns(scores: Sequence[Mapping[str, Any]]) -> dict[str, Column]:
    """Per figure ``task.key`` of the ``tasks`` block, each QA's value (percent) and mask.

    ``scores``: per-QA score dicts (``QAScore.as_dict()``, the ``lenient`` / ``strict`` entries of
    ``per_qa.jsonl``). The masked mean of a column is the figure of ``metrics.json``.
    """
    n = len(scores)

    def col(task_ok: Sequence[bool], getter: Any) -> Column:
        vals = np.zeros(n)
        mask = np.zeros(n, dtype=bool)
        for i, (ok, s) in enumerate(zip(task_ok, scores, strict=True)):
            v = getter(s) if ok else None
            if v is not None:
                vals[i], mask[i] = 100.0 * float(v), True
        return vals, mask

    kinds = [s["kind"] for s in scores]
    is_t = [k == "temporal" for k in kinds]
    is_s = [_spatial_kind(k) for k in kinds]
    is_st = [k == "spatiotemporal" for k in kinds]
    out: dict[str, Column] = {}
    for task, sel in (("temporal", is_t), ("spatiotemporal", is_st)):
        vals, mask = col(sel, lambda s: s.get("t_iou"))
        out[f"{task}.m_tIoU"] = (vals, mask)
        for th in R1_THRESHOLDS:
            out[f"{task}.R1@{th}"] = (100.0 * at_least(vals / 100.0, th), mask)
    spatial_cols = {"object_acc": "object_acc", "object_precision": "object_precision", "object_f1": "object_f1"}
    for key, field in spatial_cols.items():
        out[f"spatial.{key}"] = col(is_s, lambda s, f=field: s.get(f))
    for task, sel in (("spatial", is_s), ("spatiotemporal", is_st)):
        kept = [ok and not s.get("spatial_excluded") for ok, s in zip(sel, scores, strict=True)]
        out[f"{task}.m_vIoU"] = col(kept, lambda s: s.get("v_iou"))
        for th in V_THRESHOLDS:
            out[f"{task}.AP@{th}"] = col(kept, lambda s, t=th: None if s.get("ap") is None else s["ap"][f"AP@{t}"])
        vals, mask = col(kept, lambda s: s.get("tube_v_iou"))
        out[f"{task}.m_tube_vIoU"] = (vals, mask)
        for th in TUBE_THRESHOLDS:
            out[f"{task}.tube_vIoU@{th}"] = (100.0 * at_least(vals / 100.0, th), mask)
    out["parse_rate"] = (100.0 * np.array([bool(s.get("parsed")) for s in scores], dtype=np.float64),
                         np.ones(n, dtype=bool))
    return out


def _video_index(rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, int]:
    videos: dict[str, int] = {}
    idx = np.array([videos.setdefault(str(r["video"]), len(videos)) for r in rows], dtype=np.intp)
    return idx, len(videos)


def _weights(n_videos: int, n: int, seed: int) -> np.ndarray:
    """(n, n_videos) counts: how often each video is drawn in each replicate."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_videos, size=(n, n_videos))
    flat = (draws + (np.arange(n) * n_videos)[:, None]).reshape(-1)
    return np.bincount(flat, minlength=n * n_videos).reshape(n, n_videos).astype(np.float64)


def _replicates(col: Column, video: np.ndarray, w: np.ndarray) -> tuple[float | None, np.ndarray]:
    """The figure (masked mean) and its value in every replicate (NaN where no QA enters it)."""
    vals, mask = col
    if not mask.any():
        return None, np.full(w.shape[0], np.nan)
    n_videos = w.shape[1]
    per_video_sum = np.bincount(video[mask], weights=vals[mask], minlength=n_videos)
    per_video_cnt = np.bincount(video[mask], minlength=n_videos).astype(np.float64)
    num = w @ per_video_sum
    den = w @ per_video_cnt
    rep = np.full(w.shape[0], np.nan)
    np.divide(num, den, out=rep, where=den > 0)
    return float(vals[mask].mean()), rep


def _interval(rep: np.ndarray) -> list[float] | None:
    ok = rep[np.isfinite(rep)]
    if ok.size == 0:
        return None
    half = (100.0 - CI_LEVEL) / 2
    lo, hi = np.percentile(ok, [half, 100.0 - half])
    return [round(float(lo), 6), round(float(hi), 6)]


def bootstrap_figures(rows: Sequence[Mapping[str, Any]], mode: str, *, n: int, seed: int) -> tuple[
        dict[str, float | None], dict[str, list[float] | None]]:
    """Point value and 95 % bootstrap-over-videos interval of every figure of ``rows[i][mode]``."""
    if n < 1:
        raise ValueError(f"--bootstrap: the number of replicates must be >= 1, got {n}")
    video, n_videos = _video_index(rows)
    w = _weights(n_videos, n, seed)
    point: dict[str, float | None] = {}
    ci: dict[str, list[float] | None] = {}
    for name, col in figure_columns([r[mode] for r in rows]).items():
        p, rep = _replicates(col, video, w)
        point[name] = None if p is None else round(p, 6)
        ci[name] = None if p is None else _interval(rep)
    return point, ci


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"temporal.m_tIoU": x, "parse_rate": y}`` -> ``{"temporal": {"m_tIoU": x}, "parse_rate": y}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if "." in key:
            task, fig = key.split(".", 1)
            out.setdefault(task, {})[fig] = value
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# ravst compare


def _load_rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "per_qa.jsonl" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise ValueError(f"{run_dir}: no per_qa.jsonl (give a directory written by 'ravst eval --out')")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {number}: not JSON ({exc.msg})") from None
        for field in ("qa_id", "video", "kind", "lenient", "strict"):
            if field not in row:
                raise ValueError(f"{path}, line {number}: missing field {field!r}")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no per-QA row")
    return rows


def compare_runs(rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]], *, mode: str = "lenient",
                 n: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Paired difference B - A of every figure on the QAs both runs scored, with its 95 %
    interval and paired-bootstrap p-value (videos resampled once for both runs)."""
    if n < 1:
        raise ValueError(f"--bootstrap: the number of replicates must be >= 1, got {n}")
    by_id_b = {r["qa_id"]: r for r in rows_b}
    pairs = [(a, by_id_b[a["qa_id"]]) for a in rows_a if a["qa_id"] in by_id_b]
    if not pairs:
        raise ValueError("the two runs have no qa_id in common")
    only_a = len(rows_a) - len(pairs)
    only_b = len(rows_b) - len(pairs)
    if only_a or only_b:
        log.warning("%d QA(s) only in run A and %d only in run B are left out of the comparison", only_a, only_b)
    shared_a = [a for a, _ in pairs]
    video, n_videos = _video_index(shared_a)
    w = _weights(n_videos, n, seed)
    cols_a = figure_columns([a[mode] for a, _ in pairs])
    cols_b = figure_columns([b[mode] for _, b in pairs])
    figures: dict[str, Any] = {}
    for name, col_a in cols_a.items():
        pa, ra = _replicates(col_a, video, w)
        pb, rb = _replicates(cols_b[name], video, w)
        if pa is None or pb is None:
            figures[name] = {"a": pa, "b": pb, "diff": None, "ci": None, "p": None}
            continue
        d = pb - pa
        rep = rb - ra
        ok = rep[np.isfinite(rep)]
        p = (1 + int(np.count_nonzero(np.abs(ok - d) >= abs(d) - 1e-12))) / (ok.size + 1)
        figures[name] = {"a": round(pa, 6), "b": round(pb, 6), "diff": round(d, 6), "ci": _interval(rep),
                         "p": round(p, 6)}
    return {"mode": mode, "n_bootstrap": n, "seed": seed, "level": CI_LEVEL, "n_qas": len(pairs),
            "n_videos": n_videos, "n_only_a": only_a, "n_only_b": only_b, "figures": figures}


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def format_comparison(result: Mapping[str, Any], label_a: str = "A", label_b: str = "B") -> str:
    head = ["figure", label_a, label_b, "B - A", f"{result['level']:.0f}% CI", "p"]
    rows = []
    for name, f in result["figures"].items():
        ci = "-" if f["ci"] is None else f"[{f['ci'][0]:.2f}, {f['ci'][1]:.2f}]"
        rows.append([name, _f(f["a"]), _f(f["b"]), _f(f["diff"]), ci, "-" if f["p"] is None else f"{f['p']:.4f}"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = [f"paired comparison ({result['mode']}), {result['n_qas']} QAs in {result['n_videos']} videos, "
             f"bootstrap over videos x{result['n_bootstrap']} (seed {result['seed']})",
             "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths, strict=True)))]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
              for r in rows]
    return "\n".join(lines) + "\n"


from ravst.compare_cli import add_arguments, run  # noqa: E402  (the command line lives apart: no numpy for --help)
