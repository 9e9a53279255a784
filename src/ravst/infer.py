"""``ravst infer``: answer QAs with a Video-LLM or a baseline, writing predictions JSONL.

One prediction record per QA (``ravst.formats.predictions``): the raw model text, the model, the
coordinate space of its boxes (and the input size for ``input``), the real timestamps of the
frames fed, the time taken and, when it failed, the reason (``error``). The run is resumable:
QAs already in the output file are skipped. A failure on one QA is recorded and the run goes on.

Backends: ``transformers`` (Qwen2.5-VL / Qwen2.5-Omni thinker), ``vllm``, ``openai`` (any
OpenAI-compatible chat endpoint), and weight-free baselines ``full-span``, ``whole-frame``,
``random``, ``av-signal``.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ravst.models.base import Backend, InferRequest
from ravst.models.prompts import BUILTIN_TEMPLATES, PromptTemplate, load_template
from ravst.models.sampling import (
    RESIZE_MODES,
    VIDEO_MAX_PIXELS,
    VIDEO_MIN_PIXELS,
    VIDEO_TOTAL_PIXELS,
    SamplingConfig,
)
from ravst.types import CoordSpace, Prediction, QAItem

__all__ = [
    "BACKENDS",
    "InferSummary",
    "add_arguments",
    "completed_ids",
    "make_backend",
    "resolve_video",
    "run",
    "run_inference",
]

log = logging.getLogger(__name__)

MODEL_BACKENDS = ("transformers", "vllm", "openai")
BASELINE_BACKENDS = ("full-span", "whole-frame", "random", "av-signal")
BACKENDS = MODEL_BACKENDS + BASELINE_BACKENDS
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--qa", required=True, type=Path, help="QA file in the official layout (xml_test_QA.json)")
    parser.add_argument("--videos", required=True, type=Path, help="directory of the videos (<video_name>.mp4 ...)")
    parser.add_argument("--backend", required=True, choices=BACKENDS, help="model backend or baseline")
    parser.add_argument("--model", default=None, help="model path or hub id (transformers/vllm), model name (openai)")
    parser.add_argument("--out", required=True, type=Path, help="predictions JSONL to write (appended; resumable)")
    g = parser.add_argument_group("frames")
    g.add_argument("--fps", type=float, default=1.0, help="frames sampled per second (default 1.0)")
    g.add_argument("--max-frames", type=int, default=64, help="frame budget per clip (default 64)")
    g.add_argument("--min-pixels", type=int, default=None,
                   help=f"min H*W of a frame (default qwen-vl-utils' video value {VIDEO_MIN_PIXELS})")
    g.add_argument("--max-pixels", type=int, default=VIDEO_MAX_PIXELS,
                   help=f"max H*W of a frame (default and cap: qwen-vl-utils' {VIDEO_MAX_PIXELS})")
    g.add_argument("--total-pixels", type=int, default=VIDEO_TOTAL_PIXELS,
                   help=f"H*W budget over all frames of a clip (default qwen-vl-utils' {VIDEO_TOTAL_PIXELS})")
    g.add_argument("--max-audio-s", type=float, default=None, help="cut audio longer than this (default: keep all)")
    g.add_argument("--resize", choices=RESIZE_MODES, default="reference",
                   help="reference: qwen-vl-utils' antialiased bicubic (default); fast: one swscale pass, about "
                        "half the CPU per frame, pixels further from the reference (docs/inference.md)")
    g.add_argument("--no-audio", action="store_true", help="Omni: do not feed the clip's audio track")
    g = parser.add_argument_group("prompt and decoding")
    g.add_argument(
        "--prompt",
        default="box2",
        help=f"built-in template {sorted(BUILTIN_TEMPLATES)} or a JSON/YAML file with 'system' and 'user'",
    )
    g.add_argument("--max-new-tokens", type=int, default=1024)
    g.add_argument("--temperature", type=float, default=None, help="sample at this temperature (default greedy)")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0, help="sampling seed; also the random baseline's seed")
    g.add_argument(
        "--coord-space",
        choices=[c.value for c in CoordSpace],
        default=None,
        help="space the model's boxes are in (default: input for transformers/vllm/openai, original for baselines)",
    )
    g = parser.add_argument_group("run")
    g.add_argument("--batch-size", type=int, default=1, help="QAs per model call")
    g.add_argument("--limit", type=int, default=None, help="answer at most this many (new) QAs")
    from ravst.subsets import add_selection_arguments

    add_selection_arguments(g)  # --tasks, --subset (balanced: drawn with --seed)
    g.add_argument("--retry-errors", action="store_true", help="drop failed records from --out and retry them")
    g.add_argument("--device", default="auto", help="transformers: cuda, cpu or auto")
    g.add_argument("--dtype", default="auto", help="transformers: auto, bfloat16, float16, float32")
    g.add_argument("--attn-implementation", default=None, help="transformers: e.g. flash_attention_2, sdpa")
    g.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm: GPUs per model")
    g.add_argument("--base-url", default=None, help="openai: endpoint, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="openai: environment variable with the key")
    g.add_argument("--timeout-s", type=float, default=120.0, help="openai: seconds per request")
    g.add_argument("--baseline-object", default="person", help="baselines: object name when the question names none")
    g.add_argument("--dump-inputs", type=Path, default=None, metavar="DIR",
                   help="transformers/vllm: write what the model was given per QA to DIR/<qa_id, / as __>.json "
                        "(frame times, sizes, grids, token ids, MRoPE position ids, audio length)")


def resolve_video(videos_dir: Path, name: str) -> Path:
    """``videos_dir / name`` with the first known video extension that exists.

    Raises ``ValueError`` naming the directory and the names tried when none exists.
    """
    candidates = [videos_dir / name] if Path(name).suffix.lower() in VIDEO_EXTENSIONS else []
    candidates += [videos_dir / f"{name}{ext}" for ext in VIDEO_EXTENSIONS]
    for path in candidates:
        if path.is_file():
            return path
    raise ValueError(f"video {name!r} not found in {videos_dir} (tried {', '.join(p.name for p in candidates)})")


def completed_ids(
    out_path: Path,
    *,
    drop_errors: bool = False,
    model: str | None = None,
    expect: Mapping[str, Any] | None = None,
) -> set[str]:
    """``qa_id`` of the records already in ``out_path`` (missing file: none), for resuming.

    Stricter than ``ravst.formats.predictions.completed_ids`` (which skips bad lines, for reading
    someone else's file) on purpose: this file is about to be appended to. Each line is checked
    with ``ravst.formats.predictions.prediction_from_dict`` (lines are split on ``"\\n"`` only, by
    ``ravst.jsonl``, so U+2028 in an answer is just text); only a last line without its newline
    that is not complete JSON (a write cut short by a crash, even inside a UTF-8 character) is
    dropped from the file, with a warning. Any other bad line raises ``ValueError`` naming the file
    and line, and the file is left untouched. With ``model``, a record of another model
    is refused; with ``expect`` (e.g. ``{"backend": "random", "seed": 0}``), a record whose field of
    that name is recorded with another value is refused (resuming must not mix two runs in one
    file). With ``drop_errors`` the records that carry an ``error`` are removed to be tried again.
    """
    from ravst.formats.predictions import prediction_from_dict
    from ravst.jsonl import repair_tail, scan_jsonl, write_jsonl_atomic

    if not out_path.exists():
        return set()
    done: set[str] = set()
    kept: list[Any] = []
    torn = dropped = False
    wanted = dict(expect or {})
    if model is not None:
        wanted["model"] = model
    for line in scan_jsonl(out_path):  # lines split on "\n" only; a torn tail cut at the byte level
        if line.torn:
            torn = True  # cut off below, once every other line is known to be good
            continue
        if not line.ok:
            raise ValueError(f"{out_path}: line {line.number}: not a prediction record ({line.error})")
        record = line.value
        try:
            pred = prediction_from_dict(record)
        except ValueError as exc:
            raise ValueError(f"{out_path}: line {line.number}: not a prediction record ({exc})") from exc
        for key, value in wanted.items():
            if key in record and record[key] is not None and record[key] != value:
                raise ValueError(
                    f"{out_path}: line {line.number}: field {key!r} is {record[key]!r} but this run has "
                    f"{value!r}; resuming would mix two runs in one file: choose another --out"
                )
        if drop_errors and pred.error:
            dropped = True
            continue
        done.add(pred.qa_id)
        kept.append(record)
    if dropped:
        write_jsonl_atomic(out_path, kept)  # the failed records go (and a torn last line with them)
        log.info("%s: removed the failed records to retry them", out_path)
    elif torn:
        repair_tail(out_path)  # logs what it dropped
    return done


@dataclass(frozen=True)
class InferSummary:
    """What one run did: QAs answered now, skipped as already done, and failed (recorded)."""

    answered: int
    skipped: int
    failed: int


def _error_prediction(request: InferRequest, backend_name: str, exc: BaseException) -> Prediction:
    return Prediction(
        qa_id=request.item.qa_id,
        text="",
        model=backend_name,
        error=f"{type(exc).__name__}: {exc}",
    )


def _predict_safely(backend: Backend, batch: Sequence[InferRequest]) -> list[Prediction]:
    """The batch's predictions; when the batch call fails, each request alone; a request that
    still fails gets a prediction with ``error`` set (and an empty text)."""
    try:
        preds = backend.predict(batch)
        if len(preds) != len(batch):
            raise RuntimeError(f"backend returned {len(preds)} predictions for {len(batch)} requests")
        return preds
    except (ValueError, RuntimeError, OSError, KeyError, IndexError, TypeError) as exc:
        if len(batch) == 1:
            log.warning("QA %s failed: %s: %s", batch[0].item.qa_id, type(exc).__name__, exc)
            return [_error_prediction(batch[0], backend.name, exc)]
        log.warning("batch of %d failed (%s: %s): retrying one by one", len(batch), type(exc).__name__, exc)
    out: list[Prediction] = []
    for request in batch:
        out.extend(_predict_safely(backend, [request]))
    return out


def _requests(items: Iterable[QAItem], videos_dir: Path, template: PromptTemplate) -> Iterable[InferRequest | tuple[QAItem, ValueError]]:
    for item in items:
        try:
            path = resolve_video(videos_dir, item.video)
        except ValueError as exc:
            yield item, exc
            continue
        system = template.render_system(question=item.question, duration_s=item.duration_s, video=item.video)
        user = template.render_user(question=item.question, duration_s=item.duration_s, video=item.video)
        yield InferRequest(item, path, system, user, video_first=template.video_first)


def run_inference(
    items: Sequence[QAItem],
    videos_dir: Path,
    backend: Backend,
    out_path: Path,
    *,
    template: PromptTemplate,
    batch_size: int = 1,
    limit: int | None = None,
    retry_errors: bool = False,
    progress: bool = True,
    expect: Mapping[str, Any] | None = None,
) -> InferSummary:
    """Answer every QA of ``items`` not yet in ``out_path``, appending one record per QA.

    ``expect``: recorded fields the existing records must agree with (see ``completed_ids``)."""
    from tqdm import tqdm

    from ravst.formats.predictions import prediction_to_dict
    from ravst.jsonl import JsonlAppender

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    done = completed_ids(out_path, drop_errors=retry_errors, model=backend.name, expect=expect)
    todo = [it for it in items if it.qa_id not in done]
    skipped = len(items) - len(todo)
    if limit is not None:
        todo = todo[: max(0, limit)]
    if skipped:
        log.info("%s: %d QAs already done, %d to go", out_path, skipped, len(todo))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    answered = failed = 0
    with JsonlAppender(out_path) as out, tqdm(  # whole flushed lines; adds a missing last newline first
        total=len(todo), desc=f"infer {backend.name}", unit="qa", disable=not progress
    ) as bar:

        def flush(batch: list[InferRequest]) -> None:
            nonlocal answered, failed
            for pred in _predict_safely(backend, batch):
                out.write(prediction_to_dict(pred))
                failed += pred.error is not None
                answered += pred.error is None
            bar.update(len(batch))

        batch: list[InferRequest] = []
        for req in _requests(todo, videos_dir, template):
            if isinstance(req, tuple):
                item, exc = req
                out.write(prediction_to_dict(Prediction(qa_id=item.qa_id, text="", model=backend.name,
                                                        error=str(exc))))
                failed += 1
                bar.update(1)
                continue
            batch.append(req)
            if len(batch) >= batch_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
    return InferSummary(answered=answered, skipped=skipped, failed=failed)


def _sampling(args: argparse.Namespace) -> SamplingConfig:
    from ravst.models.sampling import FPS_MIN_FRAMES

    if args.resize == "fast":
        log.warning("--resize fast: frames are scaled in one swscale pass, not with qwen-vl-utils' antialiased "
                    "bicubic: pixels differ from the reference's (measured in docs/inference.md)")

    return SamplingConfig(
        fps=args.fps,
        max_frames=args.max_frames,
        min_frames=min(FPS_MIN_FRAMES, args.max_frames),  # a budget under qwen-vl-utils' minimum of 4 is kept
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        total_pixels=args.total_pixels,
        max_audio_s=args.max_audio_s,
        resize=args.resize,
    )


def _looks_like_path(model: str) -> bool:
    """A local path rather than a hub id (``owner/name``): absolute, relative, or home-relative."""
    return model.startswith(("/", "./", "../", "~")) or model.count("/") > 1


def make_backend(args: argparse.Namespace) -> Backend:
    """The backend named by ``args.backend`` (imports its heavy packages only now)."""
    sampling = _sampling(args)
    coord = CoordSpace(args.coord_space) if args.coord_space else None
    dump_dir = getattr(args, "dump_inputs", None)
    if dump_dir is not None and args.backend not in ("transformers", "vllm"):
        raise ValueError(f"--dump-inputs: not available for --backend {args.backend} (transformers and vllm only: "
                         "other backends do not expose the model's inputs)")
    if args.backend in BASELINE_BACKENDS:
        from ravst.models.baselines import BaselineBackend

        return BaselineBackend(
            args.backend, seed=args.seed, default_object=args.baseline_object, coord_space=coord or CoordSpace.ORIGINAL
        )
    if not args.model:
        raise ValueError(f"--backend {args.backend} needs --model")
    if args.backend != "openai" and _looks_like_path(args.model) and not Path(args.model).is_dir():
        raise ValueError(f"--model {args.model}: no such model directory")
    from ravst.models.qwen import GenerationSettings

    generation = GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.temperature is not None,
        temperature=args.temperature or 1.0,
        top_p=args.top_p,
        seed=args.seed,
    )
    if args.backend == "transformers":
        from ravst.models.qwen import QwenBackend

        return QwenBackend(
            args.model,
            sampling=sampling,
            generation=generation,
            use_audio=not args.no_audio,
            coord_space=coord or CoordSpace.INPUT,
            device=args.device,
            dtype=args.dtype,
            attn_implementation=args.attn_implementation,
            dump_dir=dump_dir,
        )
    if args.backend == "vllm":
        from ravst.models.vllm_backend import VllmBackend

        return VllmBackend(
            args.model,
            sampling=sampling,
            generation=generation,
            use_audio=not args.no_audio,
            coord_space=coord or CoordSpace.INPUT,
            tensor_parallel_size=args.tensor_parallel_size,
            dump_dir=dump_dir,
        )
    from ravst.models.openai_backend import OpenAIBackend

    if not args.base_url:
        raise ValueError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    return OpenAIBackend(
        args.model,
        base_url=args.base_url,
        api_key=os.environ.get(args.api_key_env, ""),
        sampling=sampling,
        generation=generation,
        coord_space=coord or CoordSpace.INPUT,
        timeout_s=args.timeout_s,
    )


def run_fields(args: argparse.Namespace) -> dict[str, Any]:
    """Recorded fields that identify this run: the backend, and the seed where it shapes answers."""
    fields: dict[str, Any] = {"backend": args.backend}
    if args.backend == "random" or args.temperature is not None:
        fields["seed"] = args.seed
    return fields


def run(args: argparse.Namespace) -> int:
    from ravst.formats.official import read_official

    try:
        if not Path(args.videos).is_dir():
            raise ValueError(f"--videos {args.videos}: no such directory")
        items = read_official(args.qa)
        if getattr(args, "tasks", None) is not None or getattr(args, "subset", "all") != "all":
            from ravst.subsets import select

            items = select(items, tasks=args.tasks, subset=args.subset, seed=args.seed)
        template = load_template(args.prompt)
        backend = make_backend(args)
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 2
    try:
        summary = run_inference(
            items,
            args.videos,
            backend,
            args.out,
            template=template,
            batch_size=args.batch_size,
            limit=args.limit,
            retry_errors=args.retry_errors,
            expect=run_fields(args),
        )
    except (ValueError, OSError) as exc:  # e.g. an unreadable --out file
        log.error("%s", exc)
        return 2
    finally:
        backend.close()
    log.info(
        "%s: %d answered, %d failed (recorded), %d already done",
        args.out,
        summary.answered,
        summary.failed,
        summary.skipped,
    )
    if summary.failed and not summary.answered:
        return 1
    return 0


