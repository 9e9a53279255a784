"""Tests of ravst.parsing: strict layout, lenient cases, never-raises and round-trip properties."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ravst.parsing import ParseResult, parse_answer, render_answer
from ravst.types import Answer, Span, Track

ROOT = Path(__file__).resolve().parents[1]

OFFICIAL_T = "<answer>\n<object>trombone</object>\n<when>[0.0, 44.4]</when>\n</answer>"
OFFICIAL_S = (
    "<answer>\n<object>A man</object>\n<where>\n0.0: [272.0, 208.0, 393.0, 359.0]\n"
    "0.0: [63.0, 47.0, 166.0, 179.0]\n1.0: [271.0, 209.0, 394.0, 359.0]\n</where>\n"
    "<object>a large, round, dark-colored pot</object>\n<where>\n</where>\n</answer>"
)
OFFICIAL_ST = (
    "<answer>\n<object>person</object>\n<when>[1.4, 4.3]</when>\n<where>\n"
    "1.4: [158.0, 3.0, 561.0, 719.0]\n2.4: [158.0, 69.0, 561.0, 719.0]\n</where>\n</answer>"
)


def rows(track: Track) -> list[tuple[float, list[float]]]:
    return list(zip(track.times_s.tolist(), track.xyxy.tolist(), strict=True))


def summary(result: ParseResult) -> tuple:
    a = result.answer
    return (a.objects, [s.as_list() for s in a.spans], [(t.name, rows(t)) for t in a.tracks])


# ------------------------------------------------------------------------------ strict layout


@pytest.mark.parametrize("text", [OFFICIAL_T, OFFICIAL_S, OFFICIAL_ST])
def test_official_examples_are_strict_and_round_trip(text: str) -> None:
    for strict in (True, False):
        r = parse_answer(text, strict=strict)
        assert r.strict_ok and r.has_answer and r.has_object and not r.issues
        assert render_answer(r.answer) == text


def test_strict_spatial_structure() -> None:
    r = parse_answer(OFFICIAL_S, strict=True)
    assert r.answer.objects == ("A man", "a large, round, dark-colored pot")
    assert r.answer.spans == ()
    man, pot = r.answer.tracks
    assert man.name == "A man" and rows(man)[1] == (0.0, [63.0, 47.0, 166.0, 179.0])
    assert pot.name == "a large, round, dark-colored pot" and len(pot) == 0
    assert r.has_where and not r.has_when


def test_strict_temporal_and_st() -> None:
    r = parse_answer(OFFICIAL_T, strict=True)
    assert r.answer.span == Span(0.0, 44.4) and not r.has_where and r.has_when
    r = parse_answer(OFFICIAL_ST, strict=True)
    assert r.answer.objects == ("person",)
    assert r.answer.tracks[0].name == "person" and rows(r.answer.tracks[0])[0][0] == 1.4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<answer><object>dog</object></answer>", "line 1: expected '<answer>'"),
        ("<answer>\n<object>dog</object>\n", "expected '</answer>' as the last line"),
        ("<answer>\n</answer>", "line 2: empty answer"),
        ("<answer>\n<when>[1.0, 2.0]</when>\n</answer>", "line 2: expected '<object>NAME</object>'"),
        ("<answer>\n<object>d</object>\n<when>[1.0,2.0]</when>\n</answer>", "line 3: expected '<when>[s, e]</when>'"),
        ("<answer>\n<object>d</object>\n<when>[3.0, 2.0]</when>\n</answer>", "line 3: interval ends"),
        ("<answer>\n<object>d</object>\n<where>\n1: [1, 2, 3]\n</where>\n</answer>", "line 4: expected 't: ["),
        ("<answer>\n<object>d</object>\n<where>\n1.0: [1.0, 2.0, 3.0, 4.0]\n</answer>", "not closed by '</where>'"),
        ("<answer>\n<object>d</object>\n<when>[1e999, 2e999]</when>\n</answer>", "out of range"),
        ("<answer>\n<object>d</object>\n<think>x</think>\n</answer>", "line 3: expected '<object>NAME</object>'"),
    ],
)
def test_strict_errors_name_the_line(text: str, message: str) -> None:
    r = parse_answer(text, strict=True)
    assert not r.strict_ok and r.answer == Answer()
    assert not (r.has_answer or r.has_object or r.has_when or r.has_where)
    assert len(r.issues) == 1 and message in r.issues[0], r.issues


def test_strict_allows_surrounding_whitespace_and_multi_when() -> None:
    text = "\n  <answer>\n<object>dog</object>\n<when>[1.0, 2.0]</when>\n<when>[3.0, 4.0]</when>\n</answer>\n"
    r = parse_answer(text, strict=True)
    assert r.strict_ok and [s.as_list() for s in r.answer.spans] == [[1.0, 2.0], [3.0, 4.0]]


def test_non_string_input_is_an_issue() -> None:
    for value in (None, 3, b"<answer>"):
        r = parse_answer(value)  # type: ignore[arg-type]
        assert not r.has_content and r.issues[0].startswith("not a string")


# ------------------------------------------------------------------------------ lenient cases

BOX = [1.0, 2.0, 3.0, 4.0]
LENIENT_CASES = [
    (  # think prose with a decoy tag, then the answer; "10s:" and "11.0 s:" timestamps, int boxes
        "<think>maybe <object>cat</object></think>\n<answer><object>dog</object><when>[10.0,20.5]</when>"
        "<where>10s: [1,2,3,4]\n11.0 s: [5,6,7,8]</where></answer>",
        (("dog",), [[10.0, 20.5]], [("dog", [(10.0, BOX), (11.0, [5.0, 6.0, 7.0, 8.0])])]),
    ),
    (  # the example of the paper's Box 2: when first, two objects each with its where block
        "<answer> <when>[10.0,20.5]</when> <object>dog </object> <where> 10.0: [100,200,300,400] "
        "11.0: [109,280,320,432] </where> <object>cat </object> <where> 12.5: [50,60,150,160] </where> </answer>",
        (("dog", "cat"), [[10.0, 20.5]], [
            ("dog", [(10.0, [100.0, 200.0, 300.0, 400.0]), (11.0, [109.0, 280.0, 320.0, 432.0])]),
            ("cat", [(12.5, [50.0, 60.0, 150.0, 160.0])]),
        ]),
    ),
    (  # comma-separated objects in one tag (Box 2), no where: split
        "<answer><object>man, dog</object><when>[1.0, 2.0]</when></answer>",
        (("man", "dog"), [[1.0, 2.0]], []),
    ),
    (  # JSON-like list of objects
        '<answer><object>["dog", "cat"]</object><when>[1.0, 2.0]</when></answer>',
        (("dog", "cat"), [[1.0, 2.0]], []),
    ),
    (  # comma list followed by as many where blocks: split and pair in order
        "<answer><object>dog, cat</object><where>1: [1,2,3,4]</where><where>2: [1,2,3,4]</where></answer>",
        (("dog", "cat"), [], [("dog", [(1.0, BOX)]), ("cat", [(2.0, BOX)])]),
    ),
    (  # a name with commas followed by one where block stays one name (as in the official file)
        "<answer><object>a large, round pot</object><where>1: [1,2,3,4]</where></answer>",
        (("a large, round pot",), [], [("a large, round pot", [(1.0, BOX)])]),
    ),
    (  # two object tags then one where: the where belongs to the preceding object
        "<answer><object>dog</object><object>cat</object><where>1: [1,2,3,4]</where></answer>",
        (("dog", "cat"), [], [("cat", [(1.0, BOX)])]),
    ),
    (  # missing closing tags everywhere, several intervals, JSON dict rows with instances
        '<answer><object>dog<when>[1, 2], [3, 4]<where>{"1.0": [[1,2,3,4],[5,6,7,8]], "2": [1,2,3,4]}',
        (("dog",), [[1.0, 2.0], [3.0, 4.0]], [("dog", [(1.0, BOX), (1.0, [5.0, 6.0, 7.0, 8.0]), (2.0, BOX)])]),
    ),
    (  # list of records, where before any object -> unnamed track
        '<answer><where>[{"time": 2, "bbox": [1,2,3,4]}, {"timestamp": 3.5, "box": [1,2,3,4]}]</where></answer>',
        ((), [], [("", [(2.0, BOX), (3.5, BOX)])]),
    ),
    (  # [t, [box]] pairs and [t, x1, y1, x2, y2] rows
        "<answer><where>[[1, [1,2,3,4]], [2, 1, 2, 3, 4]]</where></answer>",
        ((), [], [("", [(1.0, BOX), (2.0, BOX)])]),
    ),
    (  # <what> alias, "a-b" interval, t= rows with parentheses
        "<answer><what>dog</what><when>1.0-2.0</when><where>t=1: (1,2,3,4)</where></answer>",
        (("dog",), [[1.0, 2.0]], [("dog", [(1.0, BOX)])]),
    ),
    (  # mm:ss clock times, upper-case tags with spaces
        "<ANSWER><Object>dog</Object>< when >00:10 - 01:02.5</ when ></ANSWER>",
        (("dog",), [[10.0, 62.5]], []),
    ),
    (  # truncated inside a where row: complete rows kept
        "<answer>\n<object>dog</object>\n<when>[1.0, 2.0]</when>\n<where>\n1.0: [1.0, 2.0, 3.0, 4.0]\n2.0: [1.0, 2",
        (("dog",), [[1.0, 2.0]], [("dog", [(1.0, BOX)])]),
    ),
    (  # truncated inside an object name: the name is dropped
        "<answer><when>[1.0, 2.0]</when><object>do",
        ((), [[1.0, 2.0]], []),
    ),
    (  # two answers: the last one with content wins
        "<answer><object>cat</object></answer> wait, correction: <answer><object>dog</object></answer>",
        (("dog",), [], []),
    ),
    (  # no tags around the answer at all
        "The dog barks.",
        ((), [], []),
    ),
    (  # a JSON answer without tags
        '```json\n{"object": "dog", "when": [1.0, 2.5], "where": {"1.0": [1, 2, 3, 4]}}\n```',
        (("dog",), [[1.0, 2.5]], [("dog", [(1.0, BOX)])]),
    ),
    (  # JSON list of objects, list of intervals
        "{'objects': ['dog', 'cat'], 'when': [[1, 2], [4, 5]]}",
        (("dog", "cat"), [[1.0, 2.0], [4.0, 5.0]], []),
    ),
    (  # the chat template opened <think>: everything before a bare </think> is thought
        "so <object>cat</object> maybe</think><answer><object>dog</object></answer>",
        (("dog",), [], []),
    ),
    (  # negative-looking interval end is a range, reversed interval dropped
        "<answer><object>x</object><when>[5.0, 2.0]</when></answer>",
        (("x",), [], []),
    ),
]


@pytest.mark.parametrize(("text", "expected"), LENIENT_CASES)
def test_lenient_cases(text: str, expected: tuple) -> None:
    r = parse_answer(text)
    assert summary(r) == expected, r.issues
    assert not r.strict_ok
    assert parse_answer(text, strict=True).answer == Answer()


def test_lenient_issues_report_what_was_not_read() -> None:
    r = parse_answer("<answer><object>dog</object><when>[5.0, 2.0]</when><where>1: [1, 2, 3]</where>")
    joined = " | ".join(r.issues)
    assert "missing </answer>" in joined
    assert "ends before it starts" in joined
    assert "not read as [x1, y1, x2, y2]" in joined
    r = parse_answer("<answer><where>[1, 2, 3, 4]</where></answer>")
    assert "without a timestamp" in " ".join(r.issues) and r.has_where and len(r.answer.tracks[0]) == 0
    r = parse_answer("<answer><object>dog</object></answer><when>[1, 2]</when>")
    assert r.issues == ("1 tag(s) outside the chosen <answer> block ignored",) and not r.has_when
    r = parse_answer("nothing here")
    assert r.issues == ("no <answer> tag", "no <object>, <when> or <where> tag") and not r.has_content


def test_flags() -> None:
    r = parse_answer("<answer><object>dog</object><where></where></answer>")
    assert (r.has_answer, r.has_object, r.has_when, r.has_where) == (True, True, False, True)
    r = parse_answer("<when>[1, 2]</when>")
    assert (r.has_answer, r.has_object, r.has_when, r.has_where) == (False, False, True, False)


def test_tags_inside_think_used_when_nothing_else() -> None:
    r = parse_answer("<think>so <answer><object>dog</object></answer>")
    assert r.answer.objects == ("dog",) and "only inside <think>" in r.issues[0]


def test_repeated_issues_are_counted() -> None:
    r = parse_answer("<object>" * 50)
    assert any("(x" in issue for issue in r.issues)
    assert len(r.issues) < 10


# ------------------------------------------------------------------------------ render


def test_render_places_unnamed_tracks_first_and_rejects_bad_names() -> None:
    answer = Answer(("dog",), (), (Track("", [1.0], [BOX]), Track("dog", [2.0], [BOX])))
    text = render_answer(answer)
    assert text.startswith("<answer>\n<where>\n1.0: [1.0, 2.0, 3.0, 4.0]\n</where>\n<object>dog</object>")
    assert parse_answer(text).answer == answer
    with pytest.raises(ValueError, match="cannot be written"):
        render_answer(Answer(("a<b",)))
    with pytest.raises(ValueError, match="cannot be written"):
        render_answer(Answer(("a\nb",)))


def test_render_uses_float_repr() -> None:
    text = render_answer(Answer(("x",), (Span(1, 2),), (Track("x", [0.1], [[1, 2.5, 1e-7, 3e20]]),)))
    assert "<when>[1.0, 2.0]</when>" in text and "0.1: [1.0, 2.5, 1e-07, 3e+20]" in text
    assert parse_answer(text, strict=True).strict_ok


# ------------------------------------------------------------------------------ properties

NAMES = st.text(alphabet=st.characters(blacklist_characters="<\n", blacklist_categories=("Cs",)), max_size=12)
FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=64)


# names that are not lists (a comma list names several objects, so "a, b" does not round-trip)
PLAIN_NAMES = st.text(alphabet=st.characters(blacklist_characters="<\n,[", blacklist_categories=("Cs",)),
                      max_size=12)


@st.composite
def answers(draw: st.DrawFn, max_tracks: int = 1) -> Answer:
    """Answers the official layout can express: spans after the first object, tracks after
    their object (in object order), at most ``max_tracks`` per object."""
    objects = draw(st.lists(PLAIN_NAMES, min_size=1, max_size=4, unique=True))  # render pairs by name
    spans = []
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 2))):
            a, b = sorted((draw(FLOATS), draw(FLOATS)))
            spans.append(Span(a, b))
    tracks = []
    for name in objects:
        for _ in range(draw(st.integers(0, max_tracks))):
            n = draw(st.integers(0, 4))
            times = draw(st.lists(FLOATS, min_size=n, max_size=n))
            boxes = draw(st.lists(st.lists(FLOATS, min_size=4, max_size=4), min_size=n, max_size=n))
            tracks.append(Track(name, times, np.asarray(boxes).reshape(-1, 4)))
    return Answer(tuple(objects), tuple(spans), tuple(tracks))


@settings(max_examples=200, deadline=None)
@given(answers())
def test_render_then_parse_is_identity(answer: Answer) -> None:
    text = render_answer(answer)
    for strict in (True, False):
        r = parse_answer(text, strict=strict)
        assert r.strict_ok, r.issues
        assert r.answer == answer
    assert render_answer(parse_answer(text).answer) == text


FRAGMENTS = st.sampled_from([
    "<answer>", "</answer>", "<object>", "</object>", "<when>", "</when>", "<where>", "</where>",
    "<think>", "</think>", "<what>", "[", "]", "(", ")", "{", "}", ":", "=", ",", " ", "\n", "-",
    "1", "2.5", "1e999", "-0.0", "10s", "time", "t", '"', "'", "dog", "x", ".", "< /", "00:10",
    '"when":', '"object":', '"where":', "10 sec", "_",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.lists(FRAGMENTS, max_size=80).map("".join)))
def test_parser_never_raises(text: str) -> None:
    for strict in (False, True):
        r = parse_answer(text, strict=strict)
        assert isinstance(r, ParseResult)
        for track in r.answer.tracks:
            assert np.isfinite(track.xyxy).all() and np.isfinite(track.times_s).all()
        for span in r.answer.spans:
            assert math.isfinite(span.start_s) and span.start_s <= span.end_s
        # whatever was read can be written back and re-read to the same answer
        names_ok = all("<" not in n and "\n" not in n for n in r.answer.objects)
        if names_ok and r.strict_ok:
            assert parse_answer(render_answer(r.answer)).answer == r.answer


def test_adversarial_megabyte_strings_parse() -> None:
    """Linear-time inputs of 1 MB (timings: benchmarks/bench_parse.py, docs/benchmarks.md)."""
    size = 1_000_000
    cases = {
        "open tags": "<answer>" * (size // 8),
        "unclosed objects": "<object>" * (size // 8),
        "where rows": "<answer><object>x</object><where>\n" + "1.0: [1.0, 2.0, 3.0, 4.0]\n" * (size // 26),
        "nested brackets": "<answer><where>" + "[" * size,
        "bracket colon": "<where>" + "[1:" * (size // 3),
        "tag-like": "< / " * (size // 4),
        "digits": "<when>" + "9" * size,
    }
    for name, text in cases.items():
        r = parse_answer(text)
        assert isinstance(r, ParseResult), name
        assert parse_answer(text, strict=True).answer == Answer(), name
    rows_result = parse_answer(cases["where rows"])
    assert len(rows_result.answer.tracks[0]) == 400_000 // 26  # the rows of the first 400,000 characters
    assert any("characters in all: the rest is ignored" in i for i in rows_result.issues)
    assert any("the rest is ignored" in i for i in parse_answer(cases["unclosed objects"]).issues)


# ------------------------------------------------------------------------------ the real file


def _official_answers(path: Path) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [qa["A"] for v in data for e in v["annotation"] for k, qas in e.items() if k != "event_num" for qa in qas]


def test_every_official_answer_round_trips_strictly(official_qa_path: Path) -> None:
    answers_text = _official_answers(official_qa_path)
    assert len(answers_text) == 1638
    empty_blocks = 0
    for text in answers_text:
        r = parse_answer(text, strict=True)
        assert r.strict_ok, (text[:200], r.issues)
        assert render_answer(r.answer) == text
        empty_blocks += sum(len(t) == 0 for t in r.answer.tracks)
    assert empty_blocks == 145  # '<where>\n</where>' blocks in the official file


def test_official_answers_lenient_without_newlines(official_qa_path: Path) -> None:
    """Flattened to one line (not strict any more), the lenient path reads the same answers."""
    for text in _official_answers(official_qa_path)[::7]:
        flat = parse_answer(text.replace("\n", " "))
        assert not flat.strict_ok
        assert flat.answer == parse_answer(text, strict=True).answer, text[:200]


# ------------------------------------------------------------------------------ fast paths


def _strict_outcome(fn, text: str):
    from ravst.parsing import _StrictError

    try:
        return fn(text)
    except _StrictError as err:
        return str(err)


ROW_FRAGMENTS = st.sampled_from([
    "<answer>", "</answer>", "<object>dog</object>", "<when>[1.0, 2.5]</when>", "<when>[3.0, 1.0]</when>",
    "<where>", "</where>", "0.0: [1.0, 2.0, 3.0, 4.0]", "1: [1, 2, 3, 4]", "2.5: [1e999, 2.0, 3.0, 4.0]",
    "3.0: [1.0, 2.0, 3.0]", "4.0:[1.0, 2.0, 3.0, 4.0]", "-1.5e3: [-0.0, 2.0, 3.0, 4.0]", "1.: [1, 2, 3, 4]",
    "5.0: [1.0, 2.0, 3.0, 4.0] ", " ", "x",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(ROW_FRAGMENTS, max_size=14).map("\n".join))
def test_fast_strict_parser_equals_the_line_reader(text: str) -> None:
    from ravst.parsing import _parse_strict, _parse_strict_lines

    assert _strict_outcome(_parse_strict, text) == _strict_outcome(_parse_strict_lines, text)


WHERE_FRAGMENTS = st.sampled_from([
    "0.0: [1.0, 2.0, 3.0, 4.0]", "1: [1, 2, 3, 4]", "2 : [ 1 , 2 ,3, 4 ]", "1e999: [1, 2, 3, 4]",
    "3: [1, 2, 3]", "-1.5e3: [-0.0, 2.0, 3.0, 4.0]", "1.: [1, 2, 3, 4]", "10s: [1, 2, 3, 4]", "[1, 2, 3, 4, 5]",
    "\n", " ", ",", "\t", "[", "]", "t", "time", ":", "{", "}", '"0.0": [1, 2, 3, 4]', "[1, [1, 2, 3, 4]]",
])


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["", "0.5: [1.0, 2.0, 3.0, 4.0]\n" * 3]), st.lists(WHERE_FRAGMENTS, max_size=12).map("".join))
def test_fast_where_rows_equal_the_token_scanner(prefix: str, rest: str) -> None:
    content = prefix + rest  # long enough for the fast path whenever the rest is plain rows
    from ravst.parsing import _Block, _parse_where, _scan_where

    fast_issues: list[str] = []
    scan_issues: list[str] = []
    got = _parse_where(_Block("where", content, closed=True, truncated=False), fast_issues, 10_000)
    assert got == _scan_where(content, scan_issues)
    assert fast_issues == scan_issues


def test_json_list_of_names_is_split_even_with_one_where_block():
    text = '{"object": ["dog", "cat"], "when": [1, 2], "where": {"dog": {"1.0": [1, 2, 3, 4]}}}'
    r = parse_answer(text)
    assert r.answer.objects == ("dog", "cat")
    assert all("[" not in t.name for t in r.answer.tracks)


# ------------------------------------------------------------------------------ issue 12, bugs 1 and 2
# (expected answers written out by hand)

TWO_WHERE = ("<answer>\n<object>man, guitar</object>\n<where>\n0.0: [0.0, 0.0, 10.0, 10.0]\n</where>\n"
             "<where>\n0.0: [20.0, 20.0, 30.0, 30.0]\n</where>\n</answer>")


@pytest.mark.parametrize("prefix", ["", "<think>two objects</think>\n", "Sure! "])
def test_comma_list_with_as_many_where_blocks_names_two_objects(prefix: str) -> None:
    r = parse_answer(prefix + TWO_WHERE)
    assert r.strict_ok == (prefix == "")
    assert summary(r) == (
        ("man", "guitar"), [],
        [("man", [(0.0, [0.0, 0.0, 10.0, 10.0])]), ("guitar", [(0.0, [20.0, 20.0, 30.0, 30.0])])],
    )


def test_several_where_blocks_of_one_object_are_one_track() -> None:
    text = ("<answer>\n<object>dog</object>\n<where>\n0.0: [0.0, 0.0, 1.0, 1.0]\n</where>\n"
            "<where>\n1.0: [2.0, 2.0, 3.0, 3.0]\n</where>\n</answer>")
    for t in (text, "<think>hm</think>" + text):
        assert summary(parse_answer(t)) == (
            ("dog",), [], [("dog", [(0.0, [0.0, 0.0, 1.0, 1.0]), (1.0, [2.0, 2.0, 3.0, 3.0])])]
        )


def test_comma_name_of_the_official_file_stays_whole_with_one_where_block() -> None:
    r = parse_answer(OFFICIAL_S)
    assert r.strict_ok
    assert r.answer.objects == ("A man", "a large, round, dark-colored pot")
    assert [t.name for t in r.answer.tracks] == ["A man", "a large, round, dark-colored pot"]


LIST_NAMES = st.sampled_from(["dog", "A man", "a large, round pot", "man, guitar", "[cat, dog]", "x y"])


@st.composite
def list_answers(draw: st.DrawFn) -> Answer:
    """Strict-valid answers with comma lists and several <where> blocks per object."""
    objects = draw(st.lists(LIST_NAMES, min_size=1, max_size=3, unique=True))
    tracks = []
    for name in objects:
        for _ in range(draw(st.integers(0, 3))):
            n = draw(st.integers(0, 3))
            times = draw(st.lists(st.integers(0, 9).map(float), min_size=n, max_size=n))
            tracks.append(Track(name, times, np.tile([1.0, 2.0, 3.0, 4.0], (n, 1))))
    return Answer(tuple(objects), (Span(1.0, 2.0),), tuple(tracks))


@settings(max_examples=300, deadline=None)
@given(list_answers(), st.sampled_from(["<think>two objects</think>", "Answer:\n", "<think>a</think>\n\n"]))
def test_prose_around_a_strict_answer_never_changes_it(answer: Answer, prefix: str) -> None:
    text = render_answer(answer)
    strict = parse_answer(text)
    assert strict.strict_ok
    assert parse_answer(prefix + text).answer == strict.answer
    assert parse_answer(text + "\nDone.").answer == strict.answer
    assert parse_answer(text, strict=True).answer == strict.answer
