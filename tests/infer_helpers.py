"""Fixtures shared by the inference tests: a tiny QA file in the official layout over real clips."""

from __future__ import annotations

import json
from pathlib import Path

UNAV = "unav100_--HuBNHXu9I"  # 60 s, 320x240, speech: [0, 10.2], [13.1, 26.2], [28.7, 60]
DOG = "videollama_dog_barking"  # 7.08 s, 854x480

# Ground truth in the official layout. The UnAV-100 spans are the clip's real annotation; the
# boxes are written for these tests (a person region), the dog clip's answers likewise.
OFFICIAL_QA = [
    {
        "video_name": UNAV,
        "duration": 60.0,
        "annotation": [
            {
                "event_num": 1,
                "AV Temporal Reasoning": [
                    {
                        "Q": "When is the moment man makes sound and is visible?",
                        "A": "<answer>\n<object>man</object>\n<when>[13.1, 26.2]</when>\n</answer>",
                    }
                ],
                "AV Spatial Reasoning": [
                    {
                        "Q": "What visible object(s) make sound between 13.1 and 16.2, and where is/are they?",
                        "A": "<answer>\n<object>man</object>\n<where>\n13.1: [100.0, 40.0, 220.0, 240.0]\n"
                        "14.1: [100.0, 40.0, 220.0, 240.0]\n15.1: [102.0, 41.0, 221.0, 240.0]\n</where>\n</answer>",
                    }
                ],
                "AV ST Reasoning": [
                    {
                        "Q": 'When is the moment man makes sound and is visible, and where is the "man"?',
                        "A": "<answer>\n<object>man</object>\n<when>[13.1, 15.2]</when>\n<where>\n"
                        "13.1: [100.0, 40.0, 220.0, 240.0]\n14.1: [100.0, 40.0, 220.0, 240.0]\n</where>\n</answer>",
                    }
                ],
            }
        ],
    },
    {
        "video_name": DOG,
        "duration": 7.08,
        "annotation": [
            {
                "event_num": 1,
                "AV Temporal Reasoning": [
                    {
                        "Q": "When is the moment dog makes sound and is visible?",
                        "A": "<answer>\n<object>dog</object>\n<when>[0.5, 6.0]</when>\n</answer>",
                    }
                ],
            }
        ],
    },
]

N_QA = 4


def write_qa_file(directory: Path) -> Path:
    path = directory / "qa.json"
    path.write_text(json.dumps(OFFICIAL_QA, indent=2), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


TINY_FRAME_ARGS = ["--fps", "0.5", "--max-frames", "6", "--min-pixels", "3136", "--max-pixels", "12544"]


def write_silent_clip(path: Path, *, seconds: int = 3, fps: int = 8, size: tuple[int, int] = (96, 64)) -> Path:
    """A small MPEG-4 clip WITHOUT an audio stream (moving bright square on grey)."""
    import av
    import numpy as np

    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(seconds * fps):
            img = np.full((h, w, 3), 90, np.uint8)
            x = (i * 4) % (w - 16)
            img[20:36, x : x + 16] = 250
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
