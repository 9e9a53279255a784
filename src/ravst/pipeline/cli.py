"""``ravst build STAGE``: run one dataset-construction stage (or ``all``) from a config file.

Options given on the command line override the config file (``--out``, ``--annotations``,
``--videos``, ``--engine``, ``--analyzer``, ``--detector``, ``--model``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

from ravst.pipeline.config import ANALYZER_BACKENDS, DETECTOR_BACKENDS

log = logging.getLogger(__name__)

STAGE_NAMES = ("filter", "analyze", "annotate", "qa", "split", "stats", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=STAGE_NAMES, help="stage to run (all: every stage in order)")
    parser.add_argument("--config", help="YAML or JSON config (sections filter/analyze/annotate/qa/split/stats)")
    parser.add_argument("--out", help="output folder (config out_dir)")
    parser.add_argument("--annotations", help="UnAV-100-style annotation JSON (config annotations)")
    parser.add_argument("--videos", help="folder of the videos (config videos_dir)")
    parser.add_argument("--engine", choices=("local", "ray"), help="run analyze/annotate in-process or as Ray Data jobs")
    parser.add_argument("--analyzer", choices=ANALYZER_BACKENDS,
                        help="analyze.backend (rules: label-only baseline; video-llm: Box 1 + the event's frames)")
    parser.add_argument("--detector", choices=DETECTOR_BACKENDS,
                        help="annotate.backend (default grounding-dino, the paper's; opencv: people-only baseline)")
    parser.add_argument("--model", help="model of the chosen --analyzer / --detector (path, hub id or API model name); "
                                        "with `all` or `annotate` and no --analyzer: the detector's")
    parser.add_argument("--sam2", help="annotate.sam2_model: a local SAM2 video model folder, 'auto' or 'none'")
    parser.add_argument("--subset", action="append", help="keep only this UnAV-100 subset (repeatable)")
    parser.add_argument("--hf", action="store_true",
                        help="split (and all): also write BUILD/split/hf/, a Hugging Face dataset folder "
                             "(config split.hf; split.hf_videos: symlink, copy or none)")
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
    if getattr(args, "hf", False):
        top["split"] = dataclasses.replace(cfg.split, hf=True)
    if args.subset:
        top["filter"] = dataclasses.replace(cfg.filter, subsets=tuple(args.subset))
    if args.analyzer or (args.model and args.stage == "analyze"):
        changes = {"backend": args.analyzer} if args.analyzer else {}
        if args.model:
            changes["model"] = args.model
        top["analyze"] = dataclasses.replace(cfg.analyze, **changes)
    if args.detector or args.sam2 is not None or (args.model and args.stage in ("annotate", "all")
                                                  and not args.analyzer):
        changes = {"backend": args.detector} if args.detector else {}
        if args.model and (args.detector or not args.analyzer):
            changes["model"] = args.model
        if args.sam2 is not None:
            changes["sam2_model"] = args.sam2
        top["annotate"] = dataclasses.replace(cfg.annotate, **changes)
    return dataclasses.replace(cfg, **top)


def run(args: argparse.Namespace) -> int:
    from ravst.pipeline.config import StartupError
    from ravst.pipeline.stages import STAGES, build_provenance, run_all, stage_failed

    try:
        cfg = _config(args)
        progress = not args.no_progress
        results = run_all(cfg, progress=progress) if args.stage == "all" else {
            args.stage: STAGES[args.stage](cfg, progress=progress)}
    except StartupError as exc:
        log.error("%s", exc)
        return 2
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1
    from ravst.pipeline.outcome import failed_videos_line, stage_lines

    code = 0
    for name, result in results.items():
        if stage_failed(result):
            log.error("%s: all %d record(s) failed; see %s (a re-run retries them)",
                      name, result.num_failed, result.failures_path)
            code = 1
    not_run: tuple[str, ...] = ()
    if args.stage == "all" and code:  # run_all stopped after a stage where every record failed
        wanted = [n for n in STAGES if n != "annotate" or cfg.videos_dir]
        not_run = tuple(wanted[wanted.index(list(results)[-1]) + 1:])
    for level, line in stage_lines(results, cfg.out_dir, not_run):
        log.log(level, "%s", line)
    if args.stage != "filter":
        for line in build_provenance(cfg.out_dir)["warnings"]:
            log.warning("this build's ground truth is a baseline: %s (marked in the manifests, qa/summary.json, "
                        "the QA sidecar and reports)", line)
    failed = failed_videos_line(results, cfg.out_dir, code)
    if failed:  # the last line of the run
        log.warning("%s", failed)
    return code
