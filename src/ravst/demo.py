"""``ravst demo``: the whole toolkit on a small synthetic set, ending in an HTML report.

Steps (each one logged, each artefact's producer written into the report):

1. ``ravst synth``: N procedural clips with exact ground truth (``<out>/data``).
2. The build pipeline (``ravst.pipeline.stages``: filter, analyze with the offline ``rules``
   backend on the synthetic captions, annotate with the CPU ``opencv`` detector, qa, split,
   stats) on those clips (``<out>/build``). Its outputs are then MEASURED against the exact
   synthetic truth: object recall of the caption analysis, and the pipeline-built QAs scored as if
   they were a model's answers.
3. Inference (``ravst infer``) with every weight-free baseline of ``ravst.models.baselines`` and,
   when given, the user's model (``--model``, ``--backend``).
4. Evaluation (``ravst eval``) of each, plus an "oracle" row: the ground truth fed back as the
   prediction (must be 100 everywhere; it checks the chain, it is not a model).
5. ``ravst report`` over all of them, with frames of the synthetic clips.

The QAs every model is scored on are the synthetic ground truth: its boxes are read from the
scene description (exact), NOT produced by the pipeline's detector.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoConfig", "add_arguments", "run", "run_demo"]

log = logging.getLogger(__name__)

DEFAULT_BASELINES = ("full-span", "whole-frame", "random", "av-signal")


@dataclass(frozen=True)
class DemoConfig:
    out_dir: Path = field(metadata={"help": "output folder"})
    n_clips: int = field(default=4, metadata={"help": "synthetic clips"})
    seed: int = field(default=0, metadata={"help": "seed of the clips and the random baseline"})
    baselines: tuple[str, ...] = field(default=DEFAULT_BASELINES, metadata={"help": "baselines to run"})
    similarity: str = field(default="hybrid", metadata={"help": "object-name similarity of ravst eval"})
    model: str | None = field(default=None, metadata={"help": "optional model path / id for ravst infer"})
    backend: str = field(default="transformers", metadata={"help": "backend of --model"})
    build: bool = field(default=True, metadata={"help": "run the build pipeline on the synthetic set"})

    def __post_init__(self) -> None:
        if not 1 <= self.n_clips <= 200:
            raise ValueError(f"n_clips must be in 1..200, got {self.n_clips}")
        if self.similarity not in ("hybrid", "minilm", "exact"):
            raise ValueError(
                f"similarity must be hybrid, minilm or exact (word2vec needs a file), got {self.similarity!r}")


def _ravst(argv: list[str]) -> None:
    """Run a ``ravst`` sub-command in-process (importing only that command's module, as mapped
    in ``ravst.cli.COMMANDS``); a non-zero exit is an error."""
    import importlib

    from ravst.cli import COMMANDS

    module = importlib.import_module(COMMANDS[argv[0]][0])
    parser = argparse.ArgumentParser(prog=f"ravst {argv[0]}")
    module.add_arguments(parser)
    code = int(module.run(parser.parse_args(argv[1:])))
    if code != 0:
        raise ValueError(f"`ravst {' '.join(argv)}` exited with code {code}")


def _analysis_check(build_dir: Path, items: Sequence[Any]) -> list[str]:
    """Object recall of the pipeline's caption analysis against the synthetic truth (the objects
    of each event's spatial QAs: sounding, and silent ones visible during the event)."""
    from ravst.pipeline.runner import read_jsonl

    path = build_dir / "analyze" / "analyze.jsonl"
    if not path.is_file():
        return []
    truth: dict[tuple[str, float], tuple[set[str], set[str]]] = {}
    for it in items:
        if it.query_span is None:
            continue
        key = (it.video, round(it.query_span.start_s, 1))
        sounding, silent = truth.setdefault(key, (set(), set()))
        (sounding if it.sounding else silent).update(n.lower() for n in it.answer.objects)
    found_s = total_s = found_v = total_v = wrong = 0
    for rec in read_jsonl(path):
        for ev in rec.get("events", []):
            key = (rec["video_id"], round(float(ev["start_s"]), 1))
            if key not in truth:
                continue
            sounding, silent = truth[key]
            audible = {o["name"].lower() for o in ev.get("objects", []) if o.get("audible")}
            visible = {o["name"].lower() for o in ev.get("objects", []) if not o.get("audible")}
            total_s += len(sounding)
            found_s += len(sounding & audible)
            total_v += len(silent)
            found_v += len(silent & visible)
            wrong += len(audible - sounding)
    return [
        f"Caption analysis (pipeline 'analyze', rules backend) vs the exact scene: {found_s}/{total_s} sounding "
        f"objects found as 'visible & audible' ({wrong} audible names that are not sounding objects); "
        f"{found_v}/{total_v} silent visible objects found as 'visible-only'."
    ]


