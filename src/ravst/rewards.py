"""GRPO rewards of AVST-Zero (paper eqs. 2-7): the evaluation applied to each completion.

Every reward parses the completion with the one parser (:func:`ravst.parsing.parse_answer`,
lenient, like ``ravst eval``) and scores it with the metric protocol
(:func:`ravst.metrics.ravst_protocol.score_qa`), so a completion's reward is exactly the figure
``ravst eval`` gives the same text:

========== ============================================ ===================================
reward     value (``ravst`` mode)                       applies to (else ``None``)
========== ============================================ ===================================
format     1 if the text is in the official layout      every task
           (strict parse) with the task's tags, else 0
object     object accuracy of the QA (matched GT / GT)  spatial (the other questions name
                                                        the object)
temporal   tIoU of ``<when>`` and the GT interval        temporal, spatio-temporal
spatial    vIoU of ``<where>`` (mean over GT objects)    spatial, spatio-temporal with at
                                                        least one scorable GT frame
total      eq. 7: ``lambda_f * format + sum_k lambda_k   every task
           * R_k`` over the rewards that apply
========== ============================================ ===================================

``official`` mode reproduces the released R-AVST reward semantics (see ``docs/training.md``).
Reward functions follow TRL's signature ``f(completions, **kwargs) -> list[float | None]`` and
read the ``qa`` dataset column (JSON written by :func:`ravst.train.data.qa_to_json`). They never
raise: a completion that cannot be scored gets 0, is logged and counted in :data:`COUNTERS`.

>>> cfg = RewardConfig(similarity="exact")
>>> cfg.weights("spatial")
(1.0, 1.0, 0.0, 1.0)
>>> RewardConfig(no_temporal_reward=True).weights("temporal")
(1.0, 0.0, 0.0, 0.0)
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ravst.similarity import DEFAULT_TAU
from ravst.types import QAItem, Task

__all__ = [
    "COMPONENTS",
    "COUNTERS",
    "OfficialObjectMapper",
    "RewardConfig",
    "RewardFunction",
    "Scores",
    "TaskWeights",
    "format_reward",
    "make_reward_functions",
    "object_reward",
    "score_completion",
    "spatial_reward",
    "temporal_reward",
    "total_reward",
]

log = logging.getLogger(__name__)

COMPONENTS = ("format", "object", "temporal", "spatial")
MODES = ("ravst", "official")
COUNTERS: Counter[str] = Counter()
"""Process-wide counts: ``scored``, ``unparsed`` (no field the task is scored on),
``bad_qa`` (unreadable ``qa`` column), ``error`` (scoring raised; logged with its traceback),
``coord_unconvertible`` (boxes in a non-original space without the frame sizes: dropped)."""

_REQUIRED_TAGS = {
    Task.TEMPORAL: ("has_object", "has_when"),
    Task.SPATIAL: ("has_object", "has_where"),
    Task.SPATIOTEMPORAL: ("has_object", "has_when", "has_where"),
}
_CACHE_SIZE = 4096


def format_ok(parsed: Any, task: Task) -> bool:
    """The paper's R_format: the tag pairs the task needs (``<answer>`` plus, per task,
    ``<object>`` / ``<when>`` / ``<where>``) are present, readable and matched, in any order
    (the Box 2 prompt's own example puts ``<when>`` first).
    """
    return bool(parsed.has_answer and parsed.tags_closed
                and all(getattr(parsed, t) for t in _REQUIRED_TAGS[task]))


@dataclass(frozen=True)
class TaskWeights:
    """lambda_t, lambda_o, lambda_s of eq. 7 for one task type."""

    temporal: float = field(default=0.0, metadata={"help": "lambda_t"})
    object: float = field(default=0.0, metadata={"help": "lambda_o"})
    spatial: float = field(default=0.0, metadata={"help": "lambda_s"})

    def __post_init__(self) -> None:
        for name in ("temporal", "object", "spatial"):
            value = float(getattr(self, name))
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"reward weight {name}: must be finite and >= 0, got {value}")
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class RewardConfig:
    """Which rewards, with which weights, under which semantics."""

    mode: str = field(default="ravst", metadata={"help": "ravst (= ravst eval) or official (released R-AVST)."})
    format_weight: float = field(default=1.0, metadata={"help": "lambda_f (paper: 1 for all tasks)."})
    temporal_task: TaskWeights = field(
        default_factory=lambda: TaskWeights(temporal=1.0), metadata={"help": "Weights for temporal QAs."}
    )
    spatial_task: TaskWeights = field(
        default_factory=lambda: TaskWeights(object=1.0, spatial=1.0), metadata={"help": "Weights for spatial QAs."}
    )
    spatiotemporal_task: TaskWeights = field(
        default_factory=lambda: TaskWeights(temporal=1.0, spatial=1.0),
        metadata={"help": "Weights for spatio-temporal QAs."},
    )
    no_temporal_reward: bool = field(default=False, metadata={"help": "Ablation: lambda_t = 0 everywhere."})
    no_spatial_reward: bool = field(default=False, metadata={"help": "Ablation: lambda_s = 0 everywhere."})
    similarity: str = field(default="minilm", metadata={"help": "ravst mode: minilm, word2vec or exact."})
    tau: float | None = field(default=None, metadata={"help": "ravst mode: similarity threshold (None: default)."})
    word2vec_path: str | None = field(default=None, metadata={"help": "KeyedVectors for similarity word2vec."})
    official_vocab: str | None = field(
        default=None, metadata={"help": "official mode: GT vocabulary .pt (gt_object_list, gt_embeddings)."}
    )
    official_word2vec: str | None = field(
        default=None, metadata={"help": "official mode: gensim KeyedVectors for predicted names."}
    )
    official_tau: float = field(
        default=DEFAULT_TAU["word2vec"], metadata={"help": "official mode: word2vec threshold (released: 0.75)."}
    )
    coord_space: str | None = field(
        default=None,
        metadata={"help": "Space of the completions' boxes (input, original, norm1, norm1000); None: the "
                  "training data's coord_space. Converted to original pixels with ravst.coords, like ravst eval."},
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"rewards.mode: {self.mode!r} is not one of {MODES}")
        if not self.format_weight >= 0:
            raise ValueError(f"rewards.format_weight: must be >= 0, got {self.format_weight}")
        if self.similarity not in ("minilm", "word2vec", "exact"):
            raise ValueError(f"rewards.similarity: {self.similarity!r} is not minilm, word2vec or exact")
        if self.similarity == "word2vec" and not self.word2vec_path:
            raise ValueError("rewards.similarity word2vec needs rewards.word2vec_path")
        if self.mode == "official" and not (self.official_vocab and self.official_word2vec):
            raise ValueError("rewards.mode official needs rewards.official_vocab and rewards.official_word2vec")
        if self.coord_space not in (None, "input", "original", "norm1", "norm1000"):
            raise ValueError(f"rewards.coord_space: {self.coord_space!r} is not input/original/norm1/norm1000")
        if not -1.0 <= self.official_tau <= 1.0:
            raise ValueError(f"rewards.official_tau: must be in [-1, 1], got {self.official_tau}")

    def weights(self, task: Task | str) -> tuple[float, float, float, float]:
        """(lambda_f, lambda_o, lambda_t, lambda_s) for a task, ablations applied."""
        tw = {
            Task.TEMPORAL: self.temporal_task,
            Task.SPATIAL: self.spatial_task,
            Task.SPATIOTEMPORAL: self.spatiotemporal_task,
        }[Task(task)]
        lt = 0.0 if self.no_temporal_reward else tw.temporal
        ls = 0.0 if self.no_spatial_reward else tw.spatial
        return float(self.format_weight), tw.object, lt, ls


@dataclass(frozen=True)
class Scores:
    """The four rewards of one completion (``None``: does not apply) and whether it parsed."""

    format: float
    object: float | None
    temporal: float | None
    spatial: float | None
    parsed: bool

    def total(self, weights: tuple[float, float, float, float]) -> float:
        lf, lo, lt, ls = weights
        out = lf * self.format
        for w, v in ((lo, self.object), (lt, self.temporal), (ls, self.spatial)):
            if v is not None:
                out += w * v
        return float(out)


# ------------------------------------------------------------------------------------ official mode
class OfficialObjectMapper:
    """The released object reward: predicted names mapped to the GT vocabulary with word2vec.

    A predicted name that is in the vocabulary (lower-cased) maps to itself; otherwise its
    word2vec vector (whole phrase or mean of its words) is compared by cosine with every
    vocabulary embedding and mapped to the best entry when the cosine is >= ``tau``.
    """

    def __init__(self, vocab_path: str | Path, word2vec_path: str | Path, tau: float = DEFAULT_TAU["word2vec"]) -> None:
        import torch

        try:
            raw = torch.load(str(vocab_path), weights_only=True)
            names = [str(n) for n in raw["gt_object_list"]]
            emb = np.asarray(raw["gt_embeddings"], dtype=np.float64)
        except (OSError, KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise ValueError(f"{vocab_path}: not a GT vocabulary (gt_object_list, gt_embeddings): {exc}") from exc
        if emb.shape != (len(names), emb.shape[1] if emb.ndim == 2 else -1):
            raise ValueError(f"{vocab_path}: {len(names)} names but embeddings of shape {emb.shape}")
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        self.unit = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)
        self.tau = float(tau)
        self.word2vec_path = Path(word2vec_path)
        self._kv: Any = None
        self._cache: dict[str, str | None] = {}

    @staticmethod
    def key(name: str) -> str:
        """The vocabulary's normal form: lower case, punctuation deleted (``three-wheeled`` ->
        ``threewheeled``, ``1. People`` -> ``1 people``), spaces collapsed, a leading article dropped.

        >>> OfficialObjectMapper.key("A child's hands"), OfficialObjectMapper.key("- dark, cloudy sky")
        ('childs hands', 'dark cloudy sky')
        """
        text = " ".join("".join(c for c in name.lower() if c.isalnum() or c.isspace()).split())
        for article in ("a ", "an ", "the "):
            if text.startswith(article):
                return text[len(article):]
        return text

    def _vector(self, key: str) -> np.ndarray | None:
        if self._kv is None:
            from ravst.similarity import Word2VecSimilarity

            self._kv = Word2VecSimilarity(self.word2vec_path)._load()
        kv = self._kv
        words = key.split()
        for whole in ("_".join(words), "_".join(w.capitalize() for w in words)):
            if whole and whole in kv.key_to_index:
                return np.asarray(kv[whole], dtype=np.float64)
        vecs = [kv[w] for w in words if w in kv.key_to_index]
        return np.mean(vecs, axis=0).astype(np.float64) if vecs else None

    def map(self, name: str) -> str | None:
        """The vocabulary entry a name maps to, or None."""
        key = self.key(name)
        if key in self._cache:
            return self._cache[key]
        out: str | None = None
        for candidate in (" ".join(name.lower().split()), key):
            if candidate in self.index:
                out = candidate
                break
        else:
            vec = self._vector(key)
            if vec is not None and np.linalg.norm(vec) > 0:
                cos = self.unit @ (vec / np.linalg.norm(vec))
                best = int(np.argmax(cos))
                if cos[best] >= self.tau:
                    out = self.names[best]
        self._cache[key] = out
        return out

    def recall(self, pred: Sequence[str], gt: Sequence[str]) -> float | None:
        gt_keys = {self.map(g) or self.key(g) for g in gt if g.strip()}
        if not gt_keys:
            return None
        mapped = {m for m in (self.map(p) for p in pred if p.strip()) if m is not None}
        return len(gt_keys & mapped) / len(gt_keys)


def official_spatial(pred_tracks: Sequence[Any], gt_tracks: Sequence[Any]) -> float | None:
    """Per non-empty GT box: best IoU of the predicted boxes (all objects) at the same rounded
    second; the mean over GT boxes (None when the GT has no box)."""
    from ravst.metrics.functional import box_iou

    gt_t = np.concatenate([np.round(t.times_s[t.nonempty]) for t in gt_tracks]) if gt_tracks else np.zeros(0)
    if gt_t.size == 0:
        return None
    gt_b = np.concatenate([t.xyxy[t.nonempty] for t in gt_tracks])
    pt = np.concatenate([np.round(t.times_s) for t in pred_tracks]) if pred_tracks else np.zeros(0)
    pb = np.concatenate([t.xyxy for t in pred_tracks]) if pred_tracks else np.zeros((0, 4))
    if pt.size == 0:
        return 0.0
    iou = np.where(gt_t[:, None] == pt[None, :], box_iou(gt_b, pb), 0.0)  # same rounded second only
    return float(iou.max(axis=1).mean())


# ------------------------------------------------------------------------------------ scoring
class _PairCache:
    """A similarity backend with a cache of name pairs: GRPO completions repeat the same few
    names, so most ``matrix`` calls are answered without the backend (same values: each cell is
    what the backend gave for that pair)."""

    MAX_PAIRS = 65536

    def __init__(self, similarity: Any) -> None:
        self.inner = similarity
        self.tau = similarity.tau
        self._cells: dict[tuple[str, str], float] = {}

    def matrix(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        cells = self._cells
        if all((x, y) in cells for x in a for y in b):  # every pair seen before: no backend call
            return np.array([[cells[x, y] for y in b] for x in a], dtype=np.float64).reshape(len(a), len(b))
        out = np.asarray(self.inner.matrix(a, b), dtype=np.float64)
        if len(cells) + out.size > self.MAX_PAIRS:
            cells.clear()
        for i, x in enumerate(a):
            for j, y in enumerate(b):
                cells[x, y] = float(out[i, j])
        return out

    def __getattr__(self, name: str) -> Any:  # warm(), name, ... of the backend
        if name == "inner" or name.startswith("__"):  # not set yet (copy / pickle)
            raise AttributeError(name)
        return getattr(self.inner, name)


class _Scorer:
    """Scores completions for one config; parses and QA items are cached (the reward functions
    of one batch score the same texts)."""

    def __init__(self, config: RewardConfig) -> None:
        self.config = config
        self._similarity: Any = None
        self._mapper: OfficialObjectMapper | None = None
        self._items: OrderedDict[str, QAItem] = OrderedDict()
        self._scores: OrderedDict[tuple[str, str, str], Scores] = OrderedDict()

    @property
    def similarity(self) -> Any:
        if self._similarity is None:
            from ravst.similarity import get_similarity

            c = self.config
            self._similarity = _PairCache(get_similarity(c.similarity, tau=c.tau, word2vec_path=c.word2vec_path))
        return self._similarity

    @property
    def mapper(self) -> OfficialObjectMapper:
        if self._mapper is None:
            c = self.config
            assert c.official_vocab and c.official_word2vec
            self._mapper = OfficialObjectMapper(c.official_vocab, c.official_word2vec, c.official_tau)
        return self._mapper

    def item(self, qa: Any) -> QAItem:
        if isinstance(qa, QAItem):
            return qa
        if qa in self._items:
            return self._items[qa]
        from ravst.train.data import qa_from_json

        item = qa_from_json(qa)
        self._items[qa] = item
        if len(self._items) > _CACHE_SIZE:
            self._items.popitem(last=False)
        return item

    def score(self, text: str, item: QAItem, sizes: tuple[Any, Any] = (None, None)) -> Scores:
        """Scores of one text (cached: the five reward functions of a batch score the same texts;
        counters count each completion once)."""
        key = (text, item.qa_id, repr(sizes))
        hit = self._scores.get(key)
        if hit is not None:
            return hit
        from ravst.parsing import parse_answer

        try:
            parsed = self._to_original(parse_answer(text), sizes)
            out = self._official(parsed, item) if self.config.mode == "official" else self._ravst(parsed, item)
        except Exception:  # a reward must not kill a training run: count, log with traceback, score 0
            COUNTERS["error"] += 1
            log.exception("reward: scoring QA %s raised; completion scored 0: %.300r", item.qa_id, text)
            out = self._zero(item)
        else:
            COUNTERS["scored"] += 1
            COUNTERS["unparsed"] += not out.parsed
        self._scores[key] = out
        if len(self._scores) > _CACHE_SIZE:
            self._scores.popitem(last=False)
        return out

    def _zero(self, item: QAItem) -> Scores:
        """All-zero scores, ``None`` where the reward does not apply to the task."""
        gt, task = item.answer, item.task
        official = self.config.mode == "official"
        obj = 0.0 if (gt.objects if official else task is Task.SPATIAL) else None
        temporal = 0.0 if gt.span is not None and (official or task is not Task.SPATIAL) else None
        spatial = 0.0 if (bool(gt.tracks) if official else task is not Task.TEMPORAL) else None
        return Scores(0.0, obj, temporal, spatial, False)

    def _to_original(self, parsed: Any, sizes: tuple[Any, Any]) -> Any:
        """Boxes to original pixels (``ravst.coords``), as ``ravst eval`` converts predictions."""
        import dataclasses

        from ravst.coords import convert_answer, needs_original_size
        from ravst.types import Answer

        space = self.config.coord_space or "original"
        if not needs_original_size(space) or not parsed.answer.tracks:
            return parsed
        input_wh, original_wh = sizes
        if original_wh is None or (space == "input" and input_wh is None):
            COUNTERS["coord_unconvertible"] += 1
            answer = Answer(parsed.answer.objects, parsed.answer.spans)  # boxes dropped, like ravst eval
        else:
            answer = convert_answer(parsed.answer, space, original_wh=original_wh, input_wh=input_wh)
        return dataclasses.replace(parsed, answer=answer)

    def _ravst(self, parsed: Any, item: QAItem) -> Scores:
        from ravst.metrics.ravst_protocol import score_qa

        s = score_qa(item, parsed, self.similarity)
        fmt = float(format_ok(parsed, item.task))
        return Scores(fmt, s.object_acc, s.t_iou, s.v_iou, s.parsed)

    def _official(self, parsed: Any, item: QAItem) -> Scores:
        from ravst.metrics.functional import temporal_iou

        answer, gt = parsed.answer, item.answer
        fmt = float(parsed.has_when and parsed.has_object and parsed.has_where)
        temporal = None
        if gt.span is not None:
            spans = np.array([[s.start_s, s.end_s] for s in answer.spans], dtype=np.float64).reshape(-1, 2)
            temporal = float(temporal_iou(spans, [gt.span.start_s, gt.span.end_s]))
        names = list(answer.objects) or [t.name for t in answer.tracks if t.name.strip()]
        obj = self.mapper.recall(names, list(gt.objects)) if gt.objects else None
        spatial = official_spatial(answer.tracks, gt.tracks) if gt.tracks else None
        parsed_ok = bool(answer.objects or answer.spans or answer.tracks)
        return Scores(fmt, obj, temporal, spatial, parsed_ok)


_SCORERS: dict[RewardConfig, _Scorer] = {}


def _scorer(config: RewardConfig) -> _Scorer:
    if config not in _SCORERS:
        _SCORERS[config] = _Scorer(config)
    return _SCORERS[config]


def _text(completion: Any) -> str:
    """The text of a TRL completion (a string, or a list of chat messages)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content)
    return str(completion)


