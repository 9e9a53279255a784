"""Model inputs for training: chat prompt + decoded clip -> token ids and per-sample video/audio tensors.

Each prompt is encoded on its own (one processor call per unique prompt) so that every sample
keeps its own frame rate (``second_per_grid_ts`` / ``video_second_per_grid``) and its tensors can
be sliced, shuffled and re-batched by TRL without any bookkeeping of rows. The processor gets the
real frame rate of the sampled frames (``VideoMetadata``, ``do_sample_frames=False``), so the
model's time positions match the seconds of the video.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from ravst.train.data import clean_messages

__all__ = ["OMNI_KEYS", "VL_KEYS", "Encoded", "batch_mm", "batch_position_ids", "detect_family", "encode_prompt",
           "mm_token_type_ids"]

log = logging.getLogger(__name__)

VL_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
OMNI_VIDEO_KEYS = ("pixel_values_videos", "video_grid_thw", "video_second_per_grid")
OMNI_AUDIO_KEYS = ("input_features", "feature_attention_mask")
OMNI_KEYS = OMNI_VIDEO_KEYS + OMNI_AUDIO_KEYS
_AUDIO_BLOCK_S = 2  # Omni's audio encoder works on 2 s windows (as ravst.models.qwen pads)


@dataclass(frozen=True, eq=False)
class Encoded:
    """One encoded prompt: ``input_ids`` (list of int) and its multimodal tensors (first dim = its rows)."""

    input_ids: list[int]
    mm: dict[str, Any]


def detect_family(model_or_config: Any) -> str:
    """``qwen2_5_vl`` or ``qwen2_5_omni`` from a model / config ``model_type``."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = str(getattr(config, "model_type", ""))
    if "omni" in model_type:
        return "qwen2_5_omni"
    if "qwen2_5_vl" in model_type or "qwen2_vl" in model_type:
        return "qwen2_5_vl"
    raise ValueError(f"unsupported model_type {model_type!r}: expected Qwen2.5-VL or Qwen2.5-Omni")


def encode_prompt(processor: Any, family: str, prompt: list[dict[str, Any]], video: Any, data: Any) -> Encoded:
    """Apply the chat template (with the generation prompt) and the processor to one prompt.

    ``video`` is a ``ravst.models.sampling.SampledVideo``; the processor arguments come from
    ``ravst.models.qwen.processor_kwargs`` (real frame times, frames already resized, Omni audio
    interleaved or, with ``use_audio_in_video: false``, as a separate input).
    """
    import torch

    from ravst.models.qwen import processor_kwargs

    omni = family == "qwen2_5_omni"
    text = processor.apply_chat_template(clean_messages(prompt), tokenize=False, add_generation_prompt=True)
    interleave = omni and data.use_audio and data.use_audio_in_video
    kwargs = processor_kwargs(processor, [video], use_audio_in_video=interleave)
    if omni and data.use_audio and not data.use_audio_in_video:
        if video.audio is None:
            raise ValueError(f"{video.path}: data.use_audio is set but the clip has no audio track")
        from ravst.models.sampling import AUDIO_SAMPLE_RATE

        block = _AUDIO_BLOCK_S * AUDIO_SAMPLE_RATE
        max_length = max(block, math.ceil(len(video.audio) / block) * block)  # no silent cut at 30 s
        kwargs.update(audio=[video.audio],
                      audio_kwargs={"max_length": max_length, "truncation": False, "sampling_rate": AUDIO_SAMPLE_RATE})
    enc = processor(text=[text], return_tensors="pt", **kwargs)
    keys = VL_KEYS if not omni else OMNI_VIDEO_KEYS + (OMNI_AUDIO_KEYS if data.use_audio else ())
    mm: dict[str, Any] = {}
    for key in keys:
        value = enc[key]
        mm[key] = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    mm["video_grid_thw"] = mm["video_grid_thw"].long()
    second_key = "second_per_grid_ts" if not omni else "video_second_per_grid"
    mm[second_key] = mm[second_key].float().reshape(-1)
    return Encoded(input_ids=enc["input_ids"][0].tolist(), mm=mm)


def batch_mm(per_sample: list[dict[str, Any]], device: Any = None) -> dict[str, Any]:
    """Concatenate per-sample multimodal tensors along their first dimension.

    Omni audio of different lengths (``input_features`` ``[1, mel, L_i]``) is right-padded with
    zeros to the longest ``L`` and ``feature_attention_mask`` with 0, as the processor pads a batch
    (the audio encoder reads only the masked-in frames)."""
    import torch

    if not per_sample:
        return {}
    out: dict[str, Any] = {}
    for key in per_sample[0]:
        parts = [s[key] for s in per_sample]
        if key in ("input_features", "feature_attention_mask") and len({p.shape[-1] for p in parts}) > 1:
            width = max(p.shape[-1] for p in parts)
            parts = [torch.nn.functional.pad(p, (0, width - p.shape[-1])) for p in parts]
        out[key] = torch.cat(parts)
    if device is not None:
        out = {k: v.to(device) for k, v in out.items()}
    return out


def mm_token_type_ids(input_ids: Any, config: Any) -> Any:
    """Qwen2.5-VL's ``mm_token_type_ids``: 1 on image placeholders, 2 on video placeholders, else 0."""
    import torch

    out = torch.zeros_like(input_ids)
    video_id = getattr(config, "video_token_id", None)
    image_id = getattr(config, "image_token_id", None)
    if video_id is not None:
        out[input_ids == video_id] = 2
    if image_id is not None:
        out[input_ids == image_id] = 1
    return out


def batch_position_ids(model_config: Any, input_ids: Any, attention_mask: Any, mm: dict[str, Any], *,
                       use_audio_in_video: bool) -> Any:
    """``(3, B, L)`` reference MRoPE positions (:mod:`ravst.models.mrope`) for a padded batch of
    prompt (+ completion / answer) ids and its batched multimodal tensors."""
    from ravst.models.mrope import inputs_position_ids, rope_spec

    fields = dict(mm)
    fields["input_ids"] = input_ids
    fields["attention_mask"] = attention_mask
    return inputs_position_ids(rope_spec(model_config), fields, use_audio_in_video=use_audio_in_video).to(
        input_ids.device)
