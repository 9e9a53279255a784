"""Procedural audio-visual clips with exact ground truth (``ravst synth``).

Each clip is a real MP4 file (H.264 video + AAC audio, written with PyAV) showing a few named
objects ("red circle", "blue square", a drawn "orange cat"...) on a plain background. Objects
move along horizontal lanes (so they never overlap), enter and leave the frame, and some of them
make a distinct sound (a tone, beeps, chirps, a noise burst, a meow...) during known spans.
Other objects are visible but silent, and an off-screen sound (a siren, a bell) plays while no
visible object makes it. Because the clip is drawn from the scene description, the ground truth
is exact: every box is the bounding box of the pixels actually drawn for that frame, every
sound is non-zero exactly inside its span.

Outputs (see docs/synth.md for every field): ``videos/*.mp4``, ``unav100.json`` (UnAV-100
layout), ``captions.csv``, ``boxes.jsonl`` (per-second boxes of every object), ``qa.json``
(official R-AVST layout, all three tasks), ``scenes.json`` (the full scene descriptions).

>>> cfg = SynthConfig()
>>> scene = make_scene(cfg, seed=0, index=0)
>>> scene.video_id
'synth_s0_000'
>>> 1 <= len(scene.events) <= 3
True
>>> make_scene(cfg, 0, 0) == make_scene(cfg, 0, 0)
True
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ravst.jsonl import write_jsonl_atomic
from ravst.types import Answer, Event, QAItem, Span, Task, Track, VideoRecord

__all__ = [
    "Scene",
    "SceneEvent",
    "SceneObject",
    "SynthConfig",
    "add_arguments",
    "box_at",
    "make_audio",
    "make_scene",
    "qa_items",
    "render_frame",
    "run",
    "synthesize",
    "write_clip",
]

log = logging.getLogger(__name__)

BACKGROUND_RGB = (40, 40, 40)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "green": (30, 200, 60),
    "blue": (40, 90, 235),
    "yellow": (235, 215, 30),
    "purple": (165, 60, 210),
    "orange": (245, 140, 20),
    "cyan": (30, 205, 215),
    "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cat", "bird")
# Sound kinds of visible objects: (event label, verb of the caption).
SOUNDS: dict[str, tuple[str, str]] = {
    "tone": ("humming tone", "humming"),
    "beeps": ("beeping", "beeping"),
    "chirp": ("rising chirps", "chirping"),
    "noise": ("noise burst", "hissing"),
    "warble": ("warbling", "warbling"),
    "meow": ("cat meowing", "meowing"),
    "tweet": ("bird tweeting", "tweeting"),
    "speech": ("speech", "speaking"),
}
OFFSCREEN_SOUNDS = ("siren", "bell")
SOUND_AMPLITUDE = 0.3
FADE_S = 0.005  # linear fade in/out at the edges of every sound (avoids clicks; inside span)
MIN_EVENT_S = 2.0
GAP_S = 0.5  # minimum silence between two sound spans
MOTION_ATTEMPTS = 6  # trajectories tried per sounding object before its event is dropped


@dataclass(frozen=True)
class SynthConfig:
    """How clips are drawn. Times in seconds, sizes in pixels."""

    width: int = field(default=160, metadata={"help": "frame width in pixels (even)"})
    height: int = field(default=120, metadata={"help": "frame height in pixels (even)"})
    fps: int = field(default=10, metadata={"help": "frames per second (10: every 0.1 s time is a frame)"})
    min_duration_s: float = field(default=10.0, metadata={"help": "shortest clip"})
    max_duration_s: float = field(default=16.0, metadata={"help": "longest clip"})
    sample_rate: int = field(default=16000, metadata={"help": "audio sample rate in Hz"})
    max_events: int = field(default=3, metadata={"help": "audio-visual events per clip (1..N)"})
    speech: bool = field(default=False, metadata={"help": "allow spoken words (needs espeak-ng)"})

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64 or self.width % 2 or self.height % 2:
            raise ValueError(f"width/height must be even and >= 64, got {self.width}x{self.height}")
        if not 1 <= self.fps <= 60:
            raise ValueError(f"fps must be in 1..60, got {self.fps}")
        if not 6.0 <= self.min_duration_s <= self.max_duration_s <= 120.0:
            raise ValueError("need 6 <= min_duration_s <= max_duration_s <= 120")
        if self.sample_rate not in (16000, 22050, 24000, 32000, 44100, 48000):
            raise ValueError(f"unsupported sample_rate {self.sample_rate}")
        if not 1 <= self.max_events <= 3:
            raise ValueError(f"max_events must be in 1..3, got {self.max_events}")

    @property
    def lane_height(self) -> int:
        return self.height // 4

    @property
    def object_size(self) -> int:
        return max(12, int(self.lane_height * 0.7))


@dataclass(frozen=True)
class SceneObject:
    """A drawn object: ``keys`` are (time_s, centre_x, centre_y) keyframes, linearly
    interpolated; the object is drawn only between its first and last keyframe time."""

    name: str
    colour: str
    shape: str
    size_px: int
    keys: tuple[tuple[float, float, float], ...]
    sound: str | None = None  # sound kind when the object makes a sound, else None (silent)
    sound_span: tuple[float, float] | None = None
    pitch_hz: float = 0.0
    word: str | None = None

    @property
    def sounding(self) -> bool:
        return self.sound is not None


@dataclass(frozen=True)
class SceneEvent:
    """An audio-visual event: one or two visible objects sounding during ``span``."""

    label: str
    span: tuple[float, float]
    objects: tuple[str, ...]
    caption: str


@dataclass(frozen=True)
class Scene:
    video_id: str
    duration_s: float
    width: int
    height: int
    fps: int
    sample_rate: int
    objects: tuple[SceneObject, ...]
    events: tuple[SceneEvent, ...]
    offscreen: tuple[tuple[str, float, float], ...]  # (kind, start_s, end_s), never visible
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def object(self, name: str) -> SceneObject:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise ValueError(f"scene {self.video_id}: no object named {name!r}")


# ----------------------------------------------------------------------------- scene layout


def _r1(x: float) -> float:
    return round(float(x), 1)


def _position(obj: SceneObject, t: float) -> tuple[float, float] | None:
    times = [k[0] for k in obj.keys]
    if t < times[0] - 1e-9 or t > times[-1] + 1e-9:
        return None
    x = float(np.interp(t, times, [k[1] for k in obj.keys]))
    y = float(np.interp(t, times, [k[2] for k in obj.keys]))
    return x, y


def _free_intervals(taken: list[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    cur = lo
    for s, e in sorted(taken):
        if s - GAP_S > cur:
            out.append((cur, min(hi, s - GAP_S)))
        cur = max(cur, e + GAP_S)
    if cur < hi:
        out.append((cur, hi))
    return [(s, e) for s, e in out if e - s >= MIN_EVENT_S]


def _pick_span(rng: np.random.Generator, free: list[tuple[float, float]]) -> tuple[float, float] | None:
    if not free:
        return None
    lo, hi = free[int(rng.integers(len(free)))]
    length = float(rng.uniform(MIN_EVENT_S, min(hi - lo, 5.0)))
    start = _r1(rng.uniform(lo, hi - length))
    end = _r1(start + length)
    start, end = max(start, _r1(lo + 0.05)), min(end, _r1(hi - 0.05))
    return (start, end) if end - start >= MIN_EVENT_S - 0.05 else None


def _trajectory(
    rng: np.random.Generator, cfg: SynthConfig, lane: int, duration: float, motion: str
) -> tuple[tuple[float, float, float], ...]:
    size = cfg.object_size
    w = cfg.width
    cy = lane * cfg.lane_height + cfg.lane_height / 2
    inside_lo, inside_hi = size / 2 + 2, w - size / 2 - 2
    off_left, off_right = -size, w + size
    d = duration
    if motion == "stay":
        x0, x1 = rng.uniform(inside_lo, inside_hi, size=2)
        keys = [(0.0, x0, cy), (d, x1, cy)]
    elif motion == "cross":  # enters on one side, leaves on the other
        t0, t1 = _r1(rng.uniform(0, d * 0.2)), _r1(rng.uniform(d * 0.8, d))
        a, b = (off_left, off_right) if rng.random() < 0.5 else (off_right, off_left)
        keys = [(t0, a, cy), (t1, b, cy)]
    elif motion == "enter":  # enters, then wanders inside until the end
        t0 = _r1(rng.uniform(0, d * 0.3))
        t1 = _r1(t0 + rng.uniform(1.5, 3.0))
        edge = off_left if rng.random() < 0.5 else off_right
        x1, x2 = rng.uniform(inside_lo, inside_hi, size=2)
        keys = [(t0, edge, cy), (t1, x1, cy), (d, x2, cy)]
    else:  # "leave": in the frame from the start, leaves before the end
        t2 = _r1(rng.uniform(d * 0.7, d))
        t1 = _r1(t2 - rng.uniform(1.5, 3.0))
        edge = off_left if rng.random() < 0.5 else off_right
        x0, x1 = rng.uniform(inside_lo, inside_hi, size=2)
        keys = [(0.0, x0, cy), (t1, x1, cy), (t2, edge, cy)]
    return tuple((float(t), round(float(x), 2), float(y)) for t, x, y in keys)


def _fully_inside_frames(obj: SceneObject, cfg: SynthConfig, duration: float) -> np.ndarray:
    n = round(duration * cfg.fps)
    ok = np.zeros(n, dtype=bool)
    half = obj.size_px / 2
    for i in range(n):
        pos = _position(obj, i / cfg.fps)
        if pos is not None and half + 1 <= pos[0] <= cfg.width - half - 1:
            ok[i] = True
    return ok


def _runs(mask: np.ndarray, fps: int) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    start: int | None = None
    for i, v in enumerate([*mask.tolist(), False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start / fps, (i - 1) / fps))
            start = None
    return out


def _intersect(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for s1, e1 in a:
        for s2, e2 in b:
            s, e = max(s1, s2), min(e1, e2)
            if e - s >= MIN_EVENT_S:
                out.append((s, e))
    return out


def make_scene(cfg: SynthConfig, seed: int, index: int) -> Scene:
    """The scene of clip ``index`` for ``seed`` (pure: same arguments, same scene)."""
    rng = np.random.default_rng([int(seed), int(index)])
    duration = _r1(rng.uniform(cfg.min_duration_s, cfg.max_duration_s))
    n_events = int(rng.integers(1, cfg.max_events + 1))
    lanes = [int(v) for v in rng.permutation(4)]
    colours = [str(c) for c in rng.permutation(list(COLOURS))]
    shapes = [str(s) for s in rng.permutation(list(SHAPES))]
    kinds = [k for k in SOUNDS if k not in ("meow", "tweet") and (k != "speech" or cfg.speech)]
    kinds = [str(k) for k in rng.permutation(kinds)]
    taken: list[tuple[float, float]] = []
    objects: list[SceneObject] = []
    events: list[SceneEvent] = []
    lane_i = 0
    kind_i = 0
    # at most one event with two sounding objects (there are 3 lanes for sounding objects)
    pair_budget = 1 if n_events < 3 and rng.random() < 0.4 else 0
    for _ in range(n_events):
        n_obj = 2 if pair_budget and lane_i + 2 <= 3 else 1
        group: list[SceneObject] = []
        span: tuple[float, float] | None = None
        for _j in range(n_obj):
            if lane_i >= 3:
                break
            shape = shapes[lane_i % len(shapes)]
            colour = colours[lane_i % len(colours)]
            name = f"{colour} {shape}"
            free = _free_intervals(taken, 0.0, duration - 0.1)
            found = False
            for _attempt in range(MOTION_ATTEMPTS):
                motion = str(rng.choice(["stay", "cross", "enter", "leave"]))
                keys = _trajectory(rng, cfg, lanes[lane_i], duration, motion)
                obj = SceneObject(name, colour, shape, cfg.object_size, keys)
                inside = _runs(_fully_inside_frames(obj, cfg, duration), cfg.fps)
                if span is None:
                    span = _pick_span(rng, _intersect(free, inside))
                    found = span is not None
                else:
                    found = any(s <= span[0] and span[1] <= e for s, e in inside)
                if found:
                    break
            if not found:
                continue
            kind = {"cat": "meow", "bird": "tweet"}.get(shape, kinds[kind_i % len(kinds)])
            kind_i += 1
            pitch = float(rng.uniform(300.0, 700.0))
            word = str(rng.choice(["hello", "apple", "seven", "window"])) if kind == "speech" else None
            group.append(
                SceneObject(name, colour, shape, cfg.object_size, keys, kind, span, round(pitch, 1), word)
            )
            lane_i += 1
        if not group or span is None:
            continue
        if len(group) == 2:
            pair_budget = 0
        taken.append(span)
        objects.extend(group)
        label = " and ".join(SOUNDS[o.sound or "tone"][0] for o in group)
        verbs = " while ".join(f"{_a(o.name)} is {SOUNDS[o.sound or 'tone'][1]}" for o in group)
        events.append(SceneEvent(label, span, tuple(o.name for o in group), verbs))
    # visible silent objects on the remaining lanes (at least one)
    while lane_i < 4:
        shape = shapes[lane_i % len(shapes)]
        colour = colours[lane_i % len(colours)]
        motion = str(rng.choice(["stay", "cross", "enter", "leave"]))
        keys = _trajectory(rng, cfg, lanes[lane_i], duration, motion)
        objects.append(SceneObject(f"{colour} {shape}", colour, shape, cfg.object_size, keys))
        lane_i += 1
        if rng.random() < 0.5:
            break
    offscreen: list[tuple[str, float, float]] = []
    free = _free_intervals(taken, 0.0, duration - 0.1)
    off_span = _pick_span(rng, free)
    if off_span is not None:
        offscreen.append((str(rng.choice(OFFSCREEN_SOUNDS)), off_span[0], off_span[1]))
    events.sort(key=lambda e: e.span[0])
    silent = [o.name for o in objects if not o.sounding]
    final_events = []
    for ev in events:
        seen = [n for n in silent if _visible_during(_obj(objects, n), ev.span, cfg.width, cfg.height, cfg.fps)]
        caption = ev.caption[0].upper() + ev.caption[1:]
        if seen:  # "A red circle is beeping near a blue square and a green cat."
            caption += " near " + " and ".join(_a(n) for n in seen)
        final_events.append(SceneEvent(ev.label, ev.span, ev.objects, caption + "."))
    return Scene(
        video_id=f"synth_s{seed}_{index:03d}",
        duration_s=duration,
        width=cfg.width,
        height=cfg.height,
        fps=cfg.fps,
        sample_rate=cfg.sample_rate,
        objects=tuple(objects),
        events=tuple(final_events),
        offscreen=tuple(offscreen),
        seed=int(seed),
    )


def _a(name: str) -> str:
    """``name`` with its indefinite article: ``_a("orange cat") == "an orange cat"``."""
    return ("an " if name[:1] in "aeiou" else "a ") + name


def _obj(objects: Sequence[SceneObject], name: str) -> SceneObject:
    return next(o for o in objects if o.name == name)


def _visible_during(obj: SceneObject, span: tuple[float, float], width: int, height: int, fps: int) -> bool:
    """True when ``obj`` is drawn at one of the span's box timestamps (start, start + 1 s...)."""
    return any(box_at(obj, t, width, height, fps)[2] > 0 for t in _box_times(span))


