"""The released AVST-Zero reward, re-implemented value for value (``rewards.mode: official``).

zhlllau/R-AVST (``AVST-Zero/src/open_r1/grpo.py``, ``run_grpo.sh``: reward funcs
``spatial-temporal`` and ``format``) scores a completion with two functions whose sum is the
GRPO reward. This module reproduces what they return, quirks included (``docs/training.md``
lists every quirk and what ``ravst`` mode does instead):

- **format** (on the raw completion): 1 only with ``<answer>...</answer>``, a
  ``<when>[a, b]</when>`` of non-negative numbers anywhere in it, and at least one
  ``<object>X</object>`` followed (whitespace only) by ``<where>`` whose lines are all
  ``t: [x1, y1, x2, y2]`` of non-negative numbers; so no temporal or spatial GT answer of the
  official layout gets 1.
- **spatial_temporal** (after ``'answer': '...'`` extraction and a ``unicode_escape`` decode):
  temporal QA ``tIoU``; spatial QA ``(object + spatial) / 2`` or ``object / 2`` when no
  (second, name) pair is on both sides; spatio-temporal QA ``(tIoU + spatial) / 2`` or
  ``tIoU / 2``.
- object: recall of the GT names (normalised) among the predicted names mapped to the
  vocabulary (word2vec cosine, ``torch.max``: ties go to the first index; threshold 0.75);
  only objects with at least one parsed ``<where>`` row count, on both sides.
- spatial: boxes grouped by (``round(t)``, name); per pair on both sides, the mean over GT boxes
  of the best IoU among the predicted boxes; mean over pairs. GT ``[0, 0, 0, 0]`` rows count 0.
- temporal: the first ``<when>[...]</when>`` on one line, exactly two numbers.

Where the released code raises (e.g. a backslash sequence that ``unicode_escape`` rejects such
as a truncated ``\\x`` escape or a final backslash, a GT ``<when>`` of three numbers) the released trainer returns loss 0
for the whole batch; here that completion gets 0 on every part and ``raised`` names the
exception (callers count it).

>>> fmt = released_format("<answer><when>[1, 2]</when><object>dog</object><where>1: [0, 0, 5, 5]</where></answer>")
>>> fmt, released_format("<answer><object>dog</object><when>[1.0, 2.0]</when></answer>")
(1.0, 0.0)
"""

from __future__ import annotations

import codecs
import functools
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ravst.types import Task

__all__ = [
    "RELEASED_THRESHOLD",
    "ReleasedMapper",
    "ReleasedScores",
    "normalize_name",
    "released_format",
    "released_scores",
]

RELEASED_THRESHOLD = 0.75
"""The released ``object_mapping_context["threshold"]``."""

# --- the released patterns (the regular expressions are the semantics; each is used as released)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FMT_WHEN = re.compile(r"<when>\s*\[\s*(\d+(\.\d+)?),\s*(\d+(\.\d+)?)\s*\]\s*</when>")
_FMT_OBJECT_WHERE = re.compile(r"<object>(.*?)</object>\s*<where>(.*?)</where>", re.DOTALL)
_BOX_LINE = re.compile(r"^\s*\d+(\.\d+)?:\s*\[\s*\d+(\.\d+)?,\s*\d+(\.\d+)?,\s*\d+(\.\d+)?,\s*\d+(\.\d+)?\s*\]\s*$")
_DICT_ANSWER = re.compile(r"'answer':\s*'(.*?)'}", re.DOTALL)
_OBJECT = re.compile(r"<object>(.*?)</object>", re.DOTALL)
_WHERE = re.compile(r"<where>(.*?)</where>", re.DOTALL)
_PRED_WHEN = re.compile(r"<when>\[(.*?)\]</when>")
_GT_OBJECT_WHEN = re.compile(r"<object>(.*?)</object>\n<when>\[(.*?)\]</when>", re.DOTALL)
_GT_OBJECT_WHEN_WHERE = re.compile(r"<object>(.*?)</object>\n<when>\[(.*?)\]</when>\n<where>(.*?)</where>", re.DOTALL)
_ARTICLE = re.compile(r"^(a |an |the )")
_PUNCT = re.compile(r"[^\w\s]")


