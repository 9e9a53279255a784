"""The one parser of tagged answers (ground truth, model outputs, GRPO completions).

Two modes share one result type:

* **strict** -- the official R-AVST layout exactly (``xml_test_QA.json``)::

      <answer>
      <object>NAME</object>
      <when>[s, e]</when>
      <where>
      t: [x1, y1, x2, y2]
      </where>
      </answer>

  i.e. ``<answer>`` then one or more object blocks, each an ``<object>`` line followed by any
  number of ``<when>`` lines and any number of ``<where>`` blocks (one row per line, possibly
  none), then ``</answer>``; whitespace around the whole text is allowed, nothing else.
* **lenient** (default) -- anything a model emits: ``<think>`` prose, missing closing tags, tags
  in another order, ``10s:`` / ``10.0 s:`` timestamps, integer boxes, several objects in one tag
  (comma-separated or a JSON-like list), several instances per time, JSON-like rows, several
  intervals in ``<when>``, truncated output (what is complete is kept). Text that is valid in the
  strict layout gives exactly the strict result.

Neither mode raises on any string; what could not be read is listed in ``ParseResult.issues``.
Both run in time linear in the length of the text (no backtracking regular expressions).

>>> r = parse_answer("<answer>\\n<object>dog</object>\\n<when>[1.0, 2.5]</when>\\n</answer>")
>>> r.strict_ok, r.answer.objects, r.answer.span
(True, ('dog',), Span(start_s=1.0, end_s=2.5))
>>> r = parse_answer("<think>hmm</think><answer><object>dog, cat</object><when>1s - 3s</when>")
>>> r.strict_ok, r.answer.objects, r.answer.spans, r.issues
(False, ('dog', 'cat'), (Span(start_s=1.0, end_s=3.0),), ('missing </answer>',))
>>> print(render_answer(parse_answer("<where>0: [1, 2, 3, 4]</where><object>cat</object>").answer))
<answer>
<where>
0.0: [1.0, 2.0, 3.0, 4.0]
</where>
<object>cat</object>
</answer>
"""

from __future__ import annotations

import itertools
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ravst.types import Answer, Span, Track

__all__ = ["ParseResult", "parse_answer", "render_answer"]

# A decimal number. Every quantifier is possessive in effect: the parts are separated by
# characters that cannot start the previous part, so matching never backtracks more than O(1).
_NUM = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"

# ---------------------------------------------------------------------------------------------
# result type


@dataclass(frozen=True)
class ParseResult:
    """What ``parse_answer`` read.

    ``strict_ok``: the text is in the official layout. ``has_answer``: an ``<answer>`` tag was
    found. ``has_object``: at least one object name was read. ``has_when``: at least one interval
    was read. ``has_where``: at least one ``<where>`` block was read (an empty block counts: the
    official layout uses it for "no box"). ``issues``: human-readable notes on what could not be
    read (empty for a clean strict answer). ``tags_closed``: every ``<answer>``, ``<object>``,
    ``<when>`` and ``<where>`` that was opened is also closed (the paper's "tag pairs matched").
    """

    answer: Answer
    strict_ok: bool
    has_answer: bool
    has_object: bool
    has_when: bool
    has_where: bool
    issues: tuple[str, ...] = ()
    tags_closed: bool = True

    @property
    def has_content(self) -> bool:
        """True when anything at all (object, interval or where block) was read."""
        return self.has_object or self.has_when or self.has_where


def _result(answer: Answer, *, strict_ok: bool, has_answer: bool, has_where: bool,
            issues: Iterable[str]) -> ParseResult:
    notes = tuple(issues)
    return ParseResult(
        answer=answer,
        strict_ok=strict_ok,
        has_answer=has_answer,
        has_object=bool(answer.objects),
        has_when=bool(answer.spans),
        has_where=has_where,
        issues=notes,
        tags_closed=not any(note.startswith(_UNCLOSED) for note in notes),
    )


_UNCLOSED = "missing </"  # the prefix of every issue about an opened tag that is never closed


