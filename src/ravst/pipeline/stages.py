"""The pipeline stages as functions over a :class:`PipelineConfig` (what ``ravst build`` runs).

Each stage reads the previous stage's output under ``out_dir`` and writes its own folder:

=========  ==========================================  ======================================
stage      reads                                       writes (``<out>/<stage>/``)
=========  ==========================================  ======================================
filter     ``annotations`` (UnAV-100 JSON)             ``filter.jsonl`` (decision per video),
                                                       ``videos.jsonl`` (kept), ``summary.json``
analyze    ``filter/videos.jsonl`` (+ captions CSV)    ``analyze.jsonl``, ``cache.sqlite``
annotate   ``analyze/analyze.jsonl`` + ``videos_dir``  ``annotate.jsonl``
qa         ``annotate/annotate.jsonl`` if built, else  ``qa.jsonl`` (per video),
           ``analyze/analyze.jsonl`` (temporal only)   ``r_avst_qa.json`` (official layout)
split      ``qa/r_avst_qa.json``                       ``train.json``, ``test.json``,
                                                       ``split.jsonl``, ``counts.json``
stats      latest records + ``qa/r_avst_qa.json``      PNG plots, ``stats.json``, ``stats.md``
=========  ==========================================  ======================================

Every folder also holds ``failures.jsonl`` (map stages) and ``manifest.json`` (written last,
after every derived file such as ``videos.jsonl`` or ``r_avst_qa.json``). A stage refuses to
read an earlier stage's output when that output is stale (an input of the earlier stage, or of
the ones before it, changed after it ran; the manifests record content fingerprints).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from ravst.pipeline.config import PipelineConfig, StartupError, config_fingerprint
from ravst.pipeline.outcome import failed_keys, upstream_failures
from ravst.pipeline.runner import (
    StageResult,
    atomic_write_text,
    file_fingerprint,
    inputs_changed,
    read_jsonl,
    run_stage,
    stage_is_current,
    write_jsonl_atomic,
    write_manifest,
)

__all__ = ["STAGES", "build_provenance", "check_annotate_models", "qa_summary", "run_all", "run_analyze", "run_annotate", "run_filter", "run_qa", "run_split", "run_stats", "stage_failed"]

log = logging.getLogger(__name__)


def _fp(*parts: str) -> str:
    return "-".join(parts)


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} is missing (run the earlier stage first)")
    return path


def _need_fresh(stage_dir: Path) -> None:
    """Refuse to read a stage's output when an input of that stage (or of the stages before it)
    changed after it ran: the output is stale and must be rebuilt first."""
    upstream = {"annotate": "analyze", "analyze": "filter", "qa": None}
    current: Path | None = stage_dir
    while current is not None:
        changed = inputs_changed(current)
        if changed:
            raise ValueError(f"{current}: stale: its input {changed[0]} changed after the stage ran; "
                             f"re-run `ravst build {current.name}` (or `ravst build all`) first")
        before = upstream.get(current.name)
        current = current.parent / before if before else None


# ------------------------------------------------------------------ filter
def _filter_one(payload: dict[str, Any], cfg: Any) -> dict[str, Any]:
    from ravst.formats.unav100 import unav100_json_to_records
    from ravst.pipeline.filter import filter_video

    video_id, raw = payload["video_id"], payload["raw"]
    try:
        record = unav100_json_to_records({"database": {video_id: raw}})[0]
    except ValueError as exc:  # name the real file and the video's position in it
        message = str(exc)
        generic = f"<data>: video #0 {video_id!r}"
        if message.startswith(generic):
            message = f"{payload.get('source', '<data>')}: video #{payload.get('index', 0)} {video_id!r}" + message[len(generic):]
        raise type(exc)(message) from exc
    return filter_video(record, cfg)


class _FilterFn:
    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        return _filter_one(payload, self.cfg)


def run_filter(cfg: PipelineConfig, *, progress: bool = True) -> StageResult:
    from ravst.pipeline.filter import balance_event_counts

    if not cfg.annotations:
        raise ValueError("the filter stage needs an annotation file: pass --annotations FILE "
                         "(or set 'annotations' in the config)")
    path = Path(cfg.annotations)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file (config 'annotations' / --annotations) "
                                f"{'is a directory' if path.is_dir() else 'not found'}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from exc
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise ValueError(f"{path}: expected an UnAV-100-style object with a 'database' object")
    subsets = set(cfg.filter.subsets)
    items = [(vid, {"video_id": vid, "raw": raw, "source": str(path), "index": index})
             for index, (vid, raw) in enumerate(database.items())
             if not subsets or (isinstance(raw, dict) and raw.get("subset") in subsets)]
    fingerprint = _fp(file_fingerprint(path), config_fingerprint(cfg.filter))

    def finalize(result: StageResult) -> None:
        decisions = read_jsonl(result.output_path)
        kept = balance_event_counts(decisions, cfg.filter)
        write_jsonl_atomic(result.stage_dir / "videos.jsonl", kept)
        atomic_write_text(result.stage_dir / "summary.json",
                          json.dumps(filter_summary(decisions, kept), indent=2) + "\n")

    return run_stage(cfg.out_dir, "filter", items, _FilterFn(cfg.filter), fingerprint=fingerprint,
                     progress=progress, finalize=finalize, inputs=[path])


def filter_summary(decisions: list[dict[str, Any]], kept: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per subset: videos in, kept, per drop reason, per event count and duration group."""
    out: dict[str, Any] = {}
    kept_ids = {d["video_id"] for d in kept}
    for d in decisions:
        s = out.setdefault(str(d["subset"]), {"videos": 0, "kept": 0, "dropped": {}, "events": {}, "groups": {}})
        s["videos"] += 1
        if d["video_id"] in kept_ids:
            s["kept"] += 1
            s["events"][str(d["num_events"])] = s["events"].get(str(d["num_events"]), 0) + 1
            s["groups"][d["group"]] = s["groups"].get(d["group"], 0) + 1
        else:
            reason = (d["reason"] or "balanced_out").split(":")[0]
            s["dropped"][reason] = s["dropped"].get(reason, 0) + 1
    return out