_ZERO = Scores(0.0, 0.0, 0.0, 0.0, False)


def score_completion(completion: Any, qa: Any, config: RewardConfig, *, input_wh: Any = None,
                     original_wh: Any = None) -> tuple[Scores, QAItem | None]:
    """Scores of one completion against one QA (``qa``: a QAItem or its JSON). Never raises.

    ``input_wh`` / ``original_wh``: frame sizes for converting boxes from ``config.coord_space``."""
    scorer = _scorer(config)
    try:
        item = scorer.item(qa)
    except (ValueError, KeyError, TypeError) as exc:
        COUNTERS["bad_qa"] += 1
        log.error("reward: unreadable qa column (%s): %.200r", exc, qa)
        return _ZERO, None
    sizes = (None if input_wh is None else tuple(input_wh), None if original_wh is None else tuple(original_wh))
    return scorer.score(_text(completion), item, sizes), item


def _sizes(kwargs: dict[str, Any], n: int) -> list[tuple[Any, Any]]:
    inp = kwargs.get("input_wh") or [None] * n
    orig = kwargs.get("original_wh") or [None] * n
    return list(zip(inp, orig, strict=True))


def _component(completions: Sequence[Any], qa: Sequence[Any], config: RewardConfig, name: str,
               sizes: Sequence[tuple[Any, Any]]) -> list[float | None]:
    out: list[float | None] = []
    for completion, q, (iwh, owh) in zip(completions, qa, sizes, strict=True):
        scores, item = score_completion(completion, q, config, input_wh=iwh, original_wh=owh)
        if item is None:
            out.append(0.0)
        elif name == "total":
            out.append(scores.total(config.weights(item.task)))
        else:
            out.append(getattr(scores, name))
    return out