def _track(name: str, times: list[float], boxes: list[list[float]]) -> Track:
    import numpy as np

    return Track(
        name,
        np.asarray(times, dtype=np.float64),
        np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
    )


# ---------------------------------------------------------------------------------------------
# strict mode: a line-based recursive-descent reader of the official layout

_S_OBJECT = re.compile(r"<object>([^<\n]*)</object>")
_S_WHEN = re.compile(rf"<when>\[({_NUM}), ({_NUM})\]</when>")
_S_ROW = re.compile(rf"({_NUM}): \[({_NUM}), ({_NUM}), ({_NUM}), ({_NUM})\]")
# a whole <where> block (its rows, each followed by a newline) in one match; possessive
# quantifiers where available (Python >= 3.11: faster, and the same language, see _NUM)
_NUM_P = r"-?+\d++(?:\.\d++)?+(?:[eE][-+]?+\d++)?+" if sys.version_info >= (3, 11) else _NUM
_S_ROWS = re.compile(rf"(?:{_NUM_P}: \[{_NUM_P}, {_NUM_P}, {_NUM_P}, {_NUM_P}\]\n)*")


class _StrictError(ValueError):
    """The text is not in the official layout (message: the first offending line)."""


def _floats(match: re.Match[str], line_no: int) -> list[float]:
    values = [float(g) for g in match.groups()]
    if not all(math.isfinite(v) for v in values):
        raise _StrictError(f"line {line_no}: number out of range")
    return values


def _parse_strict_lines(text: str, lines: list[str] | None = None) -> tuple[Answer, tuple[int, ...]]:
    """Parse the official layout line by line; raise ``_StrictError`` naming the line that breaks
    it. The reference of :func:`_parse_strict`, which calls it to report an error.

    Returns the layout as written (one object per ``<object>`` line, one track per ``<where>``
    block, named after its line) and, for each track, the index of its ``<object>`` line
    (:func:`_name_strict` then applies the naming rules). ``lines``: the text already stripped
    and split at newlines.
    """
    if lines is None:
        lines = text.strip().split("\n")
    if lines[0] != "<answer>":
        raise _StrictError("line 1: expected '<answer>'")
    last = len(lines) - 1
    if last == 0 or lines[last] != "</answer>":
        raise _StrictError(f"line {last + 1}: expected '</answer>' as the last line")
    if last == 1:
        raise _StrictError("line 2: empty answer (expected '<object>NAME</object>')")
    objects: list[str] = []
    spans: list[Span] = []
    tracks: list[Track] = []
    owner: list[int] = []
    i = 1
    while i < last:
        m = _S_OBJECT.fullmatch(lines[i])
        if m is None:
            raise _StrictError(f"line {i + 1}: expected '<object>NAME</object>', got {lines[i][:60]!r}")
        name = m.group(1)
        objects.append(name)
        i += 1
        while i < last and lines[i].startswith("<when>"):
            m = _S_WHEN.fullmatch(lines[i])
            if m is None:
                raise _StrictError(f"line {i + 1}: expected '<when>[s, e]</when>', got {lines[i][:60]!r}")
            start, end = _floats(m, i + 1)
            if end < start:
                raise _StrictError(f"line {i + 1}: interval ends ({end}) before it starts ({start})")
            spans.append(Span(start, end))
            i += 1
        while i < last and lines[i] == "<where>":
            i += 1
            times: list[float] = []
            boxes: list[list[float]] = []
            while i < last and lines[i] != "</where>":
                m = _S_ROW.fullmatch(lines[i])
                if m is None:
                    raise _StrictError(
                        f"line {i + 1}: expected 't: [x1, y1, x2, y2]' or '</where>', got {lines[i][:60]!r}"
                    )
                row = _floats(m, i + 1)
                times.append(row[0])
                boxes.append(row[1:])
                i += 1
            if i >= last:
                raise _StrictError(f"line {i + 1}: '<where>' block is not closed by '</where>'")
            i += 1
            tracks.append(_track(name, times, boxes))
            owner.append(len(objects) - 1)
    return Answer(tuple(objects), tuple(spans), tuple(tracks)), tuple(owner)