# ------------------------------------------------------------------ provenance
def analyzer_provenance(cfg: Any) -> dict[str, Any]:
    """What made the objects of a build (recorded in manifests, summary and QA sidecar)."""
    out: dict[str, Any] = {"backend": cfg.backend, "baseline": cfg.baseline}
    if cfg.backend != "rules":
        out["model"] = cfg.model
    if cfg.backend == "video-llm":
        out["video_backend"] = cfg.video_backend
    if cfg.baseline:
        out["note"] = ("label-only rules analyzer: subjects read from the label / caption text, not from the video; "
                       "they may be off-screen or wrong")
    return out


def detector_provenance(cfg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": cfg.backend, "model": cfg.detector_model, "sam2_model": cfg.sam2,
                           "box_threshold": cfg.box_threshold, "text_threshold": cfg.text_threshold,
                           "baseline": cfg.baseline}
    if cfg.baseline:
        out["note"] = ("opencv baseline detector (HOG people + Haar upper-body / cat-face cascades): it finds people "
                       "and cats only, and often on the wrong thing; not the paper's Grounded-SAM2")
    return out


def build_provenance(out_dir: str | Path) -> dict[str, Any]:
    """The analyzer and detector of a build, read from its analyze / annotate manifests, and
    whether any of them is a baseline (``baseline``, ``warnings``: one line per baseline part)."""
    out = Path(out_dir)
    info: dict[str, Any] = {"analyzer": None, "detector": None}
    for stage, key in (("analyze", "analyzer"), ("annotate", "detector")):
        path = out / stage / "manifest.json"
        if path.is_file():
            try:
                info[key] = json.loads(path.read_text(encoding="utf-8")).get(key)
            except ValueError:
                info[key] = None
    warnings = []
    for key in ("analyzer", "detector"):
        part = info[key]
        if isinstance(part, dict) and part.get("baseline"):
            warnings.append(f"BASELINE {key} {part.get('backend')}: {part.get('note', '')}".rstrip(": "))
    info["baseline"] = bool(warnings)
    info["warnings"] = warnings
    return info


def _will_run(stage_dir: Path, fingerprint: str) -> bool:
    """The stage has something to do: it is not up to date, or it recorded failures to retry."""
    return not stage_is_current(stage_dir, fingerprint) or bool(
        (stage_dir / "failures.jsonl").is_file() and read_jsonl(stage_dir / "failures.jsonl"))


