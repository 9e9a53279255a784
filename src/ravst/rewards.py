"""GRPO rewards of AVST-Zero (paper eqs. 2-7): the evaluation applied to each completion.

``ravst`` mode (default) parses the completion with the one parser
(:func:`ravst.parsing.parse_answer`, lenient, like ``ravst eval``) and scores it with the metric
protocol (:func:`ravst.metrics.ravst_protocol.score_qa`), so the content rewards are the
figures ``ravst eval`` gives the same text -- **but only for an answer in the required layout**:

========== ============================================ ===================================
reward     value (``ravst`` mode)                       applies to (else ``None``)
========== ============================================ ===================================
format     1 if the text has ``<answer>`` and the task's every task
           tags, each opened tag closed, else 0
object     object accuracy (matched GT / GT) if format  spatial (the other questions name
           is 1, else 0                                 the object)
temporal   tIoU of ``<when>`` and the GT interval if     temporal, spatio-temporal
           format is 1, else 0
spatial    vIoU of ``<where>`` if format is 1, else 0    spatial, spatio-temporal with at
                                                        least one scorable GT frame
total      eq. 7: ``lambda_f * format + sum_k lambda_k   every task
           * R_k`` over the rewards that apply
========== ============================================ ===================================

The gate (``content_requires_format``, default on) is what makes the reward ungameable: a
malformed answer earns 0 in total, so the policy cannot trade the format reward for content
read leniently out of a broken answer (``docs/training.md``, ``docs/benchmarks.md``). Default
weights: lambda_f = 1 (eq. 7) and content weights summing to 1 per task (the released 1/2
weights), so every task's maximum is 2.

``official`` mode is the released R-AVST reward value for value (:mod:`ravst.released_reward`).
Reward functions follow TRL's signature ``f(completions, **kwargs) -> list[float | None]`` and
read the ``qa`` dataset column (JSON written by :func:`ravst.train.data.qa_to_json`). They never
raise: a completion that cannot be scored gets 0, is logged and counted in :data:`COUNTERS`.

>>> cfg = RewardConfig(similarity="exact")
>>> cfg.weights("spatial")
(1.0, 0.5, 0.0, 0.5)
>>> RewardConfig(no_temporal_reward=True).weights("temporal")
(1.0, 0.0, 0.0, 0.0)
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ravst.released_reward import RELEASED_THRESHOLD, ReleasedMapper, released_scores
from ravst.types import QAItem, Task

__all__ = [
    "COMPONENTS",
    "COUNTERS",
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
``coord_unconvertible`` (boxes in a non-original space without the frame sizes: dropped),
``format_gated`` (ravst mode: content zeroed because the format reward is 0),
``official_raised`` (official mode: the released code raises on the completion; scored 0),
``official_w2v_unknown`` (official mode, shipped word table: a predicted name with a token the
table does not determine, embedded from its other tokens; once per name)."""