def _parse_strict(text: str) -> tuple[Answer, tuple[int, ...]]:
    """Parse the official layout; raise ``_StrictError`` naming the line that breaks it.

    Same result as :func:`_parse_strict_lines`, faster: each ``<where>`` block is checked with
    one regular-expression match over all its rows and its numbers converted in one go. Any
    departure from the layout is handed to :func:`_parse_strict_lines` for the exact error.
    """
    import numpy as np

    lines = text.strip().split("\n")
    last = len(lines) - 1
    if lines[0] != "<answer>" or last <= 1 or lines[last] != "</answer>":
        return _parse_strict_lines(text, lines)
    objects: list[str] = []
    spans: list[Span] = []
    tracks: list[Track] = []
    owner: list[int] = []
    i = 1
    while i < last:
        m = _S_OBJECT.fullmatch(lines[i])
        if m is None:
            return _parse_strict_lines(text, lines)
        name = m.group(1)
        objects.append(name)
        i += 1
        while i < last and lines[i].startswith("<when>"):
            m = _S_WHEN.fullmatch(lines[i])
            if m is None:
                return _parse_strict_lines(text, lines)
            start, end = float(m.group(1)), float(m.group(2))
            if not (math.isfinite(start) and math.isfinite(end)) or end < start:
                return _parse_strict_lines(text, lines)
            spans.append(Span(start, end))
            i += 1
        while i < last and lines[i] == "<where>":
            try:
                close = lines.index("</where>", i + 1, last)
            except ValueError:
                return _parse_strict_lines(text, lines)
            if close == i + 1:
                rows = np.zeros((0, 5))
            else:
                block = "\n".join(lines[i + 1 : close])
                if _S_ROWS.fullmatch(block + "\n") is None:
                    return _parse_strict_lines(text, lines)
                # the block is exactly "t: [x1, y1, x2, y2]" rows: its numbers by plain splitting
                numbers = block.replace(": [", ", ").replace("]\n", ", ")[:-1].split(", ")
                rows = np.array(list(map(float, numbers))).reshape(-1, 5)
                if not np.isfinite(rows).all():
                    return _parse_strict_lines(text, lines)
            tracks.append(Track(name, rows[:, 0], rows[:, 1:]))
            owner.append(len(objects) - 1)
            i = close + 1
    return Answer(tuple(objects), tuple(spans), tuple(tracks)), tuple(owner)


# ---------------------------------------------------------------------------------------------
# lenient mode

_TAG = re.compile(r"<[ \t]{0,3}(/?)[ \t]{0,3}(answer|think|object|what|when|where)[ \t]{0,3}>", re.IGNORECASE)
_CONTENT_TAGS = frozenset({"object", "when", "where"})
_TAG_ALIASES = {"what": "object", "answer": "answer", "think": "think", "object": "object", "when": "when",
                "where": "where"}
# More blocks than any real answer has; past this the rest of the text is ignored (and said so).
_MAX_BLOCKS = 10_000
_MAX_TAGS = 4 * _MAX_BLOCKS
# Characters of <where> content read in all (a 60 s answer with 20 instances a second is ~45,000).
_MAX_WHERE_CHARS = 400_000

# <when>: numbers, or mm:ss clock times. ``(?<![\d.])`` keeps "1.0-2.0" from reading as -2.0.
_WHEN_TOKEN = re.compile(r"(\d{1,3}):(\d\d(?:\.\d+)?)(?!\d)|(?<![\d.])(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")