@dataclass(frozen=True)
class ReleasedScores:
    """What the released functions give one completion, and the parts they combine."""

    format: float
    spatial_temporal: float
    object: float
    temporal: float
    spatial: float | None  # None: no (second, name) pair on both sides
    pred_objects_mapped: tuple[str, ...] = ()
    gt_objects: tuple[str, ...] = ()
    n_pairs: int = 0
    raised: str | None = None  # the exception the released code raises here (then every part is 0)

    @property
    def total(self) -> float:
        return self.format + self.spatial_temporal


@functools.lru_cache(maxsize=65536)  # pure; names repeat across completions
def normalize_name(name: str) -> str:
    """The released ``normalize_object_name``: lower case, one leading article dropped, then
    punctuation deleted (so ``"the-dog"`` keeps ``the``).

    >>> normalize_name(" The Dogs! "), normalize_name("a man's hat"), normalize_name("An")
    ('dogs', 'mans hat', 'an')
    """
    text = _ARTICLE.sub("", name.lower().strip())
    return _PUNCT.sub("", text).strip()


def released_format(completion: str) -> float:
    """The released ``format_reward`` of one completion."""
    m = _ANSWER.search(completion.strip())
    if m is None:
        return 0.0
    body = m.group(1).strip()
    if _FMT_WHEN.search(body) is None:
        return 0.0
    pairs = _FMT_OBJECT_WHERE.findall(body)
    if not pairs:
        return 0.0
    ok = all(_BOX_LINE.match(line.strip()) for _, where in pairs for line in where.strip().splitlines())
    return 1.0 if ok else 0.0


def _iou(gt: Sequence[float], pred: Sequence[float]) -> float:
    """The released 2-D IoU: areas unclamped (a reversed box has a negative area), 0 when the
    union is not positive; raises (like the released unpacking) unless both have 4 values."""
    gx1, gy1, gx2, gy2 = gt
    px1, py1, px2, py2 = pred
    inter = max(0, min(gx2, px2) - max(gx1, px1)) * max(0, min(gy2, py2) - max(gy1, py1))
    union = (gx2 - gx1) * (gy2 - gy1) + (px2 - px1) * (py2 - py1) - inter
    return inter / union if union > 0 else 0.0