def _qa_column(kwargs: dict[str, Any], n: int) -> list[Any]:
    qa = kwargs.get("qa")
    if qa is None or len(qa) != n:
        raise ValueError(f"rewards need the dataset column 'qa' (one per completion); got {type(qa).__name__}")
    return list(qa)


def format_reward(completions: Sequence[Any], *, config: RewardConfig | None = None, **kwargs: Any) -> list[float | None]:
    """R_format: 1 when the completion has the official layout with the tags its task needs."""
    return _component(completions, _qa_column(kwargs, len(completions)), config or RewardConfig(), "format",
                      _sizes(kwargs, len(completions)))


def object_reward(completions: Sequence[Any], *, config: RewardConfig | None = None, **kwargs: Any) -> list[float | None]:
    """R_object (eqs. 2-3): object accuracy of the QA; ``None`` where the task does not score objects."""
    return _component(completions, _qa_column(kwargs, len(completions)), config or RewardConfig(), "object",
                      _sizes(kwargs, len(completions)))


def temporal_reward(completions: Sequence[Any], *, config: RewardConfig | None = None, **kwargs: Any) -> list[float | None]:
    """R_temporal (eq. 4): tIoU of the predicted interval(s) and the GT interval."""
    return _component(completions, _qa_column(kwargs, len(completions)), config or RewardConfig(), "temporal",
                      _sizes(kwargs, len(completions)))