# <where>: one token per match; everything else (spaces, commas, quotes) is skipped by finditer.
_WHERE_TOKEN = re.compile(
    r"(?<![\d.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?:[ \t]{0,2}(?:seconds|second|secs|sec|s)\b)?"
    r"|[\[(]+|[\])]+|[:=]|[A-Za-z_]+"
)
# <where> content that is nothing but "t: [x1, y1, x2, y2]" rows (any spacing, commas or newlines
# between rows): read in one go, with exactly the result of the token scanner below
_W_SEP = r"[\s,]*+" if sys.version_info >= (3, 11) else r"[\s,]*"
_W_SP = r"[ \t]*"
_WHERE_ROWS = re.compile(
    rf"{_W_SEP}(?:{_NUM_P}{_W_SP}:{_W_SP}\[{_W_SP}{_NUM_P}{_W_SP},{_W_SP}{_NUM_P}{_W_SP},{_W_SP}{_NUM_P}"
    rf"{_W_SP},{_W_SP}{_NUM_P}{_W_SP}\]{_W_SEP})*"
)
_MIN_FAST_WHERE = 64  # shorter content (empty blocks, one row): the scanner is as quick
_ROW_PUNCT = str.maketrans(":[],", "    ")  # what separates the numbers of such rows, as spaces
_UNIT_CHARS = "secondSECOND \t"  # what a number token may end with (its unit), stripped off
_NUMBER_START = frozenset("-0123456789")
_TIME_WORDS = frozenset({"t", "time", "timestamp", "ts", "second", "sec", "seconds", "frame_time"})
_MAX_DEPTH = 8


class _Tag(NamedTuple):
    start: int
    end: int
    closing: bool
    name: str


@dataclass
class _Block:
    kind: str  # object | when | where
    content: str
    closed: bool
    truncated: bool  # the content runs to the end of the text


def _find_tags(text: str, issues: list[str]) -> tuple[list[_Tag], int]:
    """The tags of ``text`` (at most ``_MAX_TAGS``) and where the text they cover ends."""
    aliases = _TAG_ALIASES
    tags = [
        _Tag(m.start(), m.end(), m.group(1) == "/", aliases.get(m.group(2)) or m.group(2).lower())
        for m in itertools.islice(_TAG.finditer(text), _MAX_TAGS + 1)
    ]
    if len(tags) > _MAX_TAGS:
        issues.append(f"more than {_MAX_TAGS} tags: the text after tag {_MAX_TAGS} is ignored")
        return tags[:-1], tags[-1].start
    return tags, len(text)


def _select_blocks(text: str, tags: list[_Tag], issues: list[str]) -> tuple[list[_Block], bool]:
    """Choose the tags that make up the answer; return its content blocks and ``has_answer``."""
    # 1. mark tags inside <think> ... </think> (an unclosed <think> runs to the end)
    # (a text that opens with a bare "</think>" had its "<think>" in the prompt: all before is thought)
    in_think = [False] * len(tags)
    first_think = next((t for t in tags if t.name == "think"), None)
    thinking = first_think is not None and first_think.closing
    for idx, tag in enumerate(tags):
        if tag.name == "think":
            thinking = not tag.closing
            continue
        in_think[idx] = thinking
    outside = [i for i, t in enumerate(tags) if not in_think[i] and t.name != "think"]
    if not any(tags[i].name in _CONTENT_TAGS and not tags[i].closing for i in outside):
        if any(t.name in _CONTENT_TAGS and not t.closing for t in tags):
            issues.append("answer tags found only inside <think>")
        outside = [i for i, t in enumerate(tags) if t.name != "think"]
    # 2. the region of the answer: the last <answer> that has content, up to its </answer>
    has_answer = False
    regions: list[tuple[int, int, bool, bool]] = []  # (first, stop, closed, has content) in `outside`
    first: int | None = None
    content = False
    for n, i in enumerate(outside):
        tag = tags[i]
        if tag.name == "answer":
            if not tag.closing:
                if first is not None:
                    regions.append((first, n, False, content))
                first, content, has_answer = n + 1, False, True
            elif first is not None:
                regions.append((first, n, True, content))
                first = None
        elif first is not None and tag.name in _CONTENT_TAGS:
            content = True
    if first is not None:
        regions.append((first, len(outside), False, content))
    chosen: list[int] = outside
    if regions:
        with_content = [r for r in regions if r[3]]
        start, stop, closed, _ = (with_content or regions)[-1]
        if with_content:
            chosen = outside[start:stop]
            ignored = sum(
                1 for n, i in enumerate(outside)
                if not start <= n < stop and tags[i].name in _CONTENT_TAGS and not tags[i].closing
            )
            if ignored:
                issues.append(f"{ignored} tag(s) outside the chosen <answer> block ignored")
        if not closed:
            issues.append("missing </answer>")
    else:
        issues.append("no <answer> tag")
    # 3. content blocks: from an opening tag to the next tag of any kind
    blocks: list[_Block] = []
    for pos in chosen:
        tag = tags[pos]
        if tag.closing or tag.name not in _CONTENT_TAGS:
            continue
        if len(blocks) == _MAX_BLOCKS:
            issues.append(f"more than {_MAX_BLOCKS} <object>/<when>/<where> tags: the rest is ignored")
            break
        nxt = tags[pos + 1] if pos + 1 < len(tags) else None
        end = nxt.start if nxt is not None else len(text)
        closed = nxt is not None and nxt.closing and nxt.name == tag.name
        blocks.append(_Block(tag.name, text[tag.end : end], closed, nxt is None))
    return blocks, has_answer


