"""Frame extraction for annotate: frames/s and peak memory, streaming vs decoding every frame.

    .venv/bin/python benchmarks/bench_frames.py [--videos ../shared/data/videos] [--repeats 2]

For each real clip, three ways of getting one frame per second (1.0, 2.0, ...):

- ``ravst``: ``ravst.media.iter_frames_at`` (one streaming pass, RGB conversion of the
  requested frames only, stops at the last requested time);
- ``all-frames``: decode every frame to RGB and keep them (what a naive loader does), then pick;
- ``all-decode``: decode every frame, convert none (the floor of a straight-through pass).

Each run is a fresh subprocess so that its peak RSS (``ru_maxrss``) is its own; the figure is
peak RSS minus the RSS after imports. Time is the best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import av, numpy as np
from ravst.media import iter_frames_at, probe
path, method = sys.argv[1], sys.argv[2]
info = probe(path)
times = [float(t) for t in range(1, int(info.duration_s))]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if method == "ravst":
    n = sum(1 for _ in iter_frames_at(path, times))
elif method == "all-frames":
    with av.open(path) as c:
        s = c.streams.video[0]; s.thread_type = "AUTO"
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(s)]
    picked = [next(img for ft, img in frames if ft >= t - 1e-6) if frames[-1][0] >= t else frames[-1][1] for t in times]
    n = len(picked)
else:
    with av.open(path) as c:
        s = c.streams.video[0]; s.thread_type = "AUTO"
        for f in c.decode(s):
            pass
    n = len(times)
elapsed = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "frames": n, "peak_mb": (peak - base) / 1024}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    clips = sorted(Path(args.videos).glob("*.mp4")) + sorted(Path(args.videos).glob("*.avi"))
    if not clips:
        print(f"no clips under {args.videos}")
        return 1
    from ravst.media import probe

    rows = []
    print(f"{'clip':40s} {'size':>9s} {'frames':>6s} {'method':>10s} {'s':>7s} {'frames/s':>9s} {'peak MB':>8s}")
    for clip in clips:
        info = probe(clip)
        for method in ("ravst", "all-frames", "all-decode"):
            best = None
            for _ in range(args.repeats):
                out = subprocess.run([sys.executable, "-c", CHILD, str(clip), method], capture_output=True,
                                     text=True, check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                if best is None or result["seconds"] < best["seconds"]:
                    best = result
            assert best is not None
            row = {"clip": clip.name, "width": info.width, "height": info.height, "fps": round(info.fps, 3),
                   "duration_s": round(info.duration_s, 2), "method": method, **best}
            rows.append(row)
            print(f"{clip.name[:40]:40s} {info.width:4d}x{info.height:<4d} {best['frames']:6d} {method:>10s} "
                  f"{best['seconds']:7.3f} {best['frames'] / best['seconds']:9.1f} {best['peak_mb']:8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
