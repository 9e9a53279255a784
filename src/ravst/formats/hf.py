"""R-AVST QAs as a Hugging Face dataset folder, and back.

``export_hf`` writes a folder that ``datasets.load_dataset(folder)`` reads:

```
out/
  README.md                      dataset card: YAML header (configs, features, splits, licence), prose
  data/<split>-00000-of-00001.parquet
  videos/<video file>            symlinks (default) or copies of the clips the QAs use
```

One parquet row per QA (fields in ``docs/formats.md``): the ``question`` / ``answer`` text of
the official layout plus the parsed fields (``span``, ``objects``, ``tracks`` with boxes per object
as lists) and ``video_path`` relative to the folder. ``read_hf_official_json`` turns such a folder
back into the official JSON structure from the raw text, so a round trip reproduces the official
file byte for byte; ``ravst.formats.official.read_official`` accepts such a folder wherever a
``--qa`` file is expected.

>>> from ravst.formats.official import official_json_to_items
>>> data = [{"video_name": "v1", "duration": 12.5, "annotation": [{"event_num": 1,
...     "AV Temporal Reasoning": [{"Q": "When is the moment dog makes sound and is visible?",
...     "A": "<answer>\\n<object>dog</object>\\n<when>[1.0, 2.0]</when>\\n</answer>"}]}]}]
>>> rows = qa_rows(official_json_to_items(data), {"v1": None})
>>> rows[0]["qa_id"], rows[0]["span"], rows[0]["objects"], rows[0]["kind"]
('v1/0/temporal/0', [1.0, 2.0], ['dog'], 'temporal')
>>> rows_to_official_json(rows) == data
True
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ravst.formats import FormatError
from ravst.types import QAItem, Task

log = logging.getLogger(__name__)

__all__ = [
    "HFExport",
    "export_hf",
    "features",
    "is_hf_dataset_dir",
    "qa_rows",
    "read_hf_official_json",
    "read_hf_rows",
    "row_to_item",
    "rows_to_official_json",
]

CARD = "README.md"
DATA_DIR = "data"
VIDEOS_DIR = "videos"
_TASK_ORDER = (Task.TEMPORAL, Task.SPATIAL, Task.SPATIOTEMPORAL)
_SPLIT_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

CITATION = """@article{ravst2025,
  title   = {R-AVST: Empowering Video-LLMs with Fine-Grained Spatio-Temporal Reasoning in Complex Audio-Visual Scenarios},
  author  = {{R-AVST authors}},
  journal = {arXiv preprint},
  year    = {2025}
}"""

# name, datasets dtype spec (see ``features``), description: the single source of the card's table.
FIELDS: tuple[tuple[str, str], ...] = (
    ("qa_id", "stable id `{video}/{event_index}/{task}/{k}`"),
    ("video", "video name as in the official file (`video_name`)"),
    ("video_path", "the clip, relative to the dataset folder (`videos/...`); null when not exported"),
    ("duration", "video duration in seconds"),
    ("event_index", "0-based position of the event in the video's `annotation` list"),
    ("event_num", "the official `event_num`"),
    ("task", "`temporal`, `spatial` or `spatiotemporal`"),
    ("k", "0-based position in that task's list of the event"),
    ("kind", "`temporal`, `spatial-sounding`, `spatial-silent` or `spatiotemporal`"),
    ("question", "the question text (`Q`)"),
    ("answer", "the ground-truth answer, tagged text of the official layout (`A`)"),
    ("span", "`[start_s, end_s]` of `<when>`; empty for spatial QAs"),
    ("objects", "names in `<object>` tags, in order"),
    ("tracks", "one entry per `<where>` block: `name`, `times_s` (N), `xyxy` (N x 4, original-frame "
               "pixels; `[0, 0, 0, 0]` = no box)"),
    ("sounding", "false only for spatial silent-object questions"),
    ("query_span", "`[start_s, end_s]` named in a spatial question; empty otherwise"),
    ("query_object", "object named in a temporal / spatio-temporal question; null otherwise"),
    ("category", "event category (UnAV-100 label) when known; null otherwise"),
)


def features() -> Any:
    """The ``datasets.Features`` of a row (imports ``datasets``)."""
    from datasets import Features, List, Value

    return Features({
        "qa_id": Value("string"),
        "video": Value("string"),
        "video_path": Value("string"),
        "duration": Value("float64"),
        "event_index": Value("int32"),
        "event_num": Value("int32"),
        "task": Value("string"),
        "k": Value("int32"),
        "kind": Value("string"),
        "question": Value("string"),
        "answer": Value("string"),
        "span": List(Value("float64")),
        "objects": List(Value("string")),
        "tracks": List({
            "name": Value("string"),
            "times_s": List(Value("float64")),
            "xyxy": List(List(Value("float64"))),
        }),
        "sounding": Value("bool"),
        "query_span": List(Value("float64")),
        "query_object": Value("string"),
        "category": Value("string"),
    })


def qa_rows(items: Iterable[QAItem], video_paths: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """One row per QA (file order). ``video_paths[video]``: the path relative to the folder, or None."""
    from ravst.parsing import render_answer

    rows = []
    for it in items:
        a = it.answer
        rows.append({
            "qa_id": it.qa_id,
            "video": it.video,
            "video_path": video_paths.get(it.video),
            "duration": float(it.duration_s),
            "event_index": it.event_index,
            "event_num": it.event_num,
            "task": it.task.value,
            "k": it.k,
            "kind": it.kind,
            "question": it.question,
            "answer": render_answer(a),
            "span": [] if a.span is None else a.span.as_list(),
            "objects": list(a.objects),
            "tracks": [{"name": t.name, "times_s": t.times_s.tolist(), "xyxy": t.xyxy.tolist()} for t in a.tracks],
            "sounding": bool(it.sounding),
            "query_span": [] if it.query_span is None else it.query_span.as_list(),
            "query_object": it.query_object,
            "category": it.category,
        })
    return rows


def rows_to_official_json(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The official JSON structure rebuilt from rows' raw ``question`` / ``answer`` text.

    Videos in order of first appearance, events by ``event_index``, tasks in the official order,
    QAs by ``k``. Raises ``FormatError`` on inconsistent rows (two durations for one video, a
    duplicate id, an unknown task).
    """
    videos: dict[str, tuple[float, dict[int, int], dict[tuple[int, int, int], dict[str, str]]]] = {}
    order = {t.value: i for i, t in enumerate(_TASK_ORDER)}
    for n, row in enumerate(rows):
        ctx = f"row {n} ({row.get('qa_id')!r})"
        try:
            video, duration = str(row["video"]), float(row["duration"])
            event_index, event_num, k = int(row["event_index"]), int(row["event_num"]), int(row["k"])
            task, question, answer = str(row["task"]), row["question"], row["answer"]
        except (KeyError, TypeError, ValueError) as err:
            raise FormatError(f"{ctx}: missing or malformed field: {err}") from err
        if task not in order:
            raise FormatError(f"{ctx}: task {task!r} is not one of {list(order)}")
        if not isinstance(question, str) or not isinstance(answer, str):
            raise FormatError(f"{ctx}: question and answer must be strings")
        dur, events, qas = videos.setdefault(video, (duration, {}, {}))
        if dur != duration:
            raise FormatError(f"{ctx}: duration {duration} differs from {dur} of the same video")
        if events.setdefault(event_index, event_num) != event_num:
            raise FormatError(f"{ctx}: event_num {event_num} differs from {events[event_index]} of the same event")
        key = (event_index, order[task], k)
        if key in qas:
            raise FormatError(f"{ctx}: duplicate QA")
        qas[key] = {"Q": question, "A": answer}
    out = []
    for video, (duration, events, qas) in videos.items():
        annotation = []
        for event_index in sorted(events):
            event: dict[str, Any] = {"event_num": events[event_index]}
            for ti, task in enumerate(_TASK_ORDER):
                keys = sorted(key for key in qas if key[0] == event_index and key[1] == ti)
                if keys:
                    event[task.official_key] = [qas[key] for key in keys]
            annotation.append(event)
        out.append({"video_name": video, "duration": duration, "annotation": annotation})
    return out


