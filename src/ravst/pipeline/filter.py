"""Stage 1 (paper "Data Collection and Filtering"): pick videos and their events.

Per video (pure function :func:`filter_video`):

1. duration group short / medium / long by ``group_bounds_s`` (0-20, 20-40, 40-60 s); videos
   shorter than ``min_video_s`` ("extremely short") or longer than the last bound are dropped;
2. segments are clipped to the video, segments of one label that overlap (or are closer than
   ``merge_gap_s``) are merged, and segments of different labels whose spans overlap with
   temporal IoU >= ``merge_iou`` are merged into one segment carrying all those labels
   (UnAV-100 often annotates one sound source twice, e.g. "people cheering" + "people
   clapping" on the same span); segments shorter than ``min_event_s`` are dropped;
3. an *event* is a label group (labels linked by such a merge); a group with several segments
   becomes ONE event whose span is picked by ``segment_rule``: ``first`` (default; the
   official test file keeps the earliest segment in 374 of 446 multi-segment groups),
   ``longest``, or ``union`` (first start to last end);
4. videos with more than ``max_events`` events are dropped;
5. videos whose event-to-total (ET) ratio, the union of spans (``et_over``: all ``segments``,
   default, or the kept ``events``) over the duration, is below ``min_et_ratio`` (0.08) are
   dropped.

Then, over the kept videos, ``balance`` optionally down-samples each subset so that 1-, 2- and
3-event videos are equally many (seeded).

>>> from ravst.types import Event, Span, VideoRecord
>>> rec = VideoRecord("v", 30.0, (Event("dog barking", Span(1, 5)), Event("dog barking", Span(4, 9)),
...                               Event("man speaking", Span(20, 22))))
>>> d = filter_video(rec, FilterConfig())
>>> d["kept"], d["group"], d["num_events"], [(e["start_s"], e["end_s"]) for e in d["events"]]
(True, 'medium', 2, [(1.0, 9.0), (20.0, 22.0)])
>>> rec = VideoRecord("w", 30.0, (Event("baby laughter", Span(3, 5)), Event("baby laughter", Span(8, 14))))
>>> [(e["start_s"], e["end_s"], e["num_segments"]) for e in filter_video(rec, FilterConfig())["events"]]
[(3.0, 5.0, 2)]
"""

from __future__ import annotations

import csv
import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ravst.pipeline.config import FilterConfig
from ravst.types import VideoRecord

__all__ = ["balance_event_counts", "filter_video", "read_captions_csv", "record_to_payload"]