_REQUIRED_TAGS = {
    Task.TEMPORAL: ("has_object", "has_when"),
    Task.SPATIAL: ("has_object", "has_where"),
    Task.SPATIOTEMPORAL: ("has_object", "has_when", "has_where"),
}
_CACHE_SIZE = 4096
_RELEASED_WEIGHTS = {  # released spatial_temporal_reward + format_reward (ravst.released_reward)
    Task.TEMPORAL: (1.0, 0.0, 1.0, 0.0),
    Task.SPATIAL: (1.0, 0.5, 0.0, 0.5),
    Task.SPATIOTEMPORAL: (1.0, 0.0, 0.5, 0.5),
}


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
        default_factory=lambda: TaskWeights(object=0.5, spatial=0.5),
        metadata={"help": "Weights for spatial QAs (released: 1/2 each)."},
    )
    spatiotemporal_task: TaskWeights = field(
        default_factory=lambda: TaskWeights(temporal=0.5, spatial=0.5),
        metadata={"help": "Weights for spatio-temporal QAs (released: 1/2 each)."},
    )
    content_requires_format: bool = field(
        default=True,
        metadata={"help": "ravst mode: object/temporal/spatial pay only when the format reward is 1 "
                  "(False: the old, gameable rule that scores content of malformed answers)."},
    )
    no_temporal_reward: bool = field(default=False, metadata={"help": "Ablation: lambda_t = 0 everywhere."})
    no_spatial_reward: bool = field(default=False, metadata={"help": "Ablation: lambda_s = 0 everywhere."})
    similarity: str = field(
        default="hybrid",
        metadata={"help": "ravst mode: hybrid (ravst eval's default: head-noun rules, then MiniLM), minilm, "
                  "word2vec or exact."},
    )
    tau: float | None = field(default=None, metadata={"help": "ravst mode: similarity threshold (None: default)."})
    word2vec_path: str | None = field(default=None, metadata={"help": "KeyedVectors for similarity word2vec."})
    official_vocab: str | None = field(
        default=None, metadata={"help": "official mode: GT vocabulary .pt (gt_object_list, gt_embeddings); "
                                "the released trainer used Train_gt_object_vocab.pt."}
    )
    official_word2vec: str | None = field(
        default=None, metadata={"help": "official mode: gensim KeyedVectors (GoogleNews-300) for predicted names; "
                                "None: the shipped table recovered from the vocabularies (ravst.word2vec)."}
    )
    official_tau: float = field(
        default=RELEASED_THRESHOLD, metadata={"help": "official mode: word2vec threshold (released: 0.75)."}
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
        from ravst.similarity import BACKENDS

        if self.similarity not in BACKENDS:
            raise ValueError(f"rewards.similarity: {self.similarity!r} is not one of {', '.join(BACKENDS)}")
        if self.similarity == "word2vec" and not self.word2vec_path:
            raise ValueError("rewards.similarity word2vec needs rewards.word2vec_path")
        if self.mode == "official" and not self.official_vocab:
            raise ValueError("rewards.mode official needs rewards.official_vocab (the released "
                             "Train_gt_object_vocab.pt or Test_gt_object_vocab.pt)")
        if self.coord_space not in (None, "input", "original", "norm1", "norm1000"):
            raise ValueError(f"rewards.coord_space: {self.coord_space!r} is not input/original/norm1/norm1000")
        if not -1.0 <= self.official_tau <= 1.0:
            raise ValueError(f"rewards.official_tau: must be in [-1, 1], got {self.official_tau}")

    def weights(self, task: Task | str) -> tuple[float, float, float, float]:
        """(lambda_f, lambda_o, lambda_t, lambda_s) for a task, ablations applied. In official mode
        the released combination (format + tIoU; format + (object + spatial) / 2; format +
        (tIoU + spatial) / 2) whatever the configured weights."""
        if self.mode == "official":
            lf, lo, lt, ls = _RELEASED_WEIGHTS[Task(task)]
            return lf, lo, 0.0 if self.no_temporal_reward else lt, 0.0 if self.no_spatial_reward else ls
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
        self._mapper: ReleasedMapper | None = None
        self._solutions: dict[str, str] = {}
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
    def mapper(self) -> ReleasedMapper:
        if self._mapper is None:
            from ravst.word2vec import WordVectors

            c = self.config
            if not c.official_vocab:
                raise ValueError("rewards.mode official needs rewards.official_vocab")
            self._mapper = ReleasedMapper(c.official_vocab, WordVectors.load(c.official_word2vec), c.official_tau)
            log.info("reward (official): vocabulary %s, word vectors %s, threshold %s", c.official_vocab,
                     self._mapper.wv.source, c.official_tau)
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
            if self.config.mode == "official":  # the released code reads the raw text; no coordinate conversion
                out = self._official(text, item)
            else:
                out = self._ravst(self._to_original(parse_answer(text), sizes), item)
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
        task = item.task
        obj = 0.0 if task is Task.SPATIAL else None
        temporal = 0.0 if task is not Task.SPATIAL else None
        spatial = 0.0 if task is not Task.TEMPORAL else None
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
        obj, t_iou, v_iou = s.object_acc, s.t_iou, s.v_iou
        if self.config.content_requires_format and fmt == 0.0:
            COUNTERS["format_gated"] += 1
            obj, t_iou, v_iou = (None if v is None else 0.0 for v in (obj, t_iou, v_iou))
        return Scores(fmt, obj, t_iou, v_iou, s.parsed)

    def _official(self, text: str, item: QAItem) -> Scores:
        """The released values (:func:`ravst.released_reward.released_scores`), as components:
        object on spatial QAs, temporal on temporal / spatio-temporal QAs, spatial where a
        (second, name) pair is on both sides; ``total`` with :data:`_RELEASED_WEIGHTS` is the
        released ``format + spatial_temporal``."""
        from ravst.parsing import render_answer

        mapper = self.mapper
        known = set(mapper.unknown_names)
        solution = self._solutions.get(item.qa_id)
        if solution is None:
            solution = self._solutions[item.qa_id] = render_answer(item.answer)
            if len(self._solutions) > _CACHE_SIZE:
                self._solutions.clear()
        r = released_scores(text, solution, item.task, mapper)
        if len(mapper.unknown_names) > len(known):
            new = sorted(mapper.unknown_names - known)
            COUNTERS["official_w2v_unknown"] += len(new)
            log.warning("reward (official): QA %s: name(s) %s have tokens the shipped word table does not "
                        "determine; embedded from their other tokens (rewards.official_word2vec: GoogleNews)",
                        item.qa_id, new)
        if r.raised is not None:
            COUNTERS["official_raised"] += 1
            log.warning("reward (official): the released code raises on this completion (%s; the released "
                        "trainer drops the batch with loss 0); scored 0: QA %s %.200r", r.raised, item.qa_id, text)
            return self._zero(item)
        task = item.task
        return Scores(
            r.format,
            r.object if task is Task.SPATIAL else None,
            r.temporal if task is not Task.SPATIAL else None,
            r.spatial if task is not Task.TEMPORAL else None,
            True,
        )


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
