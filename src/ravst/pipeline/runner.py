"""A resumable stage runner: map a function over keyed records, safely.

Layout of a stage folder ``<out>/<stage>/``:

- ``journal.jsonl``: append-only work log, one line per finished record (``{"key", "ok",
  "result" | "error"}``), flushed to the OS line by line (a killed process loses nothing)
  and fsynced every second. A line cut by a crash is dropped on the next run; records
  already in the journal are not computed again.
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
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    lines = [_dumps(r) for r in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(path: str | Path) -> list[Any]:
    """All records of a JSONL file; a malformed line is a ValueError naming file and line."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON: {exc}") from exc
    return out


def file_fingerprint(*paths: str | Path) -> str:
    """sha256 (16 hex digits) of the contents of the given files, in order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _read_journal(path: Path, fingerprint: str) -> dict[str, dict[str, Any]]:
    """Finished entries of a journal; a torn last line is cut off, a stale journal removed."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut < len(data):
        log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run", path, len(data) - cut)
        with open(path, "r+b") as fh:
            fh.truncate(cut)
        data = data[:cut]
    lines = data.decode("utf-8").splitlines()
    if not lines or json.loads(lines[0]).get("fingerprint") != fingerprint:
        log.info("%s: inputs or config changed; starting the stage afresh", path)
        path.unlink()
        return {}
    done: dict[str, dict[str, Any]] = {}
    for line in lines[1:]:
        entry = json.loads(line)
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
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
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
    with open(journal_path, "a", encoding="utf-8") as journal:
        if new_journal:
            journal.write(_dumps({"stage": stage, "fingerprint": fingerprint}) + "\n")
        last_sync = time.monotonic()
        entries = (_run_ray(fn, pending, progress, stage, concurrency) if engine == "ray"
                   else _run_local(fn, pending, progress, stage))
        for entry in entries:
            journal.write(_dumps(entry) + "\n")
            journal.flush()  # in the OS after every record: a killed process loses nothing
            if time.monotonic() - last_sync > _FSYNC_EVERY_S:  # on disk at least once a second
                os.fsync(journal.fileno())
                last_sync = time.monotonic()
            done[entry["key"]] = entry
        os.fsync(journal.fileno())

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
    log.info("stage %s: %d ok, %d failed -> %s", stage, len(ok), len(failed), output_path)
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
    lines = [_dumps({"stage": stage, "fingerprint": fingerprint})]
    lines += [_dumps({"key": key, "ok": True, "result": result}) for key, result in zip(ok_keys, results, strict=True)]
    atomic_write_text(journal_path, "".join(line + "\n" for line in lines))


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
    recorded = json.loads(path.read_text(encoding="utf-8")).get("inputs", {})
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
    manifest = json.loads(path.read_text(encoding="utf-8"))
    return bool(manifest.get("fingerprint") == fingerprint and manifest.get("version") == FORMAT_VERSION)


def write_manifest(stage_dir: str | Path, stage: str, fingerprint: str, *, inputs: Sequence[str | Path] = (),
                   **info: Any) -> Path:
    """Write a stage's manifest (do this LAST, after every output is in place)."""
    path = Path(stage_dir) / "manifest.json"
    manifest = {"stage": stage, "version": FORMAT_VERSION, "fingerprint": fingerprint,
                "inputs": input_fingerprints(*inputs, base=stage_dir), **info}
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path
