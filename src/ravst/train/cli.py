"""``ravst train grpo|sft --config FILE.yaml [--set key=value ...] [--dry-run]``.

``--set`` overrides one config entry (dotted path, YAML value), e.g.
``--set max_steps=50 --set rewards.no_temporal_reward=true --set data.fps=0.5``.
``--dry-run`` validates the config and builds the dataset (QA count per task), without a model;
for GRPO it loads the processor (no weights) and checks the prompts against ``max_prompt_length``.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "apply_overrides", "run"]

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="train_command", metavar="{grpo,sft}")
    for name, text in (("grpo", "AVST-Zero: GRPO with format/object/temporal/spatial rewards"),
                       ("sft", "SFT baseline: the ground-truth answers as targets")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--config", type=Path, required=True, help="YAML config (see configs/)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config entry (dotted key, YAML value); repeatable")
        p.add_argument("--dry-run", action="store_true", help="validate the config and the data, train nothing")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``raw`` with each ``a.b.c=value`` applied (value parsed as YAML).

    >>> apply_overrides({"data": {"fps": 1.0}}, ["data.fps=0.5", "max_steps=3"])
    {'data': {'fps': 0.5}, 'max_steps': 3}
    """
    import yaml

    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"--set {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(value)
    return raw


def _load(path: Path, overrides: list[str], cls: type) -> Any:
    import yaml

    from ravst.train.config import _build

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read config: {exc}") from exc
    try:
        return _build(cls, apply_overrides(raw, overrides), cls.__name__)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _check_prompts_dry(cfg: Any, dataset: Any) -> None:
    """Dry run: load the processor only (no weights) and check every prompt against
    ``max_prompt_length``, the check training makes after the model loads."""
    from transformers import AutoProcessor

    from ravst.train.grpo import check_prompt_lengths

    try:
        processor = AutoProcessor.from_pretrained(cfg.model.path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"model.path {cfg.model.path}: cannot load the processor: {exc}") from exc
    check_prompt_lengths(dataset, processor, cfg.max_prompt_length)


def run(args: argparse.Namespace) -> int:
    from ravst.models.mrope import PositionMismatchError
    from ravst.train.config import GRPORunConfig, SFTRunConfig

    command = getattr(args, "train_command", None)
    if command not in ("grpo", "sft"):
        log.error("choose a training command: ravst train grpo|sft --config FILE")
        return 2
    cls = GRPORunConfig if command == "grpo" else SFTRunConfig
    try:
        cfg = _load(args.config, args.overrides, cls)
        if args.dry_run:
            from ravst.train.data import build_dataset

            ds = build_dataset(cfg.data)
            counts = Counter(ds["task"])
            if command == "grpo":
                _check_prompts_dry(cfg, ds)
            log.info("config OK: %d QAs (%s); output_dir %s", len(ds),
                     ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), cfg.output_dir)
            return 0
        if command == "grpo":
            from ravst.train.grpo import run_grpo

            final = run_grpo(cfg)
        else:
            from ravst.train.sft import run_sft

            final = run_sft(cfg)
    except PositionMismatchError as exc:  # the model would not get the reference MRoPE positions
        log.error("%s", exc)
        return 2
    except ValueError as exc:
        log.error("%s", exc)
        return 1
    log.info("done: %s", final)
    return 0
