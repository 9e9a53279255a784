"""Training data: official-format QA files + a video directory -> a Hugging Face ``Dataset``.

One row per QA. Frames and audio are NOT stored in the dataset (a 60 s clip is megabytes);
the trainers decode them per batch with ``ravst.models.sampling.sample_video``, the very
sampling ``ravst infer`` uses (same fps / frame budget / smart-resize), and the prompt is
rendered with the same templates (``ravst.models.prompts``, default ``box2``: the paper's Box 2
as the system turn). So a trained model is evaluated on exactly the inputs it was trained on.
Columns:

=============== ======= ==========================================================================
column          type    meaning
=============== ======= ==========================================================================
``prompt``      list    chat messages: optional system turn, then a user turn
                        ``[{"type": "video"}, ({"type": "audio"}), {"type": "text", "text": ...}]``
``qa_id``       str     stable QA id ``{video}/{event_index}/{task}/{k}``
``task``        str     ``temporal`` / ``spatial`` / ``spatiotemporal``
``video_path``  str     absolute path of the clip
``qa``          str     the QA item as JSON (:func:`qa_to_json`), read by the rewards
``answer_text`` str     the ground-truth answer in the official layout, original pixels (SFT target)
=============== ======= ==========================================================================

>>> to_space_xyxy([[0, 0, 1280, 720]], "input", original_wh=(1280, 720), input_wh=(640, 360)).tolist()
[[0.0, 0.0, 640.0, 360.0]]
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ravst.types import Answer, CoordSpace, QAItem, Span, Task, Track

__all__ = [
    "VIDEO_EXTENSIONS",
    "answer_in_space",
    "build_dataset",
    "build_prompt",
    "clean_messages",
    "find_video",
    "qa_from_json",
    "qa_to_json",
    "sample",
    "sampling_config",
    "to_space_xyxy",
]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")


def sampling_config(data: Any) -> Any:
    """The ``ravst.models.sampling.SamplingConfig`` of a :class:`DataConfig`."""
    from ravst.models.sampling import SamplingConfig

    return SamplingConfig(fps=data.fps, max_frames=data.max_frames, min_pixels=data.min_pixels,
                          max_pixels=data.max_pixels, total_pixels=data.total_pixels, max_audio_s=data.max_audio_s)


def sample(path: str | Path, data: Any) -> Any:
    """The ``SampledVideo`` (frames at the model's input size, real times, audio if asked)."""
    from ravst.models.sampling import sample_video

    return sample_video(path, sampling_config(data), with_audio=data.use_audio)


def to_space_xyxy(xyxy: Any, space: CoordSpace | str, *, original_wh: Sequence[float],
                  input_wh: Sequence[float] | None = None) -> np.ndarray:
    """Original-pixel boxes -> boxes in ``space``: the inverse of ``ravst.coords.to_original_xyxy``
    (used to write SFT targets in the coordinate space the model answers in)."""
    from ravst.coords import to_original_xyxy

    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    unit = to_original_xyxy([[1.0, 1.0, 1.0, 1.0]], space, original_wh=original_wh, input_wh=input_wh)[0]
    return boxes / unit


def answer_in_space(answer: Answer, space: CoordSpace | str, *, original_wh: Sequence[float],
                    input_wh: Sequence[float] | None = None) -> Answer:
    """The answer with its boxes moved from original pixels to ``space`` (rounded to 0.1 px / unit)."""
    if CoordSpace(space) is CoordSpace.ORIGINAL or not answer.tracks:
        return answer
    digits = 3 if CoordSpace(space) is CoordSpace.NORM1 else 1
    tracks = tuple(Track(t.name, t.times_s, np.round(to_space_xyxy(t.xyxy, space, original_wh=original_wh,
                                                                   input_wh=input_wh), digits))
                   for t in answer.tracks)
    return Answer(answer.objects, answer.spans, tracks)


def find_video(video_dir: str | Path, name: str) -> Path | None:
    """``video_dir/name.<ext>`` for the first extension that exists (or ``name`` itself)."""
    base = Path(video_dir)
    if (base / name).is_file():
        return base / name
    for ext in VIDEO_EXTENSIONS:
        candidate = base / f"{name}{ext}"
        if candidate.is_file():
            return candidate
    return None


def build_prompt(item: QAItem, *, template: str = "box2", with_audio: bool = False) -> list[dict[str, Any]]:
    """The chat messages of one QA, rendered like ``ravst infer`` renders them."""
    from ravst.models.prompts import load_template
    from ravst.models.qwen import chat_messages

    t = load_template(template)
    system = t.render_system(question=item.question, duration_s=item.duration_s, video=item.video)
    user = t.render_user(question=item.question, duration_s=item.duration_s, video=item.video)
    return chat_messages(system, user, separate_audio=with_audio, video_first=t.video_first)


def qa_to_json(item: QAItem) -> str:
    """A compact JSON of a QA item (answer in the official text layout) for a dataset column."""
    from ravst.parsing import render_answer

    return json.dumps(
        {
            "qa_id": item.qa_id,
            "video": item.video,
            "duration_s": item.duration_s,
            "event_index": item.event_index,
            "event_num": item.event_num,
            "task": item.task.value,
            "k": item.k,
            "question": item.question,
            "answer": render_answer(item.answer),
            "sounding": item.sounding,
            "query_span": item.query_span.as_list() if item.query_span else None,
            "query_object": item.query_object,
            "category": item.category,
        }
    )


def qa_from_json(text: str) -> QAItem:
    """Inverse of :func:`qa_to_json` (the answer is read back with the one parser)."""
    from ravst.parsing import parse_answer

    raw = json.loads(text)
    parsed = parse_answer(raw["answer"])
    return QAItem(
        qa_id=raw["qa_id"],
        video=raw["video"],
        duration_s=raw["duration_s"],
        event_index=raw["event_index"],
        event_num=raw["event_num"],
        task=Task(raw["task"]),
        k=raw["k"],
        question=raw["question"],
        answer=parsed.answer,
        sounding=raw["sounding"],
        query_span=Span(*raw["query_span"]) if raw.get("query_span") else None,
        query_object=raw.get("query_object"),
        category=raw.get("category"),
    )


def _read_items(paths: Sequence[str]) -> list[QAItem]:
    from ravst.formats.official import read_official

    items: list[QAItem] = []
    for path in paths:
        if not Path(path).is_file():
            raise ValueError(f"QA file {path} does not exist")
        items.extend(read_official(path))
    return items


def build_dataset(config: Any) -> Any:
    """A ``datasets.Dataset`` (columns in the module docstring) from a :class:`DataConfig`."""
    from datasets import Dataset

    from ravst.parsing import render_answer

    items = [it for it in _read_items(config.qa_files) if it.task.value in config.tasks]
    rows: list[dict[str, Any]] = []
    missing: set[str] = set()
    for item in items:
        video = find_video(config.video_dir, item.video)
        if video is None:
            if not config.skip_missing_videos:
                raise ValueError(f"QA {item.qa_id}: video {item.video!r} not found in {config.video_dir}")
            missing.add(item.video)
            continue
        rows.append(
            {
                "prompt": build_prompt(item, template=config.prompt,
                                       with_audio=config.use_audio and not config.use_audio_in_video),
                "qa_id": item.qa_id,
                "task": item.task.value,
                "video_path": str(video.resolve()),
                "qa": qa_to_json(item),
                "answer_text": render_answer(item.answer),
            }
        )
        if config.max_samples is not None and len(rows) >= config.max_samples:
            break
    if missing:
        log.warning("skipped QAs of %d video(s) absent from %s (e.g. %s)", len(missing), config.video_dir,
                    sorted(missing)[:3])
    if not rows:
        raise ValueError(f"no training QA left from {list(config.qa_files)} with videos in {config.video_dir}")
    log.info("training data: %d QAs from %d file(s)", len(rows), len(config.qa_files))
    return Dataset.from_list(rows)


def clean_messages(prompt: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop the ``None`` fields Arrow adds to content parts (chat templates test ``'x' in part``)."""
    out = []
    for message in prompt:
        content = message["content"]
        if isinstance(content, list):
            content = [{k: v for k, v in part.items() if v is not None} for part in content]
        out.append({**message, "content": content})
    return out
