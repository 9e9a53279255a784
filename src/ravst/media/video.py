"""Video probing and frame extraction at given timestamps (PyAV, streaming).

``iter_frames_at`` (frames by time) and ``iter_frames_by_index`` (frames by their position in
the stream, the way qwen-vl-utils / decord pick them) decode the video stream straight through
(no per-frame seeking: on these machines seeking per timestamp is 3-5x slower than decoding at
1 fps, see DESIGN.md), convert to RGB only the frames that are asked for, keep at most one
decoded frame in memory and stop decoding as soon as the last requested frame is served.

Truncated or damaged files (e.g. a half-downloaded MP4 whose header still claims the whole
length): a frame asked for more than one frame period past the last decodable frame, while the
container claims a longer duration, raises :class:`TruncatedVideoError` -- never a repeated
frame. A request past the end of a complete file (beyond its claimed duration) gets the last
frame, and a WARNING line counts such requests.

Times are seconds from the first frame of the video stream (the stream's ``start_time`` is
subtracted), the convention of the official ground truth.

>>> _target_size(640, 360, 320)
(320, 180)
>>> _target_size(320, 240, None)
(320, 240)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FAST_INTERPOLATION",
    "MediaError",
    "TruncatedVideoError",
    "VideoFile",
    "VideoInfo",
    "frame_to_rgb",
    "iter_frames_at",
    "iter_frames_by_index",
    "probe",
    "read_frames_at",
]

log = logging.getLogger(__name__)

_EPS_S = 1e-6  # tolerance when comparing a frame's time with a requested time


class MediaError(ValueError):
    """A media file is missing, unreadable, corrupt, or lacks the stream that was asked for."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class TruncatedVideoError(MediaError):
    """The file ends (or stops decoding) well before the duration its container claims: a frame
    was asked for more than one frame period past the last decodable frame."""

    def __init__(
        self, path: str | Path, *, claimed_duration_s: float, last_time_s: float, requested_s: float, detail: str = ""
    ) -> None:
        self.claimed_duration_s = float(claimed_duration_s)
        self.last_time_s = float(last_time_s)
        self.requested_s = float(requested_s)
        reason = (
            f"truncated or damaged video: the container claims {self.claimed_duration_s:.3f} s but the last "
            f"decodable frame is at {self.last_time_s:.3f} s (a frame at {self.requested_s:.3f} s was requested)"
        )
        super().__init__(path, reason + (f"; {detail}" if detail else ""))


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What ``probe`` finds in a file. ``num_frames`` is the container's count when it has one,
    else ``round(duration_s * fps)``; ``audio_sample_rate`` is None without an audio stream."""

    path: str
    width: int
    height: int
    fps: float
    duration_s: float
    num_frames: int
    has_audio: bool
    audio_sample_rate: int | None


def _open(path: str | Path) -> Any:
    import av

    p = Path(path)
    if not p.is_file():
        raise MediaError(p, "no such file")
    try:
        return av.open(str(p))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MediaError(p, f"cannot open as media: {exc}") from exc


def _video_stream(container: Any, path: str | Path) -> Any:
    if not container.streams.video:
        raise MediaError(path, "no video stream")
    return container.streams.video[0]


def _stream_start_s(stream: Any) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def probe(path: str | Path) -> VideoInfo:
    """Read the header of a video file (no full decode).

    Raises :class:`MediaError` for a missing or unreadable file and for a file without video.
    """
    container = _open(path)
    try:
        return _info(container, path)
    finally:
        container.close()


def _info(container: Any, path: str | Path) -> VideoInfo:
    stream = _video_stream(container, path)
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0:
        raise MediaError(path, "video stream has no frame size (corrupt header?)")
    rate = stream.average_rate or stream.base_rate or stream.guessed_rate
    fps = float(rate) if rate else 0.0
    duration_s = _claimed_duration_s(container, stream)
    num_frames = int(stream.frames or 0)
    if num_frames <= 0 and fps > 0:
        num_frames = round(duration_s * fps)
    audio = container.streams.audio
    sample_rate = int(audio[0].rate) if audio and audio[0].rate else None
    return VideoInfo(
        path=str(path),
        width=width,
        height=height,
        fps=fps,
        duration_s=duration_s,
        num_frames=num_frames,
        has_audio=bool(audio),
        audio_sample_rate=sample_rate,
    )


class VideoFile:
    """A video opened once: its header (:attr:`info`, as :func:`probe` reads it) and then one
    decoding pass (:meth:`frames_by_index`), so that a caller that needs both opens the file once
    (``with VideoFile(path) as video: n = video.info.num_frames; frames = video.frames_by_index(..)``).
    Raises :class:`MediaError` as :func:`probe` does.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._container = _open(path)
        try:
            self.info = _info(self._container, path)
        except BaseException:
            self._container.close()
            raise
        self._used = False

    def __enter__(self) -> VideoFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def frames_by_index(
        self, indices: Iterable[int], *, size_wh: tuple[int, int] | None = None
    ) -> Generator[tuple[int, float, np.ndarray], None, None]:
        """:func:`iter_frames_by_index` on this open file (once per :class:`VideoFile`: the
        decoder is not rewound)."""
        self._start()
        return _frames_by_index(self._container, self.path, indices, lambda frame: _to_rgb_at(frame, size_wh))

    def decoded_frames(self, indices: Iterable[int]) -> Generator[tuple[int, float, Any], None, None]:
        """As :meth:`frames_by_index`, but each frame is PyAV's decoded ``VideoFrame`` (in the
        stream's pixel format), to be converted later with :func:`frame_to_rgb`, e.g. by
        another thread while decoding goes on."""
        self._start()
        return _frames_by_index(self._container, self.path, indices, lambda frame: frame)

    def _start(self) -> None:
        if self._used:
            raise RuntimeError(f"{self.path}: this VideoFile was already decoded (one pass per VideoFile)")
        self._used = True