# ----------------------------------------------------------------------------- drawing


def _mask(obj: SceneObject, cx: float, cy: float, width: int, height: int) -> np.ndarray:
    """Boolean (H, W) mask of the pixels drawn for ``obj`` centred at (cx, cy)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs += 0.5
    ys += 0.5
    r = obj.size_px / 2
    dx, dy = xs - cx, ys - cy
    shape = obj.shape
    if shape == "circle":
        m = dx * dx + dy * dy <= r * r
    elif shape == "square":
        m = (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    elif shape == "diamond":
        m = np.abs(dx) + np.abs(dy) <= r
    elif shape == "triangle":  # apex up
        m = (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.55)
    elif shape == "cat":  # round head with two triangular ears
        head = dx * dx + (dy - r * 0.25) ** 2 <= (r * 0.75) ** 2
        ear_l = (dy >= -r) & (dy <= -r * 0.2) & (np.abs(dx + r * 0.45) <= (dy + r) * 0.35)
        ear_r = (dy >= -r) & (dy <= -r * 0.2) & (np.abs(dx - r * 0.45) <= (dy + r) * 0.35)
        m = head | ear_l | ear_r
    elif shape == "bird":  # oval body, round head, triangular beak
        body = (dx / (r * 0.8)) ** 2 + (dy / (r * 0.5)) ** 2 <= 1.0
        head = (dx - r * 0.55) ** 2 + (dy + r * 0.35) ** 2 <= (r * 0.35) ** 2
        beak = (dx >= r * 0.85) & (dx <= r) & (np.abs(dy + r * 0.35) <= (r - dx) * 0.8)
        m = body | head | beak
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.asarray(m, dtype=bool)


def _frame_time(t: float, fps: int) -> float:
    """The time of the frame shown at ``t`` (first frame whose time is >= t)."""
    return math.ceil(round(t * fps, 6)) / fps


def box_at(obj: SceneObject, t: float, width: int, height: int, fps: int) -> list[float]:
    """Bounding box ``[x1, y1, x2, y2]`` (pixel edges: x2 = last column + 1) of the pixels drawn
    for ``obj`` in the frame shown at time ``t``; ``[0, 0, 0, 0]`` when nothing is drawn."""
    pos = _position(obj, _frame_time(t, fps))
    if pos is None:
        return [0.0, 0.0, 0.0, 0.0]
    m = _mask(obj, pos[0], pos[1], width, height)
    cols = np.flatnonzero(m.any(axis=0))
    rows = np.flatnonzero(m.any(axis=1))
    if cols.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def render_frame(scene: Scene, t: float) -> np.ndarray:
    """The RGB uint8 (H, W, 3) frame at time ``t`` (``t`` should be a frame time)."""
    img = np.empty((scene.height, scene.width, 3), dtype=np.uint8)
    img[:] = BACKGROUND_RGB
    for obj in scene.objects:
        pos = _position(obj, t)
        if pos is None:
            continue
        img[_mask(obj, pos[0], pos[1], scene.width, scene.height)] = COLOURS[obj.colour]
    return img


# ----------------------------------------------------------------------------- sound


def _espeak_word(word: str, sample_rate: int) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ValueError("speech sounds need espeak-ng (apt-get install espeak-ng)")
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "w.wav"
        subprocess.run([exe, "-w", str(wav_path), word], check=True, capture_output=True, timeout=30)
        with wave.open(str(wav_path), "rb") as fh:
            rate = fh.getframerate()
            raw = np.frombuffer(fh.readframes(fh.getnframes()), dtype=np.int16)
    x = raw.astype(np.float64) / 32768.0
    g = math.gcd(rate, sample_rate)
    x = resample_poly(x, sample_rate // g, rate // g)
    nz = np.flatnonzero(np.abs(x) > 0.01)
    return x[nz[0] : nz[-1] + 1] if nz.size else x


def _sound(kind: str, n: int, sr: int, pitch: float, rng: np.random.Generator, word: str | None) -> np.ndarray:
    t = np.arange(n) / sr
    if kind == "tone":
        x = np.sin(2 * np.pi * pitch * t) + 0.4 * np.sin(4 * np.pi * pitch * t)
    elif kind == "beeps":  # 0.2 s on, 0.1 s off (the first beep starts at the span start)
        x = np.sin(2 * np.pi * (pitch + 700) * t) * ((t % 0.3) < 0.2)
        x[-int(0.05 * sr) :] = np.sin(2 * np.pi * (pitch + 700) * t[-int(0.05 * sr) :])
    elif kind == "chirp":  # 0.5 s sweeps from 800 to 2400 Hz
        tau = t % 0.5
        x = np.sin(2 * np.pi * (800 * tau + 1600 * tau * tau) + 2 * np.pi * 0.0 * t)
    elif kind == "noise":
        x = rng.standard_normal(n)
        x /= np.max(np.abs(x)) + 1e-9
    elif kind == "warble":
        x = np.sin(2 * np.pi * (pitch + 300) * t + 40 * np.sin(2 * np.pi * 6 * t) / 6)
    elif kind == "meow":  # pitch glide 500 -> 800 -> 450 Hz, with harmonics, every 0.8 s
        tau = t % 0.8
        f = np.interp(tau, [0, 0.3, 0.8], [500, 800, 450])
        ph = 2 * np.pi * np.cumsum(f) / sr
        x = np.sin(ph) + 0.5 * np.sin(2 * ph) + 0.25 * np.sin(3 * ph)
    elif kind == "tweet":  # fast high chirps, 0.08 s every 0.12 s
        tau = t % 0.12
        x = np.sin(2 * np.pi * (2500 * tau + 0.5 * 15000 * tau * tau)) * (tau < 0.08)
        x[-int(0.05 * sr) :] = np.sin(2 * np.pi * 2500 * t[-int(0.05 * sr) :])
    elif kind == "siren":
        f = 900 + 300 * np.sin(2 * np.pi * 0.5 * t)
        x = np.sin(2 * np.pi * np.cumsum(f) / sr)
    elif kind == "bell":  # strikes every 0.7 s, decaying partials (never decays to zero)
        tau = t % 0.7
        env = 0.25 + 0.75 * np.exp(-tau * 4)
        x = env * (np.sin(2 * np.pi * 1200 * t) + 0.6 * np.sin(2 * np.pi * 2900 * t))
    elif kind == "speech":
        w = _espeak_word(word or "hello", sr)
        reps = math.ceil(n / max(1, w.size))
        x = np.tile(w, reps)[:n]
    else:
        raise ValueError(f"unknown sound kind {kind!r}")
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return x / peak if peak > 0 else x


def make_audio(scene: Scene) -> np.ndarray:
    """Mono float32 waveform of the whole clip: every sound exactly inside its span (the span's
    first and last sample included), silence everywhere else."""
    sr = scene.sample_rate
    total = round(scene.duration_s * sr)
    out = np.zeros(total, dtype=np.float64)
    rng = np.random.default_rng([scene.seed, 7919])
    sources: list[tuple[str, float, float, float, str | None]] = []
    for obj in scene.objects:
        if obj.sound is not None and obj.sound_span is not None:
            sources.append((obj.sound, obj.sound_span[0], obj.sound_span[1], obj.pitch_hz, obj.word))
    for kind, s, e in scene.offscreen:
        sources.append((kind, s, e, 0.0, None))
    fade = max(1, int(FADE_S * sr))
    for kind, s, e, pitch, word in sources:
        a, b = round(s * sr), min(total, round(e * sr))
        n = b - a
        if n <= 2 * fade:
            continue
        x = _sound(kind, n, sr, pitch, rng, word)
        ramp = np.linspace(0.0, 1.0, fade)
        x[:fade] *= ramp
        x[-fade:] *= ramp[::-1]
        out[a:b] += SOUND_AMPLITUDE * x
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- files


def write_clip(scene: Scene, path: Path) -> None:
    """Encode ``scene`` as an MP4 (H.264 yuv420p + AAC mono) at ``path``."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    audio = make_audio(scene)
    # bitexact: no creation time or encoder version in the header, so a seed gives the same bytes
    with av.open(str(path), "w", container_options={"fflags": "+bitexact"}) as container:
        vs = container.add_stream("libx264", rate=scene.fps)
        vs.width, vs.height, vs.pix_fmt = scene.width, scene.height, "yuv420p"
        # one thread, no lookahead threads: x264 output is then the same bytes on every run
        vs.options = {"crf": "18", "preset": "veryfast", "threads": "1", "lookahead-threads": "1",
                      "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0"}
        vs.codec_context.thread_count = 1
        aus = container.add_stream("aac", rate=scene.sample_rate)
        aus.layout = "mono"
        n_frames = round(scene.duration_s * scene.fps)
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(render_frame(scene, i / scene.fps), format="rgb24")
            frame.pts = i
            container.mux(vs.encode(frame))
        container.mux(vs.encode(None))
        step = 1024
        for i, a in enumerate(range(0, audio.shape[0], step)):
            chunk = audio[a : a + step]
            af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
            af.sample_rate = scene.sample_rate
            af.pts = i * step
            container.mux(aus.encode(af))
        container.mux(aus.encode(None))


