"""Reward dynamics under GRPO, old rule vs format gate (issue 11, point 2).

A tiny random Qwen2.5-VL (``ravst.testing.tiny_qwen``, the model of ``ravst dev tiny-model``) is
warm-started with the project's SFT trainer (``ravst.train.sft``) on the ground-truth answers of
synthetic clips (``ravst synth``: exact GT; the official QAs have no clip in ``../shared/data``),
then trained with the project's GRPO trainer (``ravst.train.grpo``, TRL) twice from that one
checkpoint, with the same seed (``--seeds``: once per rule and seed):

- ``old``: ``rewards.content_requires_format: false`` -- object / temporal / spatial scored on the
  lenient parse whatever the format (the rule before issue 11);
- ``new``: the default, content pays only when the format reward is 1.

Each GRPO step records the format rate, the mean object / temporal / spatial reward and the total
the rule pays, plus both totals scored on the same completions (``total_gated``: what the new
rule would pay, ``total_ungated``: what the old rule would pay) through zero-weight reward
functions, so both runs are read on both scales. Output under ``--out``: ``curves.csv``,
``curves.json`` (config, machine, per-step rows, per-run goal check, final samples), ``table.md``
(printed too): block means over steps and seeds, then per run the first and last block and the
number of block-to-block moves where the format rate fell while the paid total rose.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_reward_dynamics.py \\
        [--sft-steps 50] [--grpo-steps 60] [--rule old|new|both] [--seeds 0 1 2] [--out out/bench_reward_dynamics]

Defaults (the run of docs/benchmarks.md): 4 clips of 6-8 s, temporal QAs only (with the
spatial / spatio-temporal box lists the tiny model had format rate 0 after 50 SFT steps, so no
rule can be told apart), 4 frames of about 112x84 px, exact object names. The clips and the
tiny model are built once under ``--out``/work and reused; x264 does not always write the same
bytes for a clip (docs/synth.md), so a fresh ``--out`` can start from another warm start.

A tiny random model says what the reward rule makes the optimiser do on this stack, not what a
7B model would learn.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("bench_reward_dynamics")

RULES = ("old", "new")
METRICS = ("format", "object", "temporal", "spatial", "total", "total_gated", "total_ungated")


@dataclass(frozen=True)
class Setup:
    """What both rules share: the clips, the model sizes, the training settings (SFT and GRPO
    learning rates, group size, completion budget)."""

    n_clips: int = 4
    clip_seed: int = 0
    seed: int = 0
    tasks: tuple[str, ...] = ("temporal",)
    max_frames: int = 4
    max_pixels: int = 112 * 112
    min_pixels: int = 56 * 56
    sft_lr: float = 1e-2
    sft_batch: int = 4
    grpo_lr: float = 1e-3
    num_generations: int = 4
    prompts_per_step: int = 2
    max_completion_length: int = 160
    beta: float = 0.04
    similarity: str = "exact"
    hidden_size: int = 64


# ----------------------------------------------------------------------------- data and model
def prepare(work: Path, setup: Setup) -> tuple[Path, Path, Path]:
    """The tiny model, the synthetic clips and their official-layout QA file (built once)."""
    from ravst.synth import SynthConfig, synthesize
    from ravst.testing.tiny_qwen import build_tiny_qwen_vl

    model = work / f"tiny_vl_h{setup.hidden_size}"
    if not (model / "config.json").exists():
        build_tiny_qwen_vl(model, seed=setup.seed, hidden_size=setup.hidden_size)
    synth = work / f"synth_n{setup.n_clips}_s{setup.clip_seed}"
    if not (synth / "qa.json").exists():
        synthesize(synth, setup.n_clips, setup.clip_seed,
                   SynthConfig(min_duration_s=6.0, max_duration_s=8.0, max_events=1))
    return model, synth / "qa.json", synth / "videos"


def _base(model: Path, qa: Path, videos: Path, out: Path, setup: Setup, steps: int, lr: float) -> dict[str, Any]:
    return {
        "model": {"path": str(model)},
        "data": {"qa_files": [str(qa)], "video_dir": str(videos), "tasks": list(setup.tasks), "fps": 1.0,
                 "max_frames": setup.max_frames, "max_pixels": setup.max_pixels, "min_pixels": setup.min_pixels},
        "output_dir": str(out),
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "max_steps": steps,
        "save_steps": 0,
        "learning_rate": lr,
        "seed": setup.seed,
        "logging_steps": 1,
    }


def warm_start(model: Path, qa: Path, videos: Path, out: Path, setup: Setup, steps: int) -> tuple[Path, list[float]]:
    """SFT on the GT answers (``ravst.train.sft``); returns the saved checkpoint and the losses."""
    from ravst.train.config import SFTRunConfig
    from ravst.train.sft import build_sft_trainer, save_final

    raw = _base(model, qa, videos, out, setup, steps, setup.sft_lr)
    raw["per_device_train_batch_size"] = setup.sft_batch
    raw["num_train_epochs"] = 1000.0  # max_steps decides
    trainer = build_sft_trainer(SFTRunConfig.from_dict(raw))
    trainer.train()
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    return save_final(trainer, out / "final"), losses


class _Recorder:
    """A zero-weight reward function: the project's total under another rule, on the same
    completions (and the last batch's texts, for the samples of the report)."""

    def __init__(self, config: Any, name: str) -> None:
        from ravst.rewards import RewardFunction, total_reward

        self.inner = RewardFunction(total_reward, config, name)
        self.__name__ = name
        self.last: list[tuple[str, str, float | None]] = []

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        from ravst.rewards import _text

        values = self.inner(completions, **kwargs)
        self.last = [(str(q), _text(c), v) for c, q, v in zip(completions, kwargs.get("qa_id") or [""] * len(values),
                                                               values, strict=True)]
        return values


def grpo_curve(warm: Path, qa: Path, videos: Path, out: Path, setup: Setup, rule: str, steps: int,
               seed: int = 0) -> tuple[list[dict[str, Any]], list[tuple[str, str, float | None]]]:
    """GRPO from the warm checkpoint under one rule and seed; per-step rows and the last batch's samples."""
    import dataclasses

    from ravst.train.config import GRPORunConfig
    from ravst.train.grpo import build_grpo_trainer

    if rule not in RULES:
        raise ValueError(f"rule {rule!r} is not one of {RULES}")
    raw = _base(warm, qa, videos, out, setup, steps, setup.grpo_lr)
    raw["seed"] = seed
    raw.update(num_generations=setup.num_generations,
               per_device_train_batch_size=setup.num_generations * setup.prompts_per_step,
               gradient_accumulation_steps=1, max_completion_length=setup.max_completion_length,
               beta=setup.beta, num_train_epochs=1000.0,
               rewards={"similarity": setup.similarity, "content_requires_format": rule == "new"})
    cfg = GRPORunConfig.from_dict(raw)
    space = cfg.data.coord_space
    gated = _Recorder(dataclasses.replace(cfg.rewards, content_requires_format=True, coord_space=space), "total_gated")
    ungated = _Recorder(dataclasses.replace(cfg.rewards, content_requires_format=False, coord_space=space),
                        "total_ungated")
    trainer = build_grpo_trainer(cfg, extra_rewards=[(gated, 0.0), (ungated, 0.0)])
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    rows = []
    for h in trainer.state.log_history:
        if "rewards/format/mean" not in h:
            continue
        row: dict[str, Any] = {"rule": rule, "seed": seed, "step": int(h["step"])}
        for m in METRICS:
            row[m] = _num(h.get(f"rewards/{m}/mean"))
        row["completion_tokens"] = _num(h.get("completions/mean_length"))
        row["kl"] = _num(h.get("kl"))
        row["zero_spread_groups"] = _num(h.get("frac_reward_zero_std"))  # groups giving no gradient
        rows.append(row)
    log.info("GRPO %s seed %d: %d steps in %.1f s", rule, seed, len(rows), wall)
    samples = [(q, t, v) for (q, t, v) in (ungated.last or [])]
    gated_last = {(q, t): v for q, t, v in gated.last}
    return rows, [(q, t, gated_last.get((q, t))) for q, t, _ in samples]


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if x != x else x  # NaN (no completion the component applies to) -> None


# ----------------------------------------------------------------------------- report
def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _cell(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _blocks(rows: Sequence[dict[str, Any]], rule: str, block: int) -> list[list[dict[str, Any]]]:
    """The rows of one rule (every seed) in blocks of ``block`` consecutive steps."""
    mine = [r for r in rows if r["rule"] == rule]
    steps = sorted({r["step"] for r in mine})
    return [[r for r in mine if r["step"] in steps[lo:lo + block]] for lo in range(0, len(steps), block)]


def table(rows: Sequence[dict[str, Any]], block: int) -> str:
    """Markdown: per rule, means over blocks of ``block`` steps (and over the seeds)."""
    cell = _cell

    head = ("| rule | steps | format rate | object | temporal | spatial | total (paid) | total gated | "
            "total ungated | completion tokens | groups with zero reward spread |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for rule in RULES:
        for chunk in _blocks(rows, rule, block):
            span = f"{min(r['step'] for r in chunk)}-{max(r['step'] for r in chunk)}"
            vals = [cell(_mean([r[m] for r in chunk])) for m in METRICS]
            tokens = cell(_mean([r["completion_tokens"] for r in chunk]), 1)
            flat = cell(_mean([r["zero_spread_groups"] for r in chunk]), 2)
            lines.append(f"| {rule} | {span} | " + " | ".join(vals) + f" | {tokens} | {flat} |")
    return "\n".join(lines)


def goal_rows(rows: Sequence[dict[str, Any]], block: int) -> list[dict[str, Any]]:
    """Per (rule, seed): format and paid total of the first and last block, and the number of
    block-to-block moves where the format rate fell while the paid total rose (the issue's goal:
    format rises, and total does not rise while format falls)."""
    out = []
    for rule in RULES:
        for seed in sorted({r["seed"] for r in rows if r["rule"] == rule}):
            blocks = _blocks([r for r in rows if r["seed"] == seed], rule, block)
            fmt = [_mean([r["format"] for r in b]) or 0.0 for b in blocks]
            tot = [_mean([r["total"] for r in b]) or 0.0 for b in blocks]
            bad = sum(1 for i in range(1, len(blocks)) if fmt[i] < fmt[i - 1] and tot[i] > tot[i - 1])
            out.append({"rule": rule, "seed": seed, "format_first": fmt[0], "format_last": fmt[-1],
                        "total_first": tot[0], "total_last": tot[-1], "moves_format_down_total_up": bad,
                        "moves": len(blocks) - 1})
    return out


def goal_table(goals: Sequence[dict[str, Any]]) -> str:
    lines = ["| rule | seed | format rate first -> last block | total (paid) first -> last block | "
             "moves with format down and total up |", "|---|---:|---|---|---:|"]
    for g in goals:
        lines.append(f"| {g['rule']} | {g['seed']} | {_cell(g['format_first'])} -> {_cell(g['format_last'])} | "
                     f"{_cell(g['total_first'])} -> {_cell(g['total_last'])} | "
                     f"{g['moves_format_down_total_up']} / {g['moves']} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    import torch

    return {"date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_avg_1_5_15": [round(x, 2) for x in load], "platform": platform.platform()}


def run(out: Path, setup: Setup, sft_steps: int, grpo_steps: int, rules: Sequence[str],
        seeds: Sequence[int] = (0,)) -> dict[str, Any]:
    """The whole experiment; writes ``curves.csv``, ``curves.json``, ``table.md`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    started = machine()
    t0 = time.perf_counter()
    model, qa, videos = prepare(work, setup)
    warm, sft_losses = warm_start(model, qa, videos, work / f"sft_{sft_steps}", setup, sft_steps)
    sft_s = time.perf_counter() - t0
    rows: list[dict[str, Any]] = []
    samples: dict[str, list[tuple[str, str, float | None]]] = {}
    walls: dict[str, float] = {}
    for seed in seeds:
        for rule in rules:
            t1 = time.perf_counter()
            r, s = grpo_curve(warm, qa, videos, work / f"grpo_{rule}_s{seed}", setup, rule, grpo_steps, seed)
            walls[f"grpo_{rule}_s{seed}"] = round(time.perf_counter() - t1, 1)
            rows += r
            samples[f"{rule}_s{seed}"] = s
    block = max(1, grpo_steps // 6)
    goals = goal_rows(rows, block)
    md = table(rows, block) + "\n\n" + goal_table(goals)
    from ravst.rewards import COUNTERS

    report = {
        "setup": setup.__dict__ | {"tasks": list(setup.tasks)}, "sft_steps": sft_steps, "grpo_steps": grpo_steps,
        "rules": list(rules), "grpo_seeds": list(seeds), "sft_seed": setup.seed, "machine_start": started, "machine_end": machine(),
        "wall_s": {"prepare_and_sft": round(sft_s, 1), **walls},
        "sft_loss_first_last": [sft_losses[0], sft_losses[-1]] if sft_losses else None,
        "reward_counters": dict(COUNTERS), "goals": goals, "rows": rows,
        "final_samples": {k: [{"qa_id": q, "text": t, "total_gated": g} for q, t, g in v[:8]]
                          for k, v in samples.items()},
        "table_block_steps": block,
    }
    (out / "curves.json").write_text(json.dumps(report, indent=1))
    with (out / "curves.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["rule", "seed", "step", *METRICS, "completion_tokens", "kl", "zero_spread_groups"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "table.md").write_text(md + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sft-steps", type=int, default=50)
    p.add_argument("--grpo-steps", type=int, default=60)
    p.add_argument("--rule", choices=(*RULES, "both"), default="both")
    p.add_argument("--out", type=Path, default=Path("out/bench_reward_dynamics"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="GRPO seeds (each rule runs once per seed, from the one warm start of seed 0)")
    p.add_argument("--clips", type=int, default=Setup.n_clips, help="synthetic clips (3-7 QAs each)")
    p.add_argument("--max-completion-length", type=int, default=Setup.max_completion_length)
    p.add_argument("--tasks", nargs="+", default=list(Setup.tasks), choices=("temporal", "spatial", "spatiotemporal"))
    p.add_argument("--sft-lr", type=float, default=Setup.sft_lr)
    p.add_argument("--grpo-lr", type=float, default=Setup.grpo_lr)
    p.add_argument("--hidden-size", type=int, default=Setup.hidden_size, help="tiny model width")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.sft_steps < 1 or args.grpo_steps < 1:
        log.error("--sft-steps and --grpo-steps must be >= 1")
        return 2
    import torch

    torch.set_num_threads(args.threads)
    setup = Setup(n_clips=args.clips, max_completion_length=args.max_completion_length, sft_lr=args.sft_lr,
                  grpo_lr=args.grpo_lr, hidden_size=args.hidden_size, tasks=tuple(args.tasks))
    rules = RULES if args.rule == "both" else (args.rule,)
    report = run(args.out, setup, args.sft_steps, args.grpo_steps, rules, args.seeds)
    counters = report["reward_counters"]
    if counters.get("error") or counters.get("bad_qa"):
        log.warning("reward errors during the run: %s (see the log)", counters)
    print((args.out / "table.md").read_text())
    print(json.dumps({"wall_s": report["wall_s"], "machine_end": report["machine_end"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