def _annotate_check(build_dir: Path) -> list[str]:
    from ravst.pipeline.runner import read_jsonl

    path = build_dir / "annotate" / "annotate.jsonl"
    if not path.is_file():
        return []
    rows = n_box = 0
    for rec in read_jsonl(path):
        for ev in rec.get("events", []):
            for tr in ev.get("tracks", []):
                for box in tr.get("xyxy", []):
                    rows += 1
                    n_box += bool(box[2] > box[0] and box[3] > box[1])
    return [f"Box annotation (pipeline 'annotate', opencv backend: HOG people + Haar cascades): {n_box} non-empty "
            f"boxes in {rows} box rows. It looks for people and faces, so on drawn shapes it finds little; the "
            "boxes every model below is scored against are the exact synthetic ones (an oracle read of the scene)."]


def _dropped_note(build_dir: Path) -> str:
    """Why the build wrote no QA to score (its qa/summary.json counts what it did not write)."""
    path = build_dir / "qa" / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    dropped = ", ".join(f"{k} {v}" for k, v in summary.get("dropped", {}).items()) or "none"
    return ("The build pipeline wrote no QA to score against the synthetic GT: the opencv baseline detector "
            "never finds the drawn shapes, and objects never detected are not written as ground truth "
            f"(QAs not written, by reason: {dropped}; see {path}).")


def _pipeline_predictions(build_dir: Path, gt_ids: set[str], out: Path) -> int:
    """The pipeline-built QAs written as predictions for the QAs of the synthetic GT."""
    from ravst.formats.official import read_official
    from ravst.formats.predictions import append_predictions
    from ravst.parsing import render_answer
    from ravst.types import Prediction

    built = build_dir / "qa" / "r_avst_qa.json"
    if not built.is_file():
        return 0
    preds = [Prediction(it.qa_id, render_answer(it.answer), model="pipeline: rules analyze + opencv annotate")
             for it in read_official(built) if it.qa_id in gt_ids]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    append_predictions(out, preds)
    return len(preds)