def _box_times(span: tuple[float, float]) -> list[float]:
    """Box timestamps of a span, as in the official GT: start, start + 1, ... <= end."""
    s, e = span
    return [_r1(s + k) for k in range(math.floor(e - s + 1e-6) + 1)]


def _track(scene: Scene, name: str, span: tuple[float, float]) -> Track:
    obj = scene.object(name)
    times = _box_times(span)
    boxes = [box_at(obj, t, scene.width, scene.height, scene.fps) for t in times]
    return Track(name, np.asarray(times, dtype=np.float64), np.asarray(boxes, dtype=np.float64))


def _fmt(x: float) -> str:
    return repr(_r1(x))


def qa_items(scene: Scene) -> list[QAItem]:
    """All QAs of a scene, per event: temporal (one per sounding object), spatial sounding,
    spatial silent (when a silent object is visible during the event), spatio-temporal."""
    items: list[QAItem] = []
    silent = [o.name for o in scene.objects if not o.sounding]
    for ei, ev in enumerate(scene.events):
        span = Span(*ev.span)

        def qa(task: Task, k: int, question: str, answer: Answer, *, sounding: bool = True,
               query_span: Span | None = None, query_object: str | None = None,
               ei: int = ei, ev: SceneEvent = ev) -> QAItem:
            return QAItem(
                qa_id=QAItem.make_id(scene.video_id, ei, task, k), video=scene.video_id,
                duration_s=scene.duration_s, event_index=ei, event_num=ei + 1, task=task, k=k,
                question=question, answer=answer, sounding=sounding, query_span=query_span,
                query_object=query_object, category=ev.label)

        for k, name in enumerate(ev.objects):
            items.append(qa(Task.TEMPORAL, k, f"When is the moment {name} makes sound and is visible?",
                            Answer(objects=(name,), spans=(span,)), query_object=name))
        tracks = tuple(_track(scene, n, ev.span) for n in ev.objects)
        s, e = _fmt(ev.span[0]), _fmt(ev.span[1])
        items.append(qa(
            Task.SPATIAL, 0,
            f"What visible object(s) make sound between {s} and {e}, and where is/are they?",
            Answer(objects=ev.objects, tracks=tracks), query_span=span))
        seen = [n for n in silent
                if _visible_during(scene.object(n), ev.span, scene.width, scene.height, scene.fps)]
        if seen:
            items.append(qa(
                Task.SPATIAL, 1,
                f"What silent object(s) can be seen between {s} and {e}, and where is/are they?",
                Answer(objects=tuple(seen), tracks=tuple(_track(scene, n, ev.span) for n in seen)),
                sounding=False, query_span=span))
        for k, name in enumerate(ev.objects):
            items.append(qa(
                Task.SPATIOTEMPORAL, k,
                f'When is the moment {name} makes sound and is visible, and where is the "{name}"?',
                Answer(objects=(name,), spans=(span,), tracks=(_track(scene, name, ev.span),)),
                query_object=name))
    return items


