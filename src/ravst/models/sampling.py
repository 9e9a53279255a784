"""Frame sampling (fps / max frames), Qwen's smart-resize rule, and audio for model inputs.

Frames are decoded in one streaming pass (``ravst.media.video.iter_frames_at``) and resized to
the model's input size as they come, so memory holds only the sampled, resized frames: it does
not grow with the clip's length at a fixed frame budget. Every frame keeps its REAL timestamp.

>>> smart_resize(240, 320, min_pixels=3136, max_pixels=12845056)
(252, 308)
>>> smart_resize(1080, 1920, min_pixels=3136, max_pixels=602112)
(560, 1008)
>>> frame_times(5.0, fps=1.0, max_frames=64).tolist()
[0.0, 1.0, 2.0, 3.0, 4.0]
>>> frame_times(10.0, fps=2.0, max_frames=4).tolist()
[0.0, 2.5, 5.0, 7.5]
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "AUDIO_SAMPLE_RATE",
    "PAPER_MAX_PIXELS",
    "PAPER_MIN_PIXELS",
    "SampledVideo",
    "SamplingConfig",
    "frame_times",
    "resize_frame",
    "sample_video",
    "smart_resize",
    "video_metadata",
]

log = logging.getLogger(__name__)

PAPER_MIN_PIXELS = 3136  # paper, "AVST-Zero Training": min_pixels
PAPER_MAX_PIXELS = 12845056  # paper, "AVST-Zero Training": max_pixels
AUDIO_SAMPLE_RATE = 16000  # Whisper-style feature extractors (Qwen2.5-Omni)
QWEN_RESIZE_FACTOR = 28  # patch 14 x spatial merge 2
_MAX_ASPECT = 200.0


@dataclass(frozen=True)
class SamplingConfig:
    """How frames (and audio) are taken from a clip for one model input."""

    fps: float = field(default=1.0, metadata={"help": "frames per second to sample (GT boxes are 1 Hz)"})
    max_frames: int = field(default=64, metadata={"help": "frame budget: above it, frames spread evenly"})
    min_pixels: int = field(default=PAPER_MIN_PIXELS, metadata={"help": "min H*W of a resized frame"})
    max_pixels: int = field(default=PAPER_MAX_PIXELS, metadata={"help": "max H*W of a resized frame"})
    total_pixels: int | None = field(
        default=None,
        metadata={"help": "optional budget of H*W summed over all frames (qwen-vl-utils' total_pixels)"},
    )
    factor: int = field(default=QWEN_RESIZE_FACTOR, metadata={"help": "sides are multiples of this"})
    max_audio_s: float | None = field(
        default=None, metadata={"help": "cut audio longer than this (logged); None keeps all of it"}
    )

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"SamplingConfig.fps must be > 0, got {self.fps}")
        if self.max_frames < 1:
            raise ValueError(f"SamplingConfig.max_frames must be >= 1, got {self.max_frames}")
        if self.factor < 1:
            raise ValueError(f"SamplingConfig.factor must be >= 1, got {self.factor}")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(
                f"SamplingConfig: need 0 < min_pixels ({self.min_pixels}) <= max_pixels ({self.max_pixels})"
            )
        if self.total_pixels is not None and self.total_pixels < self.min_pixels:
            raise ValueError(f"SamplingConfig.total_pixels ({self.total_pixels}) is below min_pixels")
        if self.max_audio_s is not None and not self.max_audio_s > 0:
            raise ValueError(f"SamplingConfig.max_audio_s must be > 0, got {self.max_audio_s}")


def smart_resize(height: int, width: int, *, min_pixels: int, max_pixels: int, factor: int = 28) -> tuple[int, int]:
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


def frame_times(duration_s: float, *, fps: float, max_frames: int) -> np.ndarray:
    """Requested frame times: every ``1/fps`` s from 0 while ``t < duration_s``; when that is more
    than ``max_frames``, ``max_frames`` times spread evenly over the clip (``k * D / n``)."""
    if not math.isfinite(duration_s) or duration_s < 0:
        raise ValueError(f"duration_s must be finite and >= 0, got {duration_s}")
    n = max(1, math.ceil(duration_s * fps - 1e-9))
    if n <= max_frames:
        return np.round(np.arange(n) / fps, 6)
    return np.round(np.arange(max_frames) * (duration_s / max_frames), 6)


def resize_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of an RGB uint8 frame to exactly ``height x width`` (PIL, antialiased)."""
    if frame.shape[0] == height and frame.shape[1] == width:
        return frame
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BICUBIC))


