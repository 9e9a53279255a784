"""Time and peak memory to prepare model inputs for a clip: ravst's sampler vs transformers' own
``load_video`` on the same clip, and memory vs clip length at a fixed frame budget.

Each measurement runs in a fresh process (``spawn``) and reports wall time, the peak of memory
traced by ``tracemalloc`` (numpy arrays included; FFmpeg's own buffers are not) and the process's
max-RSS growth over its state after imports (imports are done before the clock starts). ravst: decode straight through + resize by Qwen's smart-resize rule as frames arrive
(+ 16 kHz audio when asked). transformers: ``load_video(path, fps=..)`` / ``num_frames=..``
(PyAV backend), which returns full-size frames (resizing happens later in the processor).

Ratios measured in one run (``--ratios``, the default part; issue 10's performance goals):

* ``sample_video`` / PyAV called directly on the same clip and the same frame indices (open,
  threaded decode straight through, ``to_ndarray("rgb24")`` of the selected frames, stop after the
  last): 480p real clip, 720p and 1080p made from a real clip (upscaled, libx264 ultrafast, and
  again with x264's default preset medium, B-frames + CABAC like most web video) in a temp dir;
  1 and 2 fps. Goal <= 1.1x. Also ``resize="fast"`` (one swscale pass, an opt-in) on the same clips.
* the ``av-signal`` baseline on the spatial QAs of each real clip (2 per clip, boxes need frames)
  / one plain decode pass over the same clip (every frame decoded, none converted). Goal <= 1.1x.

Usage: .venv/bin/python benchmarks/bench_infer_io.py [--videos ../shared/data/videos] [--repeat 2]
       [--no-memory]   (skip the older memory tables, which spawn a process per measurement)
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
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
        v = sample_video(path, SamplingConfig(fps=fps or 1.0, max_frames=max_frames), with_audio=with_audio)
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


def upscale(src: Path, dst: Path, width: int, height: int, seconds: float, preset: str = "ultrafast") -> Path:
    """The first ``seconds`` of ``src`` re-encoded at ``width x height`` (libx264, ``preset``:
    ultrafast = no B-frames, no CABAC, the cheapest stream to decode; medium = x264's default,
    B-frames + CABAC, like most web video)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vs = inp.streams.video[0]
        o = out.add_stream("libx264", rate=vs.average_rate)
        o.width, o.height, o.pix_fmt = width, height, "yuv420p"
        o.options = {"preset": preset, "crf": "20" if preset == "ultrafast" else "23"}
        o.time_base = vs.time_base
        for frame in inp.decode(vs):
            if frame.time is not None and frame.time > seconds:
                break
            big = frame.reformat(width=width, height=height)
            big.pts, big.time_base = frame.pts, frame.time_base
            for packet in o.encode(big):
                out.mux(packet)
        for packet in o.encode():
            out.mux(packet)
    return dst


def pyav_direct(path: Path, indices: list[int]) -> int:
    """PyAV called directly: decode straight through, RGB of the frames at ``indices``."""
    import av

    wanted = set(indices)
    last = max(indices)
    got = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                frame.to_ndarray(format="rgb24")
                got += 1
            if i >= last:
                break
    return got


