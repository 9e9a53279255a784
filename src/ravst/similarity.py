"""Object-name similarity: name normalisation and four backends (``hybrid``, ``minilm``, ``word2vec``, ``exact``).

Names are normalised before anything else (case, punctuation, leading articles / numerals /
quantifiers, plurals), so ``"Two Dogs"`` and ``"a dog"`` are the same name. Two names whose
normalised forms are equal have similarity exactly 1.0 in every backend; otherwise the backend
decides (cosine of embeddings, head-noun rules then cosine for ``hybrid``, or 0 for ``exact``).
A predicted and a GT name match when their
similarity is ``>= tau``; each backend has a default ``tau`` chosen from the measured table in
``docs/metrics.md`` (``benchmarks/tau_table.py``).

>>> normalize_name("Two young Boys")
'young boy'
>>> normalize_name("A large group of People")
'large group of person'
>>> get_similarity("exact").matrix(["The dogs", "cat"], ["dog"]).tolist()
[[1.0], [0.0]]
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: ``ravst CMD --help`` stays light
    import numpy as np


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "DEFAULT_TAU",
    "EmbeddingSimilarity",
    "ExactSimilarity",
    "HybridSimilarity",
    "MiniLMSimilarity",
    "NameParts",
    "Similarity",
    "Word2VecSimilarity",
    "get_similarity",
    "name_parts",
    "normalize_name",
    "rule_verdict",
    "singularize",
]

log = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    """``minilm_model_path`` lived here before ``ravst.minilm``; imported on use (sqlite3, hashlib:
    not for ``ravst eval --help``)."""
    if name == "minilm_model_path":
        from ravst.minilm import minilm_model_path

        return minilm_model_path
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

DEFAULT_TAU: dict[str, float] = {
    # chosen on the judged name pairs (development half), docs/metrics.md (benchmarks/tau_table.py)
    "hybrid": 0.75,
    "minilm": 0.55,
    # the official R-AVST reward threshold for GoogleNews word2vec (the paper's value)
    "word2vec": 0.75,
    # exact: only identical normalised names match
    "exact": 1.0,
}

_LEADING_DROP = frozenset(
    "a an the some several many few two three four five six seven eight nine ten eleven twelve "
    "one multiple various numerous".split()
)
# "pair of X" / "couple of X" name X; "one of the X" (any dropped word + "of") names X too
_PAIR_WORDS = frozenset({"pair", "couple"})
_IRREGULAR = {
    "men": "man",
    "women": "woman",
    "mens": "man",  # "mens choir" (a possessive written without its apostrophe)
    "womens": "woman",
    "childrens": "child",
    "erhus": "erhu",  # -us plurals of words ending in u (the -us rule keeps "cactus", "chorus")
    "emus": "emu",
    "gnus": "gnu",
    "menus": "menu",
    "people": "person",
    "persons": "person",
    "children": "child",
    "feet": "foot",
    "teeth": "tooth",
    "mice": "mouse",
    "geese": "goose",
    "oxen": "ox",
    "knives": "knife",
    "wolves": "wolf",
    "leaves": "leaf",
    "calves": "calf",
    "halves": "half",
    "shelves": "shelf",
    "lives": "life",
    "wives": "wife",
    "policemen": "policeman",
    "firemen": "fireman",
    "fishermen": "fisherman",
    "cattle": "cattle",
    "buses": "bus",
    "gases": "gas",
    "glasses": "glasses",
    "viruses": "virus",
}
_KEEP = frozenset(
    "bus gas glass grass chess class dress boss news series species sheep fish deer aircraft "
    "cello tennis lens canvas chorus cactus octopus walrus bonus virus status atlas iris "
    "jeans pants scissors shorts glasses trousers clothes binoculars headphones earphones".split()
)
# singulars of the plural-only words above: "headphone" and "headphones" are one name
_TO_PLURAL_ONLY = {"headphone": "headphones", "earphone": "earphones", "binocular": "binoculars",
                   "trouser": "trousers", "scissor": "scissors"}
_TOKEN_RE = re.compile(r"[a-z0-9]+")
_NUMERAL_RE = re.compile(r"^\d+(st|nd|rd|th)?$")
_POSSESSIVE_RE = re.compile(r"['\u2019]s\b")  # "men's choir" -> "men choir"


def singularize(word: str) -> str:
    """Conservative English singular of one lower-case word.

    >>> [singularize(w) for w in ["men", "babies", "buses", "boxes", "cars", "glass", "waves"]]
    ['man', 'baby', 'bus', 'box', 'car', 'glass', 'wave']
    """
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word in _TO_PLURAL_ONLY:
        return _TO_PLURAL_ONLY[word]
    if word in _KEEP or len(word) <= 3:
        return word
    if word.endswith("men") and len(word) > 4:
        return word[:-3] + "man"
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@functools.lru_cache(maxsize=65536)
def normalize_name(name: str) -> str:
    """Lower-case, keep letters and digits, drop leading articles / numerals / quantifiers
    (``"A couple of dogs"``, ``"One of the dogs"`` -> ``"dog"``), singularise.

    >>> [normalize_name(n) for n in ["A couple of dogs", "One of the dogs", "a pair of drums", "Drum"]]
    ['dog', 'dog', 'drum', 'drum']
    """
    tokens = _TOKEN_RE.findall(_POSSESSIVE_RE.sub("", name.lower()))
    dropped = False
    while len(tokens) > 1:
        head = tokens[0]
        if head in _LEADING_DROP or _NUMERAL_RE.match(head):
            tokens, dropped = tokens[1:], True
        elif head in _PAIR_WORDS and len(tokens) >= 3 and tokens[1] == "of":
            tokens, dropped = tokens[2:], True
        elif head == "of" and dropped:  # "one of the dogs", "two of the men"
            tokens = tokens[1:]
        else:
            break
    return " ".join(singularize(t) for t in tokens)


# ---------------------------------------------------------------------------------------------
# head-noun rules of the ``hybrid`` backend (see docs/metrics.md, "Similarity backends and tau")

_COLOURS = frozenset(
    "red orange yellow green blue purple pink brown black white gray grey silver gold golden beige "
    "violet tan maroon navy turquoise cyan magenta crimson scarlet ivory khaki teal".split()
)
"""Colour words: two names whose colour sets are both non-empty and disjoint name different objects."""
_SPLIT_WORDS = frozenset(
    "in with of on at from wearing holding playing speaking lying whose who that is are being near by "
    "under behind for inside beside".split()
)
"""Words after which a name's description follows (its head noun is the last word before)."""
_COLLECTIVES = frozenset("group herd crowd flock set pair couple bunch congregation cluster row pack swarm "
                         "piece slice".split())
