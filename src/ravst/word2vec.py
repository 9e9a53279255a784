"""Word2vec phrase vectors that work offline: the released R-AVST object mapping's encoder.

The released AVST-Zero reward (zhlllau/R-AVST, ``grpo.py``: ``encode_object_name``) embeds an
object name as the mean of the GoogleNews-300 vectors of its ``gensim.utils.simple_preprocess``
tokens that GoogleNews knows (a zero vector when it knows none). GoogleNews is 3.6 GB and is not
on PyPI, so ravst ships a small table of the word vectors that the two released vocabulary files
determine (``scripts/derive_word2vec.py`` solves the vocabularies' phrase vectors for the words;
see ``docs/training.md``), and loads a full gensim ``KeyedVectors`` file when given one.

>>> simple_preprocess("A man's 2 red-hot Guitars!")
['man', 'red', 'hot', 'guitars']
>>> wv = WordVectors.load()
>>> wv.vector("guitar").shape, wv.vector("guitar").dtype
((300,), dtype('float32'))
>>> wv.oov_tokens("a guitar qwzxv")
['qwzxv']
>>> wv.phrase_vector("qwzxv") is None
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SHIPPED_TABLE", "WordVectors", "load_vocab", "simple_preprocess"]

SHIPPED_TABLE = Path(__file__).resolve().parent / "data" / "word2vec_rAVST.npz"
"""Word vectors recovered from the R-AVST vocabulary files (float32, GoogleNews-300 values)."""

_ALPHABETIC = re.compile(r"(((?![\d])\w)+)", re.UNICODE)  # gensim.utils.PAT_ALPHABETIC
_MIN_LEN, _MAX_LEN = 2, 15  # gensim.utils.simple_preprocess defaults


def simple_preprocess(text: str) -> list[str]:
    """gensim's ``simple_preprocess`` rule: lower-cased runs of letters (no digits), 2 to 15
    characters long, not starting with ``_``.

    >>> simple_preprocess("1. People in the 3-wheeled car_park")
    ['people', 'in', 'the', 'wheeled', 'car_park']
    """
    if not isinstance(text, str):
        raise ValueError(f"simple_preprocess: expected a str, got {type(text).__name__}")
    return [m.group() for m in _ALPHABETIC.finditer(text.lower())
            if _MIN_LEN <= len(m.group()) <= _MAX_LEN and not m.group().startswith("_")]


def load_vocab(path: str | Path) -> tuple[list[str], np.ndarray]:
    """A released GT vocabulary file (``gt_object_list``, ``gt_embeddings`` [N, 300]) as
    (names, float32 array). Loaded with ``torch.load(weights_only=True)``; loud on a bad file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: GT vocabulary file does not exist")
    try:
        raw = torch.load(str(path), weights_only=True, map_location="cpu")
        names = [str(n) for n in raw["gt_object_list"]]
        emb = np.asarray(raw["gt_embeddings"].numpy() if hasattr(raw["gt_embeddings"], "numpy")
                         else raw["gt_embeddings"], dtype=np.float32)
    except (OSError, KeyError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not a GT vocabulary (gt_object_list, gt_embeddings): {exc}") from exc
    if emb.ndim != 2 or emb.shape[0] != len(names):
        raise ValueError(f"{path}: {len(names)} names but embeddings of shape {emb.shape}")
    return names, emb


class WordVectors:
    """Word vectors for phrase embedding: the shipped table or a gensim ``KeyedVectors`` file.

    ``source`` says which. With the shipped table a token is in one of three states: a vector
    (``vector`` returns it), known to be absent from GoogleNews (the released code skips it,
    so does ``phrase_vector``), or undetermined (``unknown_tokens``: the table cannot say what
    GoogleNews gives for it; ``phrase_vector`` skips it too, and callers count it).
    """

    def __init__(self, words: Sequence[str], vectors: np.ndarray, *, source: str,
                 absent: Sequence[str] = (), kv: Any = None) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"WordVectors ({source}): {len(words)} words but vectors of shape {vectors.shape}")
        self._index = {w: i for i, w in enumerate(words)}
        self._vectors = vectors
        self._absent = frozenset(absent)
        self._kv = kv
        self.source = source
        self.vector_size = int(vectors.shape[1]) if kv is None else int(kv.vector_size)

    @classmethod
    def load(cls, kv_path: str | Path | None = None) -> WordVectors:
        """``None``: the shipped table; a path: a gensim KeyedVectors file (``.bin``/``.bin.gz``:
        word2vec binary, ``.txt``/``.txt.gz``/``.vec``: word2vec text, else ``KeyedVectors.save``)."""
        if kv_path is None:
            return _shipped()
        path = Path(kv_path)
        if not path.exists():
            raise ValueError(f"word2vec: vectors file {path} does not exist")
        from gensim.models import KeyedVectors

        p = str(path)
        try:
            if p.endswith((".bin", ".bin.gz")):
                kv = KeyedVectors.load_word2vec_format(p, binary=True)
            elif p.endswith((".txt", ".txt.gz", ".vec")):
                kv = KeyedVectors.load_word2vec_format(p, binary=False)
            else:
                kv = KeyedVectors.load(p)
        except (OSError, ValueError, EOFError, UnicodeDecodeError) as exc:  # pickle errors are ValueError/EOF
            raise ValueError(f"word2vec: {path} is not a gensim KeyedVectors / word2vec file: {exc}") from exc
        return cls([], np.zeros((0, kv.vector_size), dtype=np.float32), source=str(path), kv=kv)

    def __contains__(self, word: object) -> bool:
        if self._kv is not None:
            return word in self._kv.key_to_index
        return word in self._index

    def vector(self, word: str) -> np.ndarray | None:
        """The word's float32 vector, or None when this table has none."""
        if self._kv is not None:
            return np.asarray(self._kv[word], dtype=np.float32) if word in self._kv.key_to_index else None
        i = self._index.get(word)
        return None if i is None else self._vectors[i]

    def oov_tokens(self, name: str) -> list[str]:
        """The ``simple_preprocess`` tokens of ``name`` that have no vector here."""
        return [w for w in simple_preprocess(name) if w not in self]

    def unknown_tokens(self, name: str) -> list[str]:
        """Tokens with no vector that are not known to be absent from the source either: the
        phrase vector of such a name may differ from the one GoogleNews gives (always empty for
        a KeyedVectors file, which is the source itself)."""
        if self._kv is not None:
            return []
        return [w for w in self.oov_tokens(name) if w not in self._absent]

    def phrase_vector(self, name: str) -> np.ndarray | None:
        """Mean (float32, like the released ``np.mean`` of float32 vectors) of the vectors of the
        name's ``simple_preprocess`` tokens (a repeated token counts each time); None when no
        token has a vector (the released code then uses a zero vector)."""
        vecs = [v for v in (self.vector(w) for w in simple_preprocess(name)) if v is not None]
        if not vecs:
            return None
        return np.mean(np.stack(vecs), axis=0)

    def __repr__(self) -> str:
        n = len(self._kv.key_to_index) if self._kv is not None else len(self._index)
        return f"WordVectors({self.source!r}, {n} words)"


_SHIPPED: list[WordVectors] = []


def _shipped() -> WordVectors:
    if not _SHIPPED:
        if not SHIPPED_TABLE.is_file():
            raise ValueError(f"word2vec: the shipped table {SHIPPED_TABLE} is missing (re-run "
                             "scripts/derive_word2vec.py)")
        with np.load(SHIPPED_TABLE, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            table = WordVectors([str(w) for w in z["words"]], z["vectors"], absent=[str(w) for w in z["absent"]],
                                source=f"shipped:{SHIPPED_TABLE.name} ({meta.get('source', 'GoogleNews-300')})")
        _SHIPPED.append(table)
    return _SHIPPED[0]
