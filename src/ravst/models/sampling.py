"""Frame sampling, Qwen's smart-resize rule and pixel budgets, and audio for model inputs.

Which frames, at what size, follows the reference implementation the Qwen2.5-VL / Omni models
were trained with, qwen-vl-utils' ``fetch_video`` (qwen-omni-utils has the same code), so that
frame positions, sizes and ``second_per_grid_ts`` are what the model expects:

* frame count ``n = total_frames / source_fps * fps``, clamped to ``[min_frames, max_frames]``
  and to ``total_frames``, floored to an even number (``FRAME_FACTOR``: frames go in temporal
  patches of 2); frame indices ``round(linspace(0, total_frames - 1, n))`` -- never a frame past
  the stream's end;
* ``sample_fps = n / total_frames * source_fps`` and ``second_per_grid_ts = 2 / sample_fps``;
* per-frame pixel budget ``max(min(VIDEO_MAX_PIXELS, total_pixels / n * 2), 1.05 * min_pixels)``,
  lowered further by ``max_pixels``; then smart-resize (sides multiples of 28).

Frames are decoded in one streaming pass (``ravst.media.video.VideoFile``: the file is opened
once for its header and its frames) and resized as they come (antialiased bicubic, the
reference's kernel) by a worker thread that runs on idle CPU time while the next frames decode,
so memory holds only the sampled, resized frames (and at most a few full-size ones waiting). Every frame keeps its REAL timestamp.

>>> smart_resize(240, 320, min_pixels=3136, max_pixels=12845056)
(252, 308)
>>> smart_resize(1080, 1920, min_pixels=3136, max_pixels=602112)
(560, 1008)
>>> sample_frame_indices(900, 15000 / 1001, fps=0.1, max_frames=64).tolist()
[0, 180, 360, 539, 719, 899]
>>> round(sample_fps(6, 900, 15000 / 1001), 6)
0.0999
>>> frame_budget_pixels(60, min_pixels=12544, max_pixels=VIDEO_MAX_PIXELS, total_pixels=2809856)  # the release
93661.86666666667
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: ``ravst CMD --help`` stays light
    import numpy as np

__all__ = [
    "AUDIO_SAMPLE_RATE",
    "FPS_MAX_FRAMES",
    "FPS_MIN_FRAMES",
    "FRAME_FACTOR",
    "PAPER_MAX_PIXELS",
    "PAPER_MIN_PIXELS",
    "RESIZE_MODES",
    "TEMPORAL_PATCH_SIZE",
    "VIDEO_MAX_PIXELS",
    "VIDEO_MIN_PIXELS",
    "VIDEO_TOTAL_PIXELS",
    "SampledVideo",
    "SamplingConfig",
    "frame_budget_pixels",
    "frame_times",
    "resize_frame",
    "sample_fps",
    "sample_frame_indices",
    "sample_video",
    "smart_resize",
    "video_metadata",
]

log = logging.getLogger(__name__)

# The paper's values ("AVST-Zero Training"). They are qwen-vl-utils' IMAGE limits (4 and 16384
# tokens of 28x28) and what the released trainer gives the processor's image_processor; video
# frames follow the VIDEO limits below.
PAPER_MIN_PIXELS = 3136
PAPER_MAX_PIXELS = 12845056
# qwen-vl-utils (0.0.14; qwen-omni-utils 0.0.9 is the same) video limits
QWEN_RESIZE_FACTOR = 28  # patch 14 x spatial merge 2
VIDEO_MIN_PIXELS = 128 * QWEN_RESIZE_FACTOR**2  # 100,352 per frame
VIDEO_MAX_PIXELS = 768 * QWEN_RESIZE_FACTOR**2  # 602,112 per frame: the per-frame cap
VIDEO_TOTAL_PIXELS = int(128000 * QWEN_RESIZE_FACTOR**2 * 0.9)  # 90,316,800 over a clip (MODEL_SEQ_LEN 128000)
FRAME_FACTOR = 2  # frame counts are even
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768
TEMPORAL_PATCH_SIZE = 2  # Qwen2.5-VL / Omni vision tower: 2 frames per temporal patch
AUDIO_SAMPLE_RATE = 16000  # Whisper-style feature extractors (Qwen2.5-Omni)
_MAX_ASPECT = 200.0
RESIZE_MODES = ("reference", "fast")
_RESIZE_AHEAD = 3  # decoded frames that may wait for the resize worker
_STEAL_AFTER_S = 0.05  # longest wait for a frame the (idle-priority) resize worker has started
_warned_caps: set[int] = set()


@dataclass(frozen=True)
class SamplingConfig:
    """How frames (and audio) are taken from a clip for one model input (qwen-vl-utils' rule)."""

    fps: float = field(default=1.0, metadata={"help": "frames per second to sample (GT boxes are 1 Hz)"})
    max_frames: int = field(default=64, metadata={"help": "frame budget (even; qwen-vl-utils' max_frames)"})
    min_frames: int = field(default=FPS_MIN_FRAMES, metadata={"help": "at least this many frames (qwen-vl-utils)"})
    min_pixels: int | None = field(
        default=None,
        metadata={"help": "min H*W of a resized frame; None: VIDEO_MIN_PIXELS, or max_pixels when that is lower"},
    )
    max_pixels: int = field(
        default=VIDEO_MAX_PIXELS, metadata={"help": "max H*W of a resized frame (capped at VIDEO_MAX_PIXELS)"}
    )
    total_pixels: int | None = field(
        default=VIDEO_TOTAL_PIXELS,
        metadata={"help": "budget of H*W summed over all frames (qwen-vl-utils' total_pixels); None: no budget"},
    )
    factor: int = field(default=QWEN_RESIZE_FACTOR, metadata={"help": "sides are multiples of this"})
    max_audio_s: float | None = field(
        default=None, metadata={"help": "cut audio longer than this (logged); None keeps all of it"}
    )
    resize: str = field(
        default="reference",
        metadata={
            "help": "'reference': antialiased bicubic from full-size RGB (qwen-vl-utils' filter); 'fast': "
            "one swscale pass YUV -> RGB at the input size (about half the CPU per frame; pixels further "
            "from the reference, see docs/inference.md)"
        },
    )

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"SamplingConfig.fps must be > 0, got {self.fps}")
        if self.max_frames < FRAME_FACTOR:
            raise ValueError(f"SamplingConfig.max_frames must be >= {FRAME_FACTOR}, got {self.max_frames}")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(
                f"SamplingConfig: need 1 <= min_frames ({self.min_frames}) <= max_frames ({self.max_frames})"
            )
        if self.factor < 1:
            raise ValueError(f"SamplingConfig.factor must be >= 1, got {self.factor}")
        if not 0 < self.frame_min_pixels <= self.max_pixels:
            raise ValueError(
                f"SamplingConfig: need 0 < min_pixels ({self.min_pixels}) <= max_pixels ({self.max_pixels})"
            )
        if self.total_pixels is not None and self.total_pixels < self.frame_min_pixels:
            raise ValueError(f"SamplingConfig.total_pixels ({self.total_pixels}) is below min_pixels")
        if self.max_audio_s is not None and not self.max_audio_s > 0:
            raise ValueError(f"SamplingConfig.max_audio_s must be > 0, got {self.max_audio_s}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"SamplingConfig.resize must be one of {RESIZE_MODES}, got {self.resize!r}")

    @property
    def frame_min_pixels(self) -> int:
        """The min H*W applied: ``min_pixels``, or by default ``min(VIDEO_MIN_PIXELS, max_pixels)``."""
        return self.min_pixels if self.min_pixels is not None else min(VIDEO_MIN_PIXELS, self.max_pixels)


def smart_resize(
    height: int, width: int, *, min_pixels: float, max_pixels: float, factor: int = 28
) -> tuple[int, int]:
    """Qwen2-VL / 2.5-VL resize rule: ``(h, w)`` multiples of ``factor``, ``min_pixels <= h*w <=
    max_pixels``, aspect ratio kept as closely as possible. Raises ``ValueError`` beyond 200:1."""
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > _MAX_ASPECT:
        raise ValueError(f"aspect ratio of {width}x{height} exceeds {_MAX_ASPECT:.0f}:1")
    h_bar = round(height / factor) * factor  # 0 for a side under factor/2: the min_pixels branch fixes it
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _floor_even(x: float) -> int:
    return math.floor(x / FRAME_FACTOR) * FRAME_FACTOR


def sample_frame_indices(
    total_frames: int, source_fps: float, *, fps: float, max_frames: int, min_frames: int = FPS_MIN_FRAMES
) -> np.ndarray:
    """Indices of the frames fed, qwen-vl-utils' ``smart_nframes`` + ``linspace`` rule: ``n =
    total_frames / source_fps * fps`` clamped to ``[min_frames, max_frames]`` and to
    ``total_frames``, floored to an even count; ``round(linspace(0, total_frames - 1, n))``.
    The reference's ``FPS_MAX_FRAMES`` (768) is only its default for a missing ``max_frames``:
    an explicit ``max_frames`` above it is honoured, as there
    (computed with torch in float32 and rounded half to even, exactly like the reference).
    Raises ``ValueError`` for a clip of fewer than 2 frames."""
    import torch

    if total_frames < FRAME_FACTOR or not source_fps > 0:
        raise ValueError(
            f"a video needs at least {FRAME_FACTOR} frames and a frame rate, got {total_frames} at {source_fps} fps"
        )
    lo = math.ceil(min_frames / FRAME_FACTOR) * FRAME_FACTOR
    hi = _floor_even(max_frames)  # an explicit max_frames replaces FPS_MAX_FRAMES, as in the reference
    n = _floor_even(min(max(total_frames / source_fps * fps, lo), hi, total_frames))
    if not FRAME_FACTOR <= n <= total_frames:
        raise ValueError(f"cannot sample an even number of frames >= 2 from {total_frames} (got {n})")
    return torch.linspace(0, total_frames - 1, n).round().long().numpy()


def sample_fps(n_frames: int, total_frames: int, source_fps: float) -> float:
    """The frame rate the model is told (qwen-vl-utils' ``sample_fps``): ``n / total * source_fps``."""
    return n_frames / max(total_frames, 1e-6) * source_fps


def frame_times(
    total_frames: int, source_fps: float, *, fps: float, max_frames: int, min_frames: int = FPS_MIN_FRAMES
) -> np.ndarray:
    """Nominal times (``index / source_fps``, s) of the frames :func:`sample_frame_indices` picks;
    the real times are the decoded frames' timestamps (:attr:`SampledVideo.times_s`)."""
    import numpy as np

    idx = sample_frame_indices(total_frames, source_fps, fps=fps, max_frames=max_frames, min_frames=min_frames)
    return np.asarray(idx, dtype=np.float64) / source_fps


def frame_budget_pixels(
    n_frames: int, *, min_pixels: float, max_pixels: float, total_pixels: float | None
) -> float:
    """Max H*W of one frame (qwen-vl-utils' video rule): ``max(min(VIDEO_MAX_PIXELS, total_pixels /
    n * FRAME_FACTOR), int(1.05 * min_pixels))``, then at most ``max_pixels``."""
    total = math.inf if total_pixels is None else total_pixels
    cap = max(min(VIDEO_MAX_PIXELS, total / max(1, n_frames) * FRAME_FACTOR), int(min_pixels * 1.05))
    return min(max_pixels, cap)


def resize_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased bicubic resize of an RGB uint8 frame to exactly ``height x width``.

    The reference (qwen-vl-utils) uses torchvision's ``resize(BICUBIC, antialias=True)``, which
    computes in float32; this uses torch's uint8 kernel for the same filter (bicubic a=-0.5,
    support widened by the scale), about 10x faster on CPU, which rounds to uint8 between its
    horizontal and vertical passes. Measured on the real clips: most pixels equal, the others
    off by a few levels at sharp edges (tolerance in ``docs/inference.md``; the tests check it).
    """
    import numpy as np

    if frame.shape[0] == height and frame.shape[1] == width:
        return frame
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0)
    y = torch.nn.functional.interpolate(x, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return np.ascontiguousarray(y[0].permute(1, 2, 0).numpy())


def _background_thread() -> None:
    """Run the calling thread (the resize worker) only on otherwise idle CPU time (Linux
    ``SCHED_IDLE``), so it never delays the decoder's threads, which are the critical path.
    Elsewhere it keeps the normal priority. ``torch`` threads it starts inherit the policy."""
    import os
    import threading

    try:
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError) as exc:  # not Linux, or refused: a plain-priority worker
        log.debug("resize worker keeps the normal priority: %s", exc)


def _rgb_resized(frame: Any, height: int, width: int) -> np.ndarray:
    """A decoded PyAV frame converted to RGB at full size, then resized (the reference's order)."""
    from ravst.media.video import frame_to_rgb

    return resize_frame(frame_to_rgb(frame), height, width)


def _decode_and_resize(
    decoded: Generator[tuple[int, float, Any], None, None], frames: np.ndarray, real: np.ndarray, got: list[int]
) -> None:
    """Fill ``frames``, ``real`` and ``got`` from ``decoded`` (decoded PyAV frames, not yet RGB).

    A worker thread that runs only on idle CPU time (:func:`_background_thread`) converts frame
    k to RGB and resizes it while this thread decodes frame k+1 and on, so the decoder, the
    critical path, is never slowed and the full-size RGB frame is made on the core that resizes
    it. When more than ``_RESIZE_AHEAD`` frames wait (memory stays bounded) or decoding is done,
    this thread waits for the oldest, which leaves its CPU to the worker. A machine busy with
    other work may starve an idle-priority worker: after one wait longer than
    ``_STEAL_AFTER_S`` this thread converts and resizes that frame and all later ones itself
    (a job the worker had started runs on, on idle time, unused). Only this thread writes
    ``frames``, and both threads run the same code, so the pixels are the same whoever resizes a
    frame (tested).
    """
    from concurrent.futures import TimeoutError as FutureTimeout

    _, height, width, _ = frames.shape
    pending: deque[tuple[int, Any, Future[np.ndarray] | None]] = deque()
    starved = False

    def settle() -> None:
        nonlocal starved
        i, frame, job = pending.popleft()
        if job is not None:
            if job.done() or not starved:
                try:  # waiting leaves the CPU to the worker
                    frames[i] = job.result(timeout=_STEAL_AFTER_S)
                    return
                except FutureTimeout:
                    starved = True
                    log.debug("resize worker starved for %.3f s: resizing in the decoding thread", _STEAL_AFTER_S)
            job.cancel()  # a job already started runs on, on idle time only; its result is not used
        frames[i] = _rgb_resized(frame, height, width)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ravst-resize", initializer=_background_thread)
    with closing(decoded):
        try:
            for i, (index, t, frame) in enumerate(decoded):
                real[i] = t
                got.append(index)
                pending.append((i, frame, None if starved else pool.submit(_rgb_resized, frame, height, width)))
                while len(pending) > _RESIZE_AHEAD:
                    settle()
            while pending:
                settle()
        finally:  # never wait for a worker that may be starved: it ends on its own
            pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, eq=False)
