"""``ravst compare RUN_A RUN_B``: the command line of :mod:`ravst.compare` (paired bootstrap of two
evaluations). Kept apart from it so that ``ravst compare --help`` imports no numpy.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", type=Path, help="evaluation directory A (written by 'ravst eval --out')")
    parser.add_argument("run_b", type=Path, help="evaluation directory B")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the replicates (default 0)")
    parser.add_argument("--mode", default="lenient", choices=["lenient", "strict"], help="parsing mode compared")
    parser.add_argument("--out", type=Path, default=None, help="write the comparison as JSON here")


def run(args: argparse.Namespace) -> int:
    from ravst.compare import _load_rows, compare_runs, format_comparison

    try:
        result = compare_runs(_load_rows(args.run_a), _load_rows(args.run_b), mode=args.mode,
                              n=args.bootstrap, seed=args.seed)
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1
    result["run_a"], result["run_b"] = str(args.run_a), str(args.run_b)
    sys.stdout.write(format_comparison(result, "A", "B"))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        log.info("wrote %s", args.out)
    return 0
