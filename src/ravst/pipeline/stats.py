"""Stage "stats": the paper's Figure 3 as PNG plots and Table 1-like counts.

Plots (matplotlib, Agg backend): ``event_duration_per_category.png`` (mean event duration per
category, the ``top_categories`` most frequent), ``video_durations.png`` (histogram, with the
short / medium / long bounds), ``events_per_video.png`` and ``category_wordcloud.png`` (word
cloud of categories weighted by event count; needs ``wordcloud``).

>>> recs = [{"video_id": "a", "duration_s": 30.0, "events": [{"label": "dog barking",
...          "start_s": 0.0, "end_s": 10.0, "objects": [{"name": "dog", "audible": True}]}]}]
>>> table = table1_counts(recs, [])
>>> table["videos"], table["categories"], table["avg_video_s"], table["avg_objects_per_video"]
(1, 1, 30.0, 1.0)
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ravst.pipeline.config import FilterConfig, StatsConfig
from ravst.types import QAItem

__all__ = ["NO_CATEGORY", "plot_figure3", "records_from_qas", "table1_counts", "table1_markdown"]

NO_CATEGORY = "(no category)"
"""Plot label of an event whose category is not known; never counted as a category."""

log = logging.getLogger(__name__)


def table1_counts(records: Sequence[dict[str, Any]], items: Sequence[QAItem]) -> dict[str, Any]:
    """Counts like Table 1 (videos, categories, average length, objects per video) plus QAs."""
    n = len(records)
    labels = {label for r in records for e in r["events"] for label in e.get("labels", [e["label"]])
              if label and label != NO_CATEGORY}
    objects = [len({o["name"] for e in r["events"] for o in e.get("objects", [])}) for r in records]
    mentions = [o for r in records for e in r["events"] for o in e.get("objects", [])]
    tasks = Counter(i.kind for i in items)
    return {
        "videos": n,
        "events": sum(len(r["events"]) for r in records),
        "categories": len(labels),
        "avg_video_s": round(sum(float(r["duration_s"]) for r in records) / n, 2) if n else 0.0,
        "avg_objects_per_video": round(sum(objects) / n, 2) if n else 0.0,
        "objects": len(mentions),
        "audible_object_share": round(sum(o["audible"] for o in mentions) / len(mentions), 4) if mentions else 0.0,
        "qas": len(items),
        "qas_per_kind": dict(sorted(tasks.items())),
    }


def records_from_qas(items: Sequence[QAItem], labels: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
    """Per-video records (``video_id``, ``duration_s``, ``events`` with ``label``, ``labels``,
    ``start_s``, ``end_s``, ``objects`` ``{name, audible}``) of the events that have QAs, rebuilt
    from the QAs: the records :func:`table1_counts` counts for a QA file (``stats.json``'s
    ``qa_set`` block, and the report's dataset statistics: one counter for both).

    An event's categories: ``labels[qa_id]`` of any of its QAs (a build's sidecar carries all the
    labels of a merged event; ``ravst eval --unav100`` gives one per QA), else ``item.category``;
    an event with none is plotted as ``NO_CATEGORY`` and not counted as a category.
    """
    labels = labels or {}
    videos: dict[str, float] = {}
    events: dict[tuple[str, int], dict[str, Any]] = {}
    objects: dict[tuple[str, int], dict[str, bool]] = defaultdict(dict)
    for item in items:
        videos[item.video] = item.duration_s
        key = (item.video, item.event_index)
        span = item.answer.span or item.query_span
        known = [x for x in labels.get(item.qa_id, ()) if x] or ([item.category] if item.category else [])
        ev = events.setdefault(key, {"label": NO_CATEGORY, "labels": [], "start_s": None, "end_s": None})
        for label in known:
            if label not in ev["labels"]:
                ev["labels"].append(label)
        if ev["labels"]:
            ev["label"] = ev["labels"][0]
        if span is not None and ev["start_s"] is None:
            ev["start_s"], ev["end_s"] = span.start_s, span.end_s
        for name in item.answer.objects:
            objects[key][name] = objects[key].get(name, False) or item.sounding
    records = []
    for video, duration in videos.items():
        evs = []
        for (v, ei), ev in sorted(events.items()):
            if v != video or ev["start_s"] is None:
                continue
            evs.append({**ev, "objects": [{"name": n, "audible": a} for n, a in objects[(v, ei)].items()]})
        records.append({"video_id": video, "duration_s": duration, "events": evs})
    return records


def table1_markdown(table: dict[str, Any]) -> str:
    head = "| #Videos | #Cls | Len | #Obj | #Events | #QAs | audible objects |\n|---|---|---|---|---|---|---|\n"
    row = (f"| {table['videos']} | {table['categories']} | {table['avg_video_s']}s | "
           f"{table['avg_objects_per_video']} | {table['events']} | {table['qas']} | "
           f"{100 * table['audible_object_share']:.2f}% |\n")
    return head + row


def plot_figure3(records: Sequence[dict[str, Any]], out_dir: str | Path, cfg: StatsConfig,
                 filter_cfg: FilterConfig | None = None) -> list[Path]:
    """Write the Figure 3 PNGs into ``out_dir``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    durations: dict[str, list[float]] = defaultdict(list)
    for r in records:
        for e in r["events"]:
            durations[e["label"]].append(float(e["end_s"]) - float(e["start_s"]))
    top = sorted(durations, key=lambda k: (-len(durations[k]), k))[: cfg.top_categories]

    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.25 * len(top) + 1)))
    ax.barh(top[::-1], [sum(durations[k]) / len(durations[k]) for k in top[::-1]], color="#4c72b0")
    ax.set_xlabel("mean event duration (s)")
    ax.set_title(f"Event duration per category ({len(top)} most frequent)")
    written.append(_save(fig, out / "event_duration_per_category.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist([float(r["duration_s"]) for r in records], bins=30, color="#55a868")
    for bound in (filter_cfg or FilterConfig()).group_bounds_s[:-1]:
        ax.axvline(bound, color="k", linestyle="--", linewidth=1)
    ax.set_xlabel("video duration (s)")
    ax.set_ylabel("videos")
    ax.set_title("Video durations")
    written.append(_save(fig, out / "video_durations.png"))

    counts = Counter(len(r["events"]) for r in records)
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = sorted(counts)
    ax.bar(range(len(ks)), [counts[k] for k in ks], color="#c44e52")
    ax.set_xticks(range(len(ks)), [str(k) for k in ks])
    ax.set_xlabel("events per video")
    ax.set_ylabel("videos")
    ax.set_title("Events per video")
    written.append(_save(fig, out / "events_per_video.png"))

    if cfg.wordcloud and durations:
        from wordcloud import WordCloud

        freqs = {k: len(v) for k, v in durations.items()}
        cloud = WordCloud(width=800, height=400, background_color="white", random_state=0)
        image = cloud.generate_from_frequencies(freqs).to_array()
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.imshow(image, interpolation="bilinear")
        ax.axis("off")
        written.append(_save(fig, out / "category_wordcloud.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