class SampledVideo:
    """The frames (and audio) fed to a model for one clip, with everything needed to map back.

    ``frames`` is ``(T, H, W, 3)`` uint8 at the model's input size ``input_wh``; ``times_s`` are
    the real timestamps of those frames; ``frame_indices`` their positions in the source stream;
    ``sample_fps`` the rate the model is told (qwen-vl-utils': ``T / source_num_frames *
    source_fps``; 0.0 = measure it from ``times_s``); ``audio`` is mono float32 at
    ``audio_sample_rate`` covering ``[0, audio_s]`` (None when not requested or when the file has
    no audio); ``audio_cut_s`` is how many seconds a limit removed (0 when none); ``resize`` the
    :attr:`SamplingConfig.resize` mode the frames were made with.
    """

    path: str
    frames: np.ndarray
    times_s: np.ndarray
    frame_indices: tuple[int, ...]
    original_wh: tuple[int, int]
    input_wh: tuple[int, int]
    source_fps: float
    source_num_frames: int
    duration_s: float
    audio: np.ndarray | None = None
    audio_sample_rate: int = AUDIO_SAMPLE_RATE
    audio_cut_s: float = 0.0
    sample_fps: float = 0.0
    resize: str = "reference"

    @property
    def sampled_fps(self) -> float:
        """The frame rate of the sampled frames as the model's time encoding sees it:
        :attr:`sample_fps` (the reference's), else the rate measured from the real timestamps."""
        if self.sample_fps > 0:
            return self.sample_fps
        if len(self.times_s) < 2:
            return 1.0 / max(self.duration_s, 1e-6) if self.duration_s > 0 else 1.0
        return float((len(self.times_s) - 1) / max(self.times_s[-1] - self.times_s[0], 1e-6))

    @property
    def second_per_grid_ts(self) -> float:
        """Seconds per temporal patch of 2 frames: ``TEMPORAL_PATCH_SIZE / sampled_fps``."""
        return TEMPORAL_PATCH_SIZE / self.sampled_fps

    @property
    def audio_s(self) -> float:
        return 0.0 if self.audio is None else len(self.audio) / self.audio_sample_rate


