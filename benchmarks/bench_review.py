"""Throughput of the review server on loopback: N concurrent reviewers submit scores for T seconds.

    .venv/bin/python benchmarks/bench_review.py --reviewers 12 --seconds 10

Builds a throw-away data folder (one temporal QA per video, a tiny generated WebM clip), starts
``python -m ravst.review.cli serve`` in a subprocess, and reports committed scores per second
and the latency of ``GET /api/next`` + ``POST .../score`` round trips.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np


def make_data(root: Path, n_videos: int) -> None:
    import av

    clip = root / "clip.webm"
    with av.open(str(clip), mode="w") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    (root / "videos").mkdir()
    records = []
    for i in range(n_videos):
        name = f"v{i:05d}"
        shutil.copyfile(clip, root / "videos" / f"{name}.webm")
        records.append({"video_name": name, "duration": 1.0, "annotation": [{"event_num": 1,
            "AV Temporal Reasoning": [{"Q": "When is the moment dog makes sound and is visible?",
                                       "A": "<answer>\n<object>dog</object>\n<when>[0.0, 1.0]</when>\n</answer>"}]}]})
    (root / "qa.json").write_text(json.dumps(records), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviewers", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--videos", type=int, default=3000)
    args = parser.parse_args()
    from ravst.review.db import ReviewDB

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_data(root, args.videos)
        db_path = root / "reviews.sqlite"
        db = ReviewDB(db_path)
        tokens = [db.add_reviewer(f"r{i}") for i in range(args.reviewers)]
        db.close()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = (root / "server.log").open("wb")
        server = subprocess.Popen([sys.executable, "-m", "ravst.review.cli", "serve", "--data", str(root),
                                   "--db", str(db_path), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    httpx.get(base + "/", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            latencies: list[float] = []
            lock = threading.Lock()
            stop = time.monotonic() + args.seconds

            def work(token: str) -> None:
                with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
                    while time.monotonic() < stop:
                        t0 = time.perf_counter()
                        item = c.get("/api/next").json()["item_id"]
                        if item is None:
                            return
                        c.post(f"/api/items/{item}/score", json={"score": 3}).raise_for_status()
                        with lock:
                            latencies.append(time.perf_counter() - t0)

            threads = [threading.Thread(target=work, args=(t,)) for t in tokens]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - t0
        finally:
            server.kill()
            server.wait()
        lat = np.array(latencies) * 1000
        print(f"reviewers={args.reviewers} seconds={elapsed:.1f} scores={lat.size} "
              f"scores_per_s={lat.size / elapsed:.1f} next+score latency ms: "
              f"p50={np.percentile(lat, 50):.1f} p95={np.percentile(lat, 95):.1f} max={lat.max():.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
