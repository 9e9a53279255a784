"""lmms-eval glue of the R-AVST tasks: data loading, prompt, and scoring through ``ravst.evaluate``.

One scorer: ``process_results`` only records the raw answer of a QA; each aggregation function
rebuilds the QAs and predictions of the whole task and calls ``ravst.evaluate.evaluate`` (the
``ravst`` protocol, lenient parse, as in ``ravst eval``'s main tables), then reads its figure.
The evaluation of one list of answers is computed once and shared by the task's figures.

Data: ``RAVST_QA`` (the official ``xml_test_QA.json``, or a folder written by ``ravst export hf``)
and ``RAVST_VIDEOS`` (the clips), or ``dataset_kwargs: {qa, videos}`` in the task config; the
environment wins. ``RAVST_SIMILARITY`` (or ``dataset_kwargs.similarity``) picks the object
similarity backend. Missing clips stop the load (named) unless ``RAVST_ALLOW_MISSING_VIDEOS=1``.
Boxes are scored as pixels of the original frame: lmms-eval does not report the size of the
frames a model was fed, so answers in model-input pixels cannot be converted here (use
``ravst infer`` for such models; docs/lmms_eval.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ravst.types import Task

log = logging.getLogger(__name__)

try:
    from lmms_eval.api.task import ConfigurableTask
except ImportError:  # imported outside lmms-eval (docs, doctests): the task class cannot be used
    ConfigurableTask = object

# The figures each task reports, as named in ``ravst eval``'s metrics.json (Tables 2 and 3).
FIGURES: dict[str, tuple[str, ...]] = {
    Task.TEMPORAL.value: ("m_tIoU", "R1@0.3", "R1@0.5", "R1@0.7"),
    Task.SPATIAL.value: ("object_acc", "m_vIoU", "AP@0.3", "AP@0.5"),
    Task.SPATIOTEMPORAL.value: ("m_tIoU", "R1@0.3", "R1@0.5", "R1@0.7", "m_vIoU", "AP@0.3", "AP@0.5"),
}
ENV_QA, ENV_VIDEOS, ENV_SIMILARITY, ENV_ALLOW_MISSING = (
    "RAVST_QA", "RAVST_VIDEOS", "RAVST_SIMILARITY", "RAVST_ALLOW_MISSING_VIDEOS")

# Settings of the loaded tasks (lmms-eval calls aggregations with the values only).
_SETTINGS: dict[str, Any] = {"similarity": None}
_CACHE: dict[tuple[Any, ...], dict[str, Any]] = {}


def agg_name(task: str, figure: str) -> str:
    """``agg_temporal_R1_0_3`` for (``temporal``, ``R1@0.3``): the YAML's aggregation names.

    >>> agg_name("spatial", "AP@0.5")
    'agg_spatial_AP_0_5'
    """
    return f"agg_{task}_" + figure.replace("@", "_").replace(".", "_")


def _setting(kwargs: Mapping[str, Any], key: str, env: str) -> Any:
    value = os.environ.get(env)
    return value if value not in (None, "") else kwargs.get(key)


def load_rows(qa: str | Path, videos: str | Path | None, task: str, *, allow_missing: bool) -> list[dict[str, Any]]:
    """Rows (``ravst.formats.hf`` layout, absolute ``video_path``) of one task of a QA file."""
    from ravst.formats.hf import qa_rows
    from ravst.formats.official import read_official
    from ravst.infer import resolve_video

    if task not in FIGURES:
        raise ValueError(f"R-AVST lmms-eval task: dataset_name {task!r} is not one of {sorted(FIGURES)}")
    qa_path = Path(qa)
    if not qa_path.exists():
        raise ValueError(f"R-AVST lmms-eval task: QA file {qa_path} does not exist (set {ENV_QA})")
    items = [it for it in read_official(qa_path) if it.task.value == task]
    paths: dict[str, str | None] = {}
    missing: list[str] = []
    vdir = None if videos in (None, "") else Path(str(videos))
    if vdir is not None and not vdir.is_dir():
        raise ValueError(f"R-AVST lmms-eval task: videos folder {vdir} does not exist (set {ENV_VIDEOS})")
    for video in dict.fromkeys(it.video for it in items):
        try:
            paths[video] = None if vdir is None else str(resolve_video(vdir, video).resolve())
        except ValueError:
            paths[video] = None
        if paths[video] is None:
            missing.append(video)
    if missing:
        where = f"in {vdir}" if vdir is not None else f"(no videos folder: set {ENV_VIDEOS})"
        msg = f"{len(missing)} of {len(paths)} videos of {qa_path} not found {where}, e.g. {', '.join(missing[:3])}"
        if not allow_missing:
            raise ValueError(f"R-AVST lmms-eval task: {msg}; set {ENV_ALLOW_MISSING}=1 to load anyway "
                             "(a model then fails on the first missing clip)")
        log.warning("%s; their QAs are kept and fail when a model asks for the clip", msg)
    return qa_rows(items, paths)


class RavstTask(ConfigurableTask):  # type: ignore[misc,valid-type]
    """A ConfigurableTask whose documents are the QAs of one R-AVST task, read by ravst."""

    def __init__(self, *args: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if ConfigurableTask is object:
            raise ImportError("lmms-eval is not installed: pip install 'ravst[lmms]'")
        if config is not None:
            config = {k: v for k, v in config.items() if k != "class"}
        super().__init__(*args, config=config, **kwargs)

    def download(self, dataset_kwargs: dict[str, Any] | None = None) -> None:
        from datasets import Dataset, DatasetDict

        from ravst.formats.hf import features

        kw = dict(dataset_kwargs or {})
        qa = _setting(kw, "qa", ENV_QA)
        if not qa:
            raise ValueError(f"R-AVST lmms-eval task: no QA file; set {ENV_QA}=path/to/xml_test_QA.json "
                             "(or dataset_kwargs.qa in the task config)")
        videos = _setting(kw, "videos", ENV_VIDEOS)
        allow = str(os.environ.get(ENV_ALLOW_MISSING, "")).lower() in ("1", "true", "yes")
        _SETTINGS["similarity"] = _setting(kw, "similarity", ENV_SIMILARITY)
        rows = load_rows(qa, videos, str(self.config.dataset_name), allow_missing=allow)
        if not rows:
            raise ValueError(f"R-AVST lmms-eval task: {qa} has no {self.config.dataset_name} QAs")
        split = self.config.test_split
        self.dataset = DatasetDict({split: Dataset.from_list(rows, features=features())})
        self.dataset_no_image = self.dataset
        log.info("R-AVST %s: %d QAs from %s", self.config.dataset_name, len(rows), qa)


def doc_to_visual(doc: Mapping[str, Any]) -> list[str]:
    path = doc.get("video_path")
    if not path or not Path(path).is_file():
        raise FileNotFoundError(f"R-AVST QA {doc.get('qa_id')}: clip of video {doc.get('video')!r} not found "
                                f"(set {ENV_VIDEOS})")
    return [str(path)]


def doc_to_text(doc: Mapping[str, Any], lmms_eval_specific_kwargs: Mapping[str, Any] | None = None) -> str:
    """The question in a ravst prompt template (default ``box2-user``: Box 2 then the question)."""
    from ravst.models.prompts import load_template

    name = (lmms_eval_specific_kwargs or {}).get("prompt") or "box2-user"
    template = load_template(str(name))
    system = template.render_system(question=doc["question"], duration_s=doc["duration"], video=doc["video"])
    user = template.render_user(question=doc["question"], duration_s=doc["duration"], video=doc["video"])
    return f"{system}\n\n{user}" if system else user


def doc_to_target(doc: Mapping[str, Any]) -> str:
    return str(doc["answer"])


_DOC_KEYS = ("qa_id", "video", "duration", "event_index", "event_num", "task", "k", "question", "answer",
             "category")


def process_results(doc: Mapping[str, Any], results: Sequence[str], **_: Any) -> dict[str, Any]:
    """Record the raw answer under every figure of the QA's task (scored in the aggregations)."""
    text = results[0] if results else ""
    record = {"doc": {k: doc.get(k) for k in _DOC_KEYS}, "text": "" if text is None else str(text)}
    return dict.fromkeys(FIGURES[str(doc["task"])], record)


