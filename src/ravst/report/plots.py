"""Figures of the report as PNG bytes (matplotlib, Agg backend; imported inside functions).

Box colours follow the paper's Figure 5: ground truth green, the first model red, then blue,
orange and magenta for further models.
"""

from __future__ import annotations

import io
import logging
import tempfile
import textwrap
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "GT_COLOUR",
    "MODEL_COLOURS",
    "bars",
    "dataset_figures",
    "frames_with_boxes",
    "timeline",
]

log = logging.getLogger(__name__)

GT_COLOUR = "#00c000"
MODEL_COLOURS = ("#ff2020", "#2060ff", "#ff9900", "#e040e0", "#00c0c0", "#8c564b", "#b0b000", "#7f7f7f")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def bars(title: str, groups: Sequence[str], series: Mapping[str, Sequence[float | None]],
         ylabel: str = "%") -> bytes:
    """Grouped bar chart: one group per x label, one bar per series (model); None = no bar."""
    return _png(bars_figure(title, groups, series, ylabel))


def bars_figure(title: str, groups: Sequence[str], series: Mapping[str, Sequence[float | None]],
                ylabel: str = "%") -> Any:
    """The matplotlib figure of :func:`bars` (not yet rendered)."""
    plt = _plt()
    legend_w = 2.4 if len(series) > 1 else 0.0
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(groups) * max(1, len(series)) ** 0.5 + 2) + legend_w, 3.4))
    n = max(1, len(series))
    width = 0.8 / n
    x = np.arange(len(groups))
    label_bars = len(groups) * n <= 40
    for i, (name, values) in enumerate(series.items()):
        vals = [np.nan if v is None else float(v) for v in values]
        xs = x + (i - (n - 1) / 2) * width
        ax.bar(xs, vals, width, label=name, color=MODEL_COLOURS[i % len(MODEL_COLOURS)])
        if label_bars:  # value on top of each bar, so that a 0 is seen as 0 (and "-" as missing)
            for xv, v in zip(xs, vals, strict=True):
                ax.text(xv, (0 if np.isnan(v) else v) + 1, "-" if np.isnan(v) else f"{v:.0f}",
                        ha="center", va="bottom", fontsize=6)
    # every group in the chart, also one whose bars are all missing (autoscaling only sees bars of
    # finite height and would leave such a group, and its "-" labels, outside the axes)
    ax.set_xlim(-0.5, max(len(groups), 1) - 0.5)
    if not any(v is not None for values in series.values() for v in values):
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", fontsize=9, color="#666")
    ax.set_xticks(x)
    rotate = max((len(g) for g in groups), default=0) > 10
    ax.set_xticklabels(groups, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 108)
    ax.set_title(textwrap.fill(title, 60), fontsize=9)
    if len(series) > 1:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def frame_row_size_in(n: int, width: int, height: int) -> tuple[float, float]:
    """Figure size (inches) of a row of ``n`` frames of ``width`` x ``height`` pixels.

    A landscape frame gets a 2.6 in tall figure (the panel as wide as the aspect gives); a
    portrait one a panel as wide as a square frame's (1.95 in) and the height its aspect needs
    (at most 6 in), so that a 9:16 clip is not drawn a thumbnail-thin strip.

    >>> frame_row_size_in(4, 320, 240)
    (10.6, 2.6)
    >>> frame_row_size_in(4, 360, 640)
    (8.0, 4.07)
    """
    k = max(1, n)
    aspect = width / max(height, 1)
    if aspect >= 1.0:
        return round(2.6 * k * aspect * 0.75 + 0.2, 2), 2.6
    panel_w = 2.6 * 0.75
    return round(panel_w * k + 0.2, 2), round(min(panel_w / aspect + 0.6, 6.0), 2)