def video_record(scene: Scene, label_ids: dict[str, int], subset: str = "test") -> VideoRecord:
    events = tuple(
        Event(ev.label, Span(*ev.span), label_ids.setdefault(ev.label, len(label_ids)), ev.caption)
        for ev in scene.events
    )
    return VideoRecord(scene.video_id, scene.duration_s, events, subset)


def per_second_boxes(scene: Scene) -> list[dict[str, Any]]:
    """One row per object: its box at every whole second of the clip (0, 1, ...)."""
    times = [float(t) for t in range(math.floor(scene.duration_s - 1e-6) + 1)]
    rows = []
    for obj in scene.objects:
        rows.append({
            "video": scene.video_id,
            "object": obj.name,
            "sounding": obj.sounding,
            "sound_span_s": list(obj.sound_span) if obj.sound_span else None,
            "times_s": times,
            "xyxy": [box_at(obj, t, scene.width, scene.height, scene.fps) for t in times],
        })
    return rows


def synthesize(out_dir: Path, n: int, seed: int, cfg: SynthConfig | None = None) -> list[Scene]:
    """Write ``n`` clips and their ground truth under ``out_dir``; returns the scenes."""
    from tqdm import tqdm

    from ravst.formats.official import write_official
    from ravst.formats.unav100 import write_unav100

    cfg = cfg or SynthConfig()
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out_dir.mkdir(parents=True, exist_ok=True)
    scenes = [make_scene(cfg, seed, i) for i in range(n)]
    for scene in tqdm(scenes, desc="synth clips", unit="clip", disable=n < 3):
        write_clip(scene, out_dir / "videos" / f"{scene.video_id}.mp4")
    label_ids: dict[str, int] = {}
    records = [video_record(s, label_ids) for s in scenes]
    write_unav100(records, out_dir / "unav100.json")
    with (out_dir / "captions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video_id", "event_index", "start_s", "end_s", "label", "caption"])
        for s in scenes:
            for i, ev in enumerate(s.events):
                writer.writerow([s.video_id, i, ev.span[0], ev.span[1], ev.label, ev.caption])
    write_jsonl_atomic(out_dir / "boxes.jsonl", (row for s in scenes for row in per_second_boxes(s)))
    items = [q for s in scenes for q in qa_items(s)]
    write_official(items, out_dir / "qa.json")
    (out_dir / "scenes.json").write_text(
        json.dumps({"config": asdict(cfg), "seed": seed, "scenes": [s.to_json() for s in scenes]}, indent=1)
    )
    log.info("wrote %d clips, %d QAs to %s", len(scenes), len(items), out_dir)
    return scenes


from ravst.synth_cli import add_arguments, run  # noqa: E402  (the command line lives apart: no numpy for --help)