def plain_decode(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def best_of(repeat: int, fn: Any) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def best_interleaved(repeat: int, fns: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Best wall time and best process CPU time (s, all threads) of each function, the functions
    run in turn in every round so that a change of the machine's load hits them alike."""
    best: dict[str, tuple[float, float]] = {k: (float("inf"), float("inf")) for k in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            cpu0, start = os.times(), time.perf_counter()
            fn()
            wall, cpu1 = time.perf_counter() - start, os.times()
            cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
            best[key] = (min(best[key][0], wall), min(best[key][1], cpu))
    return best


def ratios(videos: Path, repeat: int) -> None:
    from ravst.media.video import probe
    from ravst.models.baselines import BaselineBackend
    from ravst.models.sampling import SamplingConfig, sample_video
    from ravst.types import Answer, QAItem, Span, Task

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print("## sample_video vs PyAV direct (same frame indices), best of", repeat, "; load average", load)
    has_fast = "resize" in SamplingConfig.__dataclass_fields__  # not in ravst before issue 10's overlap
    print("(wall: best of", repeat, "rounds, the three run in turn in each round; CPU: process CPU time, all threads)")
    print("| clip | size | fps | frames | input size | PyAV direct s | sample_video s | ratio | resize=fast s | ratio "
          "| CPU ratio | CPU ratio fast |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        base = videos / "moviepy_1_basketball.mp4"
        clips = [
            videos / "videollama_dog_barking.mp4",
            upscale(base, Path(tmp) / "basketball_720p.mp4", 1280, 720, 20.0),
            upscale(base, Path(tmp) / "basketball_1080p.mp4", 1920, 1080, 20.0),
            upscale(base, Path(tmp) / "basketball_720p_medium.mp4", 1280, 720, 20.0, "medium"),
            upscale(base, Path(tmp) / "basketball_1080p_medium.mp4", 1920, 1080, 20.0, "medium"),
        ]
        for clip in clips:
            info = probe(clip)
            for fps in (1.0, 2.0):
                cfg = SamplingConfig(fps=fps)
                sample_video(clip, cfg)  # warm-up (imports, torch kernels)
                v = sample_video(clip, cfg)
                fns = {"direct": lambda c=clip, i=list(v.frame_indices): pyav_direct(c, i),
                       "ours": lambda c=clip, k=cfg: sample_video(c, k)}
                if has_fast:
                    fast_cfg = dataclasses.replace(cfg, resize="fast")
                    fns["fast"] = lambda c=clip, k=fast_cfg: sample_video(c, k)
                b = best_interleaved(repeat, fns)
                (t_direct, c_direct), (t_ours, c_ours) = b["direct"], b["ours"]
                fast = (f"{b['fast'][0]:.3f} | {b['fast'][0] / t_direct:.2f}" if has_fast else "n/a | n/a")
                c_fast = f"{b['fast'][1] / c_direct:.2f}" if has_fast else "n/a"
                print(f"| {clip.name} | {info.width}x{info.height} | {fps:g} | {len(v.frame_indices)} | "
                      f"{v.input_wh[0]}x{v.input_wh[1]} | {t_direct:.3f} | {t_ours:.3f} | {t_ours / t_direct:.2f} | "
                      f"{fast} | {c_ours / c_direct:.2f} | {c_fast} |")
    print("load average after:", " ".join(f"{x:.1f}" for x in os.getloadavg()))

    print("\n## av-signal (2 spatial QAs per clip) vs one plain decode pass, best of", repeat)
    print("| clip | plain decode s | av-signal boxes s | ratio |")
    print("|---|---|---|---|")
    tot_plain = tot_ours = 0.0
    clips = sorted(videos.glob("*.mp4")) + sorted(videos.glob("*.avi"))
    for clip in clips:
        duration = probe(clip).duration_s
        spans = [Span(1.0, 5.0), Span(round(duration / 2, 1), round(min(duration, duration / 2 + 4), 1))]
        items = [
            QAItem(qa_id=f"{clip.stem}/0/spatial/{k}", video=clip.stem, duration_s=duration, event_index=0,
                   event_num=1, task=Task.SPATIAL, k=k, question="q", answer=Answer(), query_span=span,
                   query_object="person")
            for k, span in enumerate(spans)
        ]

        def run(items: list[QAItem] = items, clip: Path = clip) -> None:
            backend = BaselineBackend("av-signal")
            for item in items:
                backend.answer(item, clip)

        t_plain = best_of(repeat, lambda c=clip: plain_decode(c))
        t_ours = best_of(repeat, run)
        tot_plain += t_plain
        tot_ours += t_ours
        print(f"| {clip.name} | {t_plain:.3f} | {t_ours:.3f} | {t_ours / t_plain:.2f} |")
    print(f"| all {len(clips)} clips | {tot_plain:.3f} | {tot_ours:.3f} | {tot_ours / tot_plain:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/videos")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true", help="only the ratio tables")
    args = parser.parse_args()
    ratios(args.videos, args.repeat)
    if args.no_memory:
        return
    print()

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
