"""QA selections shared by ``ravst eval`` and ``ravst infer``: ``--tasks`` and ``--subset balanced``.

The paper's Table 4 ablation uses "a test subset with a balanced ratio 1:1:1 of the three task
types". :func:`balanced_subset` draws it deterministically: for each task, the QA ids sorted,
shuffled by ``numpy.random.default_rng(seed)`` (one generator, tasks in the order temporal,
spatial, spatio-temporal), the first ``n`` kept, with ``n`` the size of the smallest task; the
selection keeps the input order. The ids of seed 0 on the official test set are listed in
``ravst/data/balanced_subset_seed0.txt`` (one per line).

>>> parse_tasks("spatial, temporal")
(<Task.TEMPORAL: 'temporal'>, <Task.SPATIAL: 'spatial'>)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ravst.types import QAItem, Task

__all__ = [
    "SUBSETS",
    "add_selection_arguments",
    "balanced_subset",
    "parse_tasks",
    "select",
    "shipped_balanced_ids",
]

SUBSETS = ("all", "balanced")
_TASK_ORDER = (Task.TEMPORAL, Task.SPATIAL, Task.SPATIOTEMPORAL)


def parse_tasks(text: str) -> tuple[Task, ...]:
    """``"temporal,spatial"`` -> the tasks in canonical order; ValueError naming a bad one."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError("--tasks: expected a comma list of temporal, spatial, spatiotemporal")
    known = {t.value: t for t in Task}
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"--tasks: unknown task {bad[0]!r}; expected some of {', '.join(known)}")
    wanted = {known[n] for n in names}
    return tuple(t for t in _TASK_ORDER if t in wanted)


def balanced_subset(items: Sequence[QAItem], seed: int = 0) -> list[QAItem]:
    """1:1:1 of the three tasks (as many of each as the smallest task has), deterministic."""
    import numpy as np

    rng = np.random.default_rng(seed)
    by_task = {t: sorted(it.qa_id for it in items if it.task is t) for t in _TASK_ORDER}
    n = min(len(v) for v in by_task.values())
    keep: set[str] = set()
    for task in _TASK_ORDER:
        ids = by_task[task]
        order = rng.permutation(len(ids))
        keep.update(ids[k] for k in order[:n].tolist())
    return [it for it in items if it.qa_id in keep]


def shipped_balanced_ids() -> list[str]:
    """The QA ids of the balanced subset of seed 0 on the official test set (shipped file)."""
    from importlib import resources

    text = resources.files("ravst").joinpath("data/balanced_subset_seed0.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def select(items: Sequence[QAItem], *, tasks: Sequence[Task] | None = None, subset: str = "all",
           seed: int = 0) -> list[QAItem]:
    """The QAs of ``tasks`` (None: all) in ``subset`` (``all`` or ``balanced``).

    The balanced subset is drawn from all tasks first, then restricted to ``tasks``, so
    ``--tasks temporal --subset balanced`` is the temporal third of the same subset.
    """
    if subset not in SUBSETS:
        raise ValueError(f"--subset: unknown subset {subset!r}; expected one of {', '.join(SUBSETS)}")
    chosen = balanced_subset(items, seed) if subset == "balanced" else list(items)
    if tasks is not None:
        wanted = set(tasks)
        chosen = [it for it in chosen if it.task in wanted]
    return chosen


def add_selection_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--tasks`` and ``--subset`` options (the subset's seed is the command's ``--seed``)."""
    parser.add_argument("--tasks", type=parse_tasks, default=None,
                        help="comma list of tasks to keep: temporal,spatial,spatiotemporal (default all)")
    parser.add_argument("--subset", default="all", choices=SUBSETS,
                        help="all QAs, or 'balanced': 1:1:1 of the three tasks (the paper's Table 4 subset), "
                             "drawn with --seed (seed 0: the ids in ravst/data/balanced_subset_seed0.txt)")
