"""``ravst report --eval DIR [--eval DIR2 ...] [--qa FILE --videos DIR] --out report.html``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

__all__ = ["add_arguments", "run", "write_report"]

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eval", dest="evals", action="append", type=Path, required=True,
                        help="output folder of `ravst eval --out` (repeat for several models)")
    parser.add_argument("--name", dest="names", action="append", default=None,
                        help="display name of each --eval, in the same order (default: the folder name)")
    parser.add_argument("--pred", dest="preds", action="append", type=Path, default=None,
                        help="predictions JSONL of each --eval, in order (default: the 'pred' in metrics.json)")
    parser.add_argument("--qa", type=Path, default=None,
                        help="QA file in the official layout (default: the 'gt' in the first metrics.json)")
    parser.add_argument("--videos", type=Path, default=None,
                        help="folder of <video>.mp4: adds frames with GT and predicted boxes")
    parser.add_argument("--samples", type=int, default=6, help="qualitative spatial samples (half the worst)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the non-worst samples")
    parser.add_argument("--title", default="ravst evaluation report", help="page title")
    parser.add_argument("--note", dest="notes", action="append", default=[], help="a line shown at the top")
    parser.add_argument("--out", type=Path, default=Path("report.html"), help="HTML file to write")


def write_report(evals: list[Path], out: Path, *, names: list[str] | None = None, preds: list[Path] | None = None,
                 qa: Path | None = None, videos: Path | None = None, samples: int = 6, seed: int = 0,
                 title: str = "ravst evaluation report", notes: list[str] | None = None) -> Path:
    """Read the evaluations and write the page to ``out``; returns ``out``."""
    from ravst.report.data import load_eval
    from ravst.report.render import ReportOptions, build_report

    if names is not None and len(names) != len(evals):
        raise ValueError(f"--name given {len(names)} times for {len(evals)} --eval folders")
    if preds is not None and len(preds) != len(evals):
        raise ValueError(f"--pred given {len(preds)} times for {len(evals)} --eval folders")
    runs = [load_eval(d, name=names[i] if names else None, pred=preds[i] if preds else None)
            for i, d in enumerate(evals)]
    seen: dict[str, int] = {}
    for i, run in enumerate(runs):  # two folders of the same name: "eval", "eval (2)"
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1 and names is None:
            runs[i] = dataclasses.replace(run, name=f"{run.name} ({seen[run.name]})")
    if qa is None and runs[0].metrics.get("gt"):
        candidate = Path(runs[0].metrics["gt"])
        qa = candidate if candidate.is_file() else None
    items = None
    if qa is not None:
        from ravst.formats.official import read_official
        from ravst.pipeline.qa import read_sidecar

        items = read_official(qa)
        meta = read_sidecar(qa) or {}
        if meta.get("baseline"):  # a build made with a baseline detector / analyzer says so here too
            notes = [f"WARNING: the ground truth in {qa.name} was built with a baseline: {w}"
                     for w in meta.get("warnings", [])] + list(notes or ())
    html_text = build_report(runs, items, qa_path=qa, videos=videos, notes=notes or (),
                             options=ReportOptions(samples=samples, seed=seed, title=title))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html_text, encoding="utf-8")
    tmp.replace(out)
    return out


def run(args: argparse.Namespace) -> int:
    try:
        out = write_report(list(args.evals), args.out, names=args.names, preds=args.preds, qa=args.qa,
                           videos=args.videos, samples=args.samples, seed=args.seed, title=args.title,
                           notes=args.notes)
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1
    log.info("report written to %s", out.resolve())
    return 0
