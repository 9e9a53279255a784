"""UnAV-100 annotation JSON (ActivityNet style) <-> ``VideoRecord``.

Layout: ``{"version": str, "database": {video_id: {"duration": number, "subset": str,
"annotations": [{"segment": [start, end], "label": str, "label_id": int}, ...]}}}``.
``duration`` and segment bounds are ints for some videos and floats for others. ``VideoRecord``
stores floats; the writer writes a whole number as an int (``39``), any other as a float, so
``json.load`` of the original and of the rewritten file compare equal (``39 == 39.0``).

>>> data = {"version": "unav100", "database": {"v1": {"duration": 39, "subset": "test",
...     "annotations": [{"segment": [0, 12.5], "label": "sailing", "label_id": 55}]}}}
>>> records = unav100_json_to_records(data)
>>> records[0].events[0].span, records[0].events[0].label
(Span(start_s=0.0, end_s=12.5), 'sailing')
>>> records_to_unav100_json(records) == data
True
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from ravst.formats import FormatError, read_json, where
from ravst.types import Event, Span, VideoRecord

__all__ = ["read_unav100", "records_to_unav100_json", "unav100_json_to_records", "write_unav100"]

log = logging.getLogger(__name__)

_VIDEO_KEYS = ("duration", "subset", "annotations")
_EVENT_KEYS = ("segment", "label", "label_id")
OnUnknown = Literal["raise", "warn"]


def _unknown(obj: dict[str, Any], known: tuple[str, ...], ctx: str, on_unknown: OnUnknown) -> None:
    extra = [k for k in obj if k not in known]
    if extra:
        message = f"{ctx}: unknown key(s) {extra} (known: {list(known)})"
        if on_unknown == "raise":
            raise FormatError(message + "; pass on_unknown='warn' to read the file without them")
        log.warning("%s; ignored", message)


def _number(value: Any, ctx: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FormatError(f"{ctx}: expected a finite number, got {value!r}")
    return float(value)


def unav100_json_to_records(
    data: Any, *, source: str | Path | None = None, on_unknown: OnUnknown = "raise"
) -> list[VideoRecord]:
    """Decoded UnAV-100 JSON -> records in file order. Events whose end precedes their start,
    or that lie outside ``[0, duration]`` by more than 1 s, are errors; small overruns (the real
    file has segments ending a few ms past the duration) are kept as they are."""
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise FormatError(f"{where(source)}: expected an object with a 'database' object")
    _unknown(data, ("version", "database"), where(source), on_unknown)
    records = []
    for vi, (video_id, video) in enumerate(data["database"].items()):
        ctx = where(source, f"video #{vi} {video_id!r}")
        if not isinstance(video, dict):
            raise FormatError(f"{ctx}: expected an object, got {type(video).__name__}")
        _unknown(video, _VIDEO_KEYS, ctx, on_unknown)
        if "duration" not in video:
            raise FormatError(f"{ctx}: missing 'duration'")
        duration = _number(video["duration"], f"{ctx}: duration")
        if duration < 0:
            raise FormatError(f"{ctx}: duration: must be >= 0, got {duration}")
        subset = video.get("subset")
        if subset is not None and not isinstance(subset, str):
            raise FormatError(f"{ctx}: subset: expected a string, got {subset!r}")
        annotations = video.get("annotations", [])
        if not isinstance(annotations, list):
            raise FormatError(f"{ctx}: annotations: expected a list, got {type(annotations).__name__}")
        events = []
        for ai, ann in enumerate(annotations):
            actx = f"{ctx}: annotations[{ai}]"
            if not isinstance(ann, dict):
                raise FormatError(f"{actx}: expected an object, got {type(ann).__name__}")
            _unknown(ann, _EVENT_KEYS, actx, on_unknown)
            segment = ann.get("segment")
            if not isinstance(segment, list) or len(segment) != 2:
                raise FormatError(f"{actx}['segment']: expected [start, end], got {segment!r}")
            start = _number(segment[0], f"{actx}['segment'][0]")
            end = _number(segment[1], f"{actx}['segment'][1]")
            if end < start:
                raise FormatError(f"{actx}['segment']: end {end} is before start {start}")
            if start < -1.0 or end > duration + 1.0:
                raise FormatError(f"{actx}['segment']: [{start}, {end}] is outside the video (0-{duration} s)")
            label = ann.get("label")
            if not isinstance(label, str) or not label:
                raise FormatError(f"{actx}['label']: expected a non-empty string, got {label!r}")
            label_id = ann.get("label_id")
            if label_id is not None and (isinstance(label_id, bool) or not isinstance(label_id, int)):
                raise FormatError(f"{actx}['label_id']: expected an integer, got {label_id!r}")
            events.append(Event(label=label, span=Span(start, end), label_id=label_id))
        records.append(VideoRecord(video_id=video_id, duration_s=duration, events=tuple(events), subset=subset))
    return records


def read_unav100(path: str | Path, *, on_unknown: OnUnknown = "raise") -> list[VideoRecord]:
    """Read an UnAV-100-style annotation file."""
    path = Path(path)
    data = read_json(path)
    return unav100_json_to_records(data, source=path, on_unknown=on_unknown)


def _compact(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def records_to_unav100_json(records: Iterable[VideoRecord], *, version: str = "unav100") -> dict[str, Any]:
    """Records -> the UnAV-100 JSON structure. Whole-number floats are written as ints (as the
    original file does for many videos); ``json.load`` gives equal values. Event captions are not
    part of the format and are not written."""
    database: dict[str, Any] = {}
    for record in records:
        if record.video_id in database:
            raise ValueError(f"duplicate video id {record.video_id!r}")
        video: dict[str, Any] = {
            "duration": _compact(record.duration_s),
            "annotations": [
                {
                    "segment": [_compact(e.span.start_s), _compact(e.span.end_s)],
                    "label": e.label,
                    **({"label_id": e.label_id} if e.label_id is not None else {}),
                }
                for e in record.events
            ],
        }
        if record.subset is not None:
            video["subset"] = record.subset
        database[record.video_id] = video
    return {"version": version, "database": database}


def write_unav100(records: Iterable[VideoRecord], path: str | Path, *, version: str = "unav100") -> Path:
    """Write records as UnAV-100 JSON (compact, like the original file)."""
    path = Path(path)
    path.write_text(json.dumps(records_to_unav100_json(records, version=version)), encoding="utf-8")
    return path
