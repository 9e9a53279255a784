"""AVE (Audio-Visual Event localisation, Tian et al. 2018) annotations -> records and temporal QAs.

``Annotations.txt``: one line per annotated event, ``Category&VideoID&Quality&Start&End``
(whole seconds of a 10 s video), optionally preceded by the header line
``Category&VideoID&Quality&StartTime&EndTime``. A few videos carry two events (two lines).

``ave_splits.csv`` (comma-separated, header ``annotation_line_index,split,category,video_id,
quality,start_s,end_s``): the same annotations joined with the official train/val/test split;
``annotation_line_index`` is the 0-based index of the data line in ``Annotations.txt``.

Each annotation becomes a temporal ``QAItem`` (paper Table 6: AVE is scored by m_tIoU):
question ``When is the moment {category} makes sound and is visible?``, ground truth the event
interval, id ``{video_id}/{event_index}/temporal/0`` with ``event_index`` the position of the
line among that video's lines.

A zero-length event (``Start == End``, e.g. ``Church bell&VWi2ENBuTbw&good&0&0`` on line 27 of the
real file) has no interval to localise (its IoU with itself is 0), so ``ave_to_qa_items`` leaves
it out with a warning naming the file and line; ``AveAnnotation.zero_length`` finds them for
counting. Its ``event_index`` is still used up, so the other ids do not move.

>>> import io
>>> anns = parse_ave_lines(io.StringIO("Church bell&RUhOCu3LNXM&good&0&10\\nDog&x1&good&6&8\\n"))
>>> items = ave_to_qa_items(anns)
>>> items[1].qa_id, items[1].question, items[1].answer.span
('x1/0/temporal/0', 'When is the moment Dog makes sound and is visible?', Span(start_s=6.0, end_s=8.0))
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ravst.formats import FormatError, read_text, where
from ravst.types import Answer, Event, QAItem, Span, Task, VideoRecord

__all__ = [
    "AVE_DURATION_S",
    "AveAnnotation",
    "ave_to_qa_items",
    "ave_to_records",
    "parse_ave_lines",
    "read_ave",
    "read_ave_splits",
]

log = logging.getLogger(__name__)

AVE_DURATION_S = 10.0  # every AVE video is a 10 s clip
_HEADER_FIRST = "category"
_SPLIT_COLUMNS = ("annotation_line_index", "split", "category", "video_id", "quality", "start_s", "end_s")
TEMPORAL_QUESTION = "When is the moment {category} makes sound and is visible?"


@dataclass(frozen=True, slots=True)
class AveAnnotation:
    """One line of AVE ``Annotations.txt`` (``line_index``: 0-based data line, header excluded)."""

    category: str
    video_id: str
    quality: str
    start_s: float
    end_s: float
    line_index: int
    split: str | None = None
    source: str | None = field(default=None, compare=False)
    """``file: line N`` where it was read (for messages; not compared)."""

    def __post_init__(self) -> None:
        if not (0.0 <= self.start_s <= self.end_s):
            raise ValueError(f"interval [{self.start_s}, {self.end_s}] is not 0 <= start <= end")

    @property
    def zero_length(self) -> bool:
        """``Start == End``: no interval to localise (left out of the temporal QAs)."""
        return self.start_s == self.end_s


def _seconds(text: str, ctx: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FormatError(f"{ctx}: expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value):
        raise FormatError(f"{ctx}: expected a finite number, got {text!r}")
    return value


def parse_ave_lines(lines: Iterable[str], *, source: str | Path | None = None) -> list[AveAnnotation]:
    """Parse the lines of an ``Annotations.txt`` (header line optional, blank lines ignored)."""
    out: list[AveAnnotation] = []
    data_index = 0
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("&")
        ctx = where(source, f"line {number}")
        if number == 1 and fields[0].strip().lower() == _HEADER_FIRST:
            continue
        if len(fields) != 5:
            raise FormatError(f"{ctx}: expected 5 '&'-separated fields Category&VideoID&Quality&Start&End, "
                              f"got {len(fields)}: {line[:80]!r}")
        category, video_id, quality = (f.strip() for f in fields[:3])
        if not category or not video_id:
            raise FormatError(f"{ctx}: empty {'Category' if not category else 'VideoID'}")
        start = _seconds(fields[3].strip(), f"{ctx}: Start")
        end = _seconds(fields[4].strip(), f"{ctx}: End")
        try:
            out.append(AveAnnotation(category, video_id, quality, start, end, data_index, source=ctx))
        except ValueError as err:
            raise FormatError(f"{ctx}: Start/End: {err}") from err
        data_index += 1
    return out


def read_ave(
    annotations_path: str | Path, splits_path: str | Path | None = None, *, split: str | None = None
) -> list[AveAnnotation]:
    """Read ``Annotations.txt``; with ``splits_path`` attach each line's split (checked against the
    CSV's category / video / interval), and with ``split`` keep only that split."""
    path = Path(annotations_path)
    anns = parse_ave_lines(io.StringIO(read_text(path), newline=None), source=path)
    if splits_path is None:
        if split is not None:
            raise ValueError("filtering by split needs splits_path")
        return anns
    by_line = {a.line_index: a for a in read_ave_splits(splits_path)}
    joined = []
    for ann in anns:
        ctx = where(splits_path, f"annotation_line_index {ann.line_index}")
        other = by_line.get(ann.line_index)
        if other is None:
            raise FormatError(f"{ctx}: no split for line {ann.line_index + 1} of {path.name} ({ann.video_id})")
        if (other.category, other.video_id, other.start_s, other.end_s) != (
            ann.category, ann.video_id, ann.start_s, ann.end_s,
        ):
            raise FormatError(f"{ctx}: row {other} does not match {path.name} line {ann}")
        if split is None or other.split == split:
            joined.append(AveAnnotation(ann.category, ann.video_id, ann.quality, ann.start_s, ann.end_s,
                                        ann.line_index, other.split, source=ann.source))
    return joined


