"""Start-up time of the ``ravst`` command line: every ``--help`` and a do-nothing build re-run.

    .venv/bin/python benchmarks/bench_cli.py [--repeat 7] [--src SRC_DIR]

Each figure is the best of ``--repeat`` wall-clock runs of a fresh process (the best, not the
mean: on a shared machine the others measure the neighbours). The commands measured are
``ravst --help``, ``ravst CMD --help`` for every command of ``ravst.cli.COMMANDS`` and
``ravst CMD SUB --help`` for every sub-command (``build split``, ``train grpo``, ...), found by
walking the parser. Then a small build is made once (``ravst synth`` clips, or the real UnAV-100
clip of ``../shared/data/videos`` when present; rules analyzer, opencv detector) and
``ravst build all`` is re-run on the finished build: every stage is up to date, nothing is
computed. Also printed: an empty interpreter and ``import numpy`` as references.
``--src`` measures another source tree (e.g. an older checkout's ``src``) the same way, for a
before/after on the same machine at the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = ROOT.parent / "shared" / "data" / "videos"
REAL_CLIP = "unav100_--HuBNHXu9I"  # its UnAV-100 GT: three "man speaking" segments


def _ravst() -> list[str]:
    script = Path(sys.executable).with_name("ravst")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ravst.cli"]


def _env(src: str) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def best_of(argv: list[str], repeat: int, env: dict[str, str], cwd: Path | None = None) -> float:
    """Best wall time (s) of ``repeat`` runs; a non-zero exit is an error."""
    subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)  # warm the page cache, .pyc
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
        best = min(best, time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return best


def help_commands() -> list[list[str]]:
    """``[]``, ``[cmd]`` and ``[cmd, sub]`` for every command and sub-command of the parser."""
    from ravst.cli import COMMANDS, build_parser

    out: list[list[str]] = [[]]
    for name in COMMANDS:
        out.append([name])
        parser = build_parser(name)
        command = _subparsers(parser)[name]
        out += [[name, sub] for sub in _subparsers(command)]
    return out


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
        if action.dest == "stage" and action.choices:  # ravst build STAGE: a positional with choices
            return {str(c): parser for c in action.choices}
    return {}


def make_build(work: Path, env: dict[str, str]) -> tuple[Path, str]:
    """A finished build under ``work``; returns its config and a description."""
    ravst = _ravst()
    clip = SHARED_VIDEOS / f"{REAL_CLIP}.mp4"
    if clip.is_file():
        videos = work / "videos"
        videos.mkdir()
        shutil.copy(clip, videos / clip.name)
        annotations = work / "unav100.json"
        segments = [[0.0, 10.235], [13.139, 26.235], [28.685, 60.0]]
        annotations.write_text(json.dumps({"version": "bench", "database": {REAL_CLIP: {
            "duration": 60.0, "subset": "test",
            "annotations": [{"segment": s, "label": "man speaking", "label_id": 0} for s in segments]}}}))
        extra = ""
        what = f"1 real clip ({clip.name}, 60 s, 3 events)"
    else:
        subprocess.run([*ravst, "synth", "--out", str(work / "syn"), "--n", "2"], env=env, check=True,
                       capture_output=True)
        videos, annotations = work / "syn" / "videos", work / "syn" / "unav100.json"
        extra = f"analyze:\n  captions_csv: {work / 'syn' / 'captions.csv'}\n"
        what = "2 `ravst synth` clips"
    config = work / "build.yaml"
    config.write_text(f"out_dir: {work / 'build'}\nannotations: {annotations}\nvideos_dir: {videos}\n"
                      f"{extra}annotate:\n  backend: opencv\n")
    subprocess.run([*ravst, "build", "all", "--config", str(config), "--no-progress"], env=env, check=True,
                   capture_output=True)
    return config, what


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per command (best is reported)")
    parser.add_argument("--src", default=str(ROOT / "src"), help="source tree to measure (default: this one's)")
    args = parser.parse_args()
    env = _env(args.src)
    print(f"source tree: {args.src}")
    ravst = _ravst()
    print(f"load average at start: {os.getloadavg()}")
    for code in ("pass", "import numpy"):
        label = f"python -c '{code}'"
        print(f"{label:40s} {best_of([sys.executable, '-c', code], args.repeat, env) * 1000:7.0f} ms")
    worst = 0.0
    for words in help_commands():
        elapsed = best_of(ravst + words + ["--help"], args.repeat, env)
        worst = max(worst, elapsed)
        print(f"{' '.join(['ravst', *words, '--help']):40s} {elapsed * 1000:7.0f} ms")
    print(f"{'slowest --help':40s} {worst * 1000:7.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        config, what = make_build(Path(tmp), env)
        elapsed = best_of([*ravst, "build", "all", "--config", str(config), "--no-progress"], args.repeat, env)
        print(f"{'ravst build all (finished build)':40s} {elapsed * 1000:7.0f} ms   ({what})")
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