def _input_size(width: int, height: int, n_frames: int, cfg: SamplingConfig) -> tuple[int, int]:
    if cfg.max_pixels > VIDEO_MAX_PIXELS and cfg.max_pixels not in _warned_caps:
        _warned_caps.add(cfg.max_pixels)
        log.warning(
            "max_pixels %d exceeds the per-frame video cap %d (qwen-vl-utils' VIDEO_MAX_PIXELS): frames are "
            "resized to at most %d pixels",
            cfg.max_pixels,
            VIDEO_MAX_PIXELS,
            VIDEO_MAX_PIXELS,
        )
    budget = frame_budget_pixels(
        n_frames, min_pixels=cfg.frame_min_pixels, max_pixels=cfg.max_pixels, total_pixels=cfg.total_pixels
    )
    return smart_resize(height, width, min_pixels=cfg.frame_min_pixels, max_pixels=budget, factor=cfg.factor)


def sample_video(path: str | Path, cfg: SamplingConfig, *, with_audio: bool = False) -> SampledVideo:
    """Decode, sample and resize the frames of ``path`` (and its audio when ``with_audio``).

    Raises ``ravst.media.video.MediaError`` (a ``ValueError``) for unreadable files and its
    subclass ``TruncatedVideoError`` for a file that ends well before its claimed duration. A
    clip without an audio track gets ``audio=None`` (logged) rather than an error. The file is
    opened once for its header and the frames.
    """
    from ravst.media.video import VideoFile

    with VideoFile(path) as video:
        return _sample_open(video, cfg, with_audio)


