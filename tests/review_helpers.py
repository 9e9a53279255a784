"""Fixtures for the review app tests: a small official-format QA file and generated clips."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

CLIP_W, CLIP_H, CLIP_FPS, CLIP_S = 160, 120, 10, 4
XSS_OBJECT = '&lt;b&gt;dog "x" & y'  # the strict answer parser refuses '<' in names
XSS_QUESTION = ' <img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def make_clip(path: Path, *, seconds: int = CLIP_S, width: int = CLIP_W, height: int = CLIP_H,
              fps: int = CLIP_FPS) -> Path:
    """A VP8 WebM clip (every browser plays it) with a white square moving to the right."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8"}
        for i in range(seconds * fps):
            frame = np.full((height, width, 3), 40, dtype=np.uint8)
            x = 10 + i * 2
            frame[40:80, x : x + 40] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _where(times: list[float], boxes: list[list[float]]) -> str:
    lines = [f"{t:.1f}: [{b[0]:.1f}, {b[1]:.1f}, {b[2]:.1f}, {b[3]:.1f}]" for t, b in zip(times, boxes, strict=True)]
    return "<where>\n" + "".join(line + "\n" for line in lines) + "</where>"


def official_records(videos: list[str], *, duration_s: float = float(CLIP_S), obj: str = "dog",
                     suffix: str = "") -> list[dict[str, Any]]:
    """One event per video with one temporal, one spatial and one spatio-temporal QA
    (``suffix`` is appended to the spatial question)."""
    times = [float(t) for t in range(int(duration_s))]
    boxes = [[10.0 + 20 * t, 40.0, 50.0 + 20 * t, 80.0] for t in times]
    end = duration_s - 0.5
    records = []
    for name in videos:
        records.append({
            "video_name": name,
            "duration": duration_s,
            "annotation": [{
                "event_num": 1,
                "AV Temporal Reasoning": [{
                    "Q": f"When is the moment {obj} makes sound and is visible?",
                    "A": f"<answer>\n<object>{obj}</object>\n<when>[0.0, {end}]</when>\n</answer>",
                }],
                "AV Spatial Reasoning": [{
                    "Q": f"What visible object(s) make sound between 0.0 and {end}, and where is/are they?{suffix}",
                    "A": f"<answer>\n<object>{obj}</object>\n{_where(times, boxes)}\n</answer>",
                }],
                "AV ST Reasoning": [{
                    "Q": f'When is the moment {obj} makes sound and is visible, and where is the "{obj}"?',
                    "A": f"<answer>\n<object>{obj}</object>\n<when>[0.0, {end}]</when>\n{_where(times, boxes)}\n</answer>",
                }],
            }],
        })
    return records


def make_data_dir(root: Path, videos: list[str], *, clip: Path | None = None, obj: str = "dog",
                  suffix: str = "", missing: tuple[str, ...] = (), duration_s: float = float(CLIP_S)) -> Path:
    """``root/qa.json`` + ``root/videos/<name>.webm`` (copies of one clip) for each video name
    except those in ``missing``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "qa.json").write_text(json.dumps(official_records(videos, obj=obj, suffix=suffix, duration_s=duration_s), indent=2), encoding="utf-8")
    source = clip if clip is not None else make_clip(root / "_clip.webm")
    for name in videos:
        if name not in missing:
            (root / "videos").mkdir(exist_ok=True)
            shutil.copyfile(source, root / "videos" / f"{name}{source.suffix}")
    if clip is None:
        source.unlink()
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data: Path | None, db: Path, port: int, log: Path,
                 extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    """``ravst review serve`` in a subprocess; returns once it answers on ``port``.
    ``data=None``: the source is in ``extra`` (e.g. ``--build B --videos V``)."""
    import httpx

    source = [] if data is None else ["--data", str(data)]
    cmd = [sys.executable, "-m", "ravst.review.cli", "serve", *source, "--db", str(db),
           "--port", str(port), *(extra or [])]
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start in 60 s")


def make_build_dir(root: Path, videos: list[str], *,
                   flags: dict[str, list[dict[str, str]]] | None = None) -> Path:
    """A build folder as ``ravst build qa`` leaves it: ``qa/r_avst_qa.json``, ``qa/manifest.json``
    and the QA sidecar ``qa/r_avst_qa.meta.json`` (one entry per QA, with ``flags``:
    ``{qa_id: [{"reason", "object", "detail"}, ...]}`` in the builder's layout)."""
    from ravst.formats.official import read_official

    qa_dir = root / "qa"
    qa_dir.mkdir(parents=True, exist_ok=True)
    qa_path = qa_dir / "r_avst_qa.json"
    qa_path.write_text(json.dumps(official_records(videos), indent=2), encoding="utf-8")
    (qa_dir / "manifest.json").write_text(json.dumps({"stage": "qa"}), encoding="utf-8")
    flags = dict(flags or {})
    qas = [{"qa_id": item.qa_id, "kind": item.kind, "objects": list(item.answer.objects),
            "flags": flags.pop(item.qa_id, []), "boxes": {}} for item in read_official(qa_path)]
    qas += [{"qa_id": qa_id, "kind": "temporal", "objects": [], "flags": f, "boxes": {}} for qa_id, f in flags.items()]
    meta = {"format": "ravst-qa-meta", "version": 1, "qa_file": qa_path.name, "baseline": False, "warnings": [],
            "analyzer": None, "detector": None, "qas": qas}
    (qa_dir / "r_avst_qa.meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return root


def rss_peak_kib(pid: int) -> int:
    """The peak resident set size (VmHWM) of a process, in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for process {pid}")