def evaluate_records(records: Sequence[Mapping[str, Any]], similarity: str | None = None) -> dict[str, Any]:
    """``ravst.evaluate.evaluate`` on the QAs and answers of ``records``; its metrics dict."""
    from ravst.evaluate import evaluate
    from ravst.formats.hf import row_to_item
    from ravst.similarity import get_similarity
    from ravst.types import Prediction

    name = similarity if similarity is not None else _SETTINGS.get("similarity")
    key = (name, tuple((r["doc"]["qa_id"], r["text"]) for r in records))
    if key not in _CACHE:
        items = [row_to_item(r["doc"]) for r in records]
        preds = [Prediction(r["doc"]["qa_id"], r["text"], model="lmms-eval") for r in records]
        sim = get_similarity(name) if name else get_similarity()
        _CACHE.clear()
        _CACHE[key] = evaluate(items, preds, similarity=sim).metrics
    return _CACHE[key]


def _aggregation(task: str, figure: str) -> Callable[[Sequence[Mapping[str, Any]]], float]:
    def aggregate(records: Sequence[Mapping[str, Any]]) -> float:
        value = evaluate_records(records)["tasks"][task].get(figure)
        return float("nan") if value is None else float(value)

    aggregate.__name__ = agg_name(task, figure)
    aggregate.__doc__ = f"{figure} of the {task} QAs, % (ravst eval's figure)."
    return aggregate


__all__ = ["RavstTask", "doc_to_target", "doc_to_text", "doc_to_visual", "evaluate_records", "process_results"]
for _task, _figures in FIGURES.items():
    for _figure in _figures:
        globals()[agg_name(_task, _figure)] = _aggregation(_task, _figure)
        __all__.append(agg_name(_task, _figure))
