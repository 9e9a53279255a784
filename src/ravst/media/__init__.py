"""Media access: video probing, frames at timestamps (streaming) and audio waveforms.

Everything decodes with PyAV (its wheels carry their own FFmpeg) straight through the stream,
never seeking per frame, and stops at the last requested time, so memory stays flat however
long the video is. Any unreadable input raises :class:`MediaError` naming the file.
"""

from __future__ import annotations

from ravst.media.audio import load_audio
from ravst.media.video import MediaError, VideoInfo, iter_frames_at, probe, read_frames_at

__all__ = ["MediaError", "VideoInfo", "iter_frames_at", "load_audio", "probe", "read_frames_at"]
