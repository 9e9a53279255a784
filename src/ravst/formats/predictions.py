"""Predictions JSONL <-> ``Prediction``: one JSON object per line, one line per QA.

Required fields: ``qa_id`` (str) and ``text`` (str, the raw model output). Optional:
``model``, ``coord_space`` (``original`` | ``input`` | ``norm1`` | ``norm1000``), ``input_wh``
(``[w, h]``), ``frame_times_s`` (list of seconds), ``latency_s``, ``error``. Any other field is
kept in ``Prediction.extra`` and written back as a top-level field.

The file is read and written with ``ravst.jsonl`` (lines split on ``"\\n"`` only, so U+2028 and
friends in a model's answer are just text; a torn last line is cut at the byte level, even inside
a UTF-8 character). A crash while writing leaves a truncated last line: ``read_predictions``
reports it with its line number (``on_error="raise"``, the default) or logs it and goes on
(``on_error="skip"``). ``load_predictions`` is what ``ravst eval`` uses: it skips a truncated last
line with a warning, keeps repeated ``qa_id`` s (the caller keeps the last) and reports what it
skipped. ``append_predictions`` first cuts a torn last record (no newline at the end, not valid
JSON) off the file, logging what it dropped, and adds the newline a complete last record lacks,
so a resumed run never leaves an invalid line mid-file.

Every line is validated (``prediction_from_dict``): besides the fields above, ``original_wh``
(an extra field that backends write: the video's frame size) must be ``[width, height]``
positive finite numbers when present; a bad record is reported with the file, the line and its
``qa_id``.

>>> import io, json
>>> fh = io.StringIO()
>>> write_prediction(fh, Prediction("v/0/temporal/0", "<answer>..</answer>", model="m", extra={"seed": 1}))
>>> fh.getvalue()
'{"qa_id": "v/0/temporal/0", "text": "<answer>..</answer>", "model": "m", "seed": 1}\\n'
>>> prediction_from_dict(json.loads(fh.getvalue())).extra
{'seed': 1}
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from ravst.coords import MAX_FRAME_SIDE_PX, frame_size_wh, short_repr
from ravst.formats import FormatError
from ravst.jsonl import JsonlAppender, dumps_line, scan_jsonl, write_jsonl_atomic
from ravst.types import CoordSpace, Prediction

__all__ = [
    "BadLine",
    "PredictionsFile",
    "append_predictions",
    "completed_ids",
    "load_predictions",
    "prediction_from_dict",
    "prediction_to_dict",
    "read_predictions",
    "write_prediction",
    "write_predictions",
]

log = logging.getLogger(__name__)

FIELDS = ("qa_id", "text", "model", "coord_space", "input_wh", "frame_times_s", "latency_s", "error")
OnError = Literal["raise", "skip"]


def _is_number(value: Any) -> bool:
    """A finite JSON number (an integer too large for a float is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def prediction_from_dict(record: Any) -> Prediction:
    """Build a ``Prediction`` from a decoded JSON object; ``ValueError`` names the field."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    for key in ("qa_id", "text"):
        if key not in record:
            raise ValueError(f"missing required field {key!r}")
        if not isinstance(record[key], str):
            raise ValueError(f"field {key!r}: expected a string, got {type(record[key]).__name__}")
    if not record["qa_id"]:
        raise ValueError("field 'qa_id': empty string")
    for key in ("model", "error"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise ValueError(f"field {key!r}: expected a string or null, got {short_repr(record[key])}")
    coord = record.get("coord_space", CoordSpace.ORIGINAL.value)
    if coord is None:
        coord = CoordSpace.ORIGINAL.value
    if not isinstance(coord, str) or coord not in {c.value for c in CoordSpace}:
        raise ValueError(f"field 'coord_space': {short_repr(coord)} is not one of {[c.value for c in CoordSpace]}")
    wh = record.get("input_wh")
    if wh is not None and not (
        isinstance(wh, list) and len(wh) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_FRAME_SIDE_PX for v in wh)
    ):
        raise ValueError(f"field 'input_wh': expected [width, height], two positive integers of pixels "
                         f"(at most {MAX_FRAME_SIDE_PX}), got {short_repr(wh)}")
    if record.get("original_wh") is not None:
        frame_size_wh("field 'original_wh'", record["original_wh"])
    times = record.get("frame_times_s")
    if times is not None and not (isinstance(times, list) and all(_is_number(t) for t in times)):
        raise ValueError("field 'frame_times_s': expected a list of finite numbers")
    latency = record.get("latency_s")
    if latency is not None and not _is_number(latency):
        raise ValueError(f"field 'latency_s': expected a finite number, got {short_repr(latency)}")
    return Prediction(
        qa_id=record["qa_id"],
        text=record["text"],
        model=record.get("model"),
        coord_space=CoordSpace(coord),
        input_wh=tuple(wh) if wh is not None else None,  # type: ignore[arg-type]
        frame_times_s=tuple(times) if times is not None else None,
        latency_s=float(latency) if latency is not None else None,
        error=record.get("error"),
        extra={k: v for k, v in record.items() if k not in FIELDS},
    )


def prediction_to_dict(pred: Prediction) -> dict[str, Any]:
    """The JSON object of one prediction: required fields, then the optional ones that are set
    (``coord_space`` only when not ``original``), then ``extra``."""
    out: dict[str, Any] = {"qa_id": pred.qa_id, "text": pred.text}
    if pred.model is not None:
        out["model"] = pred.model
    if pred.coord_space is not CoordSpace.ORIGINAL:
        out["coord_space"] = pred.coord_space.value
    if pred.input_wh is not None:
        out["input_wh"] = list(pred.input_wh)
    if pred.frame_times_s is not None:
        out["frame_times_s"] = list(pred.frame_times_s)
    if pred.latency_s is not None:
        out["latency_s"] = pred.latency_s
    if pred.error is not None:
        out["error"] = pred.error
    clash = [k for k in pred.extra if k in FIELDS]
    if clash:
        raise ValueError(f"prediction {pred.qa_id}: extra field(s) {clash} clash with standard fields")
    out.update(pred.extra)
    return out


def write_prediction(fh: IO[str], pred: Prediction) -> None:
    """Write one prediction as one JSON line (``ravst.jsonl.dumps_line``) and flush (so a crash
    loses at most this line). Files: prefer ``append_predictions`` / ``write_predictions``."""
    fh.write(dumps_line(prediction_to_dict(pred)))
    fh.flush()


def append_predictions(path: str | Path, preds: Iterable[Prediction]) -> int:
    """Append predictions to a JSONL file (created if absent); returns how many were written.

    A torn last record left by a crash (no newline at the end, not valid JSON) is cut off first,
    with a warning naming the line and what was dropped; a complete last record without its
    newline gets the newline (``ravst.jsonl.JsonlAppender``)."""
    with JsonlAppender(path) as out:
        for pred in preds:
            out.write(prediction_to_dict(pred))
    return out.n_written


def write_predictions(path: str | Path, preds: Iterable[Prediction]) -> int:
    """Write (replace, atomically) a predictions JSONL file; returns how many were written."""
    return write_jsonl_atomic(path, (prediction_to_dict(p) for p in preds))


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line of a predictions file that could not be read."""

    line: int
    message: str
    truncated: bool = False  # the last line, without newline and not valid JSON (a crash mid-write)
    qa_id: str | None = None  # when the line is a JSON object with a string qa_id


@dataclass(frozen=True, slots=True)
class PredictionsFile:
    """What ``load_predictions`` read: every valid record in file order (repeated ``qa_id`` s
    included), the lines it skipped and how many records repeat an earlier ``qa_id``."""

    predictions: list[Prediction]
    bad_lines: tuple[BadLine, ...] = ()
    n_duplicates: int = 0


def _scan(path: Path) -> Iterator[tuple[int, Prediction | BadLine]]:
    """(line number, record or bad line) for each non-blank line of a predictions file."""
    for line in scan_jsonl(path):
        if not line.ok:
            if line.torn:
                yield line.number, BadLine(line.number, f"truncated last line (no newline at the end; the writer "
                                                        f"probably stopped mid-record): {line.error}", True)
            else:
                yield line.number, BadLine(line.number, str(line.error))
            continue
        record = line.value
        qa_id = record.get("qa_id") if isinstance(record, dict) else None
        qa_id = qa_id if isinstance(qa_id, str) and qa_id else None
        try:
            yield line.number, prediction_from_dict(record)
        except ValueError as err:
            where = f"qa_id {qa_id!r}: " if qa_id is not None else ""
            yield line.number, BadLine(line.number, f"{where}{err}", qa_id=qa_id)


def read_predictions(path: str | Path, *, on_error: OnError = "raise") -> list[Prediction]:
    """Read a predictions JSONL file. Blank lines are ignored.

    Errors (invalid JSON, a missing or mistyped field, a duplicate ``qa_id``, a truncated last
    line) raise ``FormatError`` naming the file, the line and the field; with
    ``on_error="skip"`` they are logged as warnings and the line is skipped (for a duplicate
    ``qa_id`` the first record is kept).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    path = Path(path)
    preds: list[Prediction] = []
    seen: dict[str, int] = {}
    for number, got in _scan(path):
        if isinstance(got, Prediction) and got.qa_id in seen:
            got = BadLine(number, f"field 'qa_id': duplicate {got.qa_id!r} (first on line {seen[got.qa_id]})")
        if isinstance(got, BadLine):
            message = f"{path}: line {number}: {got.message}"
            if on_error == "raise":
                raise FormatError(message)
            log.warning("%s; line skipped", message)
            continue
        seen[got.qa_id] = number
        preds.append(got)
    return preds


def load_predictions(path: str | Path, *, skip_bad_lines: bool = False) -> PredictionsFile:
    """Read a predictions file the way ``ravst eval`` scores it.

    * a truncated last line (a crashed run) is skipped with a warning and reported;
    * a repeated ``qa_id`` is kept (``n_duplicates`` counts the repeats; the scorer keeps the
      last one, like a resumed run that appended a newer answer);
    * any other bad line raises ``FormatError`` naming file, line and field, unless
      ``skip_bad_lines`` (then it is skipped with a warning and reported).
    """
    path = Path(path)
    preds: list[Prediction] = []
    bad: list[BadLine] = []
    seen: set[str] = set()
    n_dupes = 0
    for number, got in _scan(path):
        if isinstance(got, BadLine):
            message = f"{path}: line {number}: {got.message}"
            if not (got.truncated or skip_bad_lines):
                raise FormatError(message + " (skip_bad_lines / ravst eval --skip-bad-lines scores the other lines)")
            log.warning("%s; line skipped", message)
            bad.append(got)
            continue
        if got.qa_id in seen:
            n_dupes += 1
        seen.add(got.qa_id)
        preds.append(got)
    return PredictionsFile(preds, tuple(bad), n_dupes)


def completed_ids(path: str | Path) -> set[str]:
    """The ``qa_id``s already in a (possibly truncated) predictions file; empty when absent.
    For resuming a run: bad lines are skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return set()
    return {p.qa_id for p in read_predictions(path, on_error="skip")}