_JSON_KEY = re.compile(r"[\"'](objects?|what|when|where)[\"'][ \t]{0,3}:", re.IGNORECASE)
_JSON_KINDS = {"object": "object", "objects": "object", "what": "object", "when": "when", "where": "where"}


def _json_blocks(text: str) -> list[_Block]:
    """Blocks from JSON-style keys (``{"object": "dog", "when": [1, 2], "where": {...}}``), for
    answers without tags; a value runs to the next such key."""
    keys = list(_JSON_KEY.finditer(text))[:_MAX_BLOCKS]
    blocks = []
    for n, m in enumerate(keys):
        end = keys[n + 1].start() if n + 1 < len(keys) else len(text)
        content = text[m.end() : end].strip()
        kind = _JSON_KINDS[m.group(1).lower()]
        if kind == "object":
            content = content.rstrip("}").strip().rstrip(",").strip()
        blocks.append(_Block(kind, content, closed=True, truncated=False))
    return blocks


def _split_names(raw: str) -> list[str]:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == "[" and raw[-1] == "]":
        raw = raw[1:-1]
    parts = (p.strip().strip("\"'`").strip() for p in raw.split(","))
    return [p for p in parts if p]


def _object_raw(block: _Block, issues: list[str]) -> str | None:
    if block.truncated:
        issues.append("truncated <object> (no closing tag before the end): ignored")
        return None
    content = block.content
    if not block.closed:
        issues.append("missing </object>")
        content = next((ln for ln in content.split("\n") if ln.strip()), "")
    name = content.strip().strip("\"'`").strip()
    if not name:
        issues.append("empty <object>")
        return None
    return name


def _parse_when(block: _Block, issues: list[str]) -> list[Span]:
    content = block.content
    if not block.closed:
        if block.truncated:
            cut = content.rfind("]")
            if cut < 0:
                issues.append("missing </when>: truncated <when> has no closing bracket")
                return []
            content = content[:cut]
        issues.append("missing </when>")
    values: list[float] = []
    for m in _WHEN_TOKEN.finditer(content):
        if m.group(3) is not None:
            values.append(float(m.group(3)))
        else:
            values.append(60.0 * float(m.group(1)) + float(m.group(2)))
    if len(values) % 2:
        issues.append(f"<when> has an odd count of numbers ({len(values)}): last one ignored")
    spans = []
    for k in range(0, len(values) - 1, 2):
        start, end = values[k], values[k + 1]
        if not (math.isfinite(start) and math.isfinite(end)):
            issues.append("<when> interval with a number out of range: ignored")
        elif end < start:
            issues.append(f"<when> interval [{start}, {end}] ends before it starts: ignored")
        else:
            spans.append(Span(start, end))
    if not values:
        issues.append("<when> without numbers")
    return spans