def frames_with_boxes(
    frames: np.ndarray,
    times_s: Sequence[float],
    gt_boxes: Sequence[Sequence[Sequence[float]]],
    pred_boxes: Mapping[str, Sequence[Sequence[Sequence[float]]]],
    title: str,
    colours: Sequence[str] | None = None,
) -> bytes:
    """A row of frames; per frame the GT boxes (green, solid, drawn last) and each model's boxes
    (dashed, in ``colours[i]``, by default ``MODEL_COLOURS`` in the order of ``pred_boxes``)."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    n = len(frames)
    h, w = frames.shape[1:3] if n else (1, 1)
    fig, axes = plt.subplots(1, max(1, n), figsize=frame_row_size_in(n, w, h))
    axes = np.atleast_1d(axes)
    for k, ax in enumerate(axes):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(frames[k])
        ax.set_title(f"t = {times_s[k]:.1f} s", fontsize=8)

        def draw(boxes: Sequence[Sequence[float]], colour: str, style: str, ax: Any = ax) -> None:
            for x1, y1, x2, y2 in boxes:
                if x2 > x1 and y2 > y1:
                    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour,
                                           linewidth=1.6, linestyle=style))

        for i, boxes in enumerate(pred_boxes.values()):
            draw(boxes[k], colours[i] if colours else MODEL_COLOURS[i % len(MODEL_COLOURS)], "--")
        draw(gt_boxes[k], GT_COLOUR, "-")  # on top
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def timeline(gt_span: tuple[float, float], preds: Mapping[str, Sequence[tuple[float, float]]],
             duration_s: float, title: str, colours: Sequence[str] | None = None) -> bytes:
    """Horizontal bars: the GT interval (green) and each model's predicted intervals."""
    plt = _plt()
    rows = ["ground truth", *preds]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 0.9))
    ax.barh(0, gt_span[1] - gt_span[0], left=gt_span[0], color=GT_COLOUR, height=0.6)
    for i, spans in enumerate(preds.values(), start=1):
        for s, e in spans:
            c = colours[i - 1] if colours else MODEL_COLOURS[(i - 1) % len(MODEL_COLOURS)]
            ax.barh(i, max(e - s, duration_s / 300), left=s, color=c, height=0.6)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(duration_s, gt_span[1]))
    ax.set_xlabel("time (s)")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def dataset_figures(records: Sequence[dict[str, Any]]) -> tuple[list[tuple[str, bytes]], str]:
    """The Figure 3 plots: ``([(name, png)], backend)``. Uses ``ravst.pipeline.stats.plot_figure3``
    when it is installed, else the small built-in plots below."""
    try:
        from ravst.pipeline.config import StatsConfig
        from ravst.pipeline.stats import plot_figure3
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("ravst"):
            raise
    else:
        with tempfile.TemporaryDirectory() as tmp:
            paths = plot_figure3(records, tmp, StatsConfig())
            return [(p.stem, p.read_bytes()) for p in paths], "ravst.pipeline.stats.plot_figure3"
    return _builtin_figures(records), "ravst.report.plots (built-in)"


def _builtin_figures(records: Sequence[dict[str, Any]]) -> list[tuple[str, bytes]]:
    plt = _plt()
    out: list[tuple[str, bytes]] = []
    durations: dict[str, list[float]] = defaultdict(list)
    for r in records:
        for e in r["events"]:
            durations[e["label"]].append(float(e["end_s"]) - float(e["start_s"]))
    top = sorted(durations, key=lambda k: (-len(durations[k]), k))[:30]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.25 * len(top) + 1)))
    ax.barh(top[::-1], [float(np.mean(durations[k])) for k in top[::-1]], color="#4c72b0")
    ax.set_xlabel("mean event duration (s)")
    ax.set_title("Event duration per category")
    out.append(("event_duration_per_category", _png(fig)))
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist([float(r["duration_s"]) for r in records], bins=20, color="#55a868")
    ax.set_xlabel("video duration (s)")
    ax.set_title("Video durations")
    out.append(("video_durations", _png(fig)))
    counts = Counter(len(r["events"]) for r in records)
    fig, ax = plt.subplots(figsize=(5, 3))
    ks = sorted(counts)
    ax.bar([str(k) for k in ks], [counts[k] for k in ks], color="#c44e52")
    ax.set_xlabel("events per video")
    ax.set_title("Events per video")
    out.append(("events_per_video", _png(fig)))
    return out
