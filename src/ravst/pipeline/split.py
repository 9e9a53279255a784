"""Stage "split": train / test by video (no video in two splits), seeded, balanced by task.

Videos are shuffled with ``seed``; each goes to test when that moves the test split's counts of
temporal, spatial and spatio-temporal QAs closer (L1, relative to each target) to
``test_fraction`` of each task's total, else to train. Every task thus gets close to the same
test share, like the paper's Table 5 (test 663 / 664 / 306 of 3,326 / 3,330 / 1,510).

>>> from ravst.types import Answer, QAItem, Task
>>> qs = [QAItem(f"v{i}/0/temporal/0", f"v{i}", 10.0, 0, 1, Task.TEMPORAL, 0, "q", Answer())
...       for i in range(10)]
>>> s = split_items(qs, SplitConfig(test_fraction=0.2, seed=0))
>>> sorted(len(v) for v in s.values())
[2, 8]
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence

from ravst.pipeline.config import SplitConfig
from ravst.types import QAItem, Task

__all__ = ["split_counts", "split_items"]

_TASKS = (Task.TEMPORAL, Task.SPATIAL, Task.SPATIOTEMPORAL)


def split_items(items: Sequence[QAItem], cfg: SplitConfig) -> dict[str, list[QAItem]]:
    """``{"train": [...], "test": [...]}``, items in input order within each split."""
    per_video: dict[str, Counter[Task]] = defaultdict(Counter)
    for item in items:
        per_video[item.video][item.task] += 1
    totals = Counter(item.task for item in items)
    target = {t: cfg.test_fraction * totals[t] for t in _TASKS}
    videos = sorted(per_video)
    random.Random(cfg.seed).shuffle(videos)
    test: Counter[Task] = Counter()
    test_videos: set[str] = set()

    def cost(counts: Counter[Task]) -> float:
        return sum(abs(counts[t] - target[t]) / max(target[t], 1.0) for t in _TASKS)

    for video in videos:
        candidate = test + per_video[video]
        if cost(candidate) < cost(test):
            test = candidate
            test_videos.add(video)
    return {
        "train": [i for i in items if i.video not in test_videos],
        "test": [i for i in items if i.video in test_videos],
    }


def split_counts(splits: dict[str, list[QAItem]]) -> dict[str, dict[str, int]]:
    """Table 5-like counts: QAs per task (and videos) per split, plus a total row."""
    out: dict[str, dict[str, int]] = {}
    for name, items in [*splits.items(), ("total", [i for v in splits.values() for i in v])]:
        c = Counter(i.task.value for i in items)
        out[name] = {"videos": len({i.video for i in items}), **{t.value: c[t.value] for t in _TASKS},
                     "spatial_sounding": sum(1 for i in items if i.task is Task.SPATIAL and i.sounding),
                     "spatial_silent": sum(1 for i in items if i.task is Task.SPATIAL and not i.sounding),
                     "qas": len(items)}
    return out