def _parse_where(block: _Block, issues: list[str], budget: int) -> tuple[list[float], list[list[float]]]:
    """Read ``(time, box)`` rows from a ``<where>`` block in any of the layouts models use,
    scanning at most ``budget`` characters of it."""
    import numpy as np

    if not block.closed:
        issues.append("missing </where>")
    content = block.content
    if len(content) > budget:
        issues.append(f"<where> blocks longer than {_MAX_WHERE_CHARS} characters in all: the rest is ignored")
        content = content[: max(0, budget)]
    elif len(content) >= _MIN_FAST_WHERE and _WHERE_ROWS.fullmatch(content) is not None:
        rows = np.array(list(map(float, content.translate(_ROW_PUNCT).split()))).reshape(-1, 5)
        if np.isfinite(rows).all():
            return rows[:, 0].tolist(), rows[:, 1:].tolist()
    return _scan_where(content, issues)


def _scan_where(content: str, issues: list[str]) -> tuple[list[float], list[list[float]]]:
    """The token scanner of ``<where>`` content (every layout; linear time)."""
    times: list[float] = []
    boxes: list[list[float]] = []
    current: float | None = None
    pending: float | None = None  # a number at depth 0 that may turn out to be a timestamp
    time_word = False  # the last word was a time key ("time": 3)
    stack: list[list[float]] = []  # numbers of each open bracket (up to _MAX_DEPTH)
    children: list[int] = []  # boxes read inside each open bracket
    depth = 0
    bad = 0
    no_time = 0
    for token in _WHERE_TOKEN.findall(content):
        first = token[0]
        if first in _NUMBER_START:
            unit = token[-1].isalpha()
            value = float(token.rstrip(_UNIT_CHARS) if unit else token)
            if time_word:
                current, time_word, pending = value, False, None
            elif depth == 0:
                pending = value
                if unit:
                    current, pending = value, None
            elif depth <= _MAX_DEPTH:
                stack[-1].append(value)
        elif first == ":" or first == "=":
            if depth == 0 and pending is not None:
                current, pending = pending, None
        elif first.isalpha() or first == "_":
            time_word = token.lower() in _TIME_WORDS
            pending = None
        elif first == "[" or first == "(":  # a run of opening brackets
            if depth == 0 and pending is not None:
                current, pending = pending, None
            for _ in range(min(len(token), max(0, _MAX_DEPTH - depth))):
                stack.append([])
                children.append(0)
            depth += len(token)
        else:  # a run of closing brackets
            closes = min(len(token), depth)
            deep = min(closes, max(0, depth - _MAX_DEPTH))  # brackets past _MAX_DEPTH: not tracked
            depth -= closes
            for _ in range(closes - deep):
                nums = stack.pop()
                inner = children.pop()
                t: float | None
                if len(nums) == 5:
                    t, box = nums[0], nums[1:]
                elif len(nums) == 4:
                    t, box = current, nums
                    if stack and stack[-1]:
                        t = stack[-1][-1]  # [t, [x1, y1, x2, y2]]
                else:
                    if nums and not (inner and len(nums) == 1):
                        bad += 1
                    continue
                if children:
                    children[-1] += 1
                if t is None:
                    no_time += 1
                elif not all(math.isfinite(v) for v in (t, *box)):
                    bad += 1
                else:
                    times.append(t)
                    boxes.append(box)
    if depth:
        issues.append("<where> ends inside an unclosed bracket: incomplete row ignored")
    if bad:
        issues.append(f"<where>: {bad} bracketed group(s) not read as [x1, y1, x2, y2]")
    if no_time:
        issues.append(f"<where>: {no_time} box(es) without a timestamp ignored")
    return times, boxes


# A group: consecutive ``<object>`` names (as written) and the ``<where>`` blocks that follow
# them, each block an unnamed track. Strict and lenient parsing both name tracks from groups with
# :func:`_name_groups`, so a strict-valid text gives the same answer with or without prose around it.
_Group = tuple[list[str], list[Track]]


