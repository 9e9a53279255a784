"""Benchmark of ``ravst synth``: wall time per clip, split into scene layout, frame rendering,
encoding (H.264 + AAC) and ground truth (QAs with per-second boxes), at two frame sizes.

    .venv/bin/python benchmarks/bench_synth.py [--n 8] [--repeat 2]

Prints one line per size (best of ``--repeat``); results are recorded in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

from ravst import synth


def bench(cfg: synth.SynthConfig, n: int, out: Path) -> dict[str, float]:
    t = {"layout": 0.0, "render": 0.0, "encode": 0.0, "ground_truth": 0.0}
    for i in range(n):
        t0 = time.perf_counter()
        scene = synth.make_scene(cfg, 0, i)
        t1 = time.perf_counter()
        n_frames = round(scene.duration_s * scene.fps)
        for k in range(n_frames):
            synth.render_frame(scene, k / scene.fps)
        t2 = time.perf_counter()
        synth.write_clip(scene, out / f"{i}.mp4")  # renders again: encode = this minus render
        t3 = time.perf_counter()
        synth.qa_items(scene)
        synth.per_second_boxes(scene)
        t4 = time.perf_counter()
        t["layout"] += t1 - t0
        t["render"] += t2 - t1
        t["encode"] += (t3 - t2) - (t2 - t1)
        t["ground_truth"] += t4 - t3
    return t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    sys.stdout.write(f"python {platform.python_version()}, {platform.machine()}, n={args.n} clips of 10-16 s\n")
    for w, h in ((160, 120), (320, 240)):
        cfg = synth.SynthConfig(width=w, height=h)
        best: dict[str, float] | None = None
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                t = bench(cfg, args.n, Path(tmp))
            if best is None or sum(t.values()) < sum(best.values()):
                best = t
        assert best is not None
        total = sum(best.values())
        parts = ", ".join(f"{k} {1000 * v / args.n:.0f} ms" for k, v in best.items())
        sys.stdout.write(f"{w}x{h}: {1000 * total / args.n:.0f} ms per clip ({parts}); {args.n / total:.1f} clips/s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
