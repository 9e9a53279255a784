"""The one narrow interface every inference backend implements.

A backend gets a batch of :class:`InferRequest` (a QA item, its video file and the rendered
prompt) and returns one :class:`ravst.types.Prediction` per request, in order. A backend may
raise for a whole batch; the caller (``ravst.infer``) then retries the requests one by one and
records what still fails in the prediction's ``error`` field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ravst.types import Prediction, QAItem

__all__ = ["Backend", "InferRequest"]


@dataclass(frozen=True)
class InferRequest:
    """One QA to answer: the item, the video file, and the prompt texts already rendered;
    ``video_first``: the video goes before the user text (False: after it)."""

    item: QAItem
    video_path: Path
    system: str
    user: str
    video_first: bool = True


class Backend(Protocol):
    """``name`` is recorded in each prediction's ``model`` field."""

    name: str

    def predict(self, requests: Sequence[InferRequest]) -> list[Prediction]:
        """One prediction per request, in order."""
        ...

    def close(self) -> None:
        """Release models, servers, files."""
        ...