def _sample_open(video: Any, cfg: SamplingConfig, with_audio: bool) -> SampledVideo:
    import numpy as np

    from ravst.media.audio import load_audio
    from ravst.media.video import MediaError

    path, info = video.path, video.info
    if info.fps <= 0:
        raise MediaError(path, "video stream has no frame rate")
    duration = info.duration_s if info.duration_s > 0 else info.num_frames / info.fps
    total = info.num_frames
    try:
        wanted = sample_frame_indices(
            total, info.fps, fps=cfg.fps, max_frames=cfg.max_frames, min_frames=cfg.min_frames
        )
    except ValueError as exc:
        raise MediaError(path, str(exc)) from exc
    in_h, in_w = _input_size(info.width, info.height, len(wanted), cfg)
    frames = np.empty((len(wanted), in_h, in_w, 3), dtype=np.uint8)
    real = np.empty(len(wanted), dtype=np.float64)
    got: list[int] = []
    fast = cfg.resize == "fast"
    if fast or (in_w, in_h) == (info.width, info.height):
        size_wh = (in_w, in_h) if fast else None
        for i, (index, t, image) in enumerate(video.frames_by_index(wanted.tolist(), size_wh=size_wh)):
            frames[i] = image
            real[i] = t
            got.append(index)
    else:
        _decode_and_resize(video.decoded_frames(wanted.tolist()), frames, real, got)
    audio = None
    cut = 0.0
    if with_audio:
        if not info.has_audio:
            log.warning("%s has no audio track: the model gets video only", path)
        else:
            end = None if cfg.max_audio_s is None else min(duration, cfg.max_audio_s)
            try:
                audio = load_audio(path, sample_rate=AUDIO_SAMPLE_RATE, end_s=end)
            except MediaError as exc:
                raise MediaError(path, f"audio track unreadable: {exc.reason}") from exc
            if end is not None and duration > end + 1e-3:
                cut = duration - end
                log.warning(
                    "%s: audio cut at %.1f s by max_audio_s (%.1f s of %.1f s dropped)", path, end, cut, duration
                )
    return SampledVideo(
        path=str(path),
        frames=frames,
        times_s=real,
        frame_indices=tuple(got),
        original_wh=(info.width, info.height),
        input_wh=(in_w, in_h),
        source_fps=info.fps,
        source_num_frames=total,
        duration_s=duration,
        audio=audio,
        audio_cut_s=cut,
        sample_fps=sample_fps(len(wanted), total, info.fps),
        resize=cfg.resize,
    )


def video_metadata(video: SampledVideo) -> Any:
    """transformers' ``VideoMetadata`` describing the SAMPLED clip: ``fps`` is
    :attr:`SampledVideo.sampled_fps` (qwen-vl-utils' ``sample_fps``), ``frames_indices`` are
    ``0..T-1``. Pass it with ``do_sample_frames=False``: Qwen2.5-VL's processor then derives
    ``second_per_grid_ts = temporal_patch_size / fps`` exactly as the reference does (without
    metadata it assumes 24 fps). The real times themselves are ``times_s``.
    """
    from transformers.video_utils import VideoMetadata

    n = len(video.times_s)
    rate = video.sampled_fps
    return VideoMetadata(
        total_num_frames=n,
        fps=rate,
        width=video.input_wh[0],
        height=video.input_wh[1],
        duration=n / rate,
        frames_indices=list(range(n)),
    )
