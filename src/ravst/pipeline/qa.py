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
without them get temporal QAs only. By default (``require_boxes``) a spatio-temporal or
sounding-spatial QA whose every box is ``[0, 0, 0, 0]`` is not emitted (it cannot be scored);
silent-spatial QAs are kept (an all-empty silent answer is allowed by default). With
``unique_questions`` (default) a question already asked for an earlier event of the video
(same sounding object in two events) is not asked again with another answer.

>>> rec = {"video_id": "v", "duration_s": 12.0, "events": [{"index": 0, "label": "dog barking",
...        "start_s": 1.39314, "end_s": 4.31906, "objects": [{"name": "dog", "audible": True}]}]}
>>> [q.question for q in generate_qas(rec, QAConfig())]
['When is the moment dog makes sound and is visible?']
"""

from __future__ import annotations

from typing import Any

from ravst.pipeline.config import QAConfig
from ravst.types import Answer, QAItem, Span, Task, Track

__all__ = ["TEMPLATES", "generate_qas"]

TEMPLATES = {
    "temporal": "When is the moment {objects} makes sound and is visible?",
    "spatial-sounding": "What visible object(s) make sound between {start} and {end}, and where is/are they?",
    "spatial-silent": "What silent object(s) can be seen between {start} and {end}, and where is/are they?",
    "spatiotemporal": 'When is the moment {object} makes sound and is visible, and where is the "{object}"?',
}


def _qtime(value: float) -> str:
    return repr(round(float(value), 5))


def _tracks(event: dict[str, Any]) -> dict[str, Track] | None:
    if "tracks" not in event:
        return None
    return {t["name"]: Track(t["name"], t["times_s"], t["xyxy"]) for t in event["tracks"]}


def _boxed(tracks: dict[str, Track] | None, names: list[str], cfg: QAConfig, kind: str) -> list[Track] | None:
    if tracks is None or any(n not in tracks for n in names):
        return None
    chosen = [tracks[n] for n in names]
    if kind in cfg.require_boxes and not any(t.nonempty.any() for t in chosen):
        return None
    return chosen


def generate_qas(record: dict[str, Any], cfg: QAConfig) -> list[QAItem]:
    """All QAs of one video record (analyze or annotate stage output), in official order."""
    video = record["video_id"]
    duration = float(record["duration_s"])
    items: list[QAItem] = []
    asked: set[str] = set()
    for event_index, event in enumerate(record["events"]):
        objects = event.get("objects", [])
        sounding = list(dict.fromkeys(o["name"] for o in objects if o["audible"]))
        silent = [n for n in dict.fromkeys(o["name"] for o in objects if not o["audible"]) if n not in sounding]
        start, end = float(event["start_s"]), float(event["end_s"])
        span = Span(round(start, cfg.when_decimals), round(end, cfg.when_decimals))
        tracks = _tracks(event)
        todo: list[tuple[Task, str, Answer, dict[str, Any]]] = []
        if cfg.temporal and sounding:
            names = " and ".join(sounding)
            todo.append((Task.TEMPORAL, TEMPLATES["temporal"].format(objects=names),
                         Answer(tuple(sounding), (span,)), {"query_object": names}))
        query = Span(start, end)
        for flag, kind, names_list, is_sounding in ((cfg.spatial_sounding, "spatial-sounding", sounding, True),
                                                    (cfg.spatial_silent, "spatial-silent", silent, False)):
            chosen = _boxed(tracks, names_list, cfg, kind) if flag and names_list else None
            if chosen:
                question = TEMPLATES[kind].format(start=_qtime(start), end=_qtime(end))
                todo.append((Task.SPATIAL, question, Answer(tuple(names_list), (), tuple(chosen)),
                             {"sounding": is_sounding, "query_span": query}))
        if cfg.spatiotemporal:
            for name in sounding:
                chosen = _boxed(tracks, [name], cfg, "spatiotemporal")
                if chosen:
                    todo.append((Task.SPATIOTEMPORAL, TEMPLATES["spatiotemporal"].format(object=name),
                                 Answer((name,), (span,), tuple(chosen)), {"query_object": name}))
        per_task: dict[Task, int] = {}
        for task, question, answer, extra in todo:
            if cfg.unique_questions and question in asked:
                continue
            asked.add(question)
            k = per_task.get(task, 0)
            per_task[task] = k + 1
            items.append(QAItem(qa_id=QAItem.make_id(video, event_index, task, k), video=video,
                                duration_s=duration, event_index=event_index, event_num=event_index + 1,
                                task=task, k=k, question=question, answer=answer,
                                category=event.get("label"), **extra))
    return items