def _claimed_duration_s(container: Any, stream: Any) -> float:
    """The video stream's duration as the container states it (its header), 0.0 when unknown."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000.0
    return 0.0


def _stream_fps(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 0.0


class _EndOfStream:
    """What is known when a stream ends before every requested frame was served: decides, per
    requested time, between "past the end of a complete file" (serve the last frame, counted)
    and "truncated file" (raise)."""

    def __init__(self, path: str | Path, claimed_s: float, fps: float, last_time_s: float, detail: str = "") -> None:
        self.path, self.claimed_s, self.last_time_s, self.detail = path, claimed_s, last_time_s, detail
        self.period_s = 1.0 / fps if fps > 0 else 0.0
        self.served_past_end = 0

    def check(self, requested_s: float) -> None:
        limit = self.last_time_s + self.period_s + _EPS_S
        if requested_s > limit and (self.claimed_s > limit or self.detail):
            raise TruncatedVideoError(
                self.path,
                claimed_duration_s=self.claimed_s,
                last_time_s=self.last_time_s,
                requested_s=requested_s,
                detail=self.detail,
            )
        if requested_s > limit:
            self.served_past_end += 1

    def report(self) -> None:
        if self.served_past_end:
            log.warning(
                "%s: %d requested frame(s) past the end of the stream (last frame at %.3f s, claimed duration "
                "%.3f s) get the last frame",
                self.path,
                self.served_past_end,
                self.last_time_s,
                self.claimed_s,
            )


def _target_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Size after shrinking so that the longer side is at most ``max_side`` (never enlarges)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_times(path: str | Path, times_s: Iterable[float]) -> list[float]:
    times = [float(t) for t in times_s]
    for i, t in enumerate(times):
        if not math.isfinite(t):
            raise ValueError(f"{path}: requested time #{i} is not finite ({t!r})")
    return times


def iter_frames_at(
    path: str | Path, times_s: Iterable[float], *, max_side: int | None = None, gray: bool = False
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(real_time_s, rgb_uint8_HxWx3)`` for each requested time, in ascending time order
    (``gray``: the frame's luma plane ``HxW`` instead, no colour conversion; shrunk by area
    averaging when ``max_side`` is given).

    For a time ``t`` the frame is the first one whose timestamp is ``>= t``. Past the end of a
    complete stream it is the last frame (counted in a WARNING line); a time more than one frame
    period past the last decodable frame of a file whose container claims a longer duration
    raises :class:`TruncatedVideoError`. Duplicated times yield the same frame again.
    ``max_side`` shrinks frames (keeping the aspect ratio) so that the longer side is at most
    that many pixels; boxes must then be scaled back by the caller. Decoding is one pass from the
    start to the last requested time. Raises :class:`MediaError` on unreadable input.
    """
    import av

    wanted = sorted(_check_times(path, times_s))
    if not wanted:
        return
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        start_s = _stream_start_s(stream)
        fps = _stream_fps(stream)
        next_i = 0
        last: Any = None
        last_time = 0.0
        index = 0
        detail = ""
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and frame.time is not None:
                    t = float(frame.time) - start_s
                else:
                    t = index / fps if fps > 0 else float(index)
                index += 1
                last, last_time = frame, t
                if t + _EPS_S < wanted[next_i]:
                    continue
                image = _convert(frame, max_side, gray)
                while next_i < len(wanted) and t + _EPS_S >= wanted[next_i]:
                    yield t, image
                    next_i += 1
                if next_i == len(wanted):
                    return
        except av.FFmpegError as exc:
            if last is None:
                raise MediaError(path, f"decoding failed after {index} frames: {exc}") from exc
            detail = f"decoding failed after {index} frames: {exc}"
        if last is None:
            raise MediaError(path, "video stream has no decodable frame")
        end = _EndOfStream(path, _claimed_duration_s(container, stream), fps, last_time, detail)
        for t in wanted[next_i:]:
            end.check(t)
        end.report()
        image = _convert(last, max_side, gray)
        while next_i < len(wanted):
            yield last_time, image
            next_i += 1
    finally:
        container.close()