def row_to_item(row: Mapping[str, Any]) -> QAItem:
    """The ``QAItem`` of one row, read from its ``question`` / ``answer`` text like the official
    reader does (same checks, same ids: the row's ``event_index`` / ``k`` are kept).
    """
    import dataclasses

    from ravst.formats.official import _read_qa

    ctx = f"row {row.get('qa_id')!r}"
    try:
        task = Task(str(row["task"]))
        item = _read_qa({"Q": row["question"], "A": row["answer"]}, ctx, "raise", str(row["video"]),
                        float(row["duration"]), int(row["event_index"]), int(row["event_num"]), task, int(row["k"]))
    except (KeyError, TypeError) as err:
        raise FormatError(f"{ctx}: missing or malformed field: {err}") from err
    category = row.get("category")
    return dataclasses.replace(item, category=category) if category else item


def is_hf_dataset_dir(path: str | Path) -> bool:
    """True for a folder written by ``export_hf`` (a dataset card and parquet files under data/)."""
    p = Path(path)
    return p.is_dir() and (p / CARD).is_file() and any((p / DATA_DIR).glob("*.parquet"))


def _splits_in(folder: Path) -> list[tuple[str, list[Path]]]:
    """Splits in card order (the YAML ``configs`` entry), falling back to file names."""
    files = sorted((folder / DATA_DIR).glob("*.parquet"))
    if not files:
        raise FormatError(f"{folder}: no parquet files under {DATA_DIR}/ (not a dataset folder written by "
                          "`ravst export hf`)")
    names: list[str] = []
    for f in files:
        split = f.name.split("-", 1)[0]
        if split not in names:
            names.append(split)
    return [(s, [f for f in files if f.name.split("-", 1)[0] == s]) for s in names]