"""``group of X``, ``piece of X``: the head noun is X's."""
_IGNORED = frozenset(
    "a an the and or another other one two three four five six seven eight nine ten first second third "
    "fourth fifth multiple various several many numerous some more few".split()
)
"""Words that never tell two objects apart (counts, articles, relative words)."""
_GENERIC = (None, None)
_PERSON: dict[str, tuple[str | None, str | None]] = {
    **{w: _GENERIC for w in "person people individual human figure someone somebody personnel".split()},
    **{w: ("m", None) for w in "male gentleman guy".split()},
    **{w: ("m", "adult") for w in "man father husband king son_in_law grandfather".split()},
    **{w: ("f", None) for w in "female lady".split()},
    **{w: ("f", "adult") for w in "woman mother wife queen grandmother".split()},
    **{w: (None, "adult") for w in "adult".split()},
    **{w: ("m", "child") for w in "boy son".split()},
    **{w: ("f", "child") for w in "girl daughter".split()},
    **{w: (None, "child") for w in "child kid baby infant toddler newborn teenager youngster".split()},
}
"""Person words with (gender, age): a small hypernym lexicon. Generic words (person, people) cover
every person word; two person words conflict when their genders or their ages differ."""
_AGENT_NOUNS = frozenset(
    "player singer dancer drummer performer rider driver worker runner surfer skateboarder spectator "
    "conductor musician athlete student diver lumberjack pilot officer soldier firefighter policeman "
    "fireman nurse doctor chef cook teacher speaker announcer commentator referee umpire fan pedestrian "
    "passenger audience crowd crew team band choir orchestra ensemble quartet quintet trio duo member "
    "staff professional clown actor actress host presenter reporter farmer fisherman hunter skier "
    "swimmer boxer wrestler rapper dj vocalist audience tourist visitor shopper customer worshipper "
    "congregation protester marcher jockey cowboy mechanic builder carpenter barber stylist".split()
)
"""Nouns naming people by what they do (plus every ``-ist`` word but those in ``_NOT_AGENT``)."""
_NOT_AGENT = frozenset("wrist twist mist list fist waist playlist checklist whist schist".split())