def _object_names(raws: list[str], n_where: int) -> list[str]:
    """The object names of a group's ``<object>`` contents: a comma list (or ``[...]`` list)
    names several objects, except one plain ``<object>`` followed by a number of ``<where>``
    blocks other than its count of names (a name may hold a comma: five official GT names do)."""
    names: list[str] = []
    for raw in raws:
        parts = _split_names(raw)
        stripped = raw.strip()
        bracketed = stripped.startswith("[") and stripped.endswith("]")
        if len(parts) <= 1 and not bracketed:
            parts = [raw]  # one name: as written
        elif len(raws) == 1 and n_where and len(parts) != n_where and not bracketed:
            parts = [raw]
        names.extend(parts)
    return names


def _merged(name: str, tracks: list[Track]) -> Track:
    """One track of ``name`` holding the rows of ``tracks`` in order (several ``<where>`` blocks
    of one object are one track)."""
    import numpy as np

    if len(tracks) == 1:
        return tracks[0] if tracks[0].name == name else tracks[0].with_name(name)
    return Track(name, np.concatenate([t.times_s for t in tracks]), np.concatenate([t.xyxy for t in tracks]))


def _name_groups(groups: list[_Group]) -> tuple[list[str], list[Track]]:
    """Object names and named tracks of an answer's groups.

    As many names as blocks: the blocks are the objects' tracks in order. Otherwise every block
    belongs to the last name of the group and they form ONE track; blocks before any name stay
    unnamed tracks (``""``), one per block.
    """
    objects: list[str] = []
    tracks: list[Track] = []
    for raws, wheres in groups:
        names = _object_names(raws, len(wheres))
        objects.extend(names)
        if not wheres:
            continue
        if len(names) == len(wheres):
            tracks.extend(_merged(name, [w]) for name, w in zip(names, wheres, strict=True))
        elif names:
            tracks.append(_merged(names[-1], wheres))
        else:
            tracks.extend(wheres)
    return objects, tracks


def _name_strict(layout: Answer, owner: tuple[int, ...]) -> Answer:
    """The answer of a strict-valid text: its layout regrouped like lenient parsing groups it
    (consecutive ``<object>`` lines with the ``<where>`` blocks after them), then named by
    :func:`_name_groups`."""
    objects = layout.objects
    if len(set(owner)) == len(owner) and not any("," in name or "[" in name for name in objects):
        # no list of names and at most one block per object line: each block is its line's track
        return layout
    by_line: dict[int, list[Track]] = {}
    for track, line in zip(layout.tracks, owner, strict=True):
        by_line.setdefault(line, []).append(Track("", track.times_s, track.xyxy))
    groups: list[_Group] = []
    raws: list[str] = []
    wheres: list[Track] = []
    for line, name in enumerate(objects):
        if wheres:
            groups.append((raws, wheres))
            raws, wheres = [], []
        raws.append(name)
        wheres.extend(by_line.get(line, []))
    if raws or wheres:
        groups.append((raws, wheres))
    names, tracks = _name_groups(groups)
    return Answer(tuple(names), layout.spans, tuple(tracks))


def _parse_lenient(text: str) -> ParseResult:
    issues: list[str] = []
    tags, limit = _find_tags(text, issues)
    blocks, has_answer = _select_blocks(text[:limit] if limit < len(text) else text, tags, issues)
    if not blocks:
        blocks = _json_blocks(text)
        if blocks:
            issues.append("no <object>, <when> or <where> tag: read JSON-style keys instead")
        else:
            issues.append("no <object>, <when> or <where> tag")
    # group consecutive object tags with the <where> blocks that follow them
    raw_groups: list[_Group] = []
    spans: list[Span] = []
    names_run: list[str] = []
    wheres_run: list[Track] = []
    n_where = 0
    where_budget = _MAX_WHERE_CHARS
    for block in blocks:
        if block.kind == "object":
            if wheres_run:
                raw_groups.append((names_run, wheres_run))
                names_run, wheres_run = [], []
            raw = _object_raw(block, issues)
            if raw is not None:
                names_run.append(raw)
        elif block.kind == "when":
            spans.extend(_parse_when(block, issues))
        else:
            wheres_run.append(_track("", *_parse_where(block, issues, where_budget)))
            where_budget -= len(block.content)
            n_where += 1
    if names_run or wheres_run:
        raw_groups.append((names_run, wheres_run))
    objects, tracks = _name_groups(raw_groups)
    answer = Answer(tuple(objects), tuple(spans), tuple(tracks))
    return _result(answer, strict_ok=False, has_answer=has_answer, has_where=n_where > 0,
                   issues=_count_issues(issues))


