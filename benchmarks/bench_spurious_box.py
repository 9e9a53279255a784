"""Issue 12, bug 5: what extra boxes cost under the ravst protocol, measured on the official test set.

Three predictions built from the GT of every spatial and spatio-temporal QA of
``xml_test_QA.json``: (a) the GT boxes plus boxes at seconds where the GT has none (every second
of the video without a GT box, the GT box of the nearest GT second copied there); (b) the GT
boxes plus ONE random box per GT frame (uniform in the frame the GT boxes span, seed 0); (c) the
GT itself. Scored with ``--similarity exact``; prints m_vIoU, AP@0.3/0.5 and m_tube_vIoU of the
lenient parse for spatial and spatio-temporal QAs.

    python benchmarks/bench_spurious_box.py [--gt ../shared/data/r_avst/xml_test_QA.json]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from ravst.evaluate import evaluate
from ravst.formats.official import read_official
from ravst.parsing import render_answer
from ravst.similarity import get_similarity
from ravst.types import Answer, Prediction, Task, Track

ROOT = Path(__file__).resolve().parents[1]


def _extra_seconds(track: Track, duration_s: float) -> Track:
    keep = track.nonempty
    t, b = track.times_s[keep], track.xyxy[keep]
    if t.shape[0] == 0:
        return track
    have = set(np.round(t).tolist())
    new_t = [s for s in range(math.floor(duration_s) + 1) if float(s) not in have]
    nearest = [int(np.argmin(np.abs(t - s))) for s in new_t]
    times = np.concatenate([t, np.asarray(new_t, dtype=np.float64)])
    boxes = np.concatenate([b, b[nearest].reshape(-1, 4)])
    return Track(track.name, times, boxes)


def _random_box_per_frame(track: Track, rng: np.random.Generator) -> Track:
    keep = track.nonempty
    t, b = track.times_s[keep], track.xyxy[keep]
    if t.shape[0] == 0:
        return track
    frames = np.unique(t)
    w = max(float(b[:, 2].max()), 1.0)
    h = max(float(b[:, 3].max()), 1.0)
    x = rng.uniform(0, w, size=(frames.shape[0], 2))
    y = rng.uniform(0, h, size=(frames.shape[0], 2))
    extra = np.stack([x.min(1), y.min(1), x.max(1), y.max(1)], axis=1)
    return Track(track.name, np.concatenate([t, frames]), np.concatenate([b, extra]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=Path, default=ROOT.parent / "shared" / "data" / "r_avst" / "xml_test_QA.json")
    args = parser.parse_args()
    items = [it for it in read_official(args.gt) if it.task is not Task.TEMPORAL]
    rng = np.random.default_rng(0)
    variants = {
        "GT itself": lambda it: it.answer,
        "GT + boxes at seconds without a GT box": lambda it: Answer(
            it.answer.objects, it.answer.spans, tuple(_extra_seconds(t, it.duration_s) for t in it.answer.tracks)),
        "GT + one random box per frame": lambda it: Answer(
            it.answer.objects, it.answer.spans, tuple(_random_box_per_frame(t, rng) for t in it.answer.tracks)),
    }
    sim = get_similarity("exact")
    print(f"{len(items)} spatial + spatio-temporal QAs of {args.gt.name}, --similarity exact, lenient")
    print(f"{'prediction':42s} {'task':15s} {'m_vIoU':>7s} {'AP@0.3':>7s} {'AP@0.5':>7s} {'m_tube':>7s}")
    for label, make in variants.items():
        preds = [Prediction(it.qa_id, render_answer(make(it))) for it in items]
        tasks = evaluate(items, preds, similarity=sim).metrics["tasks"]
        for task in ("spatial", "spatiotemporal"):
            t = tasks[task]
            print(f"{label:42s} {task:15s} {t['m_vIoU']:7.2f} {t['AP@0.3']:7.2f} {t['AP@0.5']:7.2f} "
                  f"{t['m_tube_vIoU']:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
