"""What became of the videos of a build: per stage ok / failed / skipped, and the end-of-run lines.

A video that fails in a stage (``failures.jsonl``) is not handed to the later stages: those
count it as **skipped** (failed in an earlier stage). ``ravst build`` logs one line per stage
at the end of the run (a WARNING when anything failed, naming ``failures.jsonl``) and, when any
video failed, a last WARNING with the total; ``qa/summary.json`` and the qa manifest record the
failures of the earlier stages (:func:`upstream_failures`).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     (Path(d) / "annotate").mkdir()
...     _ = (Path(d) / "annotate" / "failures.jsonl").write_text('{"key": "half", "error": "E: cut"}\\n')
...     _ = (Path(d) / "annotate" / "manifest.json").write_text("{}")  # annotate ran
...     upstream_failures(d, "qa")
{'annotate': {'videos': 1, 'failures': 'annotate/failures.jsonl'}}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ravst.pipeline.runner import StageResult, read_jsonl

__all__ = ["MAP_STAGES", "StageOutcome", "failed_keys", "failed_videos_line", "stage_lines", "stage_outcome",
           "upstream_failures", "upstream_stages"]

MAP_STAGES = ("filter", "analyze", "annotate", "qa")
"""The stages whose records are videos (each one can fail on its own, into ``failures.jsonl``)."""


@dataclass(frozen=True)
class StageOutcome:
    """The videos of one stage: ``ok``, ``failed`` here, ``skipped`` (failed in an earlier stage)."""

    stage: str
    ok: int
    failed: int
    skipped: int
    failures_path: Path
    up_to_date: bool


def failed_keys(stage_dir: str | Path) -> list[str]:
    """The keys (video ids) in a stage's ``failures.jsonl`` (none when it has none)."""
    path = Path(stage_dir) / "failures.jsonl"
    return [str(row["key"]) for row in read_jsonl(path)] if path.is_file() else []


def upstream_stages(out_dir: str | Path, stage: str) -> list[str]:
    """The map stages whose output ``stage`` reads, directly or not (qa reads annotate when it ran)."""
    if stage == "filter":
        return []
    if stage in ("analyze", "annotate"):
        return ["filter", "analyze"][: MAP_STAGES.index(stage)]
    annotated = (Path(out_dir) / "annotate" / "manifest.json").is_file()
    chain = ["filter", "analyze"] + (["annotate"] if annotated else [])
    return chain if stage == "qa" else [*chain, "qa"]


def upstream_failures(out_dir: str | Path, stage: str) -> dict[str, dict[str, Any]]:
    """``{earlier stage: {"videos": n, "failures": path}}`` for the earlier stages of ``stage``
    that recorded failures (paths relative to ``out_dir``)."""
    out = Path(out_dir)
    found = {}
    for name in upstream_stages(out, stage):
        keys = failed_keys(out / name)
        if keys:
            found[name] = {"videos": len(keys), "failures": f"{name}/failures.jsonl"}
    return found


def stage_outcome(result: StageResult, out_dir: str | Path) -> StageOutcome:
    """The outcome of a map stage's run (``result``)."""
    out = Path(out_dir)
    earlier = {key for name in upstream_stages(out, result.stage) for key in failed_keys(out / name)}
    return StageOutcome(result.stage, result.num_ok, result.num_failed, len(earlier), result.failures_path,
                        result.skipped)


def _total_videos(out: Path) -> int | None:
    path = out / "filter" / "manifest.json"
    if not path.is_file():
        return None
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["num_records"])
    except (ValueError, KeyError, TypeError):
        return None


def stage_lines(results: Mapping[str, StageResult], out_dir: str | Path,
                not_run: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """``(logging level, line)`` per stage run, to log at the end of ``ravst build`` (WARNING
    when the stage failed videos, naming its ``failures.jsonl``), and a WARNING per stage ``not_run``."""
    out = Path(out_dir)
    lines: list[tuple[int, str]] = []
    for name, result in results.items():
        state = "up to date" if result.skipped else "done"
        if name not in MAP_STAGES:
            what = f"{result.num_ok} QAs" if name == "split" else "written"
            lines.append((logging.INFO, f"stage {name}: {state}, {what} -> {result.stage_dir}"))
            continue
        o = stage_outcome(result, out)
        text = (f"stage {name}: {state}, {o.ok} ok, {o.failed} failed, {o.skipped} skipped (failed in an "
                f"earlier stage) -> {result.stage_dir}")
        if o.failed:
            text += f"; failures (video, reason): {o.failures_path}"
        lines.append((logging.WARNING if o.failed else logging.INFO, text))
    lines += [(logging.WARNING, f"stage {name}: not run (an earlier stage failed every video)") for name in not_run]
    return lines


def failed_videos_line(results: Mapping[str, StageResult], out_dir: str | Path, exit_code: int = 0) -> str | None:
    """The WARNING line that ends ``ravst build`` when videos of the stages run (or of the
    stages they read) failed: how many of the annotation file's videos, per stage, with the
    ``failures.jsonl`` paths, and why the exit code is ``exit_code``; None when none failed."""
    out = Path(out_dir)
    considered: list[str] = []
    for name in results:
        considered += [s for s in [*upstream_stages(out, name), name] if s in MAP_STAGES and s not in considered]
    failed = {name: keys for name in considered if (keys := failed_keys(out / name))}
    if not failed:
        return None
    videos = len({key for keys in failed.values() for key in keys})
    total = _total_videos(out)
    share = f"{videos} of {total}" if total else f"{videos}"
    per_stage = ", ".join(f"{name} {len(keys)} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}): "
                          f"{out / name / 'failures.jsonl'}" for name, keys in failed.items())
    why = ("exit 0: the other videos were built (exit 1 only when every video of a stage fails)" if exit_code == 0
           else f"exit {exit_code}")
    return f"build {out}: {share} video(s) FAILED and have no QA ({per_stage}); {why}; a re-run retries the failed ones"
