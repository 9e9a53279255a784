"""Media access: video probing, frames at timestamps (streaming) and audio waveforms.

Everything decodes with PyAV (its wheels carry their own FFmpeg) straight through the stream,
never seeking per frame, and stops at the last requested time, so memory stays flat however
long the video is. Any unreadable input raises :class:`MediaError` naming the file; a truncated
or damaged file (it ends well before its claimed duration) raises :class:`TruncatedVideoError`.
"""

from __future__ import annotations

from ravst.media.audio import load_audio
from ravst.media.video import (
    MediaError,
    TruncatedVideoError,
    VideoFile,
    VideoInfo,
    frame_to_rgb,
    iter_frames_at,
    iter_frames_by_index,
    probe,
    read_frames_at,
)

__all__ = [
    "MediaError",
    "TruncatedVideoError",
    "VideoFile",
    "VideoInfo",
    "frame_to_rgb",
    "iter_frames_at",
    "iter_frames_by_index",
    "load_audio",
    "probe",
    "read_frames_at",
]
