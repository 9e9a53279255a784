"""transformers backend for Qwen2.5-VL and the Qwen2.5-Omni thinker.

Model inputs carry the REAL frame timestamps: frames are sampled by :mod:`ravst.models.sampling`,
passed with transformers' ``VideoMetadata`` and ``do_sample_frames=False`` (Qwen2.5-VL derives
``second_per_grid_ts`` from it) and, for Omni, the matching ``fps`` (Omni's processor reads it
for its audio/video interleaving). Frames are already resized by Qwen's smart-resize rule, so the
processor is told ``do_resize=False`` and the recorded ``input_wh`` is exactly what the model saw.

Omni gets the clip's own audio track (``use_audio_in_video``): the Whisper feature extractor's
length is raised to the longest clip of the batch, so no audio is silently cut at 30 s.

MRoPE positions: the model gets ``position_ids`` computed by the reference rule
(:mod:`ravst.models.mrope`), never the installed transformers' own; a start-up check
(:func:`ravst.models.mrope.verify_model_positions`) refuses to run when they cannot reach the model.
With ``dump_dir`` every QA's model inputs (frame times, sizes, grids, token ids, the positions the
rotary embedding received, audio length) are written to ``dump_dir/<qa_id with / as __>.json``.

Reusable pieces (also for GRPO training): :func:`chat_messages`, :func:`processor_kwargs`,
:func:`build_inputs`, :func:`generation_kwargs`, :func:`is_omni`, :func:`dump_record`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ravst.models.base import InferRequest
from ravst.models.sampling import (
    AUDIO_SAMPLE_RATE,
    SampledVideo,
    SamplingConfig,
    sample_video,
    video_metadata,
)
from ravst.types import CoordSpace, Prediction

__all__ = [
    "GenerationSettings",
    "QwenBackend",
    "build_inputs",
    "chat_messages",
    "dump_path",
    "dump_record",
    "generation_kwargs",
    "is_omni",
    "processor_kwargs",
]

log = logging.getLogger(__name__)

_AUDIO_BLOCK_S = 2  # Qwen2.5-Omni's audio encoder works on 2 s windows: pad audio to a multiple


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding options shared by the local backends."""

    max_new_tokens: int = field(default=1024, metadata={"help": "tokens to generate at most"})
    do_sample: bool = field(default=False, metadata={"help": "sample instead of greedy decoding"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    seed: int = field(default=0, metadata={"help": "torch seed set before each batch"})

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def is_omni(obj: Any) -> bool:
    """True for a Qwen2.5-Omni processor, model or config (they carry an audio path)."""
    if hasattr(obj, "feature_extractor") and hasattr(obj, "video_processor"):
        return True
    config = getattr(obj, "config", obj)
    return "omni" in str(getattr(config, "model_type", "")).lower()


def chat_messages(
    system: str, user: str, *, separate_audio: bool = False, video_first: bool = True
) -> list[dict[str, Any]]:
    """Chat messages: optional system turn, then the video (and, with ``separate_audio``, an
    audio placeholder) before the user text. With ``use_audio_in_video`` the video placeholder
    alone stands for both streams.

    >>> [m["role"] for m in chat_messages("sys", "q")]
    ['system', 'user']
    >>> [c["type"] for c in chat_messages("", "q", separate_audio=True)[0]["content"]]
    ['video', 'audio', 'text']
    >>> [c["type"] for c in chat_messages("", "q", video_first=False)[0]["content"]]
    ['text', 'video']
    """
    content: list[dict[str, Any]] = [{"type": "video"}]
    if separate_audio:
        content.append({"type": "audio"})
    text = {"type": "text", "text": user}
    content = [*content, text] if video_first else [text, *content]
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": content})
    return messages


def processor_kwargs(
    processor: Any, videos: Sequence[SampledVideo], *, use_audio_in_video: bool = True
) -> dict[str, Any]:
    """Keyword arguments for ``processor(text=..., **kwargs)`` that feed ``videos`` with their
    real timestamps (and, for Omni with ``use_audio_in_video``, their own audio, interleaved).

    All videos of one call must share one sampling rate for Omni (its processor takes a single
    ``fps``); raises ``ValueError`` otherwise.
    """
    if not videos:
        raise ValueError("processor_kwargs: no videos")
    omni = is_omni(processor)
    videos_kwargs: dict[str, Any] = {
        "video_metadata": [video_metadata(v) for v in videos],
        "do_sample_frames": False,
        "do_resize": False,
    }
    kwargs: dict[str, Any] = {"videos": [v.frames for v in videos], "videos_kwargs": videos_kwargs}
    if not omni:
        return kwargs
    rates = [v.sampled_fps for v in videos]
    if max(rates) - min(rates) > 1e-3 * max(rates):
        raise ValueError(f"Omni batch mixes frame rates {sorted(set(round(r, 4) for r in rates))}: split it")
    videos_kwargs["fps"] = rates[0]
    if not use_audio_in_video:
        return kwargs
    missing = [v.path for v in videos if v.audio is None]
    if missing:
        raise ValueError(f"use_audio_in_video needs audio; none loaded for {missing}")
    longest = max(len(v.audio) for v in videos if v.audio is not None)
    block = _AUDIO_BLOCK_S * AUDIO_SAMPLE_RATE
    max_length = max(block, math.ceil(longest / block) * block)
    kwargs.update(
        audio=[v.audio for v in videos],
        audio_from_video_indices=list(range(len(videos))),
        load_audio_from_video=True,
        audio_kwargs={"max_length": max_length, "truncation": False, "sampling_rate": AUDIO_SAMPLE_RATE},
    )
    return kwargs


def build_inputs(
    processor: Any,
    prompts: Sequence[tuple[str, str] | tuple[str, str, bool]],
    videos: Sequence[SampledVideo],
    *,
    use_audio_in_video: bool = True,
) -> Any:
    """Tokenized, padded model inputs (a ``BatchFeature`` of torch tensors) for ``(system, user)``
    prompts (or ``(system, user, video_first)``) and their sampled videos."""
    omni = is_omni(processor)
    texts = [
        processor.apply_chat_template(
            chat_messages(p[0], p[1], video_first=bool(p[2]) if len(p) > 2 else True),
            tokenize=False,
            add_generation_prompt=True,
        )
        for p in prompts
    ]
    kwargs = processor_kwargs(processor, videos, use_audio_in_video=use_audio_in_video and omni)
    inputs = processor(text=texts, return_tensors="pt", padding=True, **kwargs)
    if omni and use_audio_in_video:
        n_audio = int((inputs["input_ids"] == processor.audio_token_id).sum())
        log.debug("omni batch: %d audio tokens for %.1f s of audio", n_audio, sum(v.audio_s for v in videos))
    return inputs


def generation_kwargs(processor: Any, settings: GenerationSettings, *, use_audio_in_video: bool) -> dict[str, Any]:
    """Arguments for ``model.generate`` besides the inputs: decoding options, the multimodal
    special tokens suppressed, and Omni's ``use_audio_in_video`` (its rope index needs it)."""
    from ravst.testing.tiny_qwen import multimodal_token_ids

    tok = processor.tokenizer
    kw: dict[str, Any] = {
        "max_new_tokens": settings.max_new_tokens,
        "do_sample": settings.do_sample,
        "suppress_tokens": multimodal_token_ids(processor),
        "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
    }
    if settings.do_sample:
        kw.update(temperature=settings.temperature, top_p=settings.top_p)
    else:
        kw.update(temperature=None, top_p=None, top_k=None)
    if is_omni(processor):
        kw["use_audio_in_video"] = use_audio_in_video
    return kw


def dump_path(dump_dir: str | Path, qa_id: str) -> Path:
    """``dump_dir/<qa_id with / replaced by __>.json``.

    >>> dump_path("d", "vid/0/temporal/1").as_posix()
    'd/vid__0__temporal__1.json'
    """
    return Path(dump_dir) / (qa_id.replace("/", "__") + ".json")


def dump_record(
    *,
    qa_id: str,
    backend: str,
    video: SampledVideo,
    input_ids: Sequence[int],
    position_ids: Any,
    position_source: str,
    video_grid_thw: Sequence[int] | None,
    second_per_grid: float | None,
    omni: bool,
    use_audio_in_video: bool = False,
    audio_feature_length: int | None = None,
) -> dict[str, Any]:
    """What the model was given for one QA (the ``--dump-inputs`` record).

    ``position_ids`` is ``3 x L`` (one row per MRoPE axis: temporal, height, width) for the
    unpadded ``input_ids``; ``position_source`` says where they were read (e.g. the text rotary
    embedding during the prefill)."""
    import transformers

    pos = [[int(x) for x in row] for row in (position_ids.tolist() if hasattr(position_ids, "tolist")
                                               else position_ids)]
    if len(pos) != 3 or any(len(row) != len(input_ids) for row in pos):
        raise ValueError(f"QA {qa_id}: position_ids must be 3 x {len(input_ids)}")
    rec: dict[str, Any] = {
        "qa_id": qa_id,
        "backend": backend,
        "transformers": transformers.__version__,
        "video": str(video.path),
        "frame_times_s": [round(float(t), 6) for t in video.times_s],
        "frame_indices": [int(i) for i in video.frame_indices],
        "sampled_fps": video.sampled_fps,
        "original_wh": list(video.original_wh),
        "input_wh": list(video.input_wh),
        "resize": video.resize,
        "video_grid_thw": [int(x) for x in video_grid_thw] if video_grid_thw is not None else None,
        ("video_second_per_grid" if omni else "second_per_grid_ts"):
            float(second_per_grid) if second_per_grid is not None else None,
        "input_ids": [int(t) for t in input_ids],
        "position_ids": pos,
        "position_ids_source": position_source,
    }
    if omni:
        n = 0 if video.audio is None else len(video.audio)
        rec.update(
            use_audio_in_video=use_audio_in_video,
            audio_samples=n if use_audio_in_video else 0,
            audio_sample_rate=video.audio_sample_rate,
            audio_s=round(n / video.audio_sample_rate, 6) if use_audio_in_video else 0.0,
            audio_cut_s=round(video.audio_cut_s, 6),
            audio_feature_length=audio_feature_length,
        )
    return rec


def write_dump(dump_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write one ``--dump-inputs`` record (atomically) and return its path."""
    path = dump_path(dump_dir, record["qa_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    tmp.replace(path)
    return path


def _resolve_dtype(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    try:
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use auto, bfloat16, float16 or float32") from None


def _split_adapter(model_path: str | Path) -> tuple[Path | None, str | Path]:
    """``(adapter_dir, base)`` for a directory holding only a LoRA adapter (``adapter_config.json``,
    e.g. an intermediate ``checkpoint-N`` of a LoRA run), else ``(None, model_path)``."""
    import json

    adapter_config = Path(model_path) / "adapter_config.json"
    if not adapter_config.is_file():
        return None, model_path
    try:
        base = json.loads(adapter_config.read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{adapter_config}: field 'base_model_name_or_path' missing or unreadable ({exc})") from exc
    if not base:
        raise ValueError(f"{adapter_config}: field 'base_model_name_or_path' is empty: cannot find the base model")
    return Path(model_path), base


def rope_spec_of(model: Any) -> Any:
    """The MRoPE spec (:class:`ravst.models.mrope.RopeSpec`) of a loaded model."""
    from ravst.models.mrope import rope_spec

    return rope_spec(model.config)


def _has_processor(path: Path) -> bool:
    return any((path / name).is_file() for name in ("preprocessor_config.json", "processor_config.json",
                                                     "tokenizer_config.json"))


class QwenBackend:
    """Qwen2.5-VL or Qwen2.5-Omni thinker through transformers (chosen from the checkpoint)."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        sampling: SamplingConfig,
        generation: GenerationSettings | None = None,
        use_audio: bool = True,
        coord_space: CoordSpace = CoordSpace.INPUT,
        device: str = "auto",
        dtype: str = "auto",
        attn_implementation: str | None = None,
        video_cache: int = 4,
        dump_dir: str | Path | None = None,
    ) -> None:
        import torch
        from transformers import (
            AutoConfig,
            AutoProcessor,
            Qwen2_5_VLForConditionalGeneration,
            Qwen2_5OmniThinkerForConditionalGeneration,
        )

        self.sampling = sampling
        self.generation = generation or GenerationSettings()
        self.coord_space = CoordSpace(coord_space)
        adapter_path, model_path = _split_adapter(model_path)
        processor_path = adapter_path if adapter_path and _has_processor(adapter_path) else model_path
        self.processor = AutoProcessor.from_pretrained(processor_path)
        config = AutoConfig.from_pretrained(model_path)
        self.omni = is_omni(config)
        self.use_audio = use_audio and self.omni
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        load_kw: dict[str, Any] = {"dtype": _resolve_dtype(dtype)}
        if attn_implementation:
            load_kw["attn_implementation"] = attn_implementation
        if device.startswith("cuda"):
            load_kw["device_map"] = device  # load straight onto the GPU
        if getattr(config, "model_type", "") == "qwen2_5_omni":
            # a full Omni checkpoint (thinker + talker): build it without the talker, keep the thinker
            from transformers import Qwen2_5OmniForConditionalGeneration

            log.info("full Qwen2.5-Omni checkpoint: loading its thinker only (text output)")
            full = Qwen2_5OmniForConditionalGeneration.from_pretrained(
                model_path, enable_audio_output=False, **load_kw
            )
            model: Any = full.thinker
        else:
            cls: Any = (
                Qwen2_5OmniThinkerForConditionalGeneration if self.omni else Qwen2_5_VLForConditionalGeneration
            )
            model = cls.from_pretrained(model_path, **load_kw)
        if adapter_path is not None:
            from peft import PeftModel

            log.info("LoRA adapter %s on base %s: merged for inference", adapter_path, model_path)
            model = PeftModel.from_pretrained(model, str(adapter_path)).merge_and_unload()
        self.model = model.to(device).eval()
        self.device = device
        from ravst.models.mrope import verify_model_positions

        # raises PositionMismatchError (a ValueError: `ravst infer` exits with 2) when the
        # reference positions cannot reach the model with this transformers
        self.position_check = verify_model_positions(self.model)
        self.rope = rope_spec_of(self.model)
        self.dump_dir = Path(dump_dir) if dump_dir is not None else None
        self.name = str(adapter_path or model_path)
        self._cache: OrderedDict[str, SampledVideo] = OrderedDict()
        self._cache_size = max(1, video_cache)
        self.processor.tokenizer.padding_side = "left"

    def sampled(self, path: Path) -> SampledVideo:
        """The sampled clip for ``path`` (a few recent clips are cached: QAs share videos)."""
        key = str(path)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        video = sample_video(path, self.sampling, with_audio=self.use_audio)
        self._cache[key] = video
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return video

    def predict(self, requests: Sequence[InferRequest]) -> list[Prediction]:
        videos = [self.sampled(r.video_path) for r in requests]
        # Omni's processor takes one fps per call, and a clip without audio cannot be interleaved:
        # group requests by (sampling rate, has audio)
        groups: dict[tuple[float, bool], list[int]] = {}
        for i, v in enumerate(videos):
            key = (round(v.sampled_fps, 4), v.audio is not None) if self.omni else (0.0, False)
            groups.setdefault(key, []).append(i)
        out: list[Prediction | None] = [None] * len(requests)
        for (_, has_audio), idx in groups.items():
            preds = self._generate([requests[i] for i in idx], [videos[i] for i in idx], self.use_audio and has_audio)
            for i, pred in zip(idx, preds, strict=True):
                out[i] = pred
        return [p for p in out if p is not None]

    def _generate(
        self, requests: Sequence[InferRequest], videos: Sequence[SampledVideo], use_audio: bool
    ) -> list[Prediction]:
        import torch

        start = time.perf_counter()
        inputs = build_inputs(
            self.processor, [(r.system, r.user, r.video_first) for r in requests], videos, use_audio_in_video=use_audio
        ).to(self.device)
        if "pixel_values_videos" in inputs:
            inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.model.dtype)
        if "input_features" in inputs:
            inputs["input_features"] = inputs["input_features"].to(self.model.dtype)
        from ravst.models.mrope import capture_rotary_positions, inputs_position_ids

        # the reference MRoPE positions, passed explicitly (never the installed transformers' own)
        positions = inputs_position_ids(self.rope, inputs, use_audio_in_video=use_audio).to(self.device)
        torch.manual_seed(self.generation.seed)
        gen_kw = generation_kwargs(self.processor, self.generation, use_audio_in_video=use_audio)
        with torch.inference_mode(), capture_rotary_positions(self.model) as seen:
            output = self.model.generate(**inputs, position_ids=positions, **gen_kw)
        if self.dump_dir is not None:
            self._dump(requests, videos, inputs, seen[0] if seen else None, use_audio)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        elapsed = (time.perf_counter() - start) / len(requests)
        preds = []
        for r, v, text, toks in zip(requests, videos, texts, new_tokens, strict=True):
            n_new = int((toks != self.processor.tokenizer.pad_token_id).sum())
            extra: dict[str, Any] = {
                "backend": "transformers",
                "original_wh": list(v.original_wh),
                "new_tokens": n_new,
                "batch_size": len(requests),
            }
            if self.omni:
                extra["audio_in_video"] = use_audio
                extra["audio_s"] = round(v.audio_s, 3)
                extra["audio_cut_s"] = round(v.audio_cut_s, 3)
            if n_new >= self.generation.max_new_tokens:
                extra["truncated"] = True
            preds.append(
                Prediction(
                    qa_id=r.item.qa_id,
                    text=text,
                    model=self.name,
                    coord_space=self.coord_space,
                    input_wh=v.input_wh,
                    frame_times_s=tuple(round(float(t), 4) for t in v.times_s),
                    latency_s=round(elapsed, 4),
                    extra=extra,
                )
            )
        return preds

    def _dump(self, requests: Sequence[InferRequest], videos: Sequence[SampledVideo], inputs: Any,
              used: Any, use_audio: bool) -> None:
        """One ``--dump-inputs`` record per request: the positions are those the text rotary
        embedding received during the prefill (unpadded row of this request)."""
        if used is None:
            raise ValueError("--dump-inputs: the model's rotary embedding received no positions")
        if used.ndim == 3 and used.shape[0] == 4:
            used = used[1:]
        mask = inputs["attention_mask"].bool().cpu()
        grids = inputs["video_grid_thw"].tolist()
        second = inputs.get("second_per_grid_ts")
        if second is None:
            second = inputs.get("video_second_per_grid")
        seconds = second.reshape(-1).tolist() if second is not None else [None] * len(grids)
        feats: list[Any] = (inputs["feature_attention_mask"].sum(-1).tolist()
                            if use_audio and "feature_attention_mask" in inputs else [None] * len(requests))
        for b, (r, v) in enumerate(zip(requests, videos, strict=True)):
            keep = mask[b]
            ids = inputs["input_ids"][b].cpu()[keep].tolist()
            rec = dump_record(
                qa_id=r.item.qa_id, backend="transformers", video=v, input_ids=ids,
                position_ids=used[:, b, keep], position_source="text rotary embedding, prefill (transformers)",
                video_grid_thw=grids[b], second_per_grid=seconds[b], omni=self.omni,
                use_audio_in_video=use_audio, audio_feature_length=int(feats[b]) if feats[b] is not None else None,
            )
            write_dump(self.dump_dir, rec)  # type: ignore[arg-type]

    def close(self) -> None:
        self._cache.clear()
        self.model = None