@dataclasses.dataclass(frozen=True)
class NameParts:
    """A normalised name split for the rules: its head noun and its content words."""

    head: str
    words: frozenset[str]
    colours: frozenset[str]
    genders: frozenset[str]
    ages: frozenset[str]
    is_person: bool  # the head names a person or people
    is_generic_person: bool  # the head is a generic person word (person, people, individual)


def _person_entry(word: str) -> tuple[str | None, str | None] | None:
    for w in (word, singularize(word), singularize(singularize(word))):  # "mens" -> "men" -> "man"
        if w in _PERSON:
            return _PERSON[w]
    return None


def _is_agent(word: str) -> bool:
    w = singularize(word)
    return w in _AGENT_NOUNS or (w.endswith("ist") and len(w) > 4 and w not in _NOT_AGENT)


@functools.lru_cache(maxsize=65536)
def name_parts(norm: str) -> NameParts:
    """Head noun (last word before a description such as ``in a red shirt``; ``group of X`` -> X's)
    and content words of a normalised name.

    >>> p = name_parts("young man in a red shirt")
    >>> p.head, sorted(p.words), sorted(p.colours), sorted(p.genders)
    ('man', ['man', 'red', 'shirt', 'young'], ['red'], ['m'])
    >>> name_parts("group of musician").head
    'musician'
    """
    tokens = norm.split()
    while len(tokens) >= 3 and tokens[0] in _COLLECTIVES and tokens[1] == "of":
        tokens = tokens[2:]
    core = tokens
    for i, w in enumerate(tokens):
        if i > 0 and w in _SPLIT_WORDS:
            core = tokens[:i]
            break
    core = [w for w in core if w not in _IGNORED and not w.isdigit()] or core[-1:]
    words = frozenset(w for w in tokens if w not in _IGNORED and w not in _SPLIT_WORDS and not w.isdigit())
    entries = [e for e in (_person_entry(w) for w in tokens) if e is not None]
    head = core[-1] if core else ""
    head_entry = _person_entry(head)
    return NameParts(
        head=head,
        words=words,
        colours=words & _COLOURS,
        genders=frozenset(g for g, _ in entries if g),
        ages=frozenset(a for _, a in entries if a),
        is_person=head_entry is not None or _is_agent(head),
        is_generic_person=head_entry == _GENERIC,
    )


SAME, DIFFERENT, UNDECIDED = "same", "different", "undecided"


