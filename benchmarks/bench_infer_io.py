"""Time and peak memory to prepare model inputs for a clip: ravst's sampler vs transformers' own
``load_video`` on the same clip, and memory vs clip length at a fixed frame budget.

Each measurement runs in a fresh process (``spawn``) and reports wall time, the peak of memory
traced by ``tracemalloc`` (numpy arrays included; FFmpeg's own buffers are not) and the process's
max-RSS growth over its state after imports (imports are done before the clock starts). ravst: decode straight through + resize by Qwen's smart-resize rule as frames arrive
(+ 16 kHz audio when asked). transformers: ``load_video(path, fps=..)`` / ``num_frames=..``
(PyAV backend), which returns full-size frames (resizing happens later in the processor).

Usage: .venv/bin/python benchmarks/bench_infer_io.py [--videos ../shared/data/videos] [--repeat 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

CLIP_60S = "videollama2_00003491_ukulele_duo.mp4"  # 60 s, 640x360, 60 fps, AAC audio
CLIP_UNAV = "unav100_--HuBNHXu9I.mp4"  # 60 s, 320x240, 15 fps


def _measure(kind: str, path: str, fps: float | None, max_frames: int, with_audio: bool, queue: Any) -> None:
    import numpy as np
    from transformers.video_utils import load_video

    from ravst.media import audio as _audio  # noqa: F401  (imports are not part of the timing)
    from ravst.models.sampling import SamplingConfig, sample_video

    rss0_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    start = time.perf_counter()
    if kind == "ravst":
        v = sample_video(path, SamplingConfig(fps=fps or 1.0, max_frames=max_frames, max_pixels=360 * 640),
                         with_audio=with_audio)
        shape = v.frames.shape
        n_audio = 0 if v.audio is None else len(v.audio)
    else:
        if fps is not None:
            frames, _meta = load_video(path, fps=fps, backend="pyav")
        else:
            frames, _meta = load_video(path, num_frames=max_frames, backend="pyav")
        shape = np.asarray(frames).shape
        n_audio = 0
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0_mb
    queue.put({"s": elapsed, "peak_mb": peak / 2**20, "rss_mb": rss_mb, "shape": shape, "audio": n_audio})


def measure(kind: str, path: Path, *, fps: float | None, max_frames: int, with_audio: bool = False,
            repeat: int = 2) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    best: dict[str, Any] | None = None
    for _ in range(repeat):
        queue = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(kind, str(path), fps, max_frames, with_audio, queue))
        proc.start()
        result = queue.get(timeout=600)
        proc.join()
        if best is None or result["s"] < best["s"]:
            best = result
    assert best is not None
    return best


def trim(src: Path, dst: Path, seconds: float) -> Path:
    """Stream-copy the first ``seconds`` of ``src`` (video + audio) into ``dst``."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        mapping = {}
        for s in (inp.streams.video[0], inp.streams.audio[0]):
            mapping[s.index] = out.add_stream_from_template(s)
        for packet in inp.demux(*(inp.streams.video[0], inp.streams.audio[0])):
            if packet.dts is None:
                continue
            if packet.pts is not None and float(packet.pts * packet.time_base) > seconds:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/videos")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    print("## 60 s clips, 1 fps (60 frames), best of", args.repeat)
    print("| clip | method | time s | traced peak MB | max RSS growth MB | frames |")
    print("|---|---|---|---|---|---|")
    for name in (CLIP_UNAV, CLIP_60S):
        clip = args.videos / name
        rows = [
            ("ravst sample_video (video)", measure("ravst", clip, fps=1.0, max_frames=64, repeat=args.repeat)),
            ("ravst sample_video (video+audio)",
             measure("ravst", clip, fps=1.0, max_frames=64, with_audio=True, repeat=args.repeat)),
            ("transformers load_video(fps=1)", measure("hf", clip, fps=1.0, max_frames=64, repeat=args.repeat)),
        ]
        for label, r in rows:
            print(f"| {name} | {label} | {r['s']:.2f} | {r['peak_mb']:.1f} | {r['rss_mb']:.0f} | {tuple(r['shape'])} |")

    print("\n## memory vs clip length, fixed budget of 16 frames (", CLIP_60S, "trimmed)")
    print("| length s | method | time s | traced peak MB | max RSS growth MB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (15, 30, 60):
            clip = trim(args.videos / CLIP_60S, Path(tmp) / f"clip{seconds}.mp4", seconds)
            for label, kind, fps in (("ravst", "ravst", 2.0), ("transformers num_frames=16", "hf", None)):
                r = measure(kind, clip, fps=fps, max_frames=16, repeat=args.repeat)
                print(f"| {seconds} | {label} | {r['s']:.2f} | {r['peak_mb']:.1f} | {r['rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
