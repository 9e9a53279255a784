"""Readers and writers of the file formats ravst works with (see ``docs/formats.md``).

* ``ravst.formats.official``: the official R-AVST QA file (``xml_test_QA.json``) <-> ``QAItem``.
* ``ravst.formats.unav100``: UnAV-100 ActivityNet-style annotation JSON <-> ``VideoRecord``.
* ``ravst.formats.ave``: AVE ``Annotations.txt`` (+ split CSV) -> records and temporal QAs.
* ``ravst.formats.avsbench``: AVSBench-V1 test CSVs (+ optional masks) -> spatial QAs.
* ``ravst.formats.predictions``: predictions JSONL <-> ``Prediction``.

``read_qa_items(path)`` reads ground-truth QAs from any of the QA-bearing files above.
Every reader raises ``FormatError`` (a ``ValueError``) naming the file, the record (or line) and
the field it could not read. ``read_text`` and ``read_json`` are how they open a file: a file that
is not UTF-8, not valid JSON or nested too deeply is a ``FormatError`` naming the file and line.
JSONL files are read and written by ``ravst.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ravst.types import QAItem

__all__ = ["FormatError", "read_json", "read_qa_items", "read_text", "where"]


class FormatError(ValueError):
    """A file could not be read; the message names file, record/line and field."""


def where(path: str | Path | None, *parts: str) -> str:
    """Prefix of an error message: ``file: part: part``.

    >>> where("data/x.json", "video #3 'abc'", "duration")
    "data/x.json: video #3 'abc': duration"
    """
    head = str(Path(path)) if path is not None else "<data>"
    return ": ".join([head, *parts])


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a file; ``FormatError`` naming the file, line and byte when it is not
    UTF-8 (``OSError`` when it cannot be read: its message names the file)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = data.rfind(b"\n", 0, err.start) + 1
        line = data.count(b"\n", 0, err.start) + 1
        raise FormatError(f"{path}: line {line}: not UTF-8 text (byte {data[err.start]:#04x} at byte "
                          f"{err.start - line_start + 1} of the line); save the file as UTF-8") from None


def read_json(path: str | Path) -> Any:
    """The decoded content of a JSON file; ``FormatError`` naming the file (and line) when it is
    not UTF-8, not valid JSON, or nested too deeply to decode."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}: line {err.lineno} column {err.colno}: invalid JSON: {err.msg}") from None
    except RecursionError:
        raise FormatError(f"{path}: invalid JSON: nested too deeply to decode") from None
    except ValueError as err:  # e.g. an integer longer than Python's digit limit
        raise FormatError(f"{path}: invalid JSON: {err}") from None


def read_qa_items(
    path: str | Path, *, split: str | None = None, masks_dir: str | Path | None = None
) -> list[QAItem]:
    """Ground-truth QAs from any supported file, recognised by its content:

    * a JSON list -> the official R-AVST layout (``read_official``);
    * a folder written by ``ravst export hf`` -> its QAs (``read_official``);
    * a CSV whose header starts with ``annotation_line_index`` -> AVE ``ave_splits.csv``
      (``split`` keeps one split, e.g. ``"test"``);
    * ``&``-separated lines -> AVE ``Annotations.txt``;
    * two-column ``videoid_frame,category`` lines -> an AVSBench-V1 CSV (boxes from the PNG masks
      under ``masks_dir`` when given).
    """
    from ravst.formats.ave import ave_to_qa_items, read_ave, read_ave_splits
    from ravst.formats.avsbench import avsbench_to_qa_items, read_avsbench
    from ravst.formats.official import read_official

    path = Path(path)
    if path.is_dir():  # a dataset folder written by `ravst export hf`
        if split is not None or masks_dir is not None:
            raise ValueError(f"{path}: split / masks_dir do not apply to a dataset folder")
        return read_official(path)
    with path.open("rb") as fh:  # only to recognise the format: the reader reports bad bytes
        head = fh.read(4096).decode("utf-8", errors="replace")
    first = head.lstrip()[:1]
    first_line = head.split("\n", 1)[0]
    if split is not None and not first_line.startswith("annotation_line_index"):
        raise ValueError(f"{path}: split={split!r} applies only to an AVE split CSV")
    if masks_dir is not None and (first == "[" or "&" in first_line):
        raise ValueError(f"{path}: masks_dir applies only to an AVSBench CSV")
    if first == "[":
        return read_official(path)
    if first_line.startswith("annotation_line_index"):
        anns = read_ave_splits(path)
        return ave_to_qa_items([a for a in anns if split is None or a.split == split])
    if "&" in first_line:
        return ave_to_qa_items(read_ave(path))
    if first_line.count(",") >= 1:
        return avsbench_to_qa_items(read_avsbench(path), masks_dir=masks_dir)
    raise FormatError(f"{path}: not a recognised ground-truth file (official JSON, AVE, AVSBench CSV)")