def run_demo(cfg: DemoConfig) -> Path:
    """Run every step; returns the path of the HTML report."""
    from ravst import synth
    from ravst.formats.official import read_official
    from ravst.report.cli import write_report

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    notes: list[str] = []
    t = time.perf_counter()
    data = out / "data"
    scenes = synth.synthesize(data, cfg.n_clips, cfg.seed)
    qa_path, videos = data / "qa.json", data / "videos"
    items = read_official(qa_path)
    gt_ids = {it.qa_id for it in items}
    timings["synth"] = time.perf_counter() - t
    notes.append(f"Data: {len(scenes)} synthetic clips from `ravst synth --seed {cfg.seed}` ({len(items)} QAs); "
                 "ground truth (spans, objects, boxes) is exact by construction.")

    runs: list[tuple[str, Path]] = []  # (name, predictions file or "gt")
    if cfg.build:
        t = time.perf_counter()
        from ravst.pipeline import stages
        from ravst.pipeline.config import AnalyzeConfig, AnnotateConfig, PipelineConfig

        build = out / "build"
        # no detector weights ship with the package: the demo picks the CPU baseline explicitly
        pcfg = PipelineConfig(out_dir=str(build), annotations=str(data / "unav100.json"), videos_dir=str(videos),
                              analyze=AnalyzeConfig(captions_csv=str(data / "captions.csv")),
                              annotate=AnnotateConfig(backend="opencv"))
        done = []
        for name, fn in stages.STAGES.items():
            try:
                fn(pcfg, progress=False)
                done.append(name)
            except (ValueError, OSError, ImportError) as exc:
                log.warning("build stage %s failed: %s", name, exc)
                notes.append(f"Build stage {name} failed: {exc}")
        timings["build"] = time.perf_counter() - t
        notes.append(f"Build pipeline stages run on the synthetic set: {', '.join(done)} (outputs in {build}).")
        notes += _analysis_check(build, items) + _annotate_check(build)
        n = _pipeline_predictions(build, gt_ids, out / "preds" / "pipeline.jsonl")
        if n:
            runs.append(("pipeline-built QAs", out / "preds" / "pipeline.jsonl"))
            notes.append(f"'pipeline-built QAs': the {n} QAs the build pipeline generated (same ids as the "
                         "synthetic GT) scored as answers: a measure of automatic annotation against exact truth.")
        else:
            notes.append(_dropped_note(build))

    t = time.perf_counter()
    for name in cfg.baselines:
        pred = out / "preds" / f"{name}.jsonl"
        pred.unlink(missing_ok=True)
        _ravst(["infer", "--qa", str(qa_path), "--videos", str(videos), "--backend", name,
                "--seed", str(cfg.seed), "--out", str(pred)])
        runs.append((f"baseline {name}", pred))
    if cfg.model:
        pred = out / "preds" / "model.jsonl"
        pred.unlink(missing_ok=True)
        _ravst(["infer", "--qa", str(qa_path), "--videos", str(videos), "--backend", cfg.backend,
                "--model", cfg.model, "--out", str(pred)])
        runs.append((f"{cfg.backend}: {cfg.model}", pred))
    timings["infer"] = time.perf_counter() - t

    t = time.perf_counter()
    evals: list[Path] = []
    names: list[str] = []
    for i, (name, pred) in enumerate([*runs, ("oracle (GT fed back)", Path("gt"))]):
        ev = out / "evals" / f"{i:02d}"
        _ravst(["eval", "--gt", str(qa_path), "--pred", str(pred), "--similarity", cfg.similarity,
                "--unav100", str(data / "unav100.json"), "--out", str(ev), "--quiet"])
        evals.append(ev)
        names.append(name)
    timings["eval"] = time.perf_counter() - t
    notes.append("'oracle (GT fed back)' scores the ground truth against itself: it checks the scoring chain "
                 "(100 on every figure), it is not a model.")
    t = time.perf_counter()
    report = write_report(evals, out / "report.html", names=names, qa=qa_path, videos=videos, seed=cfg.seed,
                          title="ravst demo on synthetic clips", notes=notes)
    timings["report"] = time.perf_counter() - t
    (out / "demo.json").write_text(json.dumps({
        "report": str(report), "evals": dict(zip(names, map(str, evals), strict=True)),
        "seconds": {k: round(v, 2) for k, v in timings.items()}, "notes": notes}, indent=2) + "\n")
    log.info("demo timings (s): %s", ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    log.info("report: %s", report.resolve())
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    parser.add_argument("--n", type=int, default=4, help="synthetic clips (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--baselines", default=",".join(DEFAULT_BASELINES),
                        help=f"comma-separated baselines (default {','.join(DEFAULT_BASELINES)}; '' for none)")
    parser.add_argument("--similarity", default="hybrid", choices=["hybrid", "minilm", "exact"],
                        help="object-name similarity of the evaluation (default hybrid, as ravst eval)")
    parser.add_argument("--model", default=None, help="also run this model (path or id) with --backend")
    parser.add_argument("--backend", default="transformers", help="ravst infer backend of --model")
    parser.add_argument("--no-build", action="store_true", help="skip the build pipeline")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = DemoConfig(out_dir=args.out, n_clips=args.n, seed=args.seed,
                         baselines=tuple(b for b in args.baselines.split(",") if b), similarity=args.similarity,
                         model=args.model, backend=args.backend, build=not args.no_build)
        run_demo(cfg)
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1
    return 0
