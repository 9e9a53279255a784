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

import math
from collections.abc import Sequence

import numpy as np

from ravst.types import Answer, CoordSpace, Track

__all__ = ["MAX_FRAME_SIDE_PX", "convert_answer", "frame_size_wh", "has_boxes", "needs_original_size",
           "short_repr", "to_original_xyxy"]

MAX_FRAME_SIDE_PX = 65_536
"""The largest frame width or height accepted (AV1's limit; far above any real video): a
larger one is a broken record, and it keeps huge integers away from float conversion."""


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


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, safe for integers past the digit limit."""
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's digit limit
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _side(value: object) -> float | None:
    """A frame side in pixels as a float, or None when it is not a finite number in range."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    if isinstance(value, int | np.integer) and not 0 < value <= MAX_FRAME_SIDE_PX:
        return None  # checked before float(): a 401-digit integer would overflow
    side = float(value)
    return side if math.isfinite(side) and 0 < side <= MAX_FRAME_SIDE_PX else None


def frame_size_wh(name: str, wh: object) -> tuple[float, float]:
    """``wh`` as ``(width, height)`` in pixels: a list or tuple of two finite numbers in
    (0, ``MAX_FRAME_SIDE_PX``]. ``ValueError`` starting with ``name`` otherwise.

    >>> frame_size_wh("original_wh", [640, 360])
    (640.0, 360.0)
    >>> frame_size_wh("original_wh", "640x360")
    Traceback (most recent call last):
    ...
    ValueError: original_wh: expected [width, height], two positive finite numbers of pixels (at most 65536), got '640x360'
    """
    sides = [_side(v) for v in wh] if isinstance(wh, list | tuple | np.ndarray) and len(wh) == 2 else []
    if len(sides) != 2 or sides[0] is None or sides[1] is None:
        raise ValueError(f"{name}: expected [width, height], two positive finite numbers of pixels "
                         f"(at most {MAX_FRAME_SIDE_PX}), got {short_repr(wh)}")
    return sides[0], sides[1]


def _wh(name: str, wh: object) -> tuple[float, float]:
    if wh is None:
        raise ValueError(f"{name}: needed to convert boxes to original pixels, got None")
    return frame_size_wh(name, wh)


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