@dataclass(frozen=True, eq=False)
class SampledVideo:
    """The frames (and audio) fed to a model for one clip, with everything needed to map back.

    ``frames`` is ``(T, H, W, 3)`` uint8 at the model's input size ``input_wh``; ``times_s`` are
    the real timestamps of those frames; ``frame_indices`` their indices in the source stream
    (``round(t * source_fps)``); ``audio`` is mono float32 at ``audio_sample_rate`` covering
    ``[0, audio_s]`` (None when not requested or when the file has no audio);
    ``audio_cut_s`` is how many seconds a limit removed (0 when none).
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

    @property
    def sampled_fps(self) -> float:
        """Effective frame rate of the sampled frames (what the model's time encoding assumes)."""
        if len(self.times_s) < 2:
            return 1.0 / max(self.duration_s, 1e-6) if self.duration_s > 0 else 1.0
        return float((len(self.times_s) - 1) / max(self.times_s[-1] - self.times_s[0], 1e-6))

    @property
    def audio_s(self) -> float:
        return 0.0 if self.audio is None else len(self.audio) / self.audio_sample_rate


def _input_size(width: int, height: int, n_frames: int, cfg: SamplingConfig) -> tuple[int, int]:
    max_pixels = cfg.max_pixels
    if cfg.total_pixels is not None:
        # qwen-vl-utils: each frame gets an even share of the total budget (frames go in pairs)
        share = cfg.total_pixels / max(1, n_frames) * 2
        max_pixels = max(min(max_pixels, int(share)), int(cfg.min_pixels * 1.05))
    return smart_resize(height, width, min_pixels=cfg.min_pixels, max_pixels=max_pixels, factor=cfg.factor)


def sample_video(path: str | Path, cfg: SamplingConfig, *, with_audio: bool = False) -> SampledVideo:
    """Decode, sample and resize the frames of ``path`` (and its audio when ``with_audio``).

    Raises ``ravst.media.video.MediaError`` (a ``ValueError``) for unreadable files. A clip
    without an audio track gets ``audio=None`` (logged) rather than an error.
    """
    from ravst.media.audio import load_audio
    from ravst.media.video import MediaError, iter_frames_at, probe

    info = probe(path)
    duration = info.duration_s if info.duration_s > 0 else (info.num_frames / info.fps if info.fps else 0.0)
    wanted = frame_times(duration, fps=cfg.fps, max_frames=cfg.max_frames)
    in_h, in_w = _input_size(info.width, info.height, len(wanted), cfg)
    frames = np.empty((len(wanted), in_h, in_w, 3), dtype=np.uint8)
    real = np.empty(len(wanted), dtype=np.float64)
    for i, (t, image) in enumerate(iter_frames_at(path, wanted)):
        frames[i] = resize_frame(image, in_h, in_w)
        real[i] = t
    fps = info.fps if info.fps > 0 else cfg.fps
    total = info.num_frames if info.num_frames > 0 else max(1, round(duration * fps))
    indices = tuple(min(total - 1, max(0, round(t * fps))) for t in real)
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
        frame_indices=indices,
        original_wh=(info.width, info.height),
        input_wh=(in_w, in_h),
        source_fps=fps,
        source_num_frames=total,
        duration_s=duration,
        audio=audio,
        audio_cut_s=cut,
    )


def video_metadata(video: SampledVideo) -> Any:
    """transformers' ``VideoMetadata`` describing the SAMPLED clip: ``fps`` is the rate measured
    from the frames' real timestamps (:attr:`SampledVideo.sampled_fps`), ``frames_indices`` are
    ``0..T-1``. Pass it with ``do_sample_frames=False``: Qwen2.5-VL's processor then derives
    ``second_per_grid_ts = temporal_patch_size / fps`` from the real rate (without metadata it
    assumes 24 fps; with the source stream's frame count it would use ``T / duration``, which is
    off by one frame interval for fps sampling). The real times themselves are ``times_s``.
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
