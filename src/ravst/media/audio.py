"""Audio waveform extraction (PyAV): float32 mono at a chosen sample rate.

The whole requested range is returned (no silent truncation at 10 s or 30 s); decoding stops
once the end of the range is reached. Times are seconds from the start of the audio stream.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ravst.media.video import MediaError, _open

__all__ = ["load_audio"]

log = logging.getLogger(__name__)


def load_audio(
    path: str | Path,
    *,
    sample_rate: int = 16000,
    start_s: float | None = None,
    end_s: float | None = None,
) -> np.ndarray:
    """The first audio stream of ``path`` resampled to ``sample_rate`` Hz, mono float32 (nominally
    in [-1, 1]; lossy codecs such as AAC can overshoot a little, values are not clipped).

    ``start_s`` / ``end_s`` cut a range (seconds); a range past the end of the stream is cut
    at the stream's end (the result is then shorter than ``end_s - start_s``). Raises
    :class:`MediaError` when the file is missing, corrupt, or has no audio stream.
    """
    import av

    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    start = 0.0 if start_s is None else float(start_s)
    if not math.isfinite(start) or start < 0:
        raise ValueError(f"{path}: start_s must be a finite time >= 0, got {start_s!r}")
    if end_s is not None and (not math.isfinite(float(end_s)) or float(end_s) < start):
        raise ValueError(f"{path}: end_s ({end_s!r}) must be finite and >= start_s ({start})")
    container = _open(path)
    try:
        if not container.streams.audio:
            raise MediaError(path, "no audio stream")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        stream_start = 0.0
        if stream.start_time is not None and stream.time_base is not None:
            stream_start = float(stream.start_time * stream.time_base)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        # Decode from the start of the stream (no seek): resampling then starts at the same
        # sample phase whatever the range, so a cut equals the same slice of the whole track.
        # Samples before the range are dropped as they come, so memory follows the range.
        chunks: list[np.ndarray] = []
        first_time: float | None = None
        skip = 0  # samples still to drop before the range starts
        kept = 0
        want: int | None = None
        try:
            for frame in container.decode(stream):
                if first_time is None:
                    first_time = (float(frame.time) - stream_start) if frame.time is not None else 0.0
                    skip = max(0, round((start - first_time) * sample_rate))
                    lead = max(0, round((first_time - start) * sample_rate))
                    if lead:  # the stream starts later than the range: that gap is silence
                        chunks.append(np.zeros(lead, dtype=np.float32))
                        kept += lead
                    if end_s is not None:
                        want = round((float(end_s) - start) * sample_rate)
                for out in resampler.resample(frame):
                    skip, kept = _take(chunks, out, skip, kept)
                if want is not None and kept >= want:
                    break
            else:
                for out in resampler.resample(None):
                    skip, kept = _take(chunks, out, skip, kept)
        except av.FFmpegError as exc:
            raise MediaError(path, f"audio decoding failed: {exc}") from exc
        if first_time is None:
            raise MediaError(path, "audio stream has no decodable frame")
        wave = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        if want is not None:
            wave = wave[:want]
        return np.ascontiguousarray(wave, dtype=np.float32)
    finally:
        container.close()


def _take(chunks: list[np.ndarray], frame: Any, skip: int, kept: int) -> tuple[int, int]:
    """Append the samples of ``frame`` after dropping ``skip`` leading ones; new (skip, kept)."""
    samples = np.asarray(frame.to_ndarray(), dtype=np.float32).reshape(-1)
    dropped = min(skip, samples.shape[0])
    samples = samples[dropped:]
    if samples.size:
        chunks.append(samples)
    return skip - dropped, kept + samples.shape[0]