def read_ave_splits(path: str | Path) -> list[AveAnnotation]:
    """Read ``ave_splits.csv`` on its own (it carries every annotation field and the split)."""
    path = Path(path)
    out = []
    with io.StringIO(read_text(path), newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _SPLIT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise FormatError(f"{where(path, 'header')}: missing column(s) {missing}")
        for row in reader:
            ctx = where(path, f"line {reader.line_num}")
            try:
                index = int(row["annotation_line_index"])
            except ValueError:
                raise FormatError(f"{ctx}: annotation_line_index: expected an integer, "
                                  f"got {row['annotation_line_index']!r}") from None
            start = _seconds(row["start_s"], f"{ctx}: start_s")
            end = _seconds(row["end_s"], f"{ctx}: end_s")
            try:
                out.append(AveAnnotation(row["category"], row["video_id"], row["quality"], start, end,
                                         index, row["split"], source=ctx))
            except ValueError as err:
                raise FormatError(f"{ctx}: start_s/end_s: {err}") from err
    return out


def ave_to_records(anns: Iterable[AveAnnotation]) -> list[VideoRecord]:
    """One ``VideoRecord`` per video (10 s), events in line order, ``subset`` = split."""
    grouped: dict[str, list[AveAnnotation]] = {}
    for ann in anns:
        grouped.setdefault(ann.video_id, []).append(ann)
    return [
        VideoRecord(
            video_id=vid,
            duration_s=AVE_DURATION_S,
            events=tuple(Event(label=a.category, span=Span(a.start_s, a.end_s)) for a in group),
            subset=group[0].split,
        )
        for vid, group in grouped.items()
    ]


def ave_to_qa_items(anns: Iterable[AveAnnotation]) -> list[QAItem]:
    """One temporal QA per annotation with a non-empty interval (see the module docstring)."""
    seen: dict[str, int] = {}
    items = []
    for ann in anns:
        event_index = seen.get(ann.video_id, 0)
        seen[ann.video_id] = event_index + 1
        if ann.zero_length:
            log.warning("%s: zero-length event %r [%g, %g] of video %s: no interval to localise, left out of "
                        "the temporal QAs", ann.source or f"annotation line index {ann.line_index}",
                        ann.category, ann.start_s, ann.end_s, ann.video_id)
            continue
        items.append(
            QAItem(
                qa_id=QAItem.make_id(ann.video_id, event_index, Task.TEMPORAL, 0),
                video=ann.video_id,
                duration_s=AVE_DURATION_S,
                event_index=event_index,
                event_num=event_index + 1,
                task=Task.TEMPORAL,
                k=0,
                question=TEMPORAL_QUESTION.format(category=ann.category),
                answer=Answer(objects=(ann.category,), spans=(Span(ann.start_s, ann.end_s),)),
                query_object=ann.category,
                category=ann.category,
            )
        )
    return items

