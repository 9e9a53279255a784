"""The ``ravst`` command line: one sub-command per concern, each owned by its module.

Every module named in ``COMMANDS`` exposes ``add_arguments(parser)`` and ``run(args) -> int``;
heavy imports (torch, transformers) happen inside ``run`` so that ``ravst --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("ravst.evaluate", "score predictions against ground truth"),
    "infer": ("ravst.infer", "run a Video-LLM or baseline on QAs and write predictions"),
    "build": ("ravst.pipeline.cli", "dataset construction stages"),
    "train": ("ravst.train.cli", "AVST-Zero GRPO training and the SFT baseline"),
    "reward": ("ravst.reward_cli", "GRPO rewards of completions, as the trainer computes them"),
    "review": ("ravst.review.cli", "human quality-control web app, kappa and export"),
    "judge": ("ravst.judge", "score every QA 1-4 with a Video-LLM (the paper's automated quality score)"),
    "synth": ("ravst.synth_cli", "procedural audio-visual clips with exact ground truth"),
    "demo": ("ravst.demo", "run the whole toolkit on a small synthetic set"),
    "report": ("ravst.report.cli", "HTML report of one or more evaluations"),
    "compare": ("ravst.compare_cli", "paired difference of two evaluations with bootstrap intervals and p-values"),
    "export": ("ravst.export_cli", "export QAs as a Hugging Face dataset folder"),
    "dev": ("ravst.dev_cli", "developer helpers (a tiny random model for examples and tests)"),
}


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (the first word that is not an option), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``ravst`` parser. Every sub-command is listed; only ``only`` (all when None) gets its
    arguments, so that ``ravst --help`` and ``ravst CMD ...`` import one module at most.
    """
    parser = argparse.ArgumentParser(prog="ravst", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and exc.name.startswith("ravst"):
                continue  # that part of the toolkit is not in this checkout
            raise
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked (``importlib.metadata`` costs ~20 ms)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        sys.stdout.write(f"{parser.prog} {_version()}\n")  # stdout, as argparse's own version action
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ravst")
    except PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
        from ravst import __version__

        return str(__version__)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(words) or "")
    args = parser.parse_args(words)
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
