"""JSON Lines: the one reader and the one writer of every JSONL file ravst reads or writes.

A JSONL file is UTF-8 text with one JSON value per line; lines end with ``b"\\n"`` and with
nothing else. ``str.splitlines`` is never used on JSONL: it also splits on U+2028, U+2029, U+0085
(and others), which ``json.dumps(ensure_ascii=False)`` leaves raw inside strings, so a caption or
a model answer holding one would break the file for good.

Writing (every record is one whole line, written by one ``write`` and flushed at once, so a
killed process leaves at most one torn LAST line and never a torn line mid-file):

* ``dumps_line(value, *, sort_keys=False, compact=False) -> str``: the line, ``"\\n"`` included.
  U+2028, U+2029 and U+0085 are written escaped (``\\u2028``), so even a tool that splits on
  them sees one record per line; the decoded value is the same.
* ``JsonlAppender(path, ...)``: a context manager with ``write(value)`` (and ``sync()``); on
  entering it repairs the end of an existing file (``repair_tail``). For resumable outputs.
* ``append_jsonl(path, values) -> int`` and ``write_jsonl_atomic(path, values) -> int`` (temp
  file, fsync, ``os.replace``: readers see the old or the new file, never a part).

Reading (line numbers are 1-based and count blank lines, so ``file:line`` messages match an
editor):

* ``scan_jsonl(path) -> Iterator[Line]``: every non-blank line with its number, its bytes and
  either its value or an ``error`` (not UTF-8, invalid JSON, nested too deeply). Never raises
  for the content of a line.
* ``read_jsonl(path, *, skip_bad=False) -> list[Any]``: the values; a bad line raises
  ``JsonlError`` (a ``ValueError``) naming ``file:line`` unless ``skip_bad`` (then a WARNING).

The end of a file: the bytes after the last ``b"\\n"`` are cut at the BYTE level before they
are decoded. When they are a complete JSON value, the record merely lacks its newline (a file
copied or edited by hand): readers keep it and ``JsonlAppender`` adds the newline before the next
record. Otherwise they are a torn record (a crash mid-write, possibly inside a multi-byte UTF-8
character): ``Line.torn`` is true, ``read_jsonl`` drops it with a WARNING, and ``JsonlAppender``
truncates it off with a WARNING naming the line and what was dropped.

>>> import tempfile, os
>>> with tempfile.TemporaryDirectory() as d:
...     p = os.path.join(d, "x.jsonl")
...     with JsonlAppender(p) as out:
...         out.write({"text": "a\\u2028b"})
...     _ = open(p, "ab").write('{"text": "torn \\u00e9'.encode()[:-1])  # a crash mid-character
...     ([(line.number, line.value, line.torn) for line in scan_jsonl(p)], append_jsonl(p, [{"n": 2}]),
...      read_jsonl(p))
([(1, {'text': 'a\\u2028b'}, False), (2, None, True)], 1, [{'text': 'a\\u2028b'}, {'n': 2}])
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = [
    "JsonlAppender",
    "JsonlError",
    "Line",
    "TailRepair",
    "append_jsonl",
    "decode_line",
    "dumps_line",
    "read_jsonl",
    "repair_tail",
    "scan_jsonl",
    "write_jsonl_atomic",
]

log = logging.getLogger(__name__)

_PREVIEW_CHARS = 80  # how much of a bad line a message quotes
_TAIL_BLOCK = 1 << 16  # bytes read at a time when looking for the last newline
_ESCAPES = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"}
_ESCAPE_TABLE = str.maketrans(_ESCAPES)


class JsonlError(ValueError):
    """A JSONL line could not be read; the message starts with ``file:line``."""


@dataclass(frozen=True, slots=True)
class Line:
    """One non-blank line of a JSONL file: its value, or why it could not be read.

    ``terminated`` is False only for a last line without ``"\\n"``; ``torn`` is such a line that
    is not a complete JSON value (what a crash mid-write leaves)."""

    number: int
    raw: bytes  # the line's bytes, without its newline
    value: Any = None
    error: str | None = None
    terminated: bool = True

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def torn(self) -> bool:
        return self.error is not None and not self.terminated

    def preview(self) -> str:
        text = self.raw[: _PREVIEW_CHARS * 4].decode("utf-8", errors="replace")
        return repr(text[:_PREVIEW_CHARS]) + ("..." if len(text) > _PREVIEW_CHARS else "")


@dataclass(frozen=True, slots=True)
class TailRepair:
    """What ``repair_tail`` did to the end of a file: added a missing newline or cut a torn
    record (``line``: its number, ``dropped_bytes``: its size, ``preview``: its start)."""

    line: int
    action: str  # "newline-added" | "torn-dropped" | "blank-dropped"
    dropped_bytes: int = 0
    preview: str = ""


# ---------------------------------------------------------------------------------------------
# writing


def dumps_line(value: Any, *, sort_keys: bool = False, compact: bool = False) -> str:
    """``value`` as one JSONL line (ending in ``"\\n"``; no other line break inside).

    ``compact`` drops the spaces after ``,`` and ``:``. ``ValueError`` (``TypeError`` for an
    object JSON cannot hold) before anything is written.

    >>> dumps_line({"b": "x\\u2028y", "a": 1}, sort_keys=True, compact=True)
    '{"a":1,"b":"x\\\\u2028y"}\\n'
    """
    separators = (",", ":") if compact else (", ", ": ")
    text = json.dumps(value, ensure_ascii=False, sort_keys=sort_keys, separators=separators)
    return text.translate(_ESCAPE_TABLE) + "\n"


class JsonlAppender:
    """Append records to a JSONL file, one whole flushed line each (see the module docstring).

    ``fsync_every_s``: also fsync at most this often (and on close); None: flush to the OS
    only (a killed process loses nothing; a power cut may lose the last second)."""

    def __init__(self, path: str | Path, *, sort_keys: bool = False, compact: bool = False,
                 fsync_every_s: float | None = None) -> None:
        self.path = Path(path)
        self.sort_keys = sort_keys
        self.compact = compact
        self.fsync_every_s = fsync_every_s
        self.repair: TailRepair | None = None
        self.n_written = 0
        self._fh: IO[bytes] | None = None
        self._last_sync = 0.0

    def __enter__(self) -> JsonlAppender:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repair = repair_tail(self.path) if self.path.exists() else None
        self._fh = open(self.path, "ab")  # closed in __exit__
        self._last_sync = time.monotonic()
        return self

    def write(self, value: Any) -> None:
        """Write ``value`` as one line and flush it to the OS."""
        if self._fh is None:
            raise ValueError(f"{self.path}: JsonlAppender.write outside its 'with' block")
        self._fh.write(dumps_line(value, sort_keys=self.sort_keys, compact=self.compact).encode("utf-8"))
        self._fh.flush()
        self.n_written += 1
        if self.fsync_every_s is not None and time.monotonic() - self._last_sync > self.fsync_every_s:
            self.sync()

    def sync(self) -> None:
        """Flush and fsync now (on disk, not only in the OS)."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._last_sync = time.monotonic()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fh is not None:
            try:
                if self.fsync_every_s is not None:
                    self.sync()
            finally:
                self._fh.close()
                self._fh = None


