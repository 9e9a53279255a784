"""The ``ravst`` command line: one sub-command per concern, each owned by its module.

Every module named in ``COMMANDS`` exposes ``add_arguments(parser)`` and ``run(args) -> int``;
heavy imports (torch, transformers) happen inside ``run`` so that ``ravst --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("ravst.evaluate", "score predictions against ground truth"),
    "infer": ("ravst.infer", "run a Video-LLM or baseline on QAs and write predictions"),
    "build": ("ravst.pipeline.cli", "dataset construction stages"),
    "train": ("ravst.train.cli", "AVST-Zero GRPO training and the SFT baseline"),
    "review": ("ravst.review.cli", "human quality-control web app, kappa and export"),
    "judge": ("ravst.judge", "score every QA 1-4 with a Video-LLM (the paper's automated quality score)"),
    "synth": ("ravst.synth", "procedural audio-visual clips with exact ground truth"),
    "demo": ("ravst.demo", "run the whole toolkit on a small synthetic set"),
    "report": ("ravst.report.cli", "HTML report of one or more evaluations"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ravst", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and exc.name.startswith("ravst"):
                continue  # that part of the toolkit is not in this checkout
            raise
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args))


if __name__ == "__main__":
    raise SystemExit(main())
