"""A resumable stage runner: map a function over keyed records, safely.

Layout of a stage folder ``<out>/<stage>/``:

- ``journal.jsonl``: append-only work log: a header line (stage and fingerprint, flushed and
  fsynced before the first record starts, so a kill at any time leaves a journal the next run
  recognises), then one line per finished record (``{"key", "ok", "result" | "error"}``),
  flushed to the OS line by line (a killed process loses nothing) and fsynced every second.
  A line cut by a crash is dropped on the next run; records already in the journal are not
  computed again. Every JSONL file here is written and read by ``ravst.jsonl`` (lines split on
  ``"\\n"`` only, so U+2028 in a caption is just text).
- ``<stage>.jsonl``: the results in INPUT order (not completion order), so an interrupted and
  resumed run writes the same bytes as an uninterrupted one. Written atomically (temp file +
  ``os.replace``).
- ``failures.jsonl``: ``{"key", "error"}`` of every record that failed, with its reason.
- ``manifest.json``: written LAST (atomically), after every output including the stage's
  derived files (``finalize``): stage, format version, input and config fingerprints, the
  content fingerprint of each input file (``inputs``), counts. A stage whose manifest matches
  its inputs and config is skipped, unless it recorded failures: those records run again
  (the finished ones are kept), so a transient error is not permanent.

If the config or the inputs change, the journal of the old run is discarded.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     r = run_stage(d, "square", [("a", 2), ("b", 3)], lambda x: {"y": x * x},
...                   fingerprint="f1", progress=False)
...     (r.num_ok, r.num_failed, read_jsonl(r.output_path))
(2, 0, [{'y': 4}, {'y': 9}])
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ravst import jsonl

__all__ = [
    "FORMAT_VERSION",
    "StageResult",
    "atomic_write_text",
    "file_fingerprint",
    "input_fingerprints",
    "inputs_changed",
    "read_jsonl",
    "run_stage",
    "stage_is_current",
    "write_jsonl_atomic",
    "write_manifest",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_FSYNC_EVERY_S = 1.0  # the journal is flushed per record and fsynced at most this often

# Per-record failures caught and recorded (the stage goes on with the other records).
RECORD_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError, KeyError, IndexError, TypeError)


@dataclass(frozen=True)
class StageResult:
    stage: str
    stage_dir: Path
    output_path: Path
    failures_path: Path
    manifest_path: Path
    num_ok: int
    num_failed: int
    skipped: bool  # True when a matching manifest existed and nothing ran


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a part."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)


def write_jsonl_atomic(path: str | Path, records: Iterable[Any]) -> int:
    """Write (replace) a JSONL file atomically (``ravst.jsonl``, sorted keys, compact)."""
    return jsonl.write_jsonl_atomic(path, records, sort_keys=True, compact=True)


def read_jsonl(path: str | Path) -> list[Any]:
    """All records of a JSONL file (``ravst.jsonl.read_jsonl``): a malformed line is a
    ValueError naming file and line; a torn last line is dropped with a warning."""
    return jsonl.read_jsonl(path)


def _read_manifest(path: Path) -> dict[str, Any]:
    """A stage's ``manifest.json``; a ValueError naming the file when it is not a JSON object."""
    from ravst.formats import read_json

    manifest = read_json(path)
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: not a stage manifest (a JSON object); delete it to run the stage again")
    return manifest


def file_fingerprint(*paths: str | Path) -> str:
    """sha256 (16 hex digits) of the contents of the given files, in order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _journal_entry(line: jsonl.Line, path: Path) -> dict[str, Any]:
    entry = line.value
    if not (isinstance(entry, dict) and isinstance(entry.get("key"), str) and isinstance(entry.get("ok"), bool)
            and ("result" in entry if entry["ok"] else isinstance(entry.get("error"), str))):
        raise ValueError(f"{path}:{line.number}: not a journal entry {{key, ok, result | error}}: {line.preview()}; "
                         f"delete {path} to run the stage afresh")
    return entry


def _read_journal(path: Path, fingerprint: str) -> dict[str, dict[str, Any]]:
    """Finished entries of a journal; a torn last line is cut off, a stale journal removed. A
    corrupt line before the last is a ValueError naming the file and line."""
    if not path.exists():
        return {}
    jsonl.repair_tail(path)  # a torn last line (an interrupted run) is truncated off, with a warning
    lines = list(jsonl.scan_jsonl(path))
    bad = next((line for line in lines if not line.ok), None)
    if bad is not None:
        raise ValueError(f"{path}:{bad.number}: {bad.error}; delete {path} to run the stage afresh")
    if not lines:
        log.info("%s: the journal has no header (the last run was stopped before it wrote one); "
                 "starting the stage afresh", path)
        path.unlink()
        return {}
    header = lines[0].value
    if not isinstance(header, dict) or "fingerprint" not in header or "key" in header:
        raise ValueError(f"{path}:1: not a journal header {{stage, fingerprint}}: {lines[0].preview()}; "
                         f"delete {path} to run the stage afresh")
    if header.get("fingerprint") != fingerprint:
        log.info("%s: inputs or config changed; starting the stage afresh", path)
        path.unlink()
        return {}
    done: dict[str, dict[str, Any]] = {}
    for line in lines[1:]:
        entry = _journal_entry(line, path)
        done[entry["key"]] = entry
    return done


def _apply(fn: Callable[[Any], Any], key: str, payload: Any) -> dict[str, Any]:
    try:
        return {"key": key, "ok": True, "result": fn(payload)}
    except RECORD_ERRORS as exc:
        log.warning("record %s failed: %s: %s", key, type(exc).__name__, exc)
        return {"key": key, "ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _run_local(fn: Callable[[Any], Any], items: Sequence[tuple[str, Any]], progress: bool, desc: str) -> Iterator[dict[str, Any]]:
    from tqdm import tqdm

    for key, payload in tqdm(items, desc=desc, unit="rec", disable=not progress):
        yield _apply(fn, key, payload)


class _RayWorker:
    """Ray Data actor: holds ONE copy of ``fn`` for its whole life, so a model that ``fn`` loads
    lazily on its first call is loaded once per actor, not once per task or block."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        entries = [_dumps(_apply(self.fn, str(key), json.loads(str(payload))))
                   for key, payload in zip(batch["key"], batch["payload"], strict=True)]
        return {"entry": np.array(entries, dtype=object)}