def append_jsonl(path: str | Path, values: Iterable[Any], *, sort_keys: bool = False, compact: bool = False) -> int:
    """Append ``values`` (file created if absent, its end repaired first); returns how many."""
    with JsonlAppender(path, sort_keys=sort_keys, compact=compact) as out:
        for value in values:
            out.write(value)
    return out.n_written


def write_jsonl_atomic(path: str | Path, values: Iterable[Any], *, sort_keys: bool = False,
                       compact: bool = False) -> int:
    """Write (replace) a JSONL file atomically; returns how many records were written."""
    lines = [dumps_line(v, sort_keys=sort_keys, compact=compact) for v in values]
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write("".join(lines).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return len(lines)


def _last_newline_end(fh: IO[bytes], size: int) -> int:
    """Offset just after the last ``b"\\n"`` of an open file (0 when it has none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - _TAIL_BLOCK)
        fh.seek(start)
        block = fh.read(pos - start)
        found = block.rfind(b"\n")
        if found >= 0:
            return start + found + 1
        pos = start
    return 0


def _count_newlines(fh: IO[bytes], end: int) -> int:
    fh.seek(0)
    count, left = 0, end
    while left > 0:
        block = fh.read(min(_TAIL_BLOCK * 16, left))
        if not block:
            break
        count += block.count(b"\n")
        left -= len(block)
    return count


def repair_tail(path: str | Path) -> TailRepair | None:
    """Make ``path`` end with a complete line before something is appended to it: a complete
    last record without its newline gets the newline; a torn last record (not complete JSON, e.g.
    cut inside a UTF-8 character) is truncated off with a WARNING. None when nothing was needed."""
    p = Path(path)
    with open(p, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return None
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return None
        cut = _last_newline_end(fh, size)
        fh.seek(cut)
        tail = fh.read(size - cut)
        number = _count_newlines(fh, cut) + 1
        line = decode_line(number, tail, terminated=False)
        if line is not None and line.ok:
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")
            log.info("%s: line %d had no newline at the end: added one before appending", p, number)
            return TailRepair(number, "newline-added")
        fh.truncate(cut)
        if line is None:  # only blanks after the last newline
            log.info("%s: dropped %d blank byte(s) after the last newline before appending", p, len(tail))
            return TailRepair(number, "blank-dropped", len(tail))
        log.warning("%s: line %d is a torn record (no newline, %s): dropped %d bytes %s",
                    p, number, line.error, len(tail), line.preview())
        return TailRepair(number, "torn-dropped", len(tail), line.preview())


# ---------------------------------------------------------------------------------------------
# reading


def decode_line(number: int, raw: bytes, *, terminated: bool = True) -> Line | None:
    """Decode one line's bytes (without its newline); None for a blank line. Never raises for
    the content: the reason is in ``Line.error``."""
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
        raw = raw[3:]
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Line(number, raw, error=f"not UTF-8 (byte {raw[err.start]:#04x} at byte {err.start + 1} "
                                        f"of the line)", terminated=terminated)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return Line(number, raw, error=f"invalid JSON: {err.msg} (column {err.colno})", terminated=terminated)
    except RecursionError:
        return Line(number, raw, error="invalid JSON: nested too deeply to decode", terminated=terminated)
    except ValueError as err:  # e.g. an integer longer than Python's digit limit
        return Line(number, raw, error=f"invalid JSON: {err}", terminated=terminated)
    return Line(number, raw, value=value, terminated=terminated)


def scan_jsonl(path: str | Path) -> Iterator[Line]:
    """Every non-blank line of a JSONL file, in order (see ``Line``); split on ``b"\\n"`` only."""
    with open(path, "rb") as fh:
        number = 0
        for raw in fh:  # binary files split on b"\n" and nothing else
            number += 1
            terminated = raw.endswith(b"\n")
            line = decode_line(number, raw[:-1] if terminated else raw, terminated=terminated)
            if line is not None:
                yield line


def read_jsonl(path: str | Path, *, skip_bad: bool = False) -> list[Any]:
    """Every value of a JSONL file. A torn last line is dropped with a WARNING; any other bad
    line raises ``JsonlError`` naming ``file:line`` (``skip_bad``: WARNING, line skipped)."""
    out = []
    for line in scan_jsonl(path):
        if line.ok:
            out.append(line.value)
            continue
        message = f"{path}:{line.number}: {line.error}"
        if line.torn:
            log.warning("%s: a torn last line (no newline; an interrupted write?) %s: dropped", message,
                        line.preview())
        elif skip_bad:
            log.warning("%s; line skipped", message)
        else:
            raise JsonlError(message)
    return out
