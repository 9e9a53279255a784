"""ravst.word2vec: gensim's tokeniser, the shipped table against the released vocabulary vectors,
KeyedVectors files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ravst.word2vec import SHIPPED_TABLE, WordVectors, load_vocab, simple_preprocess

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "", "a", "A man in a suit and tie", "1 yellow go-kart", "three-wheeled", "child's hands", "car_park",
    "_under", "supercalifragilisticexpialidocious word", "Ünïcödé Straße", "бурлящей воде", "2dogs x2 d2g",
    "ROLAND accordion!!", "  tabs\tand\nnewlines ", "it's 3:45 pm", "日本語のテキスト", "l'été", "O'Neil",
]


def _vocab_paths(shared: Path) -> list[Path]:
    return [shared / "r_avst" / "Test_gt_object_vocab.pt", shared / "r_avst" / "Train_gt_object_vocab.pt"]


@pytest.mark.parametrize("text", TEXTS)
def test_simple_preprocess_is_gensims(text: str) -> None:
    from gensim.utils import simple_preprocess as gensim_pp

    assert simple_preprocess(text) == gensim_pp(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_simple_preprocess_is_gensims_on_any_text(text: str) -> None:
    from gensim.utils import simple_preprocess as gensim_pp

    assert simple_preprocess(text) == gensim_pp(text)


def test_simple_preprocess_rejects_non_text() -> None:
    with pytest.raises(ValueError, match="expected a str"):
        simple_preprocess(b"bytes")  # type: ignore[arg-type]


def test_shipped_table_is_small_float32() -> None:
    assert SHIPPED_TABLE.stat().st_size < 1_500_000
    wv = WordVectors.load()
    assert wv.source.startswith("shipped:")
    v = wv.vector("guitar")
    assert v is not None and v.dtype == np.float32 and v.shape == (300,)
    assert wv.vector("qwzxvq") is None and wv.phrase_vector("qwzxvq 42") is None
    assert wv.oov_tokens("a qwzxvq guitar") == ["qwzxvq"]  # 'a' is no token (too short)


def test_shipped_table_reproduces_the_released_vocabulary_vectors(shared_data: Path) -> None:
    """The vocabulary files hold what GoogleNews gave (released code); every name whose tokens the
    table determines must come out equal, and the count is the one the derivation reports."""
    wv = WordVectors.load()
    seen: dict[str, np.ndarray] = {}
    for path in _vocab_paths(shared_data):
        names, emb = load_vocab(path)
        seen.update(zip(names, emb, strict=True))
    ok = 0
    for name, ref in seen.items():
        if wv.unknown_tokens(name):
            continue
        got = wv.phrase_vector(name)
        if got is None:
            assert not np.any(ref), name  # released: zero vector when no token is known
        else:
            np.testing.assert_allclose(got, ref, atol=2e-6, rtol=0, err_msg=name)
        ok += 1
    assert len(seen) == 2047
    assert ok == 1924


def test_derivation_rerun_on_the_test_vocabulary_agrees_with_the_table(shared_data: Path) -> None:
    """Re-derive from the Test vocabulary alone: every word it finds has the shipped vector."""
    spec = importlib.util.spec_from_file_location("derive_word2vec", ROOT / "scripts" / "derive_word2vec.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["derive_word2vec"] = mod
    spec.loader.exec_module(mod)
    phrases = mod._phrases(_vocab_paths(shared_data)[:1])
    vectors, absent = mod.derive(phrases)
    wv = WordVectors.load()
    assert len(vectors) > 300
    for word, vec in list(vectors.items())[::7]:
        shipped = wv.vector(word)
        assert shipped is not None, word
        np.testing.assert_allclose(shipped, vec, atol=2e-6, rtol=0, err_msg=word)
    assert not {w for w in absent if wv.vector(w) is not None}
    ok = mod.reproduced(phrases, vectors, absent)
    assert len(ok) > 500


def test_keyed_vectors_file(tmp_path: Path) -> None:
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=4)
    kv.add_vectors(["red", "car", "Car"], np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32))
    kv.save(str(tmp_path / "tiny.kv"))
    kv.save_word2vec_format(str(tmp_path / "tiny.bin"), binary=True)
    for p in ("tiny.kv", "tiny.bin"):
        wv = WordVectors.load(tmp_path / p)
        assert wv.source == str(tmp_path / p)
        # simple_preprocess lower-cases, so "Car" is never looked up (like the released encoder)
        np.testing.assert_array_equal(wv.phrase_vector("The Red CAR 2"), np.array([0.5, 0.5, 0, 0], dtype=np.float32))
        assert wv.oov_tokens("the red car") == ["the"] and wv.unknown_tokens("the red car") == []


def test_bad_files_are_loud(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        WordVectors.load(tmp_path / "nope.bin")
    (tmp_path / "junk.bin").write_bytes(b"not a word2vec file")
    with pytest.raises(ValueError, match=r"junk\.bin"):
        WordVectors.load(tmp_path / "junk.bin")
    with pytest.raises(ValueError, match="does not exist"):
        load_vocab(tmp_path / "vocab.pt")
