"""Rewards per second: a GRPO batch of 8 prompts x 6 completions of 60 s spatio-temporal answers.

Each completion is a perturbed ground truth (shifted interval, jittered 1 Hz boxes over the
event, a wrong name now and then; one in six is unparsable prose), as a policy mid-training
emits. A "batch" is what the trainer calls per generation step: ``total`` + the four component
functions over the 48 completions (texts are new each batch, so every batch parses and scores
from scratch; the four components then hit the per-text cache). Compared with the ``official``
semantics (released R-AVST rewards: merged-interval IoU, best-IoU-per-GT-box at the rounded
second, word2vec mapping to the GT vocabulary) run the same way. The word2vec vectors here are
random (20,000 words x 300; GoogleNews is not available offline): lookup cost is the same.

    .venv/bin/python benchmarks/bench_rewards.py [--repeats 20] [--similarity exact|minilm] [--decimals 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ravst import rewards as R
from ravst.parsing import render_answer
from ravst.types import Answer, QAItem, Span, Task, Track

NAMES = ("man", "dog", "guitar", "car", "woman", "piano", "baby", "drum")


def make_items(rng: np.random.Generator) -> list[QAItem]:
    items = []
    for k in range(8):
        start = float(rng.uniform(0, 20))
        end = float(min(60.0, start + rng.uniform(20, 40)))
        times = np.arange(np.ceil(start), np.floor(end) + 1.0)
        x = rng.uniform(0, 400, size=len(times)).cumsum() % 400
        boxes = np.stack([x, x * 0.5, x + 120, x * 0.5 + 200], axis=1).round(1)
        gt = Answer((NAMES[k],), (Span(start, end),), (Track(NAMES[k], times, boxes),))
        items.append(QAItem(f"v{k}/0/spatiotemporal/0", f"v{k}", 60.0, 0, 1, Task.SPATIOTEMPORAL, 0,
                            f'When is the moment {NAMES[k]} makes sound and is visible, and where is the "{NAMES[k]}"?',
                            gt))
    return items


def completions(
    items: list[QAItem], rng: np.random.Generator, batch: int, decimals: int = 1
) -> tuple[list[str], list[QAItem]]:
    """48 completions; numbers rounded to ``decimals`` places like the official layout and model
    outputs (``decimals < 0``: full float repr, 17 significant digits, slower to parse)."""

    def rnd(x):
        return np.round(x, decimals) if decimals >= 0 else x

    texts, owners = [], []
    for item in items:
        gt = item.answer
        for g in range(6):
            if g == 5:
                texts.append(f"I think the {NAMES[batch % 8]} is somewhere around the middle, batch {batch}.")
            else:
                t = gt.tracks[0]
                shift = float(rng.uniform(-5, 5))
                start = float(rnd(max(0.0, gt.spans[0].start_s + shift)))
                span = Span(start, max(start, float(rnd(gt.spans[0].end_s + shift + 0.1 * batch))))
                name = gt.objects[0] if rng.random() < 0.8 else NAMES[int(rng.integers(8))]
                boxes = rnd(t.xyxy + rng.normal(0, 15, t.xyxy.shape))
                times = rnd(t.times_s + shift)
                texts.append(render_answer(Answer((name,), (span,), (Track(name, times, boxes),))))
            owners.append(item)
    return texts, owners


def official_config(tmp: Path, items: list[QAItem]) -> R.RewardConfig:
    import torch
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(1)
    vocab = sorted({n for it in items for n in it.answer.objects} | {"person", "cat", "violin"})
    torch.save({"gt_object_list": vocab, "gt_embeddings": torch.randn(len(vocab), 300)}, tmp / "vocab.pt")
    kv = KeyedVectors(vector_size=300)
    words = [f"w{i}" for i in range(20000)] + list(NAMES) + ["middle", "somewhere"]
    kv.add_vectors(words, rng.normal(size=(len(words), 300)).astype(np.float32))
    kv.save(str(tmp / "kv.kv"))
    return R.RewardConfig(mode="official", official_vocab=str(tmp / "vocab.pt"), official_word2vec=str(tmp / "kv.kv"))


def run(cfg: R.RewardConfig, items: list[QAItem], repeats: int, decimals: int) -> tuple[float, float, float]:
    funcs, _ = R.make_reward_functions(cfg)
    rng = np.random.default_rng(0)
    qa_cache = {it.qa_id: R.qa_json_of(it) for it in items}
    warm_texts, warm_owners = completions(items, rng, -1, decimals)
    for f in funcs:  # warm-up: imports, model / vectors loading, name embeddings
        f(warm_texts, qa=[qa_cache[o.qa_id] for o in warm_owners])
    per_batch, first = [], []
    for b in range(repeats):
        texts, owners = completions(items, rng, b, decimals)
        qa = [qa_cache[o.qa_id] for o in owners]
        t0 = time.perf_counter()
        funcs[0](texts, qa=qa)
        t1 = time.perf_counter()
        for f in funcs[1:]:
            f(texts, qa=qa)
        t2 = time.perf_counter()
        first.append(t1 - t0)
        per_batch.append(t2 - t0)
    n = len(items) * 6
    med = statistics.median(per_batch)
    return n / med, statistics.median(first) / n * 1e3, med / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--similarity", default="exact", choices=["exact", "minilm"])
    ap.add_argument("--decimals", type=int, default=1,
                    help="decimals of the numbers in the completions (official layout: 1); -1: full float repr")
    args = ap.parse_args()
    items = make_items(np.random.default_rng(0))
    print(f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}; "
          f"batch 8 prompts x 6 completions, {args.repeats} batches, median; numbers with "
          f"{'full repr' if args.decimals < 0 else f'{args.decimals} decimal(s)'}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("ravst (" + args.similarity + ")", R.RewardConfig(similarity=args.similarity)),
                ("official (word2vec)", official_config(Path(tmp), items))]
        print(f"{'semantics':22s} {'completions/s (5 funcs)':>24s} {'ms/completion: total':>22s} "
              f"{'ms/completion: 5 funcs':>24s}")
        for name, cfg in rows:
            rate, first_ms, all_ms = run(cfg, items, args.repeats, args.decimals)
            print(f"{name:22s} {rate:24.0f} {first_ms:22.3f} {all_ms:24.3f}")
    print(f"counters: {dict(R.COUNTERS)}")


if __name__ == "__main__":
    main()