def _count_issues(issues: list[str]) -> list[str]:
    """Each distinct issue once, in first-seen order, with its count when it repeats."""
    counts = Counter(issues)
    return [msg if counts[msg] == 1 else f"{msg} (x{counts[msg]})" for msg in dict.fromkeys(issues)]


# ---------------------------------------------------------------------------------------------
# public API


def parse_answer(text: str, *, strict: bool = False) -> ParseResult:
    """Parse a tagged answer. Never raises; see the module docstring for the two modes.

    In strict mode a text that is not in the official layout gives an empty answer, all flags
    False and one issue naming the first line that breaks the layout.

    >>> parse_answer("<answer><object>dog</object></answer>", strict=True).issues
    ("line 1: expected '<answer>'",)
    >>> parse_answer(None).issues  # type: ignore[arg-type]
    ('not a string: NoneType',)
    """
    if not isinstance(text, str):
        return _result(Answer(), strict_ok=False, has_answer=False, has_where=False,
                       issues=(f"not a string: {type(text).__name__}",))
    try:
        layout, owner = _parse_strict(text)
    except _StrictError as err:
        if strict:
            return _result(Answer(), strict_ok=False, has_answer=False, has_where=False, issues=(str(err),))
        return _parse_lenient(text)
    return _result(_name_strict(layout, owner), strict_ok=True, has_answer=True, has_where=bool(owner), issues=())


def _fmt(value: float) -> str:
    return repr(float(value))


def _where_lines(track: Track) -> list[str]:
    lines = ["<where>"]
    for t, (x1, y1, x2, y2) in zip(track.times_s.tolist(), track.xyxy.tolist(), strict=True):
        lines.append(f"{_fmt(t)}: [{_fmt(x1)}, {_fmt(y1)}, {_fmt(x2)}, {_fmt(y2)}]")
    lines.append("</where>")
    return lines


def render_answer(answer: Answer) -> str:
    """Write an answer in the official layout (the inverse of strict parsing).

    Each object gets an ``<object>`` line; the intervals follow the first object; each track is
    written as a ``<where>`` block after the object of the same name (tracks in order, names
    matched left to right). A track whose name is no object's (e.g. ``""``) is written as a
    ``<where>`` block before the first object, which no longer is the strict layout.
    Numbers use Python's float ``repr`` (``1.4``, ``272.0``), so official answers round-trip
    byte for byte. Raises ``ValueError`` for names that cannot be written (``<`` or newline).

    >>> render_answer(Answer(("trombone",), (Span(0.0, 44.4),)))
    '<answer>\\n<object>trombone</object>\\n<when>[0.0, 44.4]</when>\\n</answer>'
    """
    objects: Sequence[str] = answer.objects
    for name in [*objects, *(t.name for t in answer.tracks)]:
        if "<" in name or "\n" in name:
            raise ValueError(f"object name {name!r} cannot be written in the tagged layout ('<' or newline)")
    attached: dict[int, list[Track]] = {}
    unattached: list[Track] = []
    j = 0
    for track in answer.tracks:
        idx = next((i for i in range(j, len(objects)) if objects[i] == track.name), None)
        if idx is None:
            unattached.append(track)
        else:
            attached.setdefault(idx, []).append(track)
            j = idx
    lines = ["<answer>"]
    for track in unattached:
        lines.extend(_where_lines(track))
    when_lines = [f"<when>[{_fmt(s.start_s)}, {_fmt(s.end_s)}]</when>" for s in answer.spans]
    if not objects:
        lines.extend(when_lines)
    for i, name in enumerate(objects):
        lines.append(f"<object>{name}</object>")
        if i == 0:
            lines.extend(when_lines)
        for track in attached.get(i, []):
            lines.extend(_where_lines(track))
    lines.append("</answer>")
    return "\n".join(lines)