def _run_ray(fn: Callable[[Any], Any], items: Sequence[tuple[str, Any]], progress: bool, desc: str,
             concurrency: int = 1) -> Iterator[dict[str, Any]]:
    """One Ray Data job over the pending records: ``map_batches`` with a pool of ``concurrency``
    :class:`_RayWorker` actors (the model is loaded once per actor); results stream back."""
    import ray

    if not items:
        return
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, log_to_driver=False)
    rows = [{"key": key, "payload": json.dumps(payload)} for key, payload in items]
    dataset = ray.data.from_items(rows).map_batches(
        _RayWorker, fn_constructor_kwargs={"fn": fn}, concurrency=concurrency, batch_size=1,
        batch_format="numpy")
    for row in dataset.iter_rows():
        yield json.loads(row["entry"])


def run_stage(
    out_dir: str | Path,
    stage: str,
    items: Iterable[tuple[str, Any]],
    fn: Callable[[Any], Any],
    *,
    fingerprint: str,
    engine: str = "local",
    progress: bool = True,
    extra_manifest: dict[str, Any] | None = None,
    concurrency: int = 1,
    retry_failed: bool = True,
    finalize: Callable[[StageResult], None] | None = None,
    inputs: Sequence[str | Path] = (),
) -> StageResult:
    """Map ``fn`` over ``(key, payload)`` items, resumably; see the module docstring.

    ``fingerprint`` must change whenever the inputs or the config change (use
    :func:`file_fingerprint` and ``config_fingerprint``). ``fn`` returns a JSON-serialisable
    result; a ``ValueError`` / ``OSError`` / ``RuntimeError`` it raises is recorded as that
    record's failure. ``engine="ray"`` runs the pending records as one Ray Data job with
    ``concurrency`` actors (``fn`` and payloads must then be picklable / JSON-serialisable).

    ``retry_failed``: a stage that is up to date but recorded failures runs the failed records
    again (the finished ones are kept). ``finalize(result)`` writes the stage's derived files
    (e.g. the official JSON) and runs BEFORE the manifest, so a killed run never leaves a
    manifest next to stale derived files. ``inputs``: files whose content fingerprints the
    manifest records (see :func:`inputs_changed`).
    """
    stage_dir = Path(out_dir) / stage
    stage_dir.mkdir(parents=True, exist_ok=True)
    output_path = stage_dir / f"{stage}.jsonl"
    failures_path = stage_dir / "failures.jsonl"
    manifest_path = stage_dir / "manifest.json"
    journal_path = stage_dir / "journal.jsonl"
    item_list = list(items)
    keys = [key for key, _ in item_list]
    if len(set(keys)) != len(keys):
        raise ValueError(f"stage {stage}: duplicate record keys")

    if manifest_path.exists():
        manifest = _read_manifest(manifest_path)
        if manifest.get("fingerprint") == fingerprint and manifest.get("version") == FORMAT_VERSION:
            journal_path.unlink(missing_ok=True)
            if not (retry_failed and manifest["num_failed"]):
                log.info("stage %s: up to date (%s), skipped", stage, manifest_path)
                return StageResult(stage, stage_dir, output_path, failures_path, manifest_path,
                                   manifest["num_ok"], manifest["num_failed"], True)
            _journal_from_outputs(journal_path, stage, fingerprint, keys, output_path, failures_path)
            log.info("stage %s: retrying the %d failed record(s)", stage, manifest["num_failed"])
        manifest_path.unlink()  # stale: the outputs are rewritten below

    done = _read_journal(journal_path, fingerprint)
    pending = [(key, payload) for key, payload in item_list if key not in done]
    if done:
        log.info("stage %s: resuming, %d of %d records already done", stage, len(done), len(item_list))
    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r} (local | ray)")
    new_journal = not journal_path.exists()
    # each entry one whole line, flushed to the OS (a killed process loses nothing) and fsynced
    # at least once a second and on close
    with jsonl.JsonlAppender(journal_path, sort_keys=True, compact=True, fsync_every_s=_FSYNC_EVERY_S) as journal:
        if new_journal:
            journal.write({"stage": stage, "fingerprint": fingerprint})
            journal.sync()  # the header is on disk before the first record starts
        entries = (_run_ray(fn, pending, progress, stage, concurrency) if engine == "ray"
                   else _run_local(fn, pending, progress, stage))
        for entry in entries:
            journal.write(entry)
            done[entry["key"]] = entry

    ok = [done[key]["result"] for key in keys if done[key]["ok"]]
    failed = [{"key": key, "error": done[key]["error"]} for key in keys if not done[key]["ok"]]
    write_jsonl_atomic(output_path, ok)
    write_jsonl_atomic(failures_path, failed)
    result = StageResult(stage, stage_dir, output_path, failures_path, manifest_path, len(ok), len(failed), False)
    if finalize is not None:
        finalize(result)
    manifest = {
        "stage": stage,
        "version": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "num_records": len(keys),
        "num_ok": len(ok),
        "num_failed": len(failed),
        "output": output_path.name,
        "failures": failures_path.name,
        "inputs": input_fingerprints(*inputs, base=stage_dir),
        **(extra_manifest or {}),
    }
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    journal_path.unlink(missing_ok=True)
    if failed:
        log.warning("stage %s: %d ok, %d FAILED -> %s; failures (video, reason): %s", stage, len(ok), len(failed),
                    output_path, failures_path)
    else:
        log.info("stage %s: %d ok, 0 failed -> %s", stage, len(ok), output_path)
    return result