def spatial_reward(completions: Sequence[Any], *, config: RewardConfig | None = None, **kwargs: Any) -> list[float | None]:
    """R_spatial (eqs. 5-6): vIoU of the predicted boxes."""
    return _component(completions, _qa_column(kwargs, len(completions)), config or RewardConfig(), "spatial",
                      _sizes(kwargs, len(completions)))


def total_reward(completions: Sequence[Any], *, config: RewardConfig | None = None, **kwargs: Any) -> list[float | None]:
    """R (eq. 7): lambda_f R_format + the task's weighted rewards that apply. Logs the parse rate
    through TRL's ``log_metric`` when given."""
    config = config or RewardConfig()
    qa = _qa_column(kwargs, len(completions))
    sizes = _sizes(kwargs, len(completions))
    out = _component(completions, qa, config, "total", sizes)
    log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
    if log_metric is not None and completions:
        parsed = [score_completion(c, q, config, input_wh=i, original_wh=o)[0].parsed
                  for c, q, (i, o) in zip(completions, qa, sizes, strict=True)]
        log_metric("rewards/parse_rate", float(np.mean(parsed)))
    return out


class RewardFunction:
    """A named reward callable bound to a config (TRL reads ``__name__``)."""

    def __init__(self, func: Callable[..., list[float | None]], config: RewardConfig, name: str) -> None:
        self.func = func
        self.config = config
        self.__name__ = name

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        kwargs.pop("config", None)
        return self.func(completions, config=self.config, **kwargs)

    def __repr__(self) -> str:
        return f"RewardFunction({self.__name__}, mode={self.config.mode})"


def make_reward_functions(config: RewardConfig) -> tuple[list[RewardFunction], list[float]]:
    """The reward functions for TRL and their weights: the total (weight 1) drives the advantage;
    the four components (weight 0) are there to be logged per step (``rewards/<name>/mean``)."""
    funcs = [
        RewardFunction(total_reward, config, "total"),
        RewardFunction(format_reward, config, "format"),
        RewardFunction(object_reward, config, "object"),
        RewardFunction(temporal_reward, config, "temporal"),
        RewardFunction(spatial_reward, config, "spatial"),
    ]
    return funcs, [1.0, 0.0, 0.0, 0.0, 0.0]


def qa_json_of(item: QAItem) -> str:
    """Shortcut for tests and scripts: the ``qa`` column value of a QA item."""
    from ravst.train.data import qa_to_json

    return qa_to_json(item)
