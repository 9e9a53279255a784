"""``ravst dev``: developer helpers.

``ravst dev tiny-model --family qwen2_5_vl --out DIR`` builds a tiny random model (hidden size 64,
2 layers, a tokenizer trained on the fly) with the real architecture and processor, offline, in
seconds: every model path of ravst (infer, train, --dump-inputs) runs on it on a CPU. Its answers
are random text; it stands in for real weights in examples and tests, never for results.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

FAMILIES = {
    "qwen2_5_vl": "build_tiny_qwen_vl",
    "qwen2_5_omni": "build_tiny_qwen_omni_full",
    "qwen2_5_omni_thinker": "build_tiny_qwen_omni",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dev_command", metavar="COMMAND", required=True)
    tiny = sub.add_parser("tiny-model", help="build a tiny random Qwen2.5-VL / Omni model offline",
                          description="Build a tiny random model with the real architecture and processor.")
    tiny.add_argument("--family", choices=sorted(FAMILIES), default="qwen2_5_vl",
                      help="qwen2_5_vl; qwen2_5_omni (the hub layout, Qwen2_5OmniModel); "
                           "qwen2_5_omni_thinker (thinker only)")
    tiny.add_argument("--out", type=Path, required=True, help="folder to write (config, weights, processor)")
    tiny.add_argument("--seed", type=int, default=0, help="random seed of the weights")


def run(args: argparse.Namespace) -> int:
    from ravst.testing import tiny_qwen

    build = getattr(tiny_qwen, FAMILIES[args.family])
    try:
        path = build(args.out, seed=args.seed)
    except OSError as err:
        log.error("%s: %s", args.out, err)
        return 2
    log.info("wrote a tiny random %s model to %s (random answers: for examples and tests only)", args.family, path)
    return 0