log = logging.getLogger(__name__)


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def _union_length(spans: Sequence[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for s, e in sorted(spans):
        if s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def record_to_payload(record: VideoRecord) -> dict[str, Any]:
    """A VideoRecord as the JSON payload the filter stage journals."""
    return {
        "video_id": record.video_id,
        "duration_s": record.duration_s,
        "subset": record.subset,
        "events": [
            {"label": e.label, "start_s": e.span.start_s, "end_s": e.span.end_s, "caption": e.caption}
            for e in record.events
        ],
    }


def _group(duration_s: float, cfg: FilterConfig) -> str | None:
    for bound, name in zip(cfg.group_bounds_s, cfg.group_names, strict=True):
        if duration_s <= bound:
            return name
    return None


def filter_video(record: VideoRecord | dict[str, Any], cfg: FilterConfig) -> dict[str, Any]:
    """The filter decision of one video: ``kept``, ``reason`` (when dropped) and merged ``events``.

    ``events`` items (one per label group, at most ``max_events`` in a kept video): ``index``
    (0-based, by start time), ``label`` (first label), ``labels``, ``start_s``, ``end_s``,
    ``caption`` (joined captions of the source segments or None), ``source_indices``
    (positions in the input annotation list of the segments behind the chosen span),
    ``num_segments`` (merged segments the label group had).
    """
    data = record_to_payload(record) if isinstance(record, VideoRecord) else record
    duration = float(data["duration_s"])
    out: dict[str, Any] = {
        "video_id": data["video_id"], "subset": data.get("subset"), "duration_s": duration,
        "group": _group(duration, cfg), "kept": False, "reason": None, "events": [],
        "num_events": 0, "et_ratio": 0.0,
    }
    if duration < cfg.min_video_s:
        out["reason"] = f"too_short: {duration:g} s < {cfg.min_video_s:g} s"
        return out
    if out["group"] is None:
        out["reason"] = f"too_long: {duration:g} s > {cfg.group_bounds_s[-1]:g} s"
        return out
    # clip, then merge segments of the same label
    by_label: dict[str, list[list[Any]]] = defaultdict(list)
    for i, ev in enumerate(data["events"]):
        s, e = max(0.0, float(ev["start_s"])), min(duration, float(ev["end_s"]))
        if e > s:
            by_label[ev["label"]].append([s, e, [i]])
    segments: list[list[Any]] = []  # [start, end, labels, source indices]
    for label, segs in by_label.items():
        merged: list[list[Any]] = []
        for s, e, idx in sorted(segs, key=lambda x: (x[0], x[1])):
            if merged and s <= merged[-1][1] + cfg.merge_gap_s:
                merged[-1][1] = max(merged[-1][1], e)
                merged[-1][2] = merged[-1][2] + idx
            else:
                merged.append([s, e, idx])
        segments.extend([s, e, [label], idx] for s, e, idx in merged)
    segments.sort(key=lambda x: (x[0], x[1], x[2]))
    # merge segments of different labels that overlap strongly (connected components)
    parent = list(range(len(segments)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(segments)):
        for j in range(i + 1, len(segments)):
            if segments[i][2] != segments[j][2] and _iou(segments[i][:2], segments[j][:2]) >= cfg.merge_iou:
                parent[find(i)] = find(j)
    components: dict[int, list[list[Any]]] = defaultdict(list)
    for i, seg in enumerate(segments):
        components[find(i)].append(seg)
    merged_events = []
    for members in components.values():
        labels = list(dict.fromkeys(label for m in members for label in m[2]))
        sources = sorted(i for m in members for i in m[3])
        start, end = min(m[0] for m in members), max(m[1] for m in members)
        merged_events.append({"labels": labels, "start_s": start, "end_s": end, "sources": sources})
    merged_events.sort(key=lambda e: (e["start_s"], e["end_s"], e["labels"]))
    # distinct events = groups of labels linked by a merged event
    label_parent: dict[str, str] = {}

    def lfind(x: str) -> str:
        label_parent.setdefault(x, x)
        while label_parent[x] != x:
            x = label_parent[x]
        return x

    for ev in merged_events:
        root = lfind(ev["labels"][0])
        for other in ev["labels"][1:]:
            label_parent[lfind(other)] = root
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ev in merged_events:
        groups[lfind(ev["labels"][0])].append(ev)
    # ONE event per label group: its span is chosen among the group's segments by segment_rule
    events = []
    for group_events in groups.values():
        group_events = [m for m in group_events if m["end_s"] - m["start_s"] >= cfg.min_event_s]
        if not group_events:
            continue
        labels = list(dict.fromkeys(label for m in group_events for label in m["labels"]))
        if cfg.segment_rule == "union":
            start, end = group_events[0]["start_s"], max(m["end_s"] for m in group_events)
            chosen = group_events
        else:
            pick = group_events[0] if cfg.segment_rule == "first" else max(
                group_events, key=lambda m: (m["end_s"] - m["start_s"], -m["start_s"]))
            start, end, chosen = pick["start_s"], pick["end_s"], [pick]
        sources = sorted(i for m in chosen for i in m["sources"])
        captions = [data["events"][i].get("caption") for i in sources]
        caption = "; ".join(dict.fromkeys(c for c in captions if c)) or None
        events.append({"label": labels[0], "labels": labels, "start_s": round(start, 6),
                       "end_s": round(end, 6), "caption": caption, "source_indices": sources,
                       "num_segments": len(group_events)})
    events.sort(key=lambda e: (e["start_s"], e["end_s"], e["label"]))
    for index, ev in enumerate(events):
        ev["index"] = index
    out["events"] = events
    num_events = len(events)
    out["num_events"] = num_events
    spans = ([(e["start_s"], e["end_s"]) for e in merged_events] if cfg.et_over == "segments"
             else [(e["start_s"], e["end_s"]) for e in events])
    out["et_ratio"] = round(_union_length(spans) / duration, 6) if duration > 0 else 0.0
    if num_events == 0:
        out["reason"] = "no_events"
    elif num_events > cfg.max_events:
        out["reason"] = f"too_many_events: {num_events} > {cfg.max_events}"
    elif out["et_ratio"] < cfg.min_et_ratio:
        out["reason"] = f"low_et_ratio: {out['et_ratio']:.4f} < {cfg.min_et_ratio:g}"
    else:
        out["kept"] = True
    return out


def balance_event_counts(decisions: list[dict[str, Any]], cfg: FilterConfig) -> list[dict[str, Any]]:
    """Kept decisions after the optional 1/2/3-event balancing (input order preserved)."""
    kept = [d for d in decisions if d["kept"]]
    if not cfg.balance:
        return kept
    rng = random.Random(cfg.seed)
    chosen: set[str] = set()
    by_subset: dict[Any, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for d in kept:
        by_subset[d["subset"]][d["num_events"]].append(d["video_id"])
    for groups in by_subset.values():
        size = min(len(v) for v in groups.values())
        for count in sorted(groups):
            ids = sorted(groups[count])
            chosen.update(rng.sample(ids, size))
    return [d for d in kept if d["video_id"] in chosen]


def read_captions_csv(path: str | Path) -> dict[tuple[str, int], str]:
    """A user CSV of captions: columns ``video_id``, ``event_index`` (0-based, order of the
    annotation file), ``caption``. Returns ``{(video_id, event_index): caption}``."""
    out: dict[tuple[str, int], str] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"video_id", "event_index", "caption"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        for line, row in enumerate(reader, 2):
            try:
                index = int(row["event_index"])
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: event_index must be an integer, got {row['event_index']!r}") from exc
            if not row["caption"].strip():
                raise ValueError(f"{path}:{line}: empty caption")
            out[(row["video_id"], index)] = row["caption"].strip()
    return out
