"""``ravst synth --out DIR``: the command line of :mod:`ravst.synth` (procedural audio-visual clips
with exact ground truth). Kept apart from it so that ``ravst synth --help`` imports no numpy.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

__all__ = ["add_arguments", "run"]

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--n", type=int, default=4, help="number of clips (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--width", type=int, default=160, help="frame width (default 160)")
    parser.add_argument("--height", type=int, default=120, help="frame height (default 120)")
    parser.add_argument("--fps", type=int, default=10, help="frames per second (default 10)")
    parser.add_argument("--min-duration", type=float, default=10.0, help="shortest clip, s")
    parser.add_argument("--max-duration", type=float, default=16.0, help="longest clip, s")
    parser.add_argument("--speech", action="store_true", help="allow spoken words (espeak-ng)")


def run(args: argparse.Namespace) -> int:
    from ravst.synth import SynthConfig, synthesize

    try:
        cfg = SynthConfig(width=args.width, height=args.height, fps=args.fps,
                          min_duration_s=args.min_duration, max_duration_s=args.max_duration,
                          speech=args.speech)
        if cfg.speech and shutil.which("espeak-ng") is None:
            raise ValueError("--speech needs espeak-ng on PATH (apt-get install espeak-ng)")
        synthesize(Path(args.out), args.n, args.seed, cfg)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    return 0