@functools.lru_cache(maxsize=262144)
def rule_verdict(a: str, b: str) -> str:
    """``same``, ``different`` or ``undecided`` (the embedding decides) for two normalised names.

    In order: equal names are the same; person words of different gender or age (man / woman,
    boy / man) are different; a person and a non-person (guitarist / guitar, tuba player / tuba,
    orchestra / two trumpets) are different; disjoint colours (red car / blue car) are different;
    the same head noun with one name's words a subset of the other's (dog / white dog, man /
    man speaking) is the same; a generic person word and any person word (person / man) is the
    same; anything else is undecided.

    >>> [rule_verdict(*p) for p in [("guitar", "guitarist"), ("dog", "small white dog"),
    ...                             ("red car", "blue car"), ("young man", "young woman"),
    ...                             ("person", "man"), ("drone", "helicopter")]]
    ['different', 'same', 'different', 'different', 'same', 'undecided']
    """
    if a == b:
        return SAME
    pa, pb = name_parts(a), name_parts(b)
    if (pa.genders and pb.genders and not pa.genders & pb.genders) or (pa.ages and pb.ages and not pa.ages & pb.ages):
        return DIFFERENT
    if pa.is_person != pb.is_person:
        return DIFFERENT
    if pa.colours and pb.colours and not pa.colours & pb.colours:
        return DIFFERENT
    if pa.head == pb.head and (pa.words <= pb.words or pb.words <= pa.words):
        return SAME
    if pa.is_person and pb.is_person and (pa.is_generic_person or pb.is_generic_person):
        return SAME
    return UNDECIDED


@functools.lru_cache(maxsize=262144)
def _verdict_code(a: str, b: str) -> int:
    """``rule_verdict`` as 0 (same), 1 (different), 2 (undecided; also for an empty name)."""
    return 2 if not (a and b) else {SAME: 0, DIFFERENT: 1, UNDECIDED: 2}[rule_verdict(a, b)]


# ---------------------------------------------------------------------------------------------
# backends