# ------------------------------------------------------------------ analyze
class _AnalyzeFn:
    def __init__(self, cfg: Any, cache_path: str, captions: dict[str, str], videos_dir: str = "",
                 errors: dict[str, str] | None = None) -> None:
        self.cfg, self.cache_path, self.captions = cfg, cache_path, captions
        self.videos_dir, self.errors = videos_dir, dict(errors or {})
        self._analyzer: Any = None

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        from ravst.pipeline.analyze import analyze_record, make_analyzer

        if self._analyzer is None:  # LLM backends answer from the cache the stage filled at its start
            self._analyzer = make_analyzer(self.cfg, self.cache_path, videos_dir=self.videos_dir,
                                           cache_only=self.cfg.backend in ("openai", "video-llm"), errors=self.errors)
        captions = {tuple(json.loads(k)): v for k, v in self.captions.items()}
        return analyze_record(record, self._analyzer, captions)  # type: ignore[arg-type]

    def __getstate__(self) -> dict[str, Any]:
        return {"cfg": self.cfg, "cache_path": self.cache_path, "captions": self.captions,
                "videos_dir": self.videos_dir, "errors": self.errors, "_analyzer": None}


def _prefetch(cfg: PipelineConfig, records: list[dict[str, Any]], captions: dict[tuple[str, int], str],
              cache_path: str, progress: bool) -> dict[str, str]:
    """Start-up of an LLM analyzer: load the model / probe the endpoint ONCE (a failure is a
    :class:`StartupError`: the stage stops at once), then answer every caption with
    ``concurrency`` requests in flight (each request keeps its retries). Returns the reasons of
    the requests that still failed, by cache key (those videos are recorded as failures)."""
    from ravst.pipeline.analyze import AnswerCache, OpenAIAnalyzer, VideoLLMAnalyzer, event_captions

    cache = AnswerCache(cache_path)
    try:
        if cfg.analyze.backend == "openai":
            analyzer = OpenAIAnalyzer(cfg.analyze, cache)
            analyzer.probe()
            wanted = [c for r in records for e in r["events"] for c in event_captions(r, e, captions)]
            analyzer.prefetch(wanted, progress=progress)
            return analyzer.errors
        if not cfg.videos_dir:
            raise ValueError("analyze.backend video-llm reads the event's frames: set 'videos_dir' (or --videos)")
        video_llm = VideoLLMAnalyzer(cfg.analyze, cache, cfg.videos_dir)
        try:
            jobs = [(r, e, c) for r in records for e in r["events"] for c in event_captions(r, e, captions)]
            video_llm.prefetch(jobs, progress=progress)
        finally:
            video_llm.close()
        return video_llm.errors
    finally:
        cache.close()


def run_analyze(cfg: PipelineConfig, *, progress: bool = True) -> StageResult:
    from ravst.pipeline.filter import read_captions_csv

    source = _need(Path(cfg.out_dir) / "filter" / "videos.jsonl", "the filter output")
    _need_fresh(source.parent)
    records = read_jsonl(source)
    captions: dict[str, str] = {}
    inputs = [source]
    if cfg.analyze.captions_csv:
        inputs.append(Path(cfg.analyze.captions_csv))
        captions = {json.dumps(list(k)): v for k, v in read_captions_csv(cfg.analyze.captions_csv).items()}
    cache_path = cfg.analyze.cache_path or str(Path(cfg.out_dir) / "analyze" / "cache.sqlite")
    fingerprint = _fp(file_fingerprint(*inputs), config_fingerprint(cfg.analyze))
    stage_dir = Path(cfg.out_dir) / "analyze"
    errors: dict[str, str] = {}
    if cfg.analyze.backend == "transformers" and _will_run(stage_dir, fingerprint):
        from ravst.pipeline.analyze import make_analyzer

        make_analyzer(cfg.analyze, cache_path)  # load once here: a bad model stops the stage at once
    if cfg.analyze.backend in ("openai", "video-llm") and _will_run(stage_dir, fingerprint):
        parsed = {tuple(json.loads(k)): v for k, v in captions.items()}
        errors = _prefetch(cfg, records, parsed, cache_path, progress)  # type: ignore[arg-type]
    items = [(r["video_id"], r) for r in records]
    return run_stage(cfg.out_dir, "analyze", items,
                     _AnalyzeFn(cfg.analyze, cache_path, captions, cfg.videos_dir, errors),
                     fingerprint=fingerprint, engine=cfg.engine, progress=progress,
                     concurrency=cfg.ray_concurrency, inputs=inputs,
                     extra_manifest={"analyzer": analyzer_provenance(cfg.analyze)})


