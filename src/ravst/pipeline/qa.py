"""Stage "qa" (paper "Automatic QAs Generation"): the three tasks in the official templates.

Per event of an analyzed (and, for spatial tasks, annotated) video record:

- temporal: ``When is the moment {objects} makes sound and is visible?`` (sounding objects),
  answer ``<object>`` + ``<when>[start, end]`` (times rounded to ``when_decimals``);
- spatial, sounding: ``What visible object(s) make sound between {S} and {E}, and where is/are
  they?`` and silent: ``What silent object(s) can be seen between {S} and {E}, and where is/are
  they?`` (S, E: the event's span as in the official file, up to 5 decimals), answer
  ``<object>`` + ``<where>`` per object;
- spatio-temporal, one per sounding object: ``When is the moment {o} makes sound and is
  visible, and where is the "{o}"?``, answer ``<object>`` + ``<when>`` + ``<where>``.

The templates are the official test file's questions word for word. Spatial and
spatio-temporal QAs need boxes (the ``tracks`` the annotate stage adds to each event); events
without them get temporal QAs only. With ``unique_questions`` (default) a question already
asked for an earlier event of the video (same sounding object in two events) is not asked again
with another answer.

Ground truth the builder can vouch for (annotated events): an object with no box in any frame
of its event ("never detected") is left out of the event's QAs; a QA left without any object is
not written (``never_detected``), never written as silent or with ``[0, 0, 0, 0]`` rows.
Per-event checks flag suspicious ground truth for review (:data:`FLAG_REASONS`). A silent
object whose boxes coincide with a sounding object's (:func:`same_box_frames`) is the same thing
under two names, or a detector that put both names on one thing: one box cannot answer both
"what sounds" and "what is silent", and the builder cannot tell which name is right, so the
silent object is left out of the silent QA (counted) and the sounding object's box QAs are
flagged ``silent_on_sounding``.
:func:`generate_checked` returns the QAs, one :class:`QAMeta` per QA (flags, box provenance) and
the counts of the QAs not written, by reason (:data:`DROP_REASONS`).

>>> rec = {"video_id": "v", "duration_s": 12.0, "events": [{"index": 0, "label": "dog barking",
...        "start_s": 1.39314, "end_s": 4.31906, "objects": [{"name": "dog", "audible": True}]}]}
>>> [q.question for q in generate_qas(rec, QAConfig())]
['When is the moment dog makes sound and is visible?']
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ravst.pipeline.config import QAConfig
from ravst.types import Answer, QAItem, Span, Task, Track

__all__ = ["DROP_REASONS", "FLAG_REASONS", "TEMPLATES", "CheckedQAs", "QAMeta", "box_iou", "generate_checked",
           "generate_qas", "read_sidecar", "same_box_frames", "sidecar_path"]

TEMPLATES = {
    "temporal": "When is the moment {objects} makes sound and is visible?",
    "spatial-sounding": "What visible object(s) make sound between {start} and {end}, and where is/are they?",
    "spatial-silent": "What silent object(s) can be seen between {start} and {end}, and where is/are they?",
    "spatiotemporal": 'When is the moment {object} makes sound and is visible, and where is the "{object}"?',
}

DROP_REASONS = {
    "never_detected": "every object of the QA has no box in any frame of its event",
    "no_boxes": "every box of the answer is [0, 0, 0, 0] and the kind is in qa.require_boxes",
    "duplicate_question": "an earlier event of the video already asked this question (qa.unique_questions)",
    "silent_on_sounding": "every object of a spatial-silent QA has its boxes on a sounding object of the event "
                          "(qa.same_box_iou, qa.same_box_frac)",
}
FLAG_REASONS = {
    "box_jump": "an object's box centre moves more than qa.flag_jump_frac of the frame diagonal between two "
                "consecutive frame times",
    "box_covers_frame": "a box covers more than qa.flag_area_frac of the frame",
    "rarely_found": "a sounding object has a box in fewer than qa.flag_min_found_frac of its event's frames",
    "object_left_out": "an object of the event was never detected and is not named in this QA",
    "silent_on_sounding": "a silent object's boxes coincide with a sounding object's (IoU >= qa.same_box_iou in "
                          "more than qa.same_box_frac of the frames where both have a box): the silent object is "
                          "left out of the silent QA, and the box QAs naming the sounding object are flagged",
}


@dataclass(frozen=True)
class QAMeta:
    """What the builder knows about one written QA: review flags and where its boxes came from."""

    qa_id: str
    kind: str
    objects: tuple[str, ...]
    flags: tuple[dict[str, str], ...] = ()
    boxes: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    """The event's categories (every label of a merged event): what the official layout drops."""

    def to_json(self) -> dict[str, Any]:
        return {"qa_id": self.qa_id, "kind": self.kind, "objects": list(self.objects),
                "flags": [dict(f) for f in self.flags], "boxes": dict(self.boxes), "labels": list(self.labels)}


