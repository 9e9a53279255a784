"""vLLM backend (offline ``vllm.LLM``) for Qwen2.5-VL and Qwen2.5-Omni thinker on GPUs.

vLLM is an optional extra (``pip install ravst[vllm]``); it is imported only when this backend is
built. Frames and audio are prepared exactly as for the transformers backend
(:mod:`ravst.models.sampling`): real timestamps (frames go with metadata giving the frame rate
measured from them, and ``mm_processor_kwargs["fps"]`` for Omni), Qwen's smart resize done beforehand (the processor's pixel
bounds are set to the same values, so it keeps the frames' size), and, for Omni, the clip's own
audio with ``use_audio_in_video``.

vLLM >= :data:`VLLM_MIN_VERSION` is required (checked when the backend is built): it is the first
release whose Qwen2.5-VL processor forwards the ``(frames, metadata)`` video metadata to the HF
processor; older ones drop it, the processor assumes 24 fps and the time positions collapse.

A checkpoint written by ``ravst train`` from a Qwen2.5-Omni model is saved in the full Omni layout
(``Qwen2_5OmniForConditionalGeneration`` config, ``thinker.*`` weights), which vLLM's registry loads;
older thinker-only directories are converted with ``ravst.train.grpo.convert_thinker_checkpoint``.

With ``dump_dir`` each QA's inputs are written like the transformers backend's; vLLM does not
expose the positions it computes, so the record holds vLLM's prompt token ids and the reference
rule's positions on them (``position_ids_source`` says so).

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

__all__ = ["VLLM_MIN_VERSION", "VllmBackend", "check_vllm_version", "vllm_request"]

log = logging.getLogger(__name__)

VLLM_MIN_VERSION = "0.31.0"  # first vLLM whose Qwen2.5-VL processor forwards video metadata (PR 47736)


def check_vllm_version(version: str) -> None:
    """Raise ``ValueError`` when ``version`` is older than :data:`VLLM_MIN_VERSION`.

    >>> check_vllm_version("0.31.0"); check_vllm_version("0.33.1+cu128")
    >>> check_vllm_version("0.30.0")
    Traceback (most recent call last):
    ...
    ValueError: vLLM 0.30.0 is too old: ravst needs vllm>=0.31.0 (older versions drop the video metadata, so the processor assumes 24 fps and the model's time positions are wrong); pip install 'ravst[vllm]'
    """
    from packaging.version import InvalidVersion, Version

    try:
        ok = Version(version) >= Version(VLLM_MIN_VERSION)
    except InvalidVersion as exc:
        raise ValueError(f"vLLM version {version!r} is not a version number: {exc}") from exc
    if not ok:
        raise ValueError(f"vLLM {version} is too old: ravst needs vllm>={VLLM_MIN_VERSION} (older versions drop the "
                         "video metadata, so the processor assumes 24 fps and the model's time positions are wrong); "
                         "pip install 'ravst[vllm]'")


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
        dump_dir: str | Path | None = None,
    ) -> None:
        try:
            import vllm
            from vllm import LLM
        except ImportError as exc:
            raise ValueError("the vllm backend needs vLLM: pip install 'ravst[vllm]' (GPU machines)") from exc
        from transformers import AutoConfig, AutoProcessor

        check_vllm_version(str(vllm.__version__))
        config = AutoConfig.from_pretrained(model_path)
        if getattr(config, "model_type", "") == "qwen2_5_omni_thinker":
            raise ValueError(f"{model_path}: a thinker-only Qwen2.5-Omni checkpoint does not load in vLLM; convert it "
                             "with `python -m ravst.train.grpo convert-omni DIR` (full Omni layout)")
        self.dump_dir = Path(dump_dir) if dump_dir is not None else None

        self.sampling = sampling
        self.generation = generation or GenerationSettings()
        self.coord_space = CoordSpace(coord_space)
        self.processor = AutoProcessor.from_pretrained(model_path)
        self.omni = is_omni(config)
        self.config = config
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
        if self.dump_dir is not None:
            for r, v, inp, out in zip(requests, videos, inputs, outputs, strict=True):
                self._dump(r, v, inp["prompt"], list(out.prompt_token_ids))
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

    def _dump(self, request: InferRequest, video: SampledVideo, prompt: str, prompt_ids: list[int]) -> None:
        """The ``--dump-inputs`` record: vLLM's own prompt token ids; grid and time step from the HF
        processor on the same frames and options; positions by the reference rule (vLLM computes
        them internally and does not return them)."""
        from ravst.models.mrope import position_ids_for, rope_spec
        from ravst.models.qwen import dump_record, processor_kwargs, write_dump

        enc = self.processor(text=[prompt], return_tensors="pt",
                             **processor_kwargs(self.processor, [video], use_audio_in_video=self.use_audio))
        second = enc.get("second_per_grid_ts")
        if second is None:
            second = enc.get("video_second_per_grid")
        feat = enc.get("feature_attention_mask")
        spec = rope_spec(self.config)
        pos = position_ids_for(spec, [prompt_ids], video_grid_thw=enc["video_grid_thw"], second_per_grid=second,
                               feature_attention_mask=feat, use_audio_in_video=self.use_audio)[:, 0]
        rec = dump_record(
            qa_id=request.item.qa_id, backend="vllm", video=video, input_ids=prompt_ids, position_ids=pos,
            position_source="reference rule on vLLM's prompt token ids (vLLM does not return its positions)",
            video_grid_thw=enc["video_grid_thw"][0].tolist(), second_per_grid=float(second.reshape(-1)[0]),
            omni=self.omni, use_audio_in_video=self.use_audio,
            audio_feature_length=int(feat.sum()) if feat is not None else None,
        )
        rec["hf_processor_input_ids_equal"] = enc["input_ids"][0].tolist() == prompt_ids
        write_dump(self.dump_dir, rec)  # type: ignore[arg-type]

    def close(self) -> None:
        self.llm = None
