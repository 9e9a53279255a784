"""``ravst train grpo|sft --config FILE.yaml [--set key=value ...] [--dry-run]``.

``--set`` overrides one config entry (dotted path, YAML value), e.g.
``--set max_steps=50 --set rewards.no_temporal_reward=true --set data.fps=0.5``.
``--dry-run`` validates the config and builds the dataset (QA count per task), without a model;
for GRPO it loads the processor (no weights), checks the prompts against ``max_prompt_length``
and, in ``rewards.mode: official``, loads the vocabulary. A real run makes the same checks first,
before any model is loaded; a model that cannot be loaded (e.g. a hub id with no network) is one
error line saying how to point ``model.path`` at a local folder.
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


def _offline() -> bool:
    import os

    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


HUB_PROBE_TIMEOUT_S = 3.0
"""Seconds to wait for a TCP connection to the Hugging Face Hub before calling it unreachable."""


def hub_unreachable() -> str | None:
    """Why the Hugging Face Hub (``HF_ENDPOINT``, default huggingface.co) cannot be reached, or
    None when a TCP connection opens within ``HUB_PROBE_TIMEOUT_S`` (without this probe, loading
    a hub id with no network retries for minutes before it fails)."""
    import os
    import socket
    from urllib.parse import urlsplit

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parts = urlsplit(endpoint)
    host = parts.hostname or "huggingface.co"
    port = parts.port or (80 if parts.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{host}:{port} unreachable ({type(exc).__name__}: {exc})"


def model_load_error(path: str, exc: BaseException | None = None, unreachable: str | None = None) -> str:
    """The one line for a model (or processor) that cannot be loaded."""
    if Path(path).is_dir():
        first = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else type(exc).__name__
        return f"model.path {path}: the folder does not hold a loadable model/processor: {first}"
    why = ("HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set" if _offline() else
           f"no network to the Hugging Face Hub: {unreachable}" if unreachable else "no network to the Hugging Face Hub")
    return (f"model.path {path!r} is not a local folder and is not in the Hugging Face cache ({why}): download it "
            f"where there is network (e.g. `huggingface-cli download {path} --local-dir DIR`) and set "
            f"model.path to that folder (--set model.path=DIR)")


def _hub_model_missing(path: str) -> str | None:
    """The error line for a hub id that is neither a local folder nor cached while the hub is
    switched off (``HF_HUB_OFFLINE``) or cannot be reached; None when loading may go on."""
    if Path(path).is_dir():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = isinstance(try_to_load_from_cache(path, "config.json"), str)
    except ValueError:  # not a valid repo id either
        cached = False
    if cached:
        return None
    if _offline():
        return model_load_error(path)
    unreachable = hub_unreachable()
    return None if unreachable is None else model_load_error(path, unreachable=unreachable)


class _QuietHub:
    """Silences huggingface_hub's retry warnings while a model or processor loads."""

    def __enter__(self) -> None:
        self.loggers = [logging.getLogger(n) for n in ("huggingface_hub", "transformers", "urllib3")]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.CRITICAL)

    def __exit__(self, *_: object) -> None:
        for lg, level in zip(self.loggers, self.levels, strict=True):
            lg.setLevel(level)


def _check_prompts_dry(cfg: Any, dataset: Any) -> None:
    """Load the processor only (no weights) and check every prompt against
    ``max_prompt_length``, the check training makes after the model loads."""
    from transformers import AutoProcessor

    from ravst.train.grpo import check_prompt_lengths

    missing = _hub_model_missing(cfg.model.path)
    if missing:
        raise ValueError(missing)
    try:
        with _QuietHub():
            processor = AutoProcessor.from_pretrained(cfg.model.path)
    except (OSError, ValueError) as exc:
        raise ValueError(model_load_error(cfg.model.path, exc)) from None
    check_prompt_lengths(dataset, processor, cfg.max_prompt_length)


def _check_rewards(cfg: Any) -> None:
    """Official mode: the vocabulary (and a given word2vec file) load."""
    r = cfg.rewards
    if r.mode == "official":
        from ravst.released_reward import ReleasedMapper
        from ravst.word2vec import WordVectors

        mapper = ReleasedMapper(r.official_vocab, WordVectors.load(r.official_word2vec), r.official_tau)
        log.info("rewards official: %d vocabulary names (%s), word vectors %s", len(mapper.names),
                 r.official_vocab, mapper.wv.source)


def check_run(cfg: Any, command: str) -> Any:
    """The checks of a dry run, made before any model loads: the dataset builds (every video
    found or dropped with a count), rewards load, prompts fit. Returns the dataset."""
    from ravst.train.data import build_dataset

    ds = build_dataset(cfg.data)
    if command == "grpo":
        _check_rewards(cfg)
        _check_prompts_dry(cfg, ds)
    counts = Counter(ds["task"])
    log.info("config OK: %d QAs (%s); output_dir %s", len(ds),
             ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), cfg.output_dir)
    return ds


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
        check_run(cfg, command)
        if args.dry_run:
            return 0
        missing = _hub_model_missing(cfg.model.path)
        if missing:
            raise ValueError(missing)
        try:
            if command == "grpo":
                from ravst.train.grpo import run_grpo

                final = run_grpo(cfg)
            else:
                from ravst.train.sft import run_sft

                final = run_sft(cfg)
        except OSError as exc:  # a model, processor or checkpoint that cannot be read
            raise ValueError(model_load_error(cfg.model.path, exc)) from None
    except PositionMismatchError as exc:  # the model would not get the reference MRoPE positions
        log.error("%s", exc)
        return 2
    except ValueError as exc:
        log.error("%s", exc)
        return 1
    log.info("done: %s", final)
    return 0