def iter_frames_by_index(
    path: str | Path, indices: Iterable[int], *, size_wh: tuple[int, int] | None = None
) -> Generator[tuple[int, float, np.ndarray], None, None]:
    """Yield ``(index, real_time_s, rgb_uint8_HxWx3)`` for the frames at the given positions of
    the video stream (0 = its first frame, in presentation order, as decord's ``get_batch`` and
    qwen-vl-utils count them), in ascending index order; a repeated index yields the frame again.

    Frames are full size, or with ``size_wh=(width, height)`` converted and scaled to that size in
    one swscale pass (area filter: :data:`FAST_INTERPOLATION`). A requested index past the last
    decodable frame is served by the last frame only when it is at most one frame period past it
    or the container claims no longer a duration (counted in a WARNING line); otherwise
    :class:`TruncatedVideoError` is raised.
    """
    with VideoFile(path) as video:
        yield from video.frames_by_index(indices, size_wh=size_wh)


def _frames_by_index(
    container: Any, path: str | Path, indices: Iterable[int], convert: Callable[[Any], Any]
) -> Generator[tuple[int, float, Any], None, None]:
    import av

    wanted = sorted(int(i) for i in indices)
    if not wanted:
        return
    if wanted[0] < 0:
        raise ValueError(f"{path}: frame indices must be >= 0, got {wanted[0]}")
    stream = _video_stream(container, path)
    stream.thread_type = "AUTO"
    start_s = _stream_start_s(stream)
    fps = _stream_fps(stream)
    next_i = 0
    last: Any = None
    last_time = 0.0
    index = -1
    detail = ""
    try:
        for frame in container.decode(stream):
            index += 1
            if frame.pts is not None and frame.time is not None:
                t = float(frame.time) - start_s
            else:
                t = index / fps if fps > 0 else float(index)
            last, last_time = frame, t
            if index < wanted[next_i]:
                continue
            image = convert(frame)
            while next_i < len(wanted) and wanted[next_i] == index:
                yield index, t, image
                next_i += 1
            if next_i == len(wanted):
                return
    except av.FFmpegError as exc:
        if last is None:
            raise MediaError(path, f"decoding failed after {index + 1} frames: {exc}") from exc
        detail = f"decoding failed after {index + 1} frames: {exc}"
    if last is None:
        raise MediaError(path, "video stream has no decodable frame")
    end = _EndOfStream(path, _claimed_duration_s(container, stream), fps, last_time, detail)
    period = end.period_s if end.period_s > 0 else 1.0
    for i in wanted[next_i:]:
        end.check(last_time + (i - index) * period)
    end.report()
    image = convert(last)
    while next_i < len(wanted):
        yield wanted[next_i], last_time, image
        next_i += 1