def _journal_from_outputs(journal_path: Path, stage: str, fingerprint: str, keys: list[str],
                          output_path: Path, failures_path: Path) -> None:
    """A journal holding the finished records of a completed run (so only its failures run again)."""
    failed = {row["key"] for row in read_jsonl(failures_path)}
    ok_keys = [key for key in keys if key not in failed]
    results = read_jsonl(output_path)
    if len(results) != len(ok_keys):
        raise ValueError(f"{output_path}: {len(results)} results but the manifest implies {len(ok_keys)}; "
                         f"delete {output_path.parent} and run the stage again")
    entries: list[dict[str, Any]] = [{"stage": stage, "fingerprint": fingerprint}]
    entries += [{"key": key, "ok": True, "result": result} for key, result in zip(ok_keys, results, strict=True)]
    write_jsonl_atomic(journal_path, entries)


def input_fingerprints(*paths: str | Path, base: str | Path | None = None) -> dict[str, str]:
    """``{path: content fingerprint}`` of the given files (what a manifest records). A file under
    ``base``'s parent (the output folder, for a stage folder ``base``) is recorded relative to
    ``base``, so a copied or moved output folder stays consistent; others are absolute."""
    out = {}
    for p in paths:
        resolved = Path(p).resolve()
        key = str(resolved)
        if base is not None:
            root = Path(base).resolve()
            if resolved.is_relative_to(root.parent):
                key = os.path.relpath(resolved, root)
        out[key] = file_fingerprint(p)
    return out


def inputs_changed(stage_dir: str | Path) -> list[str]:
    """Input files of a finished stage whose content differs from what its manifest recorded
    (missing files included); empty when the stage is current with its inputs."""
    path = Path(stage_dir) / "manifest.json"
    if not path.exists():
        return []
    recorded = _read_manifest(path).get("inputs", {})
    changed = []
    for name, fp in sorted(recorded.items()):
        p = Path(stage_dir) / name  # an absolute name stays absolute
        if not p.exists() or file_fingerprint(p) != fp:
            changed.append(str(p))
    return changed


def stage_is_current(stage_dir: str | Path, fingerprint: str) -> bool:
    """True when ``stage_dir/manifest.json`` exists and records this ``fingerprint``."""
    path = Path(stage_dir) / "manifest.json"
    if not path.exists():
        return False
    manifest = _read_manifest(path)
    return bool(manifest.get("fingerprint") == fingerprint and manifest.get("version") == FORMAT_VERSION)


def write_manifest(stage_dir: str | Path, stage: str, fingerprint: str, *, inputs: Sequence[str | Path] = (),
                   **info: Any) -> Path:
    """Write a stage's manifest (do this LAST, after every output is in place)."""
    path = Path(stage_dir) / "manifest.json"
    manifest = {"stage": stage, "version": FORMAT_VERSION, "fingerprint": fingerprint,
                "inputs": input_fingerprints(*inputs, base=stage_dir), **info}
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path
