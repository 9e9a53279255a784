"""Box coordinate spaces: convert a model's boxes to pixels of the ORIGINAL video frame.

Models answer in one of :class:`ravst.types.CoordSpace`: original pixels, pixels of the resized
frame they were fed (``INPUT``, needs ``input_wh``), 0-1 relative (``NORM1``) or 0-1000 relative
(``NORM1000``, Qwen2-VL style). Metrics only ever see original pixels, so predictions are
converted where they are read (``ravst eval``), and the space is recorded in the per-QA output.

>>> to_original_xyxy([[0.5, 0.5, 1.0, 1.0]], CoordSpace.NORM1, original_wh=(640, 360)).tolist()
[[320.0, 180.0, 640.0, 360.0]]
>>> to_original_xyxy([[0, 0, 320, 180]], "input", input_wh=(320, 180), original_wh=(1280, 720)).tolist()
[[0.0, 0.0, 1280.0, 720.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ravst.types import Answer, CoordSpace, Track

__all__ = ["convert_answer", "has_boxes", "needs_original_size", "to_original_xyxy"]


def needs_original_size(space: CoordSpace | str) -> bool:
    return CoordSpace(space) is not CoordSpace.ORIGINAL


def has_boxes(answer: Answer) -> bool:
    """Whether any ``<where>`` row holds a non-zero box, i.e. whether converting the answer to
    original pixels needs the frame size (``[0, 0, 0, 0]`` = "no box" is the same in every space).

    >>> has_boxes(Answer(("dog",), tracks=(Track("dog", [1.0], [[0, 0, 0, 0]]),)))
    False
    >>> has_boxes(Answer(("dog",), tracks=(Track("dog", [1.0], [[0, 0, 500, 500]]),)))
    True
    """
    return any(bool(np.any(np.asarray(t.xyxy) != 0)) for t in answer.tracks)


def _wh(name: str, wh: Sequence[float] | None) -> tuple[float, float]:
    if wh is None or len(wh) != 2:
        raise ValueError(f"{name} must be (width, height), got {wh!r}")
    w, h = float(wh[0]), float(wh[1])
    if not (w > 0 and h > 0):
        raise ValueError(f"{name} must be positive, got {wh!r}")
    return w, h


def to_original_xyxy(
    xyxy: object,
    space: CoordSpace | str,
    *,
    original_wh: Sequence[float] | None = None,
    input_wh: Sequence[float] | None = None,
) -> np.ndarray:
    """Boxes (N, 4) in ``space`` -> boxes in original pixels. Empty boxes stay empty (all zeros)."""
    space = CoordSpace(space)
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    if space is CoordSpace.ORIGINAL:
        return boxes.copy()
    ow, oh = _wh("original_wh", original_wh)
    if space is CoordSpace.NORM1:
        sx, sy = ow, oh
    elif space is CoordSpace.NORM1000:
        sx, sy = ow / 1000.0, oh / 1000.0
    else:
        iw, ih = _wh("input_wh", input_wh)
        sx, sy = ow / iw, oh / ih
    return boxes * np.array([sx, sy, sx, sy])


def convert_answer(
    answer: Answer,
    space: CoordSpace | str,
    *,
    original_wh: Sequence[float] | None = None,
    input_wh: Sequence[float] | None = None,
) -> Answer:
    """The same answer with every ``<where>`` box converted to original pixels."""
    if CoordSpace(space) is CoordSpace.ORIGINAL or not answer.tracks:
        return answer
    tracks = tuple(
        Track(t.name, t.times_s, to_original_xyxy(t.xyxy, space, original_wh=original_wh, input_wh=input_wh))
        for t in answer.tracks
    )
    return Answer(objects=answer.objects, spans=answer.spans, tracks=tracks)
