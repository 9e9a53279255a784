import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_starts_with_the_two_commands():
    head = (ROOT / "README.md").read_text().splitlines()[:6]
    assert any(line.startswith("make demo") for line in head)
    assert any(line.startswith("make test") for line in head)


def test_readme_format_tables_are_in_sync_with_docs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_formats.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_cli_command_has_help():
    from ravst.cli import COMMANDS, build_parser

    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(choices) == set(COMMANDS)


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Quick start"):]
    block = section[section.index("```bash") + len("```bash"):]
    block = block[: block.index("```")]
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_quick_start_runs_verbatim(tmp_path: Path, shared_data: Path) -> None:
    """Each command of the README's quick start, as written, in a folder laid out like a fresh
    clone after `make demo` (configs/, out/demo from `ravst demo`, ../shared beside it)."""
    import os
    import shlex

    clone = tmp_path / "clone"
    clone.mkdir()
    (tmp_path / "shared").symlink_to(shared_data.parent)
    (clone / "configs").symlink_to(ROOT / "configs")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    commands = _quick_start_commands()
    assert commands[0] == "make demo" and commands[1].startswith("source ")
    ran = []
    for line in commands:
        words = shlex.split(line)
        if words[0] == "source":
            continue
        if words == ["make", "demo"]:  # what `make demo` runs, smaller (its own test is tests/test_demo.py)
            words = ["ravst", "demo", "--out", "out/demo", "--n", "2", "--baselines", "full-span",
                     "--similarity", "exact"]
        assert words[0] == "ravst", line
        proc = subprocess.run([sys.executable, "-m", "ravst.cli", *words[1:]], cwd=clone, env=env,
                              capture_output=True, text=True, check=False, timeout=600)
        assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        assert "Traceback" not in proc.stderr, line
        ran.append(words[1])
    assert {"eval", "infer", "report", "dev", "reward", "build", "export", "train"} <= set(ran)
    assert (clone / "out" / "quickstart" / "report.html").is_file()
    assert any((clone / "out" / "quickstart" / "inputs").glob("*.json"))
    assert (clone / "out" / "quickstart" / "hf" / "README.md").is_file()
