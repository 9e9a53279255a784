"""vLLM backend (offline ``vllm.LLM``) for Qwen2.5-VL and Qwen2.5-Omni thinker on GPUs.

vLLM is an optional extra (``pip install ravst[vllm]``); it is imported only when this backend is
built. Frames and audio are prepared exactly as for the transformers backend
(:mod:`ravst.models.sampling`): real timestamps (frames go with metadata giving the frame rate
measured from them, and ``mm_processor_kwargs["fps"]`` for Omni), Qwen's smart resize done beforehand (the processor's pixel
bounds are set to the same values, so it keeps the frames' size), and, for Omni, the clip's own
audio with ``use_audio_in_video``.

Not exercised on this project's CPU machines: ``scripts/gpu_check.sh`` runs it on a GPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ravst.models.base import InferRequest
from ravst.models.qwen import GenerationSettings, chat_messages, is_omni
from ravst.models.sampling import AUDIO_SAMPLE_RATE, SampledVideo, SamplingConfig, sample_video
from ravst.types import CoordSpace, Prediction

__all__ = ["VllmBackend", "vllm_request"]

log = logging.getLogger(__name__)


def vllm_request(prompt: str, video: SampledVideo, *, omni: bool, use_audio: bool) -> dict[str, Any]:
    """One ``LLM.generate`` input: the chat-formatted prompt, the frames with their metadata (the
    ``(frames, metadata)`` form of vLLM's video items; the metadata describes the sampled clip as
    :func:`ravst.models.sampling.video_metadata` does), the audio for Omni, and the processor
    options that keep the frames' size and skip re-sampling."""
    w, h = video.input_wh
    n = len(video.times_s)
    rate = video.sampled_fps
    metadata = {
        "total_num_frames": n,
        "fps": rate,
        "duration": n / rate,
        "frames_indices": list(range(n)),
        "width": w,
        "height": h,
        "video_backend": "ravst",
    }
    mm_data: dict[str, Any] = {"video": (video.frames, metadata)}
    mm_kwargs: dict[str, Any] = {
        "fps": rate,
        "do_sample_frames": False,
        "size": {"shortest_edge": w * h, "longest_edge": w * h},
    }
    if omni and use_audio:
        if video.audio is None:
            raise ValueError(f"{video.path}: use_audio_in_video needs an audio track")
        mm_data["audio"] = (video.audio, AUDIO_SAMPLE_RATE)
        mm_kwargs["use_audio_in_video"] = True
    return {"prompt": prompt, "multi_modal_data": mm_data, "mm_processor_kwargs": mm_kwargs}


class VllmBackend:
    """Qwen2.5-VL / Omni thinker through ``vllm.LLM`` (one process, one or more GPUs)."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        sampling: SamplingConfig,
        generation: GenerationSettings | None = None,
        use_audio: bool = True,
        coord_space: CoordSpace = CoordSpace.INPUT,
        tensor_parallel_size: int = 1,
        max_model_len: int = 32768,
        gpu_memory_utilization: float = 0.85,
    ) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ValueError("the vllm backend needs vLLM: pip install 'ravst[vllm]' (GPU machines)") from exc
        from transformers import AutoConfig, AutoProcessor

        self.sampling = sampling
        self.generation = generation or GenerationSettings()
        self.coord_space = CoordSpace(coord_space)
        self.processor = AutoProcessor.from_pretrained(model_path)
        self.omni = is_omni(AutoConfig.from_pretrained(model_path))
        self.use_audio = use_audio and self.omni
        limits = {"video": 1, "audio": 1} if self.omni else {"video": 1}
        self.llm = LLM(
            model=str(model_path),
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            limit_mm_per_prompt=limits,
            seed=self.generation.seed,
        )
        self.name = str(model_path)

    def _sampling_params(self) -> Any:
        from vllm import SamplingParams

        from ravst.testing.tiny_qwen import multimodal_token_ids

        g = self.generation
        banned = multimodal_token_ids(self.processor)
        return SamplingParams(
            max_tokens=g.max_new_tokens,
            temperature=g.temperature if g.do_sample else 0.0,
            top_p=g.top_p if g.do_sample else 1.0,
            seed=g.seed,
            logit_bias={i: -100.0 for i in banned} if banned else None,
        )

    def predict(self, requests: Sequence[InferRequest]) -> list[Prediction]:
        start = time.perf_counter()
        videos = [sample_video(r.video_path, self.sampling, with_audio=self.use_audio) for r in requests]
        inputs = []
        for r, v in zip(requests, videos, strict=True):
            prompt = self.processor.apply_chat_template(
                chat_messages(r.system, r.user, video_first=r.video_first), tokenize=False, add_generation_prompt=True
            )
            inputs.append(vllm_request(prompt, v, omni=self.omni, use_audio=self.use_audio))
        outputs = self.llm.generate(inputs, self._sampling_params(), use_tqdm=False)
        elapsed = (time.perf_counter() - start) / max(1, len(requests))
        preds = []
        for r, v, out in zip(requests, videos, outputs, strict=True):
            completion = out.outputs[0]
            extra: dict[str, Any] = {
                "backend": "vllm",
                "original_wh": list(v.original_wh),
                "new_tokens": len(completion.token_ids),
                "finish_reason": completion.finish_reason,
                "batch_size": len(requests),
            }
            if self.omni:
                extra["audio_s"] = round(v.audio_s, 3)
                extra["audio_cut_s"] = round(v.audio_cut_s, 3)
            preds.append(
                Prediction(
                    qa_id=r.item.qa_id,
                    text=completion.text,
                    model=self.name,
                    coord_space=self.coord_space,
                    input_wh=v.input_wh,
                    frame_times_s=tuple(round(float(t), 4) for t in v.times_s),
                    latency_s=round(elapsed, 4),
                    extra=extra,
                )
            )
        return preds

    def close(self) -> None:
        self.llm = None