class Similarity:
    """A similarity backend: ``matrix(a, b)`` gives (len(a), len(b)) similarities in [-1, 1]."""

    name: str = "base"

    def __init__(self, tau: float | None = None) -> None:
        self.tau = float(DEFAULT_TAU[self.name] if tau is None else tau)
        if not -1.0 <= self.tau <= 1.0:
            raise ValueError(f"similarity {self.name}: tau must be in [-1, 1], got {self.tau}")

    def _scores(self, a_raw: list[str], b_raw: list[str], a: list[str], b: list[str]) -> np.ndarray:
        """Similarities of the names (raw and normalised); equal normalised names are set to 1 after."""
        import numpy as np

        return np.zeros((len(a), len(b)))

    def matrix(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        import numpy as np

        na = [normalize_name(x) for x in a]
        nb = [normalize_name(x) for x in b]
        if not na or not nb:
            return np.zeros((len(na), len(nb)))
        ids: dict[str, int] = {"": -1}
        ia = np.array([ids.setdefault(x, len(ids)) for x in na])
        ib = np.array([ids.setdefault(x, len(ids)) for x in nb])
        same = (ia[:, None] == ib[None, :]) & (ia[:, None] >= 0)
        if same.all():
            return np.ones(same.shape)
        sim = self._scores(list(a), list(b), na, nb)
        return np.where(same, 1.0, np.clip(sim, -1.0, 1.0))

    def warm(self, names: Iterable[str]) -> None:
        """Compute and cache what later ``matrix`` calls on these names need (one batch)."""

    def report(self) -> dict[str, Any]:
        """What this backend did so far (for metrics.json), logging a WARNING for any fallback."""
        return {"backend": self.name, "tau": self.tau}

    def __call__(self, a: str, b: str) -> float:
        return float(self.matrix([a], [b])[0, 0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tau={self.tau})"


class ExactSimilarity(Similarity):
    """1.0 when the normalised names are equal, else 0.0."""

    name = "exact"


class EmbeddingSimilarity(Similarity, abc.ABC):
    """Cosine of unit embeddings of one text per name, with an in-memory cache per text."""

    dim = 0

    def __init__(self, tau: float | None = None) -> None:
        super().__init__(tau)
        self._cache: dict[str, np.ndarray] = {}

    @staticmethod
    def _text(raw: str, norm: str) -> str:
        """The text embedded for a name (default: its normalised form)."""
        return norm

    @abc.abstractmethod
    def _embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings (len(texts), dim); rows of zeros for unknown texts."""

    def embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (len(texts), dim) of texts as ``_text`` gives them (zero vector when unknown)."""
        import numpy as np

        missing = sorted({n for n in texts if n not in self._cache})
        if missing:
            vecs = np.asarray(self._embed(missing), dtype=np.float64)
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            vecs = np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)
            for n, v in zip(missing, vecs, strict=True):
                self._cache[n] = v
        return np.stack([self._cache[n] for n in texts])

    def _scores(self, a_raw: list[str], b_raw: list[str], a: list[str], b: list[str]) -> np.ndarray:
        import numpy as np

        ta = [self._text(r, n) for r, n in zip(a_raw, a, strict=True)]
        tb = [self._text(r, n) for r, n in zip(b_raw, b, strict=True)]
        ua, ub = list(dict.fromkeys(ta)), list(dict.fromkeys(tb))  # distinct texts, then index
        cos = self.embeddings(ua) @ self.embeddings(ub).T
        ia, ib = {t: i for i, t in enumerate(ua)}, {t: j for j, t in enumerate(ub)}
        return cos[np.ix_([ia[t] for t in ta], [ib[t] for t in tb])]

    def warm(self, names: Iterable[str]) -> None:
        texts = sorted({self._text(n, normalize_name(n)) for n in names} - {""})
        if texts:
            self.embeddings(texts)


_DEFAULT_CACHE: Any = object()


class MiniLMSimilarity(EmbeddingSimilarity):
    """all-MiniLM-L6-v2 sentence embeddings (384-d) of normalised names, from the PyPI wheel.

    Encoded by ``ravst.minilm.MiniLMEncoder`` (NumPy; no torch import) and cached on disk
    (``ravst.minilm.EmbeddingCache``: ``$RAVST_CACHE`` or ``~/.cache/ravst``; ``cache_dir=None``
    or ``RAVST_CACHE=off`` disables it); the model is loaded only for texts not in the cache.
    """

    name = "minilm"
    dim = 384

    def __init__(self, tau: float | None = None, *, model_path: str | Path | None = None,
                 cache_dir: str | Path | None = _DEFAULT_CACHE) -> None:
        from ravst import minilm

        super().__init__(tau)
        self.model_path = Path(model_path) if model_path is not None else minilm.minilm_model_path()
        if not (self.model_path / "config.json").exists():
            raise ValueError(f"similarity {self.name}: no model files under {self.model_path}")
        self._encoder: Any = None
        self.n_encoded = 0
        cdir = minilm.default_cache_dir() if cache_dir is _DEFAULT_CACHE else cache_dir
        self.disk_cache = minilm.EmbeddingCache(cdir, "all-MiniLM-L6-v2", minilm.model_key(self.model_path), self.dim)
        if self.disk_cache.disabled_reason and cdir is not None:
            log.warning("similarity %s: embedding cache not used, %s; every run re-encodes its names",
                        self.name, self.disk_cache.disabled_reason)

    def _embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        found = self.disk_cache.get_many(texts)
        missing = [t for t in texts if t not in found]
        if missing:
            if self._encoder is None:
                from ravst.minilm import MiniLMEncoder

                log.debug("loading MiniLM from %s", self.model_path)
                self._encoder = MiniLMEncoder(self.model_path)
            vecs = self._encoder.encode(missing)
            self.n_encoded += len(missing)
            new = dict(zip(missing, vecs, strict=True))
            self.disk_cache.put_many(new)
            found.update(new)
        return np.stack([found[t] for t in texts]) if texts else np.zeros((0, self.dim))

    def report(self) -> dict[str, Any]:
        c = self.disk_cache
        if c.disabled_reason and not c.disabled_reason.startswith("disabled"):
            log.warning("similarity %s: embedding cache not used: %s", self.name, c.disabled_reason)
        return {**super().report(), "model": str(self.model_path), "encoder": "numpy",
                "cache": str(c.path) if c.path is not None else c.disabled_reason,
                "cache_hits": c.hits, "cache_misses": c.misses, "encoded": self.n_encoded}


HYBRID_SAME_FLOOR = 0.9
"""``hybrid``: a pair the rules call the same scores ``0.95 + 0.05 * cosine`` (>= 0.9)."""


class HybridSimilarity(MiniLMSimilarity):
    """MiniLM cosine decided by head-noun rules (``rule_verdict``) where the rules can decide.

    Rules ``same``: ``0.95 + 0.05 * cos`` (>= 0.9, so any tau <= 0.9 accepts it, and the one-to-one
    matching still prefers the closer name); rules ``different``: ``min(cos, 0)`` (never a match
    at tau > 0); ``undecided``: the MiniLM cosine against tau.
    """

    name = "hybrid"

    def __init__(self, tau: float | None = None, *, model_path: str | Path | None = None,
                 cache_dir: str | Path | None = _DEFAULT_CACHE) -> None:
        super().__init__(tau, model_path=model_path, cache_dir=cache_dir)
        self.verdicts = {SAME: 0, DIFFERENT: 0, UNDECIDED: 0}

    def _scores(self, a_raw: list[str], b_raw: list[str], a: list[str], b: list[str]) -> np.ndarray:
        import numpy as np

        # verdicts on the distinct names only (a split's matrix repeats names many times)
        ua, ub = list(dict.fromkeys(a)), list(dict.fromkeys(b))
        codes = {SAME: 0, DIFFERENT: 1, UNDECIDED: 2}
        uv = np.array([[_verdict_code(x, y) for y in ub] for x in ua], dtype=np.int8).reshape(len(ua), len(ub))
        pos_a, pos_b = {x: i for i, x in enumerate(ua)}, {y: j for j, y in enumerate(ub)}
        v = uv[np.ix_([pos_a[x] for x in a], [pos_b[y] for y in b])]
        if (v == 1).all():
            cos = np.zeros((len(a), len(b)))  # no embedding needed
        else:
            cos = np.asarray(super()._scores(a_raw, b_raw, a, b), dtype=np.float64)
        for name, code in codes.items():
            self.verdicts[name] += int((v == code).sum())
        return np.where(v == 0, 0.95 + 0.05 * cos, np.where(v == 1, np.minimum(cos, 0.0), cos))

    def report(self) -> dict[str, Any]:
        return {**super().report(), "rule_pairs": dict(self.verdicts)}


class Word2VecSimilarity(EmbeddingSimilarity):
    """Word2vec phrase vectors like the released R-AVST reward: the mean of the vectors of a name's
    gensim ``simple_preprocess`` tokens (``ravst.word2vec``), cosine.

    ``path=None``: the table shipped with ravst (GoogleNews-300 vectors of the words of the
    official vocabularies, derived from the released vocabulary files); a path: a gensim
    ``KeyedVectors`` file (e.g. GoogleNews-300). A name none of whose tokens has a vector gets
    similarity 0 to every other name (1 only to a name with the same normalised form); such names,
    and names with some words the table has no vector for (other than words GoogleNews itself
    lacks, such as "a" and "of"), are counted in ``report()`` (WARNING).
    """

    name = "word2vec"
    dim = 300

    def __init__(self, path: str | Path | None = None, tau: float | None = None, *, vectors: Any = None) -> None:
        super().__init__(tau)
        self.path = None if path is None else Path(path)
        if self.path is not None and not self.path.exists():
            raise ValueError(f"similarity 'word2vec': vectors file {self.path} does not exist")
        self._wv: Any = vectors
        self._kv: Any = None
        self.oov_names: set[str] = set()
        self.partial_oov_names: set[str] = set()
        self.n_embedded = 0

    @staticmethod
    def _text(raw: str, norm: str) -> str:
        from ravst.word2vec import simple_preprocess

        return " ".join(simple_preprocess(raw))

    def vectors(self) -> Any:
        """The ``ravst.word2vec.WordVectors`` in use (loaded on first use)."""
        if self._wv is None:
            try:
                from ravst.word2vec import WordVectors
            except ImportError as exc:  # the module ships with ravst; a broken install
                raise ValueError(f"similarity 'word2vec' needs the module ravst.word2vec: {exc}") from exc
            self._wv = WordVectors.load(self.path)
        return self._wv

    def _load(self) -> Any:
        """The gensim ``KeyedVectors`` of ``path`` (for callers that need gensim's object itself)."""
        if self.path is None:
            raise ValueError("similarity 'word2vec': no KeyedVectors path was given")
        if self._kv is None:
            from gensim.models import KeyedVectors

            p = str(self.path)
            if p.endswith((".bin", ".bin.gz")):
                self._kv = KeyedVectors.load_word2vec_format(p, binary=True)
            elif p.endswith((".txt", ".txt.gz", ".vec")):
                self._kv = KeyedVectors.load_word2vec_format(p, binary=False)
            else:
                self._kv = KeyedVectors.load(p)
        return self._kv

    def _embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        wv = self.vectors()
        out = np.zeros((len(texts), int(getattr(wv, "vector_size", self.dim))))
        for i, t in enumerate(texts):
            self.n_embedded += 1
            v = wv.phrase_vector(t)
            if v is None:
                self.oov_names.add(t)
                continue
            out[i] = v
            # a word known to be absent from GoogleNews ("a", "of") is skipped by the released code
            # too; only words the table cannot vouch for make the vector differ from GoogleNews'
            missing = getattr(wv, "unknown_tokens", wv.oov_tokens)(t)
            if missing:
                self.partial_oov_names.add(t)
        return out

    def report(self) -> dict[str, Any]:
        wv = self._wv
        rep = {**super().report(), "source": None if wv is None else str(wv.source), "names": self.n_embedded,
               "oov_names": len(self.oov_names), "partial_oov_names": len(self.partial_oov_names),
               "oov_examples": sorted(self.oov_names)[:10],
               "partial_oov_examples": sorted(self.partial_oov_names)[:10]}
        if self.oov_names or self.partial_oov_names:
            log.warning("similarity word2vec (%s): %d of %d names have no word vector (similarity 0 unless "
                        "equal after normalisation), %d more miss some words; e.g. %s",
                        rep["source"], len(self.oov_names), self.n_embedded, len(self.partial_oov_names),
                        ", ".join(repr(x) for x in (sorted(self.oov_names) or sorted(self.partial_oov_names))[:5]))
        return rep


DEFAULT_BACKEND = "hybrid"
"""The backend of ``ravst eval`` (chosen on the judged pairs: docs/metrics.md)."""
BACKENDS = ("hybrid", "minilm", "word2vec", "exact")

_INSTANCES: dict[tuple[str, str | None, float | None], Similarity] = {}


def get_similarity(name: str = DEFAULT_BACKEND, *, tau: float | None = None,
                   word2vec_path: str | Path | None = None) -> Similarity:
    """A (cached) backend by name: ``hybrid`` (default), ``minilm``, ``word2vec`` (shipped table,
    or a KeyedVectors file with ``word2vec_path``) or ``exact``."""
    key = (name, None if word2vec_path is None else str(word2vec_path), tau)
    if key in _INSTANCES:
        return _INSTANCES[key]
    if word2vec_path is not None and name != "word2vec":
        raise ValueError(f"--word2vec applies only to --similarity word2vec, not {name}")
    sim: Similarity
    if name == "exact":
        sim = ExactSimilarity(tau)
    elif name == "minilm":
        sim = MiniLMSimilarity(tau)
    elif name == "hybrid":
        sim = HybridSimilarity(tau)
    elif name == "word2vec":
        sim = Word2VecSimilarity(word2vec_path, tau)
    else:
        raise ValueError(f"unknown similarity backend {name!r}; expected one of {', '.join(BACKENDS)}")
    _INSTANCES[key] = sim
    return sim
