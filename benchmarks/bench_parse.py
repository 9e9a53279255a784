"""Timing of ``ravst.parsing.parse_answer`` on adversarial 1 MB strings and on real answers.

Run: ``python benchmarks/bench_parse.py [--size-mb 1] [--repeat 3]``. Prints one line per input
(best of ``--repeat`` wall times, lenient and strict mode) and, when the official test file is
present under ``../shared/data``, the time to parse all of its 1,638 answers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

from ravst.parsing import parse_answer


def adversarial_inputs(size: int) -> dict[str, str]:
    """Strings of ``size`` characters built to trip up tag/number/bracket scanning."""

    def fill(unit: str, head: str = "", tail: str = "") -> str:
        body = unit * max(1, (size - len(head) - len(tail)) // len(unit))
        return head + body + tail

    return {
        "open tags <answer>": fill("<answer>"),
        "unclosed <object>": fill("<object>"),
        "empty where blocks": fill("<where></where>", "<answer><object>x</object>"),
        "where rows": fill("1.0: [1.0, 2.0, 3.0, 4.0]\n", "<answer><object>x</object><where>\n"),
        "nested brackets": fill("[", "<answer><where>"),
        "bracket-colon": fill("[1:", "<answer><where>"),
        "digits": fill("1234567890", "<answer><when>"),
        "digit-dots": fill("1.", "<answer><when>"),
        "exponents": fill("1e5", "<answer><where>"),
        "tag-like '< /'": fill("< / "),
        "think unclosed": fill("<think> a <object>b</object> ", ""),
        "strict prefix then junk": fill(
            "0.0: [1.0, 2.0, 3.0, 4.0]\n", "<answer>\n<object>x</object>\n<where>\n", "<<<"),
        "words": fill("time ", "<answer><where>"),
        "newlines": fill("\n"),
        "random printable": _random_text(size),
    }


def _random_text(size: int) -> str:
    import random

    rng = random.Random(0)
    alphabet = "<>/[](){}:,.-0123456789 \nabcdefghijklmnopqrstuvwxyz\"'answer when where object think"
    pieces = ["<answer>", "</answer>", "<object>", "</object>", "<when>", "</when>", "<where>", "</where>"]
    out: list[str] = []
    n = 0
    while n < size:
        piece = rng.choice(pieces) if rng.random() < 0.05 else rng.choice(alphabet)
        out.append(piece)
        n += len(piece)
    return "".join(out)[:size]


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-mb", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = int(args.size_mb * 1_000_000)
    print(f"# python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          f"input size {size:,} characters; best of {args.repeat}")
    print(f"{'input':28s} {'lenient s':>10s} {'strict s':>10s}  issues (lenient)")
    worst = 0.0
    for name, text in adversarial_inputs(size).items():
        lenient = best_of(lambda text=text: parse_answer(text), args.repeat)
        strict = best_of(lambda text=text: parse_answer(text, strict=True), args.repeat)
        worst = max(worst, lenient, strict)
        issues = parse_answer(text).issues
        print(f"{name:28s} {lenient:10.3f} {strict:10.3f}  {len(issues)}: {'; '.join(issues)[:60]}")
    print(f"worst: {worst:.3f} s")
    official = Path(__file__).resolve().parents[2] / "shared" / "data" / "r_avst" / "xml_test_QA.json"
    if official.exists():
        answers = [
            qa["A"]
            for video in json.loads(official.read_text(encoding="utf-8"))
            for event in video["annotation"]
            for key, qas in event.items()
            if key != "event_num"
            for qa in qas
        ]
        total = sum(len(a) for a in answers)
        strict = best_of(lambda: [parse_answer(a, strict=True) for a in answers], args.repeat)
        lenient_only = best_of(lambda: [parse_answer(a.replace("\n", " ")) for a in answers], args.repeat)
        print(f"official answers: {len(answers)} ({total:,} chars): strict {strict:.3f} s, "
              f"lenient on the same answers with newlines removed (not strict, full lenient path) "
              f"{lenient_only:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
