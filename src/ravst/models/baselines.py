"""Weight-free baselines: the floor every model table should show.

Each answers every QA in the official layout (``ravst.parsing.render_answer``), in ORIGINAL
pixels, with the object named in the question (or ``default_object`` when it names none):

* ``full-span`` -- ``<when>`` is the whole clip; boxes are the centre box (half the width and
  half the height of the frame, centred) at every second.
* ``whole-frame`` -- ``<when>`` is the whole clip; boxes are the whole frame at every second.
* ``random`` -- a uniformly random interval and uniformly random boxes, seeded by
  ``(seed, qa_id)`` so any subset or order of QAs gives the same answers.
* ``av-signal`` -- sounding spans from the audio track (short-time energy above the clip's noise
  floor, and speech activity from silero-vad), the longest span after closing short gaps; for a
  human object the speech spans are used. Boxes from motion saliency: the bounding box of the
  largest moving region between the frame at ``t`` and the frame ``MOTION_DT_S`` later. Each
  video is decoded ONCE (small frames on a ``MOTION_GRID_S`` time grid, kept for the QAs of that
  video), not once per QA.

Boxes are given at ``start + k`` seconds over the interval (the question's interval for spatial
questions, the predicted one otherwise), like the ground truth's 1 Hz rows.

>>> box_times(Span(1.4, 4.3)).tolist()
[1.4, 2.4, 3.4]
>>> segments_from_mask(np.array([0, 1, 1, 0, 0, 1, 1, 1, 0], bool), hop_s=1.0, close_s=2.5, min_s=0.5)
[(1.0, 8.0)]
>>> segments_from_mask(np.array([0, 1, 1, 0, 0, 1, 1, 1, 0], bool), hop_s=1.0, close_s=1.5, min_s=0.5)
[(1.0, 3.0), (5.0, 8.0)]
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ravst.models.base import InferRequest
from ravst.types import Answer, CoordSpace, Prediction, QAItem, Span, Task, Track

__all__ = [
    "BASELINES",
    "HUMAN_WORDS",
    "BaselineBackend",
    "SoundProfile",
    "box_times",
    "motion_box",
    "segments_from_mask",
    "sound_profile",
]

log = logging.getLogger(__name__)

BASELINES = ("full-span", "whole-frame", "random", "av-signal")
HUMAN_WORDS = frozenset(
    "man men woman women person people boy girl child children kid kids baby babies speaker singer "
    "guy lady crowd audience player host narrator human".split()
)
HOP_S = 0.1  # audio analysis hop
ENERGY_ABOVE_FLOOR_DB = 10.0  # "sounding": RMS this far above the clip's 10th-percentile level
ENERGY_MIN_DB = -55.0  # and above this absolute level (dBFS)
CLOSE_GAP_S = 1.0  # gaps shorter than this inside a sounding span are closed
MIN_SEGMENT_S = 0.5  # sounding spans shorter than this are dropped
MOTION_DT_S = 0.2  # frame pair spacing for motion saliency
MOTION_MAX_SIDE = 160  # frames are shrunk to this for motion analysis
MOTION_MIN_DIFF = 12  # grey-level difference that counts as motion (0-255)
MOTION_GRID_S = 0.1  # frames are kept at these steps (box times have 1 decimal, MOTION_DT_S too)
MOTION_CACHE_VIDEOS = 2  # videos whose small frames stay in memory (QAs come grouped by video)


def box_times(span: Span) -> np.ndarray:
    """``start + k`` seconds (1 decimal) for k = 0, 1, ... while within the span."""
    n = math.floor(span.end_s - span.start_s + 1e-9) + 1
    return np.round(span.start_s + np.arange(max(1, n)), 1)


def segments_from_mask(mask: np.ndarray, *, hop_s: float, close_s: float, min_s: float) -> list[tuple[float, float]]:
    """Spans ``(start_s, end_s)`` where ``mask`` (one value per hop) is true, after closing gaps
    shorter than ``close_s`` and dropping spans shorter than ``min_s``."""
    spans: list[list[float]] = []
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    for i in idx:
        start, end = i * hop_s, (i + 1) * hop_s
        if spans and start - spans[-1][1] < close_s - 1e-9:
            spans[-1][1] = end
        elif not spans or start > spans[-1][1]:
            spans.append([start, end])
        else:
            spans[-1][1] = end
    return [(round(float(s), 3), round(float(e), 3)) for s, e in spans if e - s >= min_s - 1e-9]


@dataclass(frozen=True)
class SoundProfile:
    """Sounding spans of a clip: by energy, by speech activity (None when VAD is unavailable)."""

    energy: tuple[tuple[float, float], ...]
    speech: tuple[tuple[float, float], ...] | None
    has_audio: bool


def _energy_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    hop = max(1, round(HOP_S * sample_rate))
    n = len(audio) // hop
    if n == 0:
        return np.zeros(0)
    frames = audio[: n * hop].astype(np.float64).reshape(n, hop)
    rms = np.sqrt(np.mean(frames**2, axis=1) + 1e-12)
    return 20 * np.log10(rms)


def sound_profile(audio: np.ndarray | None, sample_rate: int, vad_model: Any | None) -> SoundProfile:
    """Energy and speech spans of ``audio`` (mono float32)."""
    if audio is None or len(audio) == 0:
        return SoundProfile((), (), False)
    db = _energy_db(audio, sample_rate)
    floor = float(np.percentile(db, 10)) if len(db) else 0.0
    active = (db > floor + ENERGY_ABOVE_FLOOR_DB) & (db > ENERGY_MIN_DB)
    energy = segments_from_mask(active, hop_s=HOP_S, close_s=CLOSE_GAP_S, min_s=MIN_SEGMENT_S)
    speech: tuple[tuple[float, float], ...] | None = None
    if vad_model is not None:
        import torch
        from silero_vad import get_speech_timestamps

        stamps = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
            vad_model,
            sampling_rate=sample_rate,
            return_seconds=True,
        )
        hop_mask = np.zeros(len(db), dtype=bool)
        for s in stamps:
            hop_mask[int(s["start"] / HOP_S) : math.ceil(s["end"] / HOP_S)] = True
        speech = tuple(segments_from_mask(hop_mask, hop_s=HOP_S, close_s=CLOSE_GAP_S, min_s=MIN_SEGMENT_S))
    return SoundProfile(tuple(energy), speech, True)


def _longest(spans: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    return max(spans, key=lambda s: (s[1] - s[0], -s[0])) if spans else None


def _overlap(spans: Sequence[tuple[float, float]], span: Span) -> float:
    return sum(max(0.0, min(e, span.end_s) - max(s, span.start_s)) for s, e in spans)


def motion_box(before: np.ndarray, after: np.ndarray) -> tuple[float, float, float, float] | None:
    """Bounding box (x1, y1, x2, y2, in the frames' pixels) of the largest moving region between
    two RGB (or grey, 2-D) frames, or None when nothing moves."""
    import cv2

    a = cv2.GaussianBlur(before if before.ndim == 2 else cv2.cvtColor(before, cv2.COLOR_RGB2GRAY), (5, 5), 0)
    b = cv2.GaussianBlur(after if after.ndim == 2 else cv2.cvtColor(after, cv2.COLOR_RGB2GRAY), (5, 5), 0)
    diff = cv2.absdiff(a, b)
    thresh = max(MOTION_MIN_DIFF, float(diff.mean() + 2 * diff.std()))
    mask = cv2.dilate((diff > thresh).astype(np.uint8), np.ones((7, 7), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[k, :4])
    if w * h < 0.001 * mask.size:
        return None
    return float(x), float(y), float(x + w), float(y + h)


class _FrameGrid:
    """The small grey frames (luma, area-shrunk) of one video at ``k * MOTION_GRID_S`` seconds (the
    first frame at or after each time), decoded in one pass; a time past the grid gets its last frame."""

    def __init__(self, path: Path, duration_s: float) -> None:
        from ravst.media.video import iter_frames_at

        n = max(1, math.floor(duration_s / MOTION_GRID_S + 1e-6) + 1)
        times = [round(k * MOTION_GRID_S, 4) for k in range(n)]
        self.frames = [image for _, image in iter_frames_at(path, times, max_side=MOTION_MAX_SIDE, gray=True)]

    def at(self, t: float) -> np.ndarray:
        k = math.ceil(round(float(t) / MOTION_GRID_S, 6))
        return self.frames[min(max(k, 0), len(self.frames) - 1)]


class BaselineBackend:
    """One of :data:`BASELINES`, run like any model backend."""

    def __init__(
        self,
        kind: str,
        *,
        seed: int = 0,
        default_object: str = "person",
        coord_space: CoordSpace = CoordSpace.ORIGINAL,
    ) -> None:
        if kind not in BASELINES:
            raise ValueError(f"unknown baseline {kind!r}; choose one of {BASELINES}")
        if CoordSpace(coord_space) is not CoordSpace.ORIGINAL:
            raise ValueError("baselines answer in original pixels; --coord-space must be 'original'")
        self.kind = kind
        self.name = f"baseline:{kind}"
        self.seed = seed
        self.default_object = default_object
        self._sizes: dict[str, tuple[int, int, float]] = {}
        self._profiles: dict[str, SoundProfile] = {}
        self._grids: dict[str, _FrameGrid] = {}
        self._vad: Any | None = None
        self._vad_tried = False

    # -- per-video facts (cached: QAs share videos) -------------------------------------------
    def _info(self, path: Path) -> tuple[int, int, float]:
        key = str(path)
        if key not in self._sizes:
            from ravst.media.video import probe

            info = probe(path)
            self._sizes[key] = (info.width, info.height, info.duration_s)
        return self._sizes[key]

    def _grid(self, path: Path) -> _FrameGrid:
        key = str(path)
        if key not in self._grids:
            while len(self._grids) >= MOTION_CACHE_VIDEOS:
                self._grids.pop(next(iter(self._grids)))
            self._grids[key] = _FrameGrid(path, self._info(path)[2])
        return self._grids[key]

    def _vad_model(self) -> Any | None:
        if not self._vad_tried:
            self._vad_tried = True
            from ravst.models.vad import load_vad

            try:
                self._vad = load_vad().model
            except ImportError:
                log.warning("silero-vad is not installed: av-signal uses audio energy only")
        return self._vad

    def _profile(self, path: Path) -> SoundProfile:
        key = str(path)
        if key not in self._profiles:
            from ravst.media.audio import load_audio
            from ravst.media.video import MediaError

            try:
                audio: np.ndarray | None = load_audio(path, sample_rate=16000)
            except MediaError as exc:
                log.warning("%s: no usable audio (%s): av-signal falls back to the whole clip", path, exc.reason)
                audio = None
            self._profiles[key] = sound_profile(audio, 16000, self._vad_model() if audio is not None else None)
        return self._profiles[key]

    # -- answers -----------------------------------------------------------------------------
    def _object(self, item: QAItem, path: Path) -> str:
        if item.query_object:
            return item.query_object
        if self.kind == "av-signal" and item.query_span is not None:
            prof = self._profile(path)
            if prof.speech and _overlap(prof.speech, item.query_span) > 0.5 * item.query_span.duration_s:
                return "person"
        return self.default_object

    def _span(self, item: QAItem, path: Path, name: str, duration: float, rng: np.random.Generator) -> Span:
        if self.kind == "random":
            a, b = sorted(rng.uniform(0.0, duration, size=2))
            return Span(round(float(a), 1), round(float(b), 1))
        if self.kind == "av-signal":
            prof = self._profile(path)
            human = bool(set(name.lower().split()) & HUMAN_WORDS)
            spans: Sequence[tuple[float, float]] = prof.energy
            if human and prof.speech:
                spans = prof.speech
            elif prof.speech:
                non_speech = [s for s in prof.energy if _overlap(prof.speech, Span(*s)) < 0.5 * (s[1] - s[0])]
                spans = non_speech or prof.energy
            best = _longest(spans)
            if best is not None:
                return Span(round(best[0], 1), round(min(best[1], duration), 1))
        return Span(0.0, round(duration, 1))

    def _boxes(self, times: np.ndarray, path: Path, wh: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        w, h = wh
        if self.kind == "whole-frame":
            return np.tile([0.0, 0.0, float(w), float(h)], (len(times), 1))
        centre = [w / 4, h / 4, 3 * w / 4, 3 * h / 4]
        if self.kind == "full-span":
            return np.tile(np.round(centre, 1), (len(times), 1))
        if self.kind == "random":
            size = rng.uniform(0.1, 1.0, size=(len(times), 2)) * [w, h]
            x1 = rng.uniform(0, 1, size=len(times)) * (w - size[:, 0])
            y1 = rng.uniform(0, 1, size=len(times)) * (h - size[:, 1])
            return np.round(np.stack([x1, y1, x1 + size[:, 0], y1 + size[:, 1]], axis=1), 1)
        grid = self._grid(path)
        out = []
        for t in times:
            a = grid.at(t)
            b = grid.at(float(t) + MOTION_DT_S)
            box = motion_box(a, b)
            if box is None:
                out.append(centre)
                continue
            sx, sy = w / a.shape[1], h / a.shape[0]
            out.append([box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy])
        return np.round(np.asarray(out, dtype=np.float64), 1)

    def answer(self, item: QAItem, path: Path) -> Answer:
        """The baseline's typed answer for ``item`` (original pixels)."""
        w, h, probed = self._info(path)
        duration = item.duration_s if item.duration_s > 0 else probed  # the QA file's length, like the GT
        rng = np.random.default_rng([self.seed, zlib.crc32(item.qa_id.encode("utf-8"))])
        name = self._object(item, path)
        if item.task is Task.SPATIAL:
            span = item.query_span or Span(0.0, round(duration, 1))
            times = box_times(span)
            return Answer((name,), (), (Track(name, times, self._boxes(times, path, (w, h), rng)),))
        span = self._span(item, path, name, duration, rng)
        if item.task is Task.TEMPORAL:
            return Answer((name,), (span,))
        times = box_times(span)
        return Answer((name,), (span,), (Track(name, times, self._boxes(times, path, (w, h), rng)),))

    def predict(self, requests: Sequence[InferRequest]) -> list[Prediction]:
        from ravst.parsing import render_answer

        out = []
        for r in requests:
            start = time.perf_counter()
            text = render_answer(self.answer(r.item, r.video_path))
            w, h, _ = self._info(r.video_path)
            out.append(
                Prediction(
                    qa_id=r.item.qa_id,
                    text=text,
                    model=self.name,
                    coord_space=CoordSpace.ORIGINAL,
                    latency_s=round(time.perf_counter() - start, 4),
                    extra={"backend": self.kind, "original_wh": [w, h], "seed": self.seed},
                )
            )
        return out

    def close(self) -> None:
        self._profiles.clear()
        self._sizes.clear()
        self._grids.clear()
