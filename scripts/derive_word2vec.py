"""Derive GoogleNews word vectors from the phrase vectors of the released R-AVST vocabularies.

The released vocabulary files (``Test_gt_object_vocab.pt``, ``Train_gt_object_vocab.pt``)
hold, for each GT object name, the mean of the GoogleNews-300 vectors of the name's
``gensim.utils.simple_preprocess`` tokens that are in GoogleNews (a zero vector when none is).
That is a linear system in the word vectors; this script solves it by peeling:

1. a one-token name gives its word's vector (or, when its vector is zero, says the word is
   not in GoogleNews);
2. a name with exactly one undetermined token gives that token: either the mean of the known
   tokens already equals the phrase vector (the token is not in GoogleNews), or the token's
   vector is ``(k + 1) * phrase - sum(known)``;
3. repeat until nothing changes. (Names with two or more undetermined tokens are left: with
   both vocabularies together they determine one more word, ``puppy``, only under the
   assumption that every such token is in GoogleNews, and no name verifies it, so it is left out.) A word is kept only when every name containing it whose other
   tokens are all determined reproduces (the phrase mean recomputed like the released code,
   ``np.mean`` of float32 vectors, equals the stored vector within ``--atol``).

Output: ``src/ravst/data/word2vec_rAVST.npz`` with ``words`` (str), ``vectors`` (float32
[N, 300]), ``absent`` (words determined NOT to be in GoogleNews) and ``meta`` (JSON).

    python scripts/derive_word2vec.py --vocab ../shared/data/r_avst/Test_gt_object_vocab.pt \
        --vocab ../shared/data/r_avst/Train_gt_object_vocab.pt --out src/ravst/data/word2vec_rAVST.npz
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ravst.word2vec import load_vocab, simple_preprocess

log = logging.getLogger("derive_word2vec")

ATOL = 2e-6  # float32 round-off of a mean of a few float32 vectors of norm ~3


def _phrases(vocab_paths: Sequence[str | Path]) -> dict[str, np.ndarray]:
    """name -> phrase vector over all vocabularies (a name in two files must agree)."""
    out: dict[str, np.ndarray] = {}
    for path in vocab_paths:
        names, emb = load_vocab(path)
        for name, vec in zip(names, emb, strict=True):
            if name in out and not np.allclose(out[name], vec, atol=ATOL, rtol=0):
                raise ValueError(f"{path}: {name!r} has a different vector than in an earlier vocabulary")
            out[name] = vec
    return out


def derive(phrases: dict[str, np.ndarray], atol: float = ATOL) -> tuple[dict[str, np.ndarray], set[str]]:
    """Word vectors and words absent from the source, solved from the phrase vectors."""
    toks = {n: simple_preprocess(n) for n in phrases}
    vectors: dict[str, np.ndarray] = {}
    absent: set[str] = set()
    _peel(phrases, toks, vectors, absent, atol)
    # keep only words that every fully determined phrase containing them reproduces
    bad: set[str] = set()
    for name, vec in phrases.items():
        words = toks[name]
        if all(w in vectors or w in absent for w in words):
            if not np.allclose(phrase_mean(words, vectors), vec, atol=atol, rtol=0):
                bad.update(w for w in words if w in vectors or w in absent)
    for w in bad:
        vectors.pop(w, None)
        absent.discard(w)
    return vectors, absent


def _peel(phrases: dict[str, np.ndarray], toks: dict[str, list[str]], vectors: dict[str, np.ndarray],
          absent: set[str], atol: float) -> None:
    """Steps 1 and 2 of the module doc until nothing changes."""
    changed = True
    while changed:
        changed = False
        for name, vec in phrases.items():
            words = list(dict.fromkeys(toks[name]))
            unknown = [w for w in words if w not in vectors and w not in absent]
            if not unknown:
                continue
            if not np.any(vec):  # zero vector: none of its tokens is in the source
                absent.update(unknown)
                changed = True
                continue
            if len(unknown) != 1:
                continue
            u = unknown[0]
            # the released mean is over token occurrences (a repeated word counts each time)
            known = [vectors[w] for w in toks[name] if w in vectors]
            n_u = toks[name].count(u)
            if known and np.allclose(np.mean(known, axis=0), vec, atol=atol, rtol=0):
                absent.add(u)
            else:
                k = len(known) + n_u
                total = vec.astype(np.float64) * k - np.sum(np.asarray(known, dtype=np.float64), axis=0)
                vectors[u] = (total / n_u).astype(np.float32)
            changed = True


def phrase_mean(words: Sequence[str], vectors: dict[str, np.ndarray]) -> np.ndarray:
    """The released ``encode_object_name``: np.mean of the known tokens' float32 vectors (zeros
    when none is known)."""
    known = [vectors[w] for w in words if w in vectors]
    if not known:
        return np.zeros(300, dtype=np.float32)
    return np.mean(known, axis=0)


def reproduced(phrases: dict[str, np.ndarray], vectors: dict[str, np.ndarray], absent: set[str],
               atol: float = ATOL) -> list[str]:
    """Names whose phrase vector the derived table reproduces (every token determined)."""
    out = []
    for name, vec in phrases.items():
        words = simple_preprocess(name)
        if all(w in vectors or w in absent for w in words) and np.allclose(
                phrase_mean(words, vectors), vec, atol=atol, rtol=0):
            out.append(name)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", action="append", required=True, help="a *_gt_object_vocab.pt (repeatable)")
    ap.add_argument("--out", required=True, help="output .npz")
    ap.add_argument("--atol", type=float, default=ATOL)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    phrases = _phrases(args.vocab)
    vectors, absent = derive(phrases, args.atol)
    ok = reproduced(phrases, vectors, absent, args.atol)
    words = sorted(vectors)
    meta = {
        "source": "GoogleNews-vectors-negative300 (recovered from the R-AVST vocabulary phrase vectors)",
        "vocab_files": [Path(v).name for v in args.vocab],
        "phrases": len(phrases),
        "phrases_reproduced": len(ok),
        "words": len(words),
        "absent_words": len(absent),
        "atol": args.atol,
    }
    np.savez_compressed(
        args.out,
        words=np.array(words, dtype=str),
        vectors=np.stack([vectors[w] for w in words]).astype(np.float32),
        absent=np.array(sorted(absent), dtype=str),
        meta=np.array(json.dumps(meta)),
    )
    log.info("%s: %d words, %d absent, %d/%d phrases reproduced", args.out, len(words), len(absent),
             len(ok), len(phrases))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
