"""``ravst --help``, every ``ravst CMD [SUB] --help`` and a do-nothing build re-run import no heavy
module (numpy, scipy, torch, ...). Start-up TIME is measured in benchmarks/bench_cli.py, not here:
this checks ``sys.modules`` of a fresh interpreter, which does not depend on the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ravst.cli import COMMANDS

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("numpy", "scipy", "torch", "transformers", "cv2", "PIL", "matplotlib", "av", "pandas", "pyarrow",
         "datasets", "yaml")

_PROBE = """
import contextlib, io, json, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["ravst", *json.loads(sys.argv[1])]
from ravst.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "stdout": out.getvalue(),
                  "heavy": sorted(m for m in heavy if m in sys.modules)}))
"""


def _probe(words: list[str], heavy: tuple[str, ...] = HEAVY, cwd: Path | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(words), json.dumps(heavy)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _help_words() -> list[list[str]]:
    import argparse

    from ravst.cli import build_parser

    words: list[list[str]] = [[]]
    for name in COMMANDS:
        words.append([name])
        command = next(a for a in build_parser(name)._actions
                       if isinstance(a, argparse._SubParsersAction)).choices[name]
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                words += [[name, sub] for sub in action.choices]
    return words


def test_sub_commands_are_walked() -> None:
    words = _help_words()
    assert ["build"] in words and ["train", "grpo"] in words and ["export", "hf"] in words
    assert ["review", "serve"] in words and ["judge", "summary"] in words


@pytest.mark.parametrize("words", _help_words(), ids=lambda w: " ".join(w) or "ravst")
def test_help_imports_nothing_heavy(words: list[str]) -> None:
    result = _probe([*words, "--help"])
    assert result["code"] == 0
    assert "usage: ravst" in result["stdout"]
    assert result["heavy"] == []


@pytest.mark.parametrize("stage", ["split", "all"])
def test_stage_help_imports_nothing_heavy(stage: str) -> None:
    result = _probe(["build", stage, "--help"])
    assert result["code"] == 0 and result["heavy"] == []


def test_version_on_stdout() -> None:
    from ravst import __version__

    result = _probe(["--version"])
    assert result["code"] == 0
    assert result["stdout"].startswith("ravst ") and result["stdout"].split()[1][0].isdigit()
    assert __version__  # the source tree's version exists (the installed one may be newer)


def test_do_nothing_build_rerun_imports_no_numpy(tmp_path: Path) -> None:
    """A finished build (filter + analyze with the rules backend + qa + split + stats, no videos)
    re-run with `ravst build all`: every stage is up to date and no numpy is imported."""
    from ravst.cli import main

    annotations = tmp_path / "unav100.json"
    annotations.write_text(json.dumps({"version": "t", "database": {"vid0": {
        "duration": 30.0, "subset": "test",
        "annotations": [{"segment": [1.0, 9.5], "label": "man speaking", "label_id": 0},
                        {"segment": [12.0, 20.0], "label": "dog barking", "label_id": 1}]}}}))
    config = tmp_path / "build.json"
    config.write_text(json.dumps({"out_dir": str(tmp_path / "build"), "annotations": str(annotations)}))
    argv = ["build", "all", "--config", str(config), "--no-progress"]
    assert main(argv) == 0
    assert (tmp_path / "build" / "stats" / "manifest.json").is_file()
    result = _probe(argv, heavy=("numpy", "scipy", "torch", "cv2", "matplotlib", "PIL"))
    assert result["code"] == 0
    assert result["heavy"] == []