# swscale filter of iter_frames_by_index(size_wh=...) (sample_video's resize="fast"): of PyAV's
# choices, the cheapest whose pixels stay near the reference's resize (measured: docs/inference.md)
FAST_INTERPOLATION = "AREA"

_PLANAR_8BIT = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "gray"})


def _convert(frame: Any, max_side: int | None, gray: bool) -> np.ndarray:
    return _to_gray(frame, max_side) if gray else _to_rgb(frame, max_side)


def _to_gray(frame: Any, max_side: int | None) -> np.ndarray:
    """The luma plane of an 8-bit planar frame as is (other formats: converted to gray)."""
    if frame.format.name in _PLANAR_8BIT:
        plane = frame.planes[0]
        luma: np.ndarray = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]
    else:
        luma = frame.to_ndarray(format="gray")
    width, height = _target_size(frame.width, frame.height, max_side)
    if (width, height) != (frame.width, frame.height):
        import cv2

        luma = cv2.resize(luma, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(luma, dtype=np.uint8)


def frame_to_rgb(frame: Any) -> np.ndarray:
    """A decoded PyAV ``VideoFrame`` as RGB ``HxWx3`` uint8 at full size (swscale's conversion,
    the one ``to_ndarray("rgb24")`` and the reference readers use; the same pixels).

    Safe to call on one frame from two threads at once: each call converts with its own swscale
    context (``frame.to_ndarray`` shares one per frame, and two threads converting one frame
    through it crash the process).
    """
    from av.video.reformatter import VideoReformatter

    array = VideoReformatter().reformat(frame, format="rgb24").to_ndarray()
    return np.ascontiguousarray(array, dtype=np.uint8)


def _to_rgb_at(frame: Any, size_wh: tuple[int, int] | None) -> np.ndarray:
    """RGB at full size, or at ``size_wh`` in one swscale pass (YUV -> RGB and scaling together)."""
    if size_wh is None or size_wh == (frame.width, frame.height):
        return _to_rgb(frame, None)
    width, height = size_wh
    array = frame.reformat(width=width, height=height, format="rgb24", interpolation=FAST_INTERPOLATION).to_ndarray()
    return np.ascontiguousarray(array, dtype=np.uint8)


def _to_rgb(frame: Any, max_side: int | None) -> np.ndarray:
    width, height = _target_size(frame.width, frame.height, max_side)
    if (width, height) == (frame.width, frame.height):
        array = frame.to_ndarray(format="rgb24")
    else:
        array = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    return np.ascontiguousarray(array, dtype=np.uint8)


def read_frames_at(
    path: str | Path, times_s: Iterable[float], **kwargs: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(T, H, W, 3)`` uint8 and their real times ``(T,)``, in the order of ``times_s``.

    Keyword arguments go to :func:`iter_frames_at` (``max_side``).
    """
    times = _check_times(path, times_s)
    order = sorted(range(len(times)), key=lambda i: times[i])
    frames: list[np.ndarray | None] = [None] * len(times)
    real = np.zeros(len(times), dtype=np.float64)
    for i, (t, image) in zip(order, iter_frames_at(path, times, **kwargs), strict=True):
        frames[i] = image
        real[i] = t
    if not frames:
        return np.zeros((0, 0, 0, 3), dtype=np.uint8), real
    return np.stack([f for f in frames if f is not None]), real