def read_hf_rows(path: str | Path, *, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of a dataset folder (all splits in file order, or one), read with pyarrow."""
    import pyarrow.parquet as pq

    folder = Path(path)
    splits = _splits_in(folder)
    if split is not None:
        known = [s for s, _ in splits]
        if split not in known:
            raise FormatError(f"{folder}: no split {split!r}; it has {known}")
        splits = [(s, f) for s, f in splits if s == split]
    rows: list[dict[str, Any]] = []
    for _, files in splits:
        for f in files:
            try:
                rows.extend(pq.read_table(f).to_pylist())
            except Exception as err:  # pyarrow raises several types for a damaged file
                raise FormatError(f"{f}: not a readable parquet file: {err}") from err
    return rows


def read_hf_official_json(path: str | Path, *, split: str | None = None) -> list[dict[str, Any]]:
    """The official JSON structure of a dataset folder (see ``rows_to_official_json``)."""
    try:
        return rows_to_official_json(read_hf_rows(path, split=split))
    except FormatError as err:
        raise FormatError(f"{path}: {err}") from err


@dataclass(frozen=True)
class HFExport:
    """What ``export_hf`` wrote."""

    out_dir: Path
    n_rows: dict[str, int]
    n_videos: int
    missing_videos: tuple[str, ...] = ()
    files: tuple[Path, ...] = field(default_factory=tuple)
    empty_splits: tuple[str, ...] = ()
    """Splits with no QA: not written (``datasets`` cannot read a parquet file of 0 rows)."""


def _find_video(videos_dir: Path, name: str) -> Path | None:
    from ravst.infer import resolve_video

    try:
        return resolve_video(videos_dir, name)
    except ValueError:
        return None


def export_hf(
    splits: Mapping[str, Sequence[QAItem]],
    out_dir: str | Path,
    *,
    videos_dir: str | Path | None,
    video_mode: str = "symlink",
    allow_missing_videos: bool = False,
    licence: str = "mit",
    name: str = "R-AVST",
    source: str = "",
    notes: Sequence[str] = (),
) -> HFExport:
    """Write ``splits`` ({split name: QAs}) as a dataset folder; see the module docstring.

    ``video_mode``: ``symlink`` (default; a folder for local use), ``copy`` (self-contained, for
    sharing) or ``none`` (no ``videos/``; ``video_path`` null). A QA whose clip is not found in
    ``videos_dir`` is an error, unless ``allow_missing_videos`` (then null, counted and warned).
    ``notes``: lines for the card's "Provenance" section (e.g. a build's baseline warnings).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if video_mode not in ("symlink", "copy", "none"):
        raise ValueError(f"video_mode must be symlink, copy or none, got {video_mode!r}")
    if video_mode != "none" and videos_dir is None:
        raise ValueError("videos_dir is required unless video_mode='none'")
    for split in splits:
        if not split or not set(split) <= _SPLIT_CHARS:
            raise ValueError(f"split name {split!r}: use letters, digits and '_' only")
    empty = tuple(split for split, items in splits.items() if not items)
    if len(empty) == len(splits):
        raise ValueError(f"no QA to export (split(s) {', '.join(splits) or 'none'} are empty)")
    if empty:
        log.warning("split(s) %s have no QA and are not written (datasets cannot read an empty parquet file); "
                    "the card says so", ", ".join(empty))
        splits = {split: items for split, items in splits.items() if items}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / DATA_DIR).mkdir(exist_ok=True)
    for old in (out / DATA_DIR).glob("*.parquet"):
        old.unlink()
    videos: dict[str, str | None] = {}
    missing: list[str] = []
    written: list[Path] = []
    all_videos = dict.fromkeys(it.video for items in splits.values() for it in items)
    if video_mode != "none":
        assert videos_dir is not None
        vdir = Path(videos_dir)
        if not vdir.is_dir():
            raise ValueError(f"--videos {vdir}: no such directory")
        (out / VIDEOS_DIR).mkdir(exist_ok=True)
        for video in all_videos:
            src = _find_video(vdir, video)
            if src is None:
                missing.append(video)
                videos[video] = None
                continue
            dst = out / VIDEOS_DIR / src.name
            if dst.is_symlink() or dst.exists():
                dst.unlink()
            if video_mode == "symlink":
                os.symlink(src.resolve(), dst)
            else:
                shutil.copy2(src, dst)
            videos[video] = f"{VIDEOS_DIR}/{src.name}"
        if missing and not allow_missing_videos:
            raise ValueError(f"{len(missing)} of {len(all_videos)} videos not found in {vdir}, e.g. "
                             f"{', '.join(missing[:3])}; pass --allow-missing-videos to export without them")
        if missing:
            log.warning("%d of %d videos not found in %s (e.g. %s): their rows have video_path null",
                        len(missing), len(all_videos), vdir, ", ".join(missing[:3]))
    feats = features()
    n_rows: dict[str, int] = {}
    n_bytes: dict[str, int] = {}
    for split, items in splits.items():
        rows = qa_rows(items, videos)
        table = pa.Table.from_pylist(rows, schema=feats.arrow_schema)
        path = out / DATA_DIR / f"{split}-00000-of-00001.parquet"
        pq.write_table(table, path)
        written.append(path)
        n_rows[split] = len(rows)
        n_bytes[split] = int(table.nbytes)
    card = out / CARD
    card.write_text(dataset_card(n_rows, n_bytes, licence=licence, name=name, source=source,
                                 n_videos=len(all_videos), missing=len(missing), video_mode=video_mode,
                                 notes=notes, empty_splits=empty),
                    encoding="utf-8")
    written.append(card)
    return HFExport(out, n_rows, len(all_videos), tuple(missing), tuple(written), empty)


