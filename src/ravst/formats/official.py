"""The official R-AVST QA file (``xml_test_QA.json``) <-> ``QAItem``.

Layout: a JSON list of videos ``{"video_name", "duration", "annotation": [event, ...]}``; each
event is ``{"event_num": int, "AV Temporal Reasoning": [{"Q", "A"}], "AV Spatial Reasoning":
[...], "AV ST Reasoning": [...]}`` (task keys optional, in that order). Answers are tagged text,
parsed with the strict parser. Stable ids: ``{video_name}/{event_index}/{task}/{k}``.

The writer reproduces the official file byte for byte (``json.dumps(..., indent=2,
ensure_ascii=False)``, answers rendered with ``render_answer``).

>>> data = [{"video_name": "v1", "duration": 12.5, "annotation": [{"event_num": 1,
...     "AV Temporal Reasoning": [{"Q": "When is the moment dog makes sound and is visible?",
...     "A": "<answer>\\n<object>dog</object>\\n<when>[1.0, 2.0]</when>\\n</answer>"}]}]}]
>>> items = official_json_to_items(data)
>>> items[0].qa_id, items[0].query_object, items[0].answer.span
('v1/0/temporal/0', 'dog', Span(start_s=1.0, end_s=2.0))
>>> items_to_official_json(items) == data
True
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from ravst.formats import FormatError, read_json, where
from ravst.parsing import parse_answer, render_answer
from ravst.types import QAItem, Span, Task, VideoRecord

__all__ = [
    "attach_unav_categories",
    "items_to_official_json",
    "official_json_to_items",
    "parse_question",
    "read_official",
    "write_official",
]

log = logging.getLogger(__name__)

_VIDEO_KEYS = ("video_name", "duration", "annotation")
_QA_KEYS = ("Q", "A")
_TASK_ORDER = (Task.TEMPORAL, Task.SPATIAL, Task.SPATIOTEMPORAL)
_NUM = r"-?\d+(?:\.\d+)?"
_BETWEEN = re.compile(rf"\bbetween ({_NUM})s? and ({_NUM})s?\b")
_T_QUESTION = re.compile(r"When is the moment (.+?) makes sound and is visible\?")
_ST_QUESTION = re.compile(r'When is the moment (.+?) makes sound and is visible, and where is the "(.+)"\?')

OnUnknown = Literal["raise", "warn"]


def parse_question(task: Task, question: str) -> tuple[bool, Span | None, str | None]:
    """``(sounding, query_span, query_object)`` read from an official question.

    >>> parse_question(Task.SPATIAL, "What silent object(s) can be seen between 0.0 and 44.4319, "
    ...                "and where is/are they?")
    (False, Span(start_s=0.0, end_s=44.4319), None)
    >>> parse_question(Task.SPATIOTEMPORAL,
    ...     'When is the moment A man makes sound and is visible, and where is the "A man"?')
    (True, None, 'A man')
    """
    sounding = True
    query_span = None
    query_object = None
    if task is Task.SPATIAL:
        sounding = "silent object" not in question.lower()
        m = _BETWEEN.search(question)
        if m is not None:
            start, end = float(m.group(1)), float(m.group(2))
            if end < start:
                raise ValueError(f"question interval ends ({end}) before it starts ({start})")
            query_span = Span(start, end)
    elif task is Task.SPATIOTEMPORAL:
        m = _ST_QUESTION.fullmatch(question.strip())
        query_object = m.group(1) if m is not None else None
    else:
        m = _T_QUESTION.fullmatch(question.strip())
        query_object = m.group(1) if m is not None else None
    return sounding, query_span, query_object


def _unknown(keys: Iterable[str], known: Sequence[str], context: str, on_unknown: OnUnknown) -> None:
    extra = [k for k in keys if k not in known]
    if not extra:
        return
    message = f"{context}: unknown key(s) {extra} (known: {list(known)})"
    if on_unknown == "raise":
        raise FormatError(message + "; pass on_unknown='warn' to read the file without them")
    log.warning("%s; ignored", message)


def _number(value: Any, context: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FormatError(f"{context}: expected a finite number, got {value!r}")
    return float(value)


def official_json_to_items(
    data: Any, *, source: str | Path | None = None, on_unknown: OnUnknown = "raise"
) -> list[QAItem]:
    """Turn the decoded official JSON into ``QAItem``s (file order). ``source`` names the file
    in error messages; unknown keys raise unless ``on_unknown="warn"`` (then logged and dropped).
    """
    if not isinstance(data, list):
        raise FormatError(f"{where(source)}: expected a JSON list of videos, got {type(data).__name__}")
    items: list[QAItem] = []
    for vi, video in enumerate(data):
        ctx = where(source, f"video #{vi}")
        if not isinstance(video, dict):
            raise FormatError(f"{ctx}: expected an object, got {type(video).__name__}")
        name = video.get("video_name")
        if not isinstance(name, str) or not name:
            raise FormatError(f"{ctx}: 'video_name' must be a non-empty string, got {name!r}")
        ctx = where(source, f"video #{vi} {name!r}")
        _unknown(video, _VIDEO_KEYS, ctx, on_unknown)
        if "duration" not in video or "annotation" not in video:
            missing = [k for k in _VIDEO_KEYS if k not in video]
            raise FormatError(f"{ctx}: missing key(s) {missing}")
        duration = _number(video["duration"], f"{ctx}: duration")
        if duration < 0:
            raise FormatError(f"{ctx}: duration: must be >= 0, got {duration}")
        events = video["annotation"]
        if not isinstance(events, list):
            raise FormatError(f"{ctx}: annotation: expected a list, got {type(events).__name__}")
        for ei, event in enumerate(events):
            ectx = f"{ctx}: annotation[{ei}]"
            if not isinstance(event, dict):
                raise FormatError(f"{ectx}: expected an object, got {type(event).__name__}")
            event_num = event.get("event_num")
            if isinstance(event_num, bool) or not isinstance(event_num, int):
                raise FormatError(f"{ectx}['event_num']: expected an integer, got {event_num!r}")
            known = ["event_num", *(t.official_key for t in _TASK_ORDER)]
            _unknown(event, known, ectx, on_unknown)
            for task in _TASK_ORDER:
                qas = event.get(task.official_key)
                if qas is None:
                    continue
                tctx = f"{ectx}[{task.official_key!r}]"
                if not isinstance(qas, list):
                    raise FormatError(f"{tctx}: expected a list, got {type(qas).__name__}")
                for k, qa in enumerate(qas):
                    items.append(_read_qa(qa, f"{tctx}[{k}]", on_unknown, name, duration, ei, event_num, task, k))
    return items


def _read_qa(qa: Any, ctx: str, on_unknown: OnUnknown, video: str, duration: float,
             event_index: int, event_num: int, task: Task, k: int) -> QAItem:
    if not isinstance(qa, dict):
        raise FormatError(f"{ctx}: expected an object with 'Q' and 'A', got {type(qa).__name__}")
    _unknown(qa, _QA_KEYS, ctx, on_unknown)
    for key in _QA_KEYS:
        if not isinstance(qa.get(key), str):
            raise FormatError(f"{ctx}[{key!r}]: expected a string, got {qa.get(key)!r}")
    question, text = qa["Q"], qa["A"]
    parsed = parse_answer(text, strict=True)
    if not parsed.strict_ok:
        raise FormatError(f"{ctx}['A']: not in the official answer layout: {'; '.join(parsed.issues)}")
    answer = parsed.answer
    if task in (Task.TEMPORAL, Task.SPATIOTEMPORAL) and not answer.spans:
        raise FormatError(f"{ctx}['A']: a {task.value} answer needs a <when> interval")
    if task in (Task.SPATIAL, Task.SPATIOTEMPORAL) and not parsed.has_where:
        raise FormatError(f"{ctx}['A']: a {task.value} answer needs a <where> block")
    try:
        sounding, query_span, query_object = parse_question(task, question)
    except ValueError as err:
        raise FormatError(f"{ctx}['Q']: {err}") from err
    return QAItem(
        qa_id=QAItem.make_id(video, event_index, task, k),
        video=video,
        duration_s=duration,
        event_index=event_index,
        event_num=event_num,
        task=task,
        k=k,
        question=question,
        answer=answer,
        sounding=sounding,
        query_span=query_span,
        query_object=query_object,
    )


def read_official(path: str | Path, *, on_unknown: OnUnknown = "raise") -> list[QAItem]:
    """Read an official-layout QA file (e.g. ``xml_test_QA.json``) into ``QAItem``s.

    ``path`` may also be a dataset folder written by ``ravst export hf`` (all its splits).
    """
    path = Path(path)
    if path.is_dir():
        from ravst.formats.hf import is_hf_dataset_dir, read_hf_official_json

        if not is_hf_dataset_dir(path):
            raise FormatError(f"{path}: a folder, but not a dataset folder written by `ravst export hf` "
                              "(README.md and data/*.parquet); give the QA JSON file or such a folder")
        return official_json_to_items(read_hf_official_json(path), source=path, on_unknown=on_unknown)
    data = read_json(path)
    return official_json_to_items(data, source=path, on_unknown=on_unknown)


def items_to_official_json(items: Iterable[QAItem]) -> list[dict[str, Any]]:
    """The official JSON structure of ``items``: videos in order of first appearance, events by
    ``event_index``, tasks in the official order (temporal, spatial, spatio-temporal), QAs by
    ``k``. Raises ``ValueError`` on inconsistent items (a video with two durations, an event
    with two ``event_num``, a duplicate id). Indices are positions: an item set with gaps is
    written compactly, so re-reading it gives ids with the gaps closed.
    """
    videos: dict[str, tuple[float, dict[int, int], dict[tuple[int, Task, int], QAItem]]] = {}
    for item in items:
        duration, event_nums, qas = videos.setdefault(item.video, (item.duration_s, {}, {}))
        if duration != item.duration_s:
            raise ValueError(f"QA {item.qa_id}: duration {item.duration_s} differs from {duration} of the same video")
        if event_nums.setdefault(item.event_index, item.event_num) != item.event_num:
            raise ValueError(f"QA {item.qa_id}: event_num {item.event_num} differs from "
                             f"{event_nums[item.event_index]} of the same event")
        key = (item.event_index, item.task, item.k)
        if key in qas:
            raise ValueError(f"duplicate QA {item.qa_id}")
        qas[key] = item
    out = []
    for video, (duration, event_nums, qas) in videos.items():
        annotation = []
        for event_index in sorted(event_nums):
            event: dict[str, Any] = {"event_num": event_nums[event_index]}
            for task in _TASK_ORDER:
                keys = sorted(k for k in qas if k[0] == event_index and k[1] is task)
                if keys:
                    event[task.official_key] = [
                        {"Q": qas[k].question, "A": render_answer(qas[k].answer)} for k in keys
                    ]
            annotation.append(event)
        out.append({"video_name": video, "duration": duration, "annotation": annotation})
    return out


def write_official(items: Iterable[QAItem], path: str | Path) -> Path:
    """Write ``items`` in the official layout (2-space indent, UTF-8, like the official file)."""
    path = Path(path)
    path.write_text(json.dumps(items_to_official_json(items), indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def attach_unav_categories(items: Iterable[QAItem], records: Iterable[VideoRecord]) -> list[QAItem]:
    """Copies of ``items`` with ``category`` set to an UnAV-100 event label of their video.

    The official file does not name the UnAV-100 event a QA was made from, so it is inferred:
    the label whose events (merged per label) overlap most in time with the QA's interval (the
    GT ``<when>`` span, or the question's interval for spatial QAs); a video with one label gets
    it directly. Items whose video is not in ``records`` keep ``category=None``.

    >>> from ravst.types import Answer, Event
    >>> rec = VideoRecord("v", 30.0, (Event("dog barking", Span(0, 9)), Event("man speaking", Span(10, 30))))
    >>> qa = QAItem("v/0/temporal/0", "v", 30.0, 0, 1, Task.TEMPORAL, 0, "q", Answer(("man",), (Span(12, 29),)))
    >>> attach_unav_categories([qa], [rec])[0].category
    'man speaking'
    """
    by_video = {r.video_id: r for r in records}
    out = []
    for item in items:
        record = by_video.get(item.video)
        category = None
        if record is not None and record.events:
            span = item.answer.span or item.query_span
            overlap: dict[str, float] = {}
            for event in record.events:
                ov = 0.0
                if span is not None:
                    ov = max(0.0, min(span.end_s, event.span.end_s) - max(span.start_s, event.span.start_s))
                overlap[event.label] = overlap.get(event.label, 0.0) + ov
            category = max(overlap, key=lambda label: overlap[label])  # first label on ties
        out.append(dataclasses.replace(item, category=category))
    return out