# ------------------------------------------------------------------ annotate
class _AnnotateFn:
    def __init__(self, cfg: Any, videos_dir: str, detector: Any = None, propagator: Any = None) -> None:
        self.cfg, self.videos_dir = cfg, videos_dir
        self._detector: Any = detector
        self._propagator: Any = propagator

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        from ravst.pipeline.annotate import annotate_record, find_video, load_annotators

        path = find_video(self.videos_dir, record["video_id"], self.cfg.video_exts)
        if self._detector is None:  # a Ray actor: loads its own copy once
            self._detector, self._propagator = load_annotators(self.cfg)
        return annotate_record(record, self._detector, path, self.cfg, self._propagator)

    def __getstate__(self) -> dict[str, Any]:
        return {"cfg": self.cfg, "videos_dir": self.videos_dir, "_detector": None, "_propagator": None}


def check_annotate_models(cfg: PipelineConfig) -> None:
    """Raise :class:`StartupError` now when the detector's (or SAM2's) weights are not on this
    machine, before any stage runs (``ravst build all`` checks this first)."""
    a = cfg.annotate
    if a.baseline:
        return
    from ravst.pipeline.annotate import _DETECTOR_WAYS_ON, local_model_path

    if not a.detector_model:
        raise StartupError(f"annotate: the {a.backend} detector needs a model. {_DETECTOR_WAYS_ON}")
    try:
        local_model_path(a.detector_model, f"the {a.backend} detector", "--model PATH")
    except StartupError as exc:
        raise StartupError(f"annotate: cannot start: {exc}. {_DETECTOR_WAYS_ON}") from exc
    if a.sam2:
        try:
            local_model_path(a.sam2, "SAM2 (propagation of the detector's boxes)", "--sam2 PATH")
        except StartupError as exc:
            raise StartupError(f"annotate: cannot start: {exc}. Ways on: --sam2 PATH (a local Sam2VideoModel "
                               "folder), or --sam2 none (the detector alone, no propagation)") from exc


def run_annotate(cfg: PipelineConfig, *, progress: bool = True) -> StageResult:
    source = _need(Path(cfg.out_dir) / "analyze" / "analyze.jsonl", "the analyze output")
    _need_fresh(source.parent)
    videos = _need(Path(cfg.videos_dir), "the videos folder (config 'videos_dir')") if cfg.videos_dir else None
    if videos is None:
        raise ValueError("config 'videos_dir' is required by the annotate stage")
    records = read_jsonl(source)
    listing = sorted(p.name + f":{p.stat().st_size}" for p in videos.iterdir())
    listing_fp = hashlib.sha256("\n".join(listing).encode()).hexdigest()[:16]
    fingerprint = _fp(file_fingerprint(source), config_fingerprint(cfg.annotate), listing_fp)
    detector = propagator = None
    if _will_run(Path(cfg.out_dir) / "annotate", fingerprint):
        from ravst.pipeline.annotate import load_annotators  # numpy, cv2: only when the stage runs

        check_annotate_models(cfg)
        detector, propagator = load_annotators(cfg.annotate)  # ONCE: a failure stops the stage here
    fn = _AnnotateFn(cfg.annotate, str(videos), detector, propagator)
    items = [(r["video_id"], r) for r in records]
    return run_stage(cfg.out_dir, "annotate", items, fn,
                     fingerprint=fingerprint, engine=cfg.engine, progress=progress,
                     concurrency=cfg.ray_concurrency, inputs=[source],
                     extra_manifest={"detector": detector_provenance(cfg.annotate)})


# ------------------------------------------------------------------ qa
class _QAFn:
    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        from ravst.formats.official import items_to_official_json
        from ravst.pipeline.qa import generate_checked

        checked = generate_checked(record, self.cfg)
        return {"video_id": record["video_id"], "official": items_to_official_json(checked.items),
                "qas": [m.to_json() for m in checked.metas], "dropped": checked.dropped,
                "objects_dropped": checked.objects_dropped}