def _yaml_header(n_rows: Mapping[str, int], n_bytes: Mapping[str, int], licence: str) -> dict[str, Any]:
    from datasets.info import DatasetInfo

    info = DatasetInfo(features=features())._to_yaml_dict()
    info["splits"] = [{"name": s, "num_bytes": n_bytes[s], "num_examples": n} for s, n in n_rows.items()]
    return {
        "license": licence,
        "task_categories": ["video-text-to-text"],
        "tags": ["audio-visual", "spatio-temporal-grounding", "video-llm", "r-avst"],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f"{DATA_DIR}/{s}-*.parquet"} for s in n_rows]}],
        "dataset_info": info,
    }


def dataset_card(n_rows: Mapping[str, int], n_bytes: Mapping[str, int], *, licence: str, name: str, source: str, n_videos: int,
                 missing: int, video_mode: str, notes: Sequence[str] = (), empty_splits: Sequence[str] = ()) -> str:
    """The README.md of the folder: YAML header, then features, splits, licence, citation."""
    import yaml

    header = yaml.safe_dump(_yaml_header(n_rows, n_bytes, licence), sort_keys=False, allow_unicode=True)
    lines = [f"---\n{header}---", "", f"# {name}", "",
             "Audio-visual spatio-temporal reasoning QAs in the R-AVST layout, written by `ravst export hf`"
             + (f" from `{source}`." if source else "."), "",
             "```python", "import datasets", "ds = datasets.load_dataset(\"path/to/this/folder\")", "```", "",
             "## Splits", "", "| split | QAs |", "|---|---|"]
    lines += [f"| {s} | {n} |" for s, n in n_rows.items()]
    if empty_splits:
        lines += ["", f"Split(s) with no QA, not written: {', '.join(f'`{s}`' for s in empty_splits)}."]
    videos_note = {"symlink": "symbolic links to the original clips (copy them before sharing the folder)",
                   "copy": "copies of the clips", "none": "not included (`video_path` is null)"}[video_mode]
    lines += ["", f"{n_videos} videos; `videos/` holds {videos_note}"
              + (f"; {missing} videos were not found and have `video_path` null." if missing else "."), "",
              "## Features", "", "| field | meaning |", "|---|---|"]
    lines += [f"| `{f}` | {d} |" for f, d in FIELDS]
    if notes:
        lines += ["", "## Provenance", ""] + [f"- {note}" for note in notes]
    lines += ["", "Boxes are `[x1, y1, x2, y2]` in pixels of the original video frame, times in seconds.", "",
              "## Licence", "",
              f"Annotations: `{licence}` (the official R-AVST annotations, zhlllau/R-AVST, are MIT). The videos are "
              "UnAV-100 / YouTube clips (or your own) under their owners' terms; they are not covered by this "
              "licence.", "", "## Citation", "", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)


def official_json_bytes(data: Any) -> bytes:
    """The official file's serialisation (2-space indent, UTF-8)."""
    return json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")