@dataclass(frozen=True)
class CheckedQAs:
    """QAs of one video, their metadata (same order) and the counts of what was not written."""

    items: tuple[QAItem, ...]
    metas: tuple[QAMeta, ...]
    dropped: dict[str, int]
    objects_dropped: dict[str, int]


def _qtime(value: float) -> str:
    return repr(round(float(value), 5))


def _nonempty(box: Any) -> bool:
    return float(box[2]) > float(box[0]) and float(box[3]) > float(box[1])


def _object_flags(track: dict[str, Any], sounding: bool, width: float, height: float,
                  cfg: QAConfig) -> list[dict[str, str]]:
    """The per-event checks of one object's track (frame pixels ``width`` x ``height``)."""
    name = track["name"]
    by_time: dict[float, list[list[float]]] = {}
    for t, box in zip(track["times_s"], track["xyxy"], strict=True):
        by_time.setdefault(float(t), [])
        if _nonempty(box):
            by_time[float(t)].append([float(v) for v in box])
    times = sorted(by_time)
    flags: list[dict[str, str]] = []
    if width > 0 and height > 0:
        diagonal = math.hypot(width, height)
        for t0, t1 in itertools.pairwise(times):
            a, b = by_time[t0], by_time[t1]
            if not a or not b:
                continue
            moved = min(math.hypot((p[0] + p[2] - q[0] - q[2]) / 2, (p[1] + p[3] - q[1] - q[3]) / 2)
                        for p in a for q in b)
            if moved > cfg.flag_jump_frac * diagonal:
                flags.append({"reason": "box_jump", "object": name,
                              "detail": f"{t0:g} s -> {t1:g} s: centre moved {moved:.0f} px "
                                        f"({moved / diagonal:.0%} of the frame diagonal)"})
                break
        for t in times:
            big = [b for b in by_time[t] if (b[2] - b[0]) * (b[3] - b[1]) > cfg.flag_area_frac * width * height]
            if big:
                share = max((b[2] - b[0]) * (b[3] - b[1]) for b in big) / (width * height)
                flags.append({"reason": "box_covers_frame", "object": name,
                              "detail": f"at {t:g} s a box covers {share:.0%} of the frame"})
                break
    if sounding and times:
        found = sum(1 for t in times if by_time[t])
        if found / len(times) < cfg.flag_min_found_frac:
            flags.append({"reason": "rarely_found", "object": name,
                          "detail": f"a box in {found} of {len(times)} frames ({found / len(times):.0%})"})
    return flags