def qa_summary(rows: list[dict[str, Any]], provenance: dict[str, Any],
               failed: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """``qa/summary.json``: QAs written (per kind), QAs not written and QAs flagged, by reason,
    and the videos that failed (in this or an earlier stage: ``failed``, by stage), so none."""
    from collections import Counter

    kinds: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    objects_dropped: Counter[str] = Counter()
    flagged: Counter[str] = Counter()
    flagged_qas = 0
    for row in rows:
        dropped.update(row.get("dropped", {}))
        objects_dropped.update(row.get("objects_dropped", {}))
        for meta in row.get("qas", []):
            kinds[meta["kind"]] += 1
            reasons = {f["reason"] for f in meta.get("flags", [])}
            flagged.update(reasons)
            flagged_qas += bool(reasons)
    return {"videos": len(rows), "qas": sum(kinds.values()), "qas_per_kind": dict(sorted(kinds.items())),
            "dropped": dict(sorted(dropped.items())), "dropped_total": sum(dropped.values()),
            "objects_dropped": dict(sorted(objects_dropped.items())),
            "flagged": dict(sorted(flagged.items())), "flagged_qas": flagged_qas,
            "failed": dict(failed or {}), "failed_videos": sum(f["videos"] for f in (failed or {}).values()),
            "baseline": provenance["baseline"], "warnings": provenance["warnings"],
            "analyzer": provenance["analyzer"], "detector": provenance["detector"]}


def write_sidecar(qa_path: Path, metas: list[dict[str, Any]], provenance: dict[str, Any]) -> Path:
    """The QA file's sidecar ``<name>.meta.json`` (see :func:`ravst.pipeline.qa.sidecar_path`)."""
    from ravst.pipeline.qa import sidecar_path

    path = sidecar_path(qa_path)
    body = {"format": "ravst-qa-meta", "version": 1, "qa_file": qa_path.name, "baseline": provenance["baseline"],
            "warnings": provenance["warnings"], "analyzer": provenance["analyzer"],
            "detector": provenance["detector"], "qas": metas}
    atomic_write_text(path, json.dumps(body, indent=1, ensure_ascii=False) + "\n")
    return path


def _latest_records(cfg: PipelineConfig) -> Path:
    out = Path(cfg.out_dir)
    for stage in ("annotate", "analyze"):
        if (out / stage / "manifest.json").exists():
            _need_fresh(out / stage)
            return out / stage / f"{stage}.jsonl"
    return _need(out / "analyze" / "analyze.jsonl", "the analyze (or annotate) output")


def run_qa(cfg: PipelineConfig, *, progress: bool = True) -> StageResult:
    from ravst.formats.official import official_json_to_items, write_official

    source = _latest_records(cfg)
    if source.parent.name == "analyze":
        log.info("qa: no annotate output; only temporal QAs can be generated (no boxes)")
    records = read_jsonl(source)
    provenance = build_provenance(cfg.out_dir)
    if source.parent.name == "analyze":
        provenance["detector"] = None
    fingerprint = _fp(file_fingerprint(source), config_fingerprint(cfg.qa))
    upstream = upstream_failures(cfg.out_dir, "qa")

    def failed_here(result: StageResult) -> dict[str, dict[str, Any]]:
        own = failed_keys(result.stage_dir)
        return {**upstream, **({"qa": {"videos": len(own), "failures": "qa/failures.jsonl"}} if own else {})}

    def finalize(result: StageResult) -> None:  # before the manifest: never a stale final file
        final = result.stage_dir / "r_avst_qa.json"
        rows = read_jsonl(result.output_path)
        official = [video for row in rows for video in row["official"]]
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        write_official(official_json_to_items(official, source=result.output_path), tmp)
        os.replace(tmp, final)
        write_sidecar(final, [m for row in rows for m in row["qas"]], provenance)
        atomic_write_text(result.stage_dir / "summary.json",
                          json.dumps(qa_summary(rows, provenance, failed_here(result)), indent=2) + "\n")

    result = run_stage(cfg.out_dir, "qa", [(r["video_id"], r) for r in records], _QAFn(cfg.qa),
                       fingerprint=fingerprint, progress=progress, finalize=finalize, inputs=[source],
                       extra_manifest={"failed_upstream": upstream,
                                       "baseline": provenance["baseline"], "warnings": provenance["warnings"],
                                       "analyzer": provenance["analyzer"], "detector": provenance["detector"]})
    if not all((result.stage_dir / name).exists() for name in ("r_avst_qa.json", "r_avst_qa.meta.json",
                                                                 "summary.json")):  # e.g. deleted by hand
        finalize(result)
    return result


# ------------------------------------------------------------------ split
HF_DIR = "hf"
"""``split/hf/``: the splits as a Hugging Face dataset folder (``split.hf``, ``ravst build split --hf``)."""


def _split_fingerprint(cfg: PipelineConfig) -> str:
    """The split section's fingerprint. Without ``hf`` it is the hash of ``seed`` and
    ``test_fraction`` alone, as before ``split.hf`` existed (such builds stay up to date); with it,
    the dataset folder's options and the videos folder its links point into are added."""
    s = cfg.split
    core = hashlib.sha256(json.dumps({"seed": s.seed, "test_fraction": s.test_fraction}, sort_keys=True,
                                     default=str).encode()).hexdigest()[:16]
    if not s.hf:
        return core
    hf = json.dumps([s.hf_videos, s.hf_license, str(Path(cfg.videos_dir).resolve()) if cfg.videos_dir else ""])
    return _fp(core, hashlib.sha256(hf.encode()).hexdigest()[:16])


def _write_split_hf(cfg: PipelineConfig, stage_dir: Path, splits: dict[str, Any], source: Path,
                    warnings: list[str]) -> Path:
    """``split/hf/`` through :func:`ravst.formats.hf.export_hf` (the one writer of that layout)."""
    import shutil

    from ravst.formats.hf import export_hf

    s = cfg.split
    if s.hf_videos != "none" and not cfg.videos_dir:
        raise ValueError(f"split.hf with split.hf_videos: {s.hf_videos} needs the config's videos_dir "
                         "(or set split.hf_videos: none)")
    out = stage_dir / HF_DIR
    for stale in stage_dir.glob(f".{HF_DIR}.tmp-*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = stage_dir / f".{HF_DIR}.tmp-{os.getpid()}"
    result = export_hf(splits, tmp, videos_dir=cfg.videos_dir or None, video_mode=s.hf_videos,
                       licence=s.hf_license, name=f"R-AVST build {Path(cfg.out_dir).resolve().name}",
                       source=str(source), notes=warnings)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    log.info("split: wrote the Hugging Face dataset folder %s (%s; %d videos, %s)", out,
             ", ".join(f"{k} {n} QAs" for k, n in result.n_rows.items()), result.n_videos, s.hf_videos)
    return out


def run_split(cfg: PipelineConfig, *, progress: bool = True) -> StageResult:
    from ravst.formats.official import read_official, write_official
    from ravst.pipeline.split import split_counts, split_items

    source = _need(Path(cfg.out_dir) / "qa" / "r_avst_qa.json", "the qa output")
    _need_fresh(source.parent)
    stage_dir = Path(cfg.out_dir) / "split"
    stage_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = _fp(file_fingerprint(source), _split_fingerprint(cfg))
    counts_path = stage_dir / "counts.json"
    skipped = stage_is_current(stage_dir, fingerprint) and (
        not cfg.split.hf or (stage_dir / HF_DIR / "README.md").is_file())  # e.g. deleted by hand
    if not skipped:
        (stage_dir / "manifest.json").unlink(missing_ok=True)
        from ravst.pipeline.qa import read_sidecar

        items = read_official(source)
        splits = split_items(items, cfg.split)
        meta = read_sidecar(source) or {}
        by_id = {m["qa_id"]: m for m in meta.get("qas", [])}
        provenance = {k: meta.get(k) for k in ("analyzer", "detector")}
        provenance.update(baseline=bool(meta.get("baseline")), warnings=list(meta.get("warnings") or []))
        for name, part in splits.items():
            tmp = stage_dir / f".{name}.json.tmp-{os.getpid()}"
            write_official(part, tmp)
            os.replace(tmp, stage_dir / f"{name}.json")
            write_sidecar(stage_dir / f"{name}.json", [by_id[i.qa_id] for i in part if i.qa_id in by_id], provenance)
        assignment = {i.video: name for name, part in splits.items() for i in part}
        write_jsonl_atomic(stage_dir / "split.jsonl", [{"video": v, "split": s} for v, s in assignment.items()])
        counts = split_counts(splits)
        atomic_write_text(counts_path, json.dumps(counts, indent=2) + "\n")
        hf_dir = None
        if cfg.split.hf:
            hf_dir = _write_split_hf(cfg, stage_dir, splits, source, list(provenance["warnings"] or []))
        elif (stage_dir / HF_DIR).is_dir():  # written by an earlier run with split.hf: now stale
            import shutil

            shutil.rmtree(stage_dir / HF_DIR)
            log.info("split: removed %s (split.hf is off)", stage_dir / HF_DIR)
        write_manifest(stage_dir, "split", fingerprint, inputs=[source], counts=counts,
                       baseline=provenance["baseline"], warnings=provenance["warnings"],
                       **({"hf": HF_DIR} if hf_dir else {}))
    counts = json.loads(counts_path.read_text(encoding="utf-8"))
    n = counts["total"]["qas"]
    return StageResult("split", stage_dir, stage_dir / "split.jsonl", stage_dir / "split.jsonl",
                       stage_dir / "manifest.json", n, 0, skipped)


# ------------------------------------------------------------------ stats
def run_stats(cfg: PipelineConfig, *, progress: bool = True) -> StageResult:
    from ravst.formats.official import read_official
    from ravst.pipeline.stats import plot_figure3, table1_counts, table1_markdown

    out = Path(cfg.out_dir)
    candidates = [out / s / f"{s}.jsonl" for s in ("annotate", "analyze")] + [out / "filter" / "videos.jsonl"]
    source = next((p for p in candidates if p.exists()), None)
    if source is None:
        raise FileNotFoundError(f"{out}: no stage output to describe (run filter first)")
    qa_path = out / "qa" / "r_avst_qa.json"
    _need_fresh(source.parent)
    if qa_path.exists():
        _need_fresh(qa_path.parent)
    stage_dir = out / "stats"
    stage_dir.mkdir(parents=True, exist_ok=True)
    inputs = [source] + ([qa_path] if qa_path.exists() else [])
    fingerprint = _fp(file_fingerprint(*inputs), config_fingerprint(cfg.stats), config_fingerprint(cfg.filter))
    skipped = stage_is_current(stage_dir, fingerprint)
    if not skipped:
        (stage_dir / "manifest.json").unlink(missing_ok=True)
        records = read_jsonl(source)
        items = read_official(qa_path) if qa_path.exists() else []
        table = table1_counts(records, items)
        if qa_path.exists():  # the QA file's own counts: what `ravst report --qa` on it shows
            from ravst.pipeline.qa import read_sidecar
            from ravst.pipeline.stats import records_from_qas

            labels = {m["qa_id"]: m.get("labels", []) for m in (read_sidecar(qa_path) or {}).get("qas", [])}
            table["qa_set"] = table1_counts(records_from_qas(items, labels), items)
        plots = plot_figure3(records, stage_dir, cfg.stats, cfg.filter)
        atomic_write_text(stage_dir / "stats.json", json.dumps(table, indent=2) + "\n")
        atomic_write_text(stage_dir / "stats.md", table1_markdown(table))
        provenance = build_provenance(out)
        write_manifest(stage_dir, "stats", fingerprint, inputs=inputs, source=str(source),
                       plots=[p.name for p in plots], baseline=provenance["baseline"],
                       warnings=provenance["warnings"])
    return StageResult("stats", stage_dir, stage_dir / "stats.json", stage_dir / "stats.json",
                       stage_dir / "manifest.json", 1, 0, skipped)


STAGES = {"filter": run_filter, "analyze": run_analyze, "annotate": run_annotate, "qa": run_qa,
          "split": run_split, "stats": run_stats}


def run_all(cfg: PipelineConfig, *, progress: bool = True, skip_annotate: bool = False) -> dict[str, StageResult]:
    """Every stage in order; annotate is skipped when ``videos_dir`` is empty or ``skip_annotate``.
    The detector's weights are checked before the first stage (:class:`StartupError`)."""
    if cfg.videos_dir and not skip_annotate:
        check_annotate_models(cfg)
    results = {}
    for name, fn in STAGES.items():
        if name == "annotate" and (skip_annotate or not cfg.videos_dir):
            log.info("annotate skipped (no videos_dir): spatial QAs need boxes")
            continue
        results[name] = result = fn(cfg, progress=progress)
        if stage_failed(result):
            log.error("%s: every one of its %d record(s) failed (see %s); later stages not run",
                      name, result.num_failed, result.failures_path)
            break
    return results


def stage_failed(result: StageResult) -> bool:
    """True when a stage had records and none of them succeeded."""
    return result.num_ok == 0 and result.num_failed > 0
