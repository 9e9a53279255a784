"""Benchmark the metrics on the full official R-AVST test set with perturbed prediction sets.

For each prediction set it times the vectorised ``ravst`` protocol (``score_qa`` + ``aggregate``)
and, in the same run, a plain per-box Python-loop implementation of the same protocol (below);
both must give the same numbers. It also times the ``vstar`` protocol and the end-to-end
``evaluate`` (render -> parse lenient + strict -> score) on the GT set, and records peak memory.

``--whole-process`` instead times whole ``ravst eval`` processes (start-up, imports, model load,
scoring, writing) and their peak RSS, for 20 QAs and for the full set, with ``--similarity exact``
and with the default backend (cold: empty embedding cache; warm: the cache of the cold run), on
a prediction set derived from the GT answers (``perturb(..., "renamed")``: a third of the object
names get an adjective, so a cold cache must encode names it has never seen).

Usage::

    python benchmarks/bench_eval.py [--qa ../shared/data/r_avst/xml_test_QA.json]
        [--similarity exact|minilm|hybrid] [--repeat 3] [--seed 0]
    python benchmarks/bench_eval.py --whole-process [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ravst.evaluate import evaluate
from ravst.formats.official import read_official
from ravst.metrics import vstar
from ravst.metrics.ravst_protocol import QAScore, aggregate, score_batch, score_qa
from ravst.parsing import render_answer
from ravst.similarity import get_similarity
from ravst.types import Answer, QAItem, Span, Task, Track

ROOT = Path(__file__).resolve().parents[1]
QA = ROOT.parent / "shared" / "data" / "r_avst" / "xml_test_QA.json"

# ---------------------------------------------------------------------------------------------
# perturbed prediction sets


def _jitter_track(t: Track, rng: np.random.Generator, frac: float) -> Track:
    b = t.xyxy.copy()
    w = (b[:, 2] - b[:, 0])[:, None]
    h = (b[:, 3] - b[:, 1])[:, None]
    noise = rng.uniform(-frac, frac, size=b.shape) * np.concatenate([w, h, w, h], axis=1)
    return Track(t.name, t.times_s, np.where((w > 0) & (h > 0), b + noise, b))


def perturb(items: list[QAItem], kind: str, seed: int) -> list[Answer | None]:
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    by_task: dict[Task, list[QAItem]] = {}
    for it in items:
        by_task.setdefault(it.task, []).append(it)
    vocab = sorted({o for it in items for o in it.answer.objects})
    out: list[Answer | None] = []
    tracks: Any
    spans: Any
    for it in items:
        a = it.answer
        if kind == "gt":
            out.append(a)
        elif kind == "jitter":
            spans = []
            for s in a.spans:
                start = max(0.0, s.start_s + rng.uniform(-3, 3))
                spans.append(Span(start, max(start, s.end_s + rng.uniform(-3, 3))))
            out.append(Answer(a.objects, tuple(spans), tuple(_jitter_track(t, rng, 0.2) for t in a.tracks)))
        elif kind == "sparse_shift":
            # plural / article variants, every other row kept, times shifted by 0.3 s, and an extra
            # false-positive box on a third of the rows, several predicted intervals
            tracks = []
            for t in a.tracks:
                keep = np.arange(len(t)) % 2 == 0
                times = t.times_s[keep] + 0.3
                boxes = t.xyxy[keep]
                extra = rng.random(times.shape[0]) < 0.33
                times = np.concatenate([times, times[extra]])
                boxes = np.concatenate([boxes, boxes[extra] + 40.0])
                tracks.append(Track("the " + t.name + "s", times, boxes))
            spans = tuple(x for s in a.spans for x in (Span(s.start_s, (s.start_s + s.end_s) / 2),
                                                      Span((s.start_s + s.end_s) / 2 + 1, s.end_s + 2)))
            out.append(Answer(tuple("the " + o + "s" for o in a.objects), spans, tuple(tracks)))
        elif kind == "renamed":
            # every third object gets an adjective (a name no cache has seen); times and boxes kept
            def rename(n: str, k: int) -> str:
                return f"{_ADJECTIVES[k % len(_ADJECTIVES)]} {n}" if k % 3 == 0 else n

            out.append(Answer(tuple(rename(o, i) for i, o in enumerate(a.objects)), a.spans,
                              tuple(Track(rename(t.name, i), t.times_s, t.xyxy) for i, t in enumerate(a.tracks))))
        elif kind == "wrong_answer":
            other = prng.choice(by_task[it.task]).answer
            out.append(other)
        elif kind == "degraded":
            if prng.random() < 0.3:
                out.append(None)
                continue
            objects = tuple(prng.choice(vocab) if prng.random() < 0.3 else o for o in a.objects)
            tracks = tuple(
                _jitter_track(Track(objects[i] if i < len(objects) else t.name, t.times_s, t.xyxy), rng, 0.5)
                for i, t in enumerate(a.tracks)
            )
            spans = tuple(Span(s.start_s * 0.5, s.end_s * 1.2) for s in a.spans)
            out.append(Answer(objects, spans, tracks))
        else:
            raise ValueError(kind)
    return out


SETS = ("gt", "jitter", "sparse_shift", "wrong_answer", "degraded")
_ADJECTIVES = ("small", "large", "old", "shiny", "distant", "bright")

# ---------------------------------------------------------------------------------------------
# plain per-box Python loop implementation of the ravst protocol (the reference)


def py_iou(a, b) -> float:
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    area_a = max(a[2] - a[0], 0.0) * max(a[3] - a[1], 0.0)
    area_b = max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)
    union = area_a + area_b - inter
    return min(inter / union, 1.0) if union > 0 else 0.0


def py_temporal(spans, gt) -> float:
    merged: list[list[float]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    if not merged:
        return 0.0
    inter = sum(max(min(e, gt[1]) - max(s, gt[0]), 0.0) for s, e in merged)
    union = sum(e - s for s, e in merged) + max(gt[1] - gt[0], 0.0) - inter
    return inter / union if union > 0 else 0.0


def py_match(sim_rows: list[list[float]], tau: float) -> list[tuple[int, int]]:
    if not sim_rows or not sim_rows[0]:
        return []
    s = [[v if v >= tau else 0.0 for v in row] for row in sim_rows]
    r, c = linear_sum_assignment(s, maximize=True)
    return [(i, j) for i, j in zip(r.tolist(), c.tolist(), strict=True) if s[i][j] >= max(tau, 1e-300)]


def py_frames(pred: Track | None, gt: Track) -> list[float]:
    def nonempty(b) -> bool:
        return b[2] - b[0] > 0 and b[3] - b[1] > 0

    g: dict[float, list] = {}
    for t, b in zip(gt.times_s.tolist(), gt.xyxy.tolist(), strict=True):
        if nonempty(b):
            g.setdefault(t, []).append(b)
    p: dict[float, list] = {}
    if pred is not None:
        for t, b in zip(pred.times_s.tolist(), pred.xyxy.tolist(), strict=True):
            if nonempty(b):
                p.setdefault(t, []).append(b)
    ptimes = sorted(p)
    out = []
    for t in sorted(g):
        best_t, best_d = None, math.inf
        for pt in ptimes:
            d = abs(pt - t)
            if d < best_d:
                best_t, best_d = pt, d
        if best_t is None or best_d > 0.5 + 1e-9:
            out.append(0.0)
            continue
        gb, pb = g[t], p[best_t]
        m = [[py_iou(a, b) for b in pb] for a in gb]
        if len(gb) == 1 or len(pb) == 1:
            matched = max(max(row) for row in m)
        else:
            r, c = linear_sum_assignment(m, maximize=True)
            matched = sum(m[i][j] for i, j in zip(r.tolist(), c.tolist(), strict=True))
        out.append(matched / max(len(gb), len(pb)))
    return out


def py_score(item: QAItem, answer: Answer | None, sim) -> QAScore:
    a = answer if answer is not None else Answer()
    gt = item.answer
    f: dict = {"qa_id": item.qa_id, "kind": item.kind}
    if item.task is Task.TEMPORAL:
        f["parsed"] = answer is not None and bool(a.spans)
    elif item.task is Task.SPATIAL:
        f["parsed"] = answer is not None and (bool(a.objects) or bool(a.tracks))
    else:
        f["parsed"] = answer is not None and (bool(a.spans) or bool(a.tracks))
    if item.task is not Task.SPATIAL:
        f["t_iou"] = py_temporal([(s.start_s, s.end_s) for s in a.spans], (gt.span.start_s, gt.span.end_s))
    if item.task is Task.SPATIAL and gt.objects:
        names = [n for n in a.objects if n.strip()] if a.objects else [t.name for t in a.tracks if t.name.strip()]
        pairs = py_match([[sim(x, y) for y in gt.objects] for x in names], sim.tau) if names else []
        m = len(pairs)
        acc = m / len(gt.objects)
        prec = m / len(names) if names else 0.0
        f.update(object_acc=acc, object_precision=prec, object_f1=2 * acc * prec / (acc + prec) if m else 0.0,
                 n_gt_objects=len(gt.objects), n_pred_objects=len(names), n_matched_objects=m)
    if item.task is Task.TEMPORAL:
        return QAScore(**f)
    # track assignment: names (one to one, >= tau), then order
    assigned = [-1] * len(gt.tracks)
    named = [i for i, t in enumerate(a.tracks) if t.name.strip()]
    used = set()
    if named and gt.tracks:
        for r, c in py_match([[sim(a.tracks[i].name, g.name) for g in gt.tracks] for i in named], sim.tau):
            assigned[c] = named[r]
            used.add(named[r])
    by_order = item.task is Task.SPATIOTEMPORAL
    left = [i for i in range(len(a.tracks)) if i not in used and (by_order or not a.tracks[i].name.strip())]
    free = [j for j in range(len(gt.tracks)) if assigned[j] < 0]
    for j, i in zip(free, left, strict=False):
        assigned[j] = i
    v, h3, h5, n = [], [], [], 0
    for j, g in enumerate(gt.tracks):
        frames = py_frames(a.tracks[assigned[j]] if assigned[j] >= 0 else None, g)
        if not frames:
            continue
        n += len(frames)
        v.append(sum(frames) / len(frames))
        h3.append(sum(x >= 0.3 for x in frames) / len(frames))
        h5.append(sum(x >= 0.5 for x in frames) / len(frames))
    if not v:
        f.update(spatial_excluded=True)
    else:
        f.update(v_iou=sum(v) / len(v), ap=(sum(h3) / len(h3), sum(h5) / len(h5)), n_frames=n)
    return QAScore(**f)


# ---------------------------------------------------------------------------------------------


def max_diff(a: list[QAScore], b: list[QAScore]) -> float:
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        for k in ("t_iou", "object_acc", "object_precision", "object_f1", "v_iou"):
            u, w = getattr(x, k), getattr(y, k)
            if (u is None) != (w is None):
                return math.inf
            if u is not None:
                worst = max(worst, abs(u - w))
        if (x.ap is None) != (y.ap is None) or x.spatial_excluded != y.spatial_excluded or x.parsed != y.parsed:
            return math.inf
        if x.ap is not None:
            worst = max(worst, *(abs(u - w) for u, w in zip(x.ap, y.ap, strict=True)))
    return worst


CPU: dict[str, float] = {}


def best_of(fn, repeat: int, label: str = "") -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs (CPU time of that process in CPU[label])."""
    best, out, cpu = math.inf, None, math.inf
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    CPU[label] = cpu
    return best, out


