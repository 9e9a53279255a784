"""``ravst build STAGE``: run one dataset-construction stage (or ``all``) from a config file.

Options given on the command line override the config file (``--out``, ``--annotations``,
``--videos``, ``--engine``, ``--analyzer``, ``--detector``, ``--model``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

log = logging.getLogger(__name__)

STAGE_NAMES = ("filter", "analyze", "annotate", "qa", "split", "stats", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=STAGE_NAMES, help="stage to run (all: every stage in order)")
    parser.add_argument("--config", help="YAML or JSON config (sections filter/analyze/annotate/qa/split/stats)")
    parser.add_argument("--out", help="output folder (config out_dir)")
    parser.add_argument("--annotations", help="UnAV-100-style annotation JSON (config annotations)")
    parser.add_argument("--videos", help="folder of the videos (config videos_dir)")
    parser.add_argument("--engine", choices=("local", "ray"), help="run analyze/annotate in-process or as Ray Data jobs")
    parser.add_argument("--analyzer", choices=("rules", "openai", "transformers"), help="analyze.backend")
    parser.add_argument("--detector", choices=("opencv", "grounding-dino", "owlv2"), help="annotate.backend")
    parser.add_argument("--model", help="model of the chosen --analyzer / --detector (path, hub id or API model name)")
    parser.add_argument("--subset", action="append", help="keep only this UnAV-100 subset (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _config(args: argparse.Namespace) -> Any:
    from ravst.pipeline.config import PipelineConfig, load_config

    cfg = load_config(args.config) if args.config else PipelineConfig()
    top: dict[str, Any] = {}
    if args.out:
        top["out_dir"] = args.out
    if args.annotations:
        top["annotations"] = args.annotations
    if args.videos:
        top["videos_dir"] = args.videos
    if args.engine:
        top["engine"] = args.engine
    if args.subset:
        top["filter"] = dataclasses.replace(cfg.filter, subsets=tuple(args.subset))
    if args.analyzer or (args.model and args.stage == "analyze"):
        changes = {"backend": args.analyzer} if args.analyzer else {}
        if args.model:
            changes["model"] = args.model
        top["analyze"] = dataclasses.replace(cfg.analyze, **changes)
    if args.detector or (args.model and args.stage == "annotate"):
        changes = {"backend": args.detector} if args.detector else {}
        if args.model:
            changes["model"] = args.model
        top["annotate"] = dataclasses.replace(cfg.annotate, **changes)
    return dataclasses.replace(cfg, **top)


def run(args: argparse.Namespace) -> int:
    from ravst.pipeline.stages import STAGES, run_all

    try:
        cfg = _config(args)
        progress = not args.no_progress
        results = run_all(cfg, progress=progress) if args.stage == "all" else {
            args.stage: STAGES[args.stage](cfg, progress=progress)}
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1
    from ravst.pipeline.stages import stage_failed

    code = 0
    for name, result in results.items():
        state = "up to date" if result.skipped else "done"
        log.info("%s: %s (%d ok, %d failed) -> %s", name, state, result.num_ok, result.num_failed, result.stage_dir)
        if stage_failed(result):
            log.error("%s: all %d record(s) failed; see %s (a re-run retries them)",
                      name, result.num_failed, result.failures_path)
            code = 1
    return code