def _merge(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(intervals, key=lambda x: x[0]):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _tiou(gt: Sequence[tuple[float, float]], pred: Sequence[tuple[float, float]]) -> float:
    """The released multi-segment tIoU (one event): 0 without a GT or a predicted interval."""
    if not gt or not pred:
        return 0.0
    g, p = _merge(gt), _merge(pred)
    inter = sum(max(0, min(ge, pe) - max(gs, ps)) for gs, ge in g for ps, pe in p)
    union = sum(e - s for s, e in _merge(g + p))
    return inter / union if union > 0 else 0.0


Row = tuple[str, int, list[float]]  # (object, round(t), box values)


def _gt_rows(where: str, name: str) -> list[Row]:
    """GT ``<where>`` rows, released rules: ``t: [..]`` split on ``': '``; a line that does not
    parse is skipped (``ValueError`` only: anything else raises)."""
    out: list[Row] = []
    for line in where.strip().split("\n"):
        if not line:
            continue
        parts = line.split(": ")
        if len(parts) != 2:
            continue
        try:
            out.append((name, round(float(parts[0])), [float(x) for x in parts[1].strip("[]").split(",")]))
        except ValueError:
            continue
    return out


def _pred_rows(where: str, name: str) -> list[Row]:
    """Predicted ``<where>`` rows, released rules: a line that fails to parse ends the block
    (rows before it stay); rows with other than 4 values are skipped."""
    out: list[Row] = []
    try:
        for line in where.strip().split("\n"):
            if not line:
                continue
            parts = line.split(": ")
            if len(parts) != 2:
                continue
            t = round(float(parts[0]))
            box = [float(x) for x in parts[1].strip("[]").split(",")]
            if len(box) == 4:
                out.append((name, t, box))
    except Exception:  # noqa: BLE001 - the released per-block ``except Exception: continue``
        return out
    return out


def _when(text: str) -> tuple[float, float]:
    start, end = map(float, text.split(","))  # raises unless exactly two numbers (as released)
    return start, end


@dataclass(frozen=True)
class _GroundTruth:
    spatial: list[Row]  # S_spatial (every object/where pair, zipped in order)
    st_spatial: list[Row]  # ST_spatial (object, when, where adjacent)
    temporal: list[tuple[float, float]]  # T_temporal
    st_temporal: list[tuple[float, float]]  # ST_temporal
    names: frozenset[str]  # the GT names the object reward counts (of ``spatial``, normalised)


@functools.lru_cache(maxsize=4096)  # the GT of a QA is parsed once, not per completion
def _ground_truth(solution: str) -> _GroundTruth:
    spatial: list[Row] = []
    for name, where in zip(_OBJECT.findall(solution), _WHERE.findall(solution)):  # noqa: B905 - released zip
        spatial.extend(_gt_rows(where, normalize_name(name.strip())))
    temporal = [_when(w) for _, w in _GT_OBJECT_WHEN.findall(solution)]
    st_spatial: list[Row] = []
    st_temporal: list[tuple[float, float]] = []
    for name, when, where in _GT_OBJECT_WHEN_WHERE.findall(solution):
        span = _when(when)
        st_spatial.extend(_gt_rows(where, normalize_name(name.strip())))
        st_temporal.append(span)
    names = frozenset(normalize_name(r[0]) for r in spatial)
    return _GroundTruth(spatial, st_spatial, temporal, st_temporal, names)


def _prediction(text: str, mapper: Callable[[str], str]) -> tuple[list[Row], list[tuple[float, float]]]:
    rows: list[Row] = []
    for name, where in zip(_OBJECT.findall(text), _WHERE.findall(text)):  # noqa: B905 - released zip
        rows.extend(_pred_rows(where, mapper(name.strip())))
    spans: list[tuple[float, float]] = []
    m = _PRED_WHEN.search(text)
    if m is not None:
        try:
            spans.append(_when(m.group(1)))
        except ValueError:
            pass  # released: "[Error] Failed to parse <when> value" and no interval
    return rows, spans


def _spatial(pred: list[Row], gt: list[Row]) -> tuple[float | None, int]:
    """Mean over (second, name) pairs on both sides of the mean best IoU of the GT boxes."""
    by_p: dict[tuple[int, str], list[list[float]]] = defaultdict(list)
    by_g: dict[tuple[int, str], list[list[float]]] = defaultdict(list)
    for name, t, box in pred:
        by_p[t, name].append(box)
    for name, t, box in gt:
        by_g[t, name].append(box)
    scores = []
    for key in sorted(by_g.keys() & by_p.keys()):
        best = [max(_iou(g, p) for p in by_p[key]) for g in by_g[key]]
        scores.append(sum(best) / len(best))  # the released np.mean, without numpy's per-call cost
    if not scores:
        return None, 0
    return sum(scores) / len(scores), len(scores)


def released_scores(completion: str, solution: str, task: Task | str, mapper: Callable[[str], str]) -> ReleasedScores:
    """The released ``format_reward`` + ``spatial_temporal_reward`` of one completion.

    ``solution``: the GT answer text (official layout); ``mapper``: the released name mapping
    (:class:`ReleasedMapper`). Never raises: where the released code would, ``raised`` says so
    and every part is 0."""
    task = Task(task)
    try:
        return _released(completion, solution, task, mapper)
    except Exception as exc:  # noqa: BLE001 - the released code raises here; the caller counts it
        return ReleasedScores(0.0, 0.0, 0.0, 0.0, None, raised=f"{type(exc).__name__}: {exc}")


def _released(completion: str, solution: str, task: Task, mapper: Callable[[str], str]) -> ReleasedScores:
    fmt = released_format(completion)
    text = completion
    m = _DICT_ANSWER.search(text)
    if m is not None:
        text = m.group(1)
    # str -> UTF-8 bytes -> escapes decoded, bytes as Latin-1 (non-ASCII becomes mojibake)
    text = codecs.decode(text, "unicode_escape")  # type: ignore[arg-type]
    pred_rows, pred_spans = _prediction(text, mapper)
    gt = _ground_truth(solution)
    pred_names = [r[0] for r in pred_rows]
    gt_set = gt.names
    obj = len(set(pred_names) & gt_set) / len(gt_set) if gt_set else 0.0
    temporal = 0.0
    spatial: float | None = None
    n_pairs = 0
    if task is Task.TEMPORAL:
        temporal = _tiou(gt.temporal, pred_spans)
        value = temporal
    elif task is Task.SPATIAL:
        spatial, n_pairs = _spatial(pred_rows, gt.spatial)
        value = (obj + spatial) / 2 if spatial is not None else obj / 2
    else:
        temporal = _tiou(gt.st_temporal, pred_spans)
        spatial, n_pairs = _spatial(pred_rows, gt.st_spatial)
        value = (temporal + spatial) / 2 if spatial is not None else temporal / 2
    return ReleasedScores(fmt, float(value), float(obj), float(temporal), spatial,
                          tuple(sorted(set(pred_names))), tuple(sorted(gt_set)), n_pairs)


class ReleasedMapper:
    """The released ``map_object_name_to_gt``: a predicted name, normalised, embedded as the mean
    of its tokens' word2vec vectors, goes to the vocabulary entry of highest cosine
    (``torch.cosine_similarity`` + ``torch.max``: the first of tied entries) when that cosine is
    >= ``threshold``; else it stays the normalised name.

    ``word_vectors``: :class:`ravst.word2vec.WordVectors` (None: the shipped table). With the
    shipped table a name with undetermined tokens is embedded from its other tokens and counted
    in ``unknown_names`` (its released vector may differ)."""

    def __init__(self, vocab_path: str | Path, word_vectors: Any = None, threshold: float = RELEASED_THRESHOLD) -> None:
        import torch

        from ravst.word2vec import WordVectors, load_vocab

        names, emb = load_vocab(vocab_path)
        self.vocab_path = Path(vocab_path)
        self.names = names
        self._emb = torch.from_numpy(emb)
        self.wv = word_vectors if word_vectors is not None else WordVectors.load()
        if self.wv.vector_size != emb.shape[1]:
            raise ValueError(f"{vocab_path}: embeddings of size {emb.shape[1]} but word vectors "
                             f"({self.wv.source}) of size {self.wv.vector_size}")
        self.threshold = float(threshold)
        self.unknown_names: set[str] = set()
        self._cache: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        norm = normalize_name(name)
        if not norm:
            return norm
        hit = self._cache.get(norm)
        if hit is not None:
            return hit
        import torch

        if self.wv.unknown_tokens(norm):
            self.unknown_names.add(norm)
        vec = self.wv.phrase_vector(norm)
        if vec is None:
            vec = np.zeros(self.wv.vector_size, dtype=np.float32)
        sim = torch.cosine_similarity(torch.from_numpy(np.asarray(vec, dtype=np.float32)).unsqueeze(0), self._emb)
        best, idx = torch.max(sim, dim=0)
        out = self.names[int(idx)] if float(best) >= self.threshold else norm
        if len(self._cache) > 65536:
            self._cache.clear()
        self._cache[norm] = out
        return out