# ---------------------------------------------------------------------------------------------
# whole-process ravst eval


def _subset_gt(qa: Path, n_qas: int, out: Path) -> int:
    """The first videos of the official file holding at least ``n_qas`` QAs; returns the QA count."""
    data = json.loads(qa.read_text())
    keep, n = [], 0
    keys = ("AV Temporal Reasoning", "AV Spatial Reasoning", "AV ST Reasoning")
    for video in data:
        keep.append(video)
        n += sum(len(e.get(k, [])) for e in video["annotation"] for k in keys)
        if n >= n_qas:
            break
    out.write_text(json.dumps(keep))
    return n


def _write_preds(items: list[QAItem], answers: list[Answer | None], out: Path) -> None:
    with out.open("w") as f:
        for it, a in zip(items, answers, strict=True):
            f.write(json.dumps({"qa_id": it.qa_id, "text": "" if a is None else render_answer(a)}) + "\n")


def _run_eval(gt: Path, pred: Path, similarity: str, cache: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one ``python -m ravst.cli eval`` process."""
    env = {**os.environ, "RAVST_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "ravst.cli", "eval", "--gt", str(gt), "--pred", str(pred),
           "--similarity", similarity, "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def whole_process(qa: Path, seed: int, repeat: int) -> int:
    from ravst.similarity import DEFAULT_BACKEND

    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}; load average {os.getloadavg()[0]:.1f}; "
          f"best of {repeat} (cold: a fresh cache each try)")
    print()
    print(f"| QAs | --similarity exact s | MiB | {DEFAULT_BACKEND} cold cache s | MiB | {DEFAULT_BACKEND} warm cache s | MiB | "
          "warm / exact |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for n_qas in (20, None):
            gt = qa if n_qas is None else t / "gt20.json"
            n = None if n_qas is None else _subset_gt(qa, n_qas, gt)
            items = read_official(gt)
            n = len(items)
            pred = t / f"pred{n}.jsonl"
            _write_preds(items, perturb(items, "renamed", seed), pred)
            res: dict[str, tuple[float, float]] = {}
            for label, sim in (("exact", "exact"), ("cold", DEFAULT_BACKEND), ("warm", DEFAULT_BACKEND)):
                best = (math.inf, 0.0)
                for k in range(repeat):
                    cache = t / (f"cache{n}_{k}" if label == "cold" else f"cache{n}_0")
                    wall, rss = _run_eval(gt, pred, sim, cache)
                    best = min(best, (wall, rss))
                res[label] = best
            print(f"| {n} | {res['exact'][0]:.2f} | {res['exact'][1]:.0f} | {res['cold'][0]:.2f} | {res['cold'][1]:.0f} | "
                  f"{res['warm'][0]:.2f} | {res['warm'][1]:.0f} | {res['warm'][0] / res['exact'][0]:.2f}x |")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qa", type=Path, default=QA)
    ap.add_argument("--similarity", default="exact", choices=["exact", "minilm", "hybrid"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--whole-process", action="store_true", help="time whole ravst eval processes instead")
    args = ap.parse_args()
    if args.whole_process:
        return whole_process(args.qa, args.seed, args.repeat)
    items = read_official(args.qa)
    sim = get_similarity(args.similarity)
    t0 = time.perf_counter()
    sets = {k: perturb(items, k, args.seed) for k in SETS}
    names = {o for it in items for o in it.answer.objects} | {t.name for it in items for t in it.answer.tracks}
    for answers in sets.values():
        for a in answers:
            if a is not None:
                names |= set(a.objects) | {t.name for t in a.tracks}
    sim.warm(names)
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, numpy {np.__version__}; {len(items)} QAs; "
          f"similarity {args.similarity} (tau {sim.tau}); model load + warm-up {time.perf_counter() - t0:.2f} s")
    print()
    print("| set | batch s | per-QA s | loop s | speed-up batch/loop (wall) | (CPU) | vstar per-QA s | "
          "max per-QA diff | same table | T m_tIoU | S ObjAcc | S m_vIoU | ST m_tIoU | ST m_vIoU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    worst_ratio = math.inf
    for name, answers in sets.items():
        parsed = [None if a is None else SimpleNamespace(answer=a) for a in answers]
        tb, bat = best_of(lambda p=parsed: score_batch(items, p, sim), args.repeat, "batch")
        tv, vec = best_of(lambda p=parsed: [score_qa(it, x, sim) for it, x in zip(items, p, strict=True)],
                          args.repeat)
        tl, ref = best_of(lambda ans=answers: [py_score(it, a, sim) for it, a in zip(items, ans, strict=True)],
                          max(1, args.repeat - 2), "loop")
        ts, _ = best_of(lambda p=parsed: [vstar.score_qa(it, x, sim) for it, x in zip(items, p, strict=True)],
                        args.repeat)
        agg_b, agg_v, agg_r = aggregate(bat), aggregate(vec), aggregate(ref)
        diff = max(max_diff(vec, ref), max_diff(bat, ref))
        same = agg_b == agg_v == agg_r
        worst_ratio = min(worst_ratio, tl / tb)
        t = agg_b
        print(f"| {name} | {tb:.4f} | {tv:.3f} | {tl:.3f} | {tl / tb:.1f}x | {CPU['loop'] / CPU['batch']:.1f}x | "
              f"{ts:.3f} | {diff:.1e} | {same} | "
              f"{t['temporal']['m_tIoU']:.2f} | {t['spatial']['object_acc']:.2f} | {t['spatial']['m_vIoU']:.2f} | "
              f"{t['spatiotemporal']['m_tIoU']:.2f} | {t['spatiotemporal']['m_vIoU']:.2f} |")
        if not same or diff > 1e-9:
            print(f"MISMATCH in set {name}")
            return 1
    tracemalloc.start()
    parsed = [SimpleNamespace(answer=a) for a in sets["jitter"]]
    aggregate(score_batch(items, parsed, sim))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    te, res = best_of(lambda: evaluate(items, None, similarity=sim), 1)
    print()
    print(f"slowest-set speed-up: {worst_ratio:.1f}x; peak traced memory of one vectorised pass "
          f"(batch, jitter set): {peak / 2**20:.1f} MiB; process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    secs = res.metrics["seconds"]  # type: ignore[attr-defined]
    print(f"end-to-end evaluate(--pred gt): {te:.2f} s (parse lenient+strict {secs['parse']:.2f} s, "
          f"score lenient+strict + breakdowns {secs['score']:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
