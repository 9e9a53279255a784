"""Metrics: pure numpy functions (:mod:`.functional`) under two protocols.

:mod:`ravst.metrics.ravst_protocol` is the default ``ravst`` protocol of DESIGN.md;
:mod:`ravst.metrics.vstar` reproduces V-STaR ``eval.py`` semantics for comparison. Both score one
QA with ``score_qa(item, parsed, similarity) -> QAScore`` (what the GRPO rewards call) and share
``aggregate``. ``score_split`` scores a whole split (batched for ``ravst``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ravst.metrics import functional
from ravst.metrics.ravst_protocol import QAScore, aggregate, score_batch
from ravst.metrics.ravst_protocol import score_qa as score_qa_ravst
from ravst.metrics.vstar import score_qa as score_qa_vstar
from ravst.types import QAItem

PROTOCOLS = {"ravst": score_qa_ravst, "vstar": score_qa_vstar}

__all__ = [
    "PROTOCOLS",
    "QAScore",
    "aggregate",
    "functional",
    "score_batch",
    "score_qa_ravst",
    "score_qa_vstar",
    "score_split",
]


def score_split(protocol: str, items: Sequence[QAItem], parsed: Sequence[Any], similarity: Any) -> list[QAScore]:
    """Scores of every QA of a split under ``protocol`` (``parsed[i]`` None: no prediction)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {sorted(PROTOCOLS)}")
    if protocol == "ravst":
        return score_batch(items, parsed, similarity)
    fn = PROTOCOLS[protocol]
    return [fn(it, p, similarity) for it, p in zip(items, parsed, strict=True)]