def box_iou(a: Any, b: Any) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes (0 for empty ones).

    >>> box_iou([0, 0, 10, 10], [5, 0, 15, 10])  # 50 / 150
    0.3333333333333333
    """
    iw = min(float(a[2]), float(b[2])) - max(float(a[0]), float(b[0]))
    ih = min(float(a[3]), float(b[3])) - max(float(a[1]), float(b[1]))
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = ((float(a[2]) - float(a[0])) * (float(a[3]) - float(a[1]))
             + (float(b[2]) - float(b[0])) * (float(b[3]) - float(b[1])) - inter)
    return inter / union if union > 0 else 0.0


def _boxes_by_time(track: dict[str, Any]) -> dict[float, list[Any]]:
    out: dict[float, list[Any]] = {}
    for t, box in zip(track["times_s"], track["xyxy"], strict=True):
        if _nonempty(box):
            out.setdefault(float(t), []).append(box)
    return out


def same_box_frames(a: dict[str, Any], b: dict[str, Any], iou: float) -> tuple[int, int]:
    """``(same, shared)``: of the ``shared`` frame times where both tracks have a box, the number
    where some box of ``a`` and some box of ``b`` overlap with IoU >= ``iou``.

    >>> man = {"times_s": [1.0, 2.0, 3.0], "xyxy": [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 0]]}
    >>> person = {"times_s": [1.0, 2.0, 3.0], "xyxy": [[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]]}
    >>> same_box_frames(person, man, 0.5)
    (1, 2)
    """
    boxes_a, boxes_b = _boxes_by_time(a), _boxes_by_time(b)
    shared = sorted(set(boxes_a) & set(boxes_b))
    same = sum(1 for t in shared if max(box_iou(p, q) for p in boxes_a[t] for q in boxes_b[t]) >= iou)
    return same, len(shared)


def _box_summary(tracks: list[dict[str, Any]]) -> dict[str, Any]:
    sources: Counter[str] = Counter()
    scores: list[float] = []
    for track in tracks:
        rows = len(track["xyxy"])
        srcs = track.get("sources") or ["detected" if _nonempty(b) else "none" for b in track["xyxy"]]
        sources.update(srcs)
        scores += [float(s) for s in (track.get("scores") or [None] * rows) if s is not None]
    out: dict[str, Any] = {"detected": sources["detected"], "propagated": sources["propagated"],
                           "empty": sources["none"]}
    if scores:
        out["score_min"] = round(min(scores), 4)
        out["score_mean"] = round(sum(scores) / len(scores), 4)
    return out


def generate_checked(record: dict[str, Any], cfg: QAConfig) -> CheckedQAs:
    """All QAs of one video record (analyze or annotate stage output), in official order, with
    their review flags and the counts of QAs not written (by reason) and objects left out."""
    video = record["video_id"]
    duration = float(record["duration_s"])
    width, height = float(record.get("width") or 0), float(record.get("height") or 0)
    items: list[QAItem] = []
    metas: list[QAMeta] = []
    dropped: Counter[str] = Counter()
    objects_dropped: Counter[str] = Counter()
    asked: set[str] = set()
    for event_index, event in enumerate(record["events"]):
        objects = event.get("objects", [])
        event_labels = tuple(str(x) for x in event.get("labels") or ([event["label"]] if event.get("label") else []))
        sounding = list(dict.fromkeys(o["name"] for o in objects if o["audible"]))
        silent = [n for n in dict.fromkeys(o["name"] for o in objects if not o["audible"]) if n not in sounding]
        start, end = float(event["start_s"]), float(event["end_s"])
        span = Span(round(start, cfg.when_decimals), round(end, cfg.when_decimals))
        raw_tracks = {t["name"]: t for t in event["tracks"]} if "tracks" in event else None
        undetected: set[str] = set()
        flags_of: dict[str, list[dict[str, str]]] = {}
        if raw_tracks is not None:
            for name in sounding + silent:
                track = raw_tracks.get(name)
                if track is None or not any(_nonempty(b) for b in track["xyxy"]):
                    undetected.add(name)
                    objects_dropped["never_detected"] += 1
                else:
                    flags_of[name] = _object_flags(track, name in sounding, width, height, cfg)
        on_sounding: dict[str, dict[str, str]] = {}  # silent name -> its flag (the object left out)
        box_flags_of: dict[str, list[dict[str, str]]] = {}  # sounding name -> flags of its box QAs
        if raw_tracks is not None:
            for name in silent:
                if name in undetected:
                    continue
                for other in sounding:
                    if other in undetected:
                        continue
                    same, shared = same_box_frames(raw_tracks[name], raw_tracks[other], cfg.same_box_iou)
                    if not (shared and same > cfg.same_box_frac * shared):
                        continue
                    where = (f"in {same} of the {shared} frames where both have a box, a {name!r} box is on a "
                             f"{other!r} box (IoU >= {cfg.same_box_iou:g})")
                    on_sounding[name] = {"reason": "silent_on_sounding", "object": name,
                                         "detail": f"{where}; {name!r} is silent, {other!r} sounds: not named"}
                    box_flags_of.setdefault(other, []).append(
                        {"reason": "silent_on_sounding", "object": other,
                         "detail": f"{where}: one box cannot be both; which name is right is unknown"})
                    objects_dropped["on_sounding_object"] += 1
                    break

        def keep(names: list[str], undetected: set[str] = undetected,
                 on_sounding: dict[str, dict[str, str]] = on_sounding) -> tuple[list[str], list[dict[str, str]]]:
            kept = [n for n in names if n not in undetected and n not in on_sounding]
            left = [{"reason": "object_left_out", "object": n,
                     "detail": f"{n!r} is an object of this event but was never detected; not named"}
                    for n in names if n in undetected]
            return kept, left + [on_sounding[n] for n in names if n in on_sounding]

        todo: list[tuple[Task, str, Answer, dict[str, Any], list[str], list[dict[str, str]], list[dict[str, Any]]]] = []
        if cfg.temporal and sounding:
            names, left = keep(sounding)
            if names:
                joined = " and ".join(names)
                todo.append((Task.TEMPORAL, TEMPLATES["temporal"].format(objects=joined),
                             Answer(tuple(names), (span,)), {"query_object": joined}, names, left, []))
            else:
                dropped["never_detected"] += 1
        query = Span(start, end)
        for flag, kind, names_list, is_sounding in ((cfg.spatial_sounding, "spatial-sounding", sounding, True),
                                                    (cfg.spatial_silent, "spatial-silent", silent, False)):
            if not (flag and names_list and raw_tracks is not None):
                continue
            names, left = keep(names_list)
            if not names:
                dropped["silent_on_sounding" if any(n in on_sounding for n in names_list) else "never_detected"] += 1
                continue
            chosen = [raw_tracks[n] for n in names]
            if kind in cfg.require_boxes and not any(_nonempty(b) for t in chosen for b in t["xyxy"]):
                dropped["no_boxes"] += 1
                continue
            question = TEMPLATES[kind].format(start=_qtime(start), end=_qtime(end))
            answer = Answer(tuple(names), (), tuple(Track(t["name"], t["times_s"], t["xyxy"]) for t in chosen))
            todo.append((Task.SPATIAL, question, answer, {"sounding": is_sounding, "query_span": query},
                         names, left, chosen))
        if cfg.spatiotemporal and raw_tracks is not None:
            for name in sounding:
                if name in undetected:
                    dropped["never_detected"] += 1
                    continue
                track = raw_tracks[name]
                if "spatiotemporal" in cfg.require_boxes and not any(_nonempty(b) for b in track["xyxy"]):
                    dropped["no_boxes"] += 1
                    continue
                answer = Answer((name,), (span,), (Track(name, track["times_s"], track["xyxy"]),))
                todo.append((Task.SPATIOTEMPORAL, TEMPLATES["spatiotemporal"].format(object=name), answer,
                             {"query_object": name}, [name], [], [track]))
        per_task: dict[Task, int] = {}
        for task, question, answer, extra, names, left, chosen in todo:
            if cfg.unique_questions and question in asked:
                dropped["duplicate_question"] += 1
                continue
            asked.add(question)
            k = per_task.get(task, 0)
            per_task[task] = k + 1
            item = QAItem(qa_id=QAItem.make_id(video, event_index, task, k), video=video,
                          duration_s=duration, event_index=event_index, event_num=event_index + 1,
                          task=task, k=k, question=question, answer=answer,
                          category=event.get("label"), **extra)
            flags = [f for n in names for f in flags_of.get(n, [])] + left
            if chosen and extra.get("sounding", True):  # a box QA of sounding objects
                flags += [f for n in names for f in box_flags_of.get(n, [])]
            metas.append(QAMeta(item.qa_id, item.kind, tuple(names), tuple(flags),
                                _box_summary(chosen) if chosen else {}, event_labels))
            items.append(item)
    return CheckedQAs(tuple(items), tuple(metas), dict(sorted(dropped.items())), dict(sorted(objects_dropped.items())))


def generate_qas(record: dict[str, Any], cfg: QAConfig) -> list[QAItem]:
    """All QAs of one video record (analyze or annotate stage output), in official order."""
    return list(generate_checked(record, cfg).items)


def sidecar_path(qa_path: str | Path) -> Path:
    """The sidecar metadata of a QA file: ``r_avst_qa.json`` -> ``r_avst_qa.meta.json``.

    >>> sidecar_path("build/qa/r_avst_qa.json").name
    'r_avst_qa.meta.json'
    """
    p = Path(qa_path)
    return p.with_name(p.name[: -len(p.suffix)] + ".meta.json" if p.suffix else p.name + ".meta.json")


def read_sidecar(qa_path: str | Path) -> dict[str, Any] | None:
    """The sidecar of a QA file, or None when it has none (a file not made by ``ravst build``).
    Raises ValueError naming the file when it is not valid JSON."""
    import json

    path = sidecar_path(qa_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object (ravst-qa-meta)")
    return data
