"""The SFT baseline of the paper's Table 4: TRL ``SFTTrainer`` on the AVST-Zero data, the
ground-truth answers (official layout) as targets.

The collator decodes each row's clip, encodes the prompt exactly as GRPO does (same processor
call, same frame times), appends the tokenised answer followed by ``<|im_end|>``, and masks the
prompt out of the loss (labels ``-100``), so the model learns what GRPO would sample. Each batch
carries the reference MRoPE ``position_ids`` (:mod:`ravst.models.mrope`); Omni clips of different
audio lengths are padded with the feature attention mask.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ravst.train.config import SFTRunConfig
from ravst.train.data import answer_in_space, sample
from ravst.train.grpo import common_training_args, freeze_encoders, load_model_and_processor, peft_config
from ravst.train.grpo import save_final as _save_final
from ravst.train.inputs import batch_mm, batch_position_ids, detect_family, encode_prompt, mm_token_type_ids

__all__ = ["AnswerCollator", "build_sft_trainer", "run_sft", "save_final"]

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


class AnswerCollator:
    """Rows of :func:`ravst.train.data.build_dataset` -> padded model inputs with answer-only labels."""

    def __init__(self, processor: Any, family: str, data_config: Any, model_config: Any,
                 max_length: int | None = None, cache_size: int = 8) -> None:
        self.processor = processor
        self.family = family
        self.data = data_config
        self.model_config = model_config
        self.max_length = max_length
        self.cache_size = cache_size
        self._clips: OrderedDict[str, Any] = OrderedDict()
        tok = getattr(processor, "tokenizer", processor)
        self.tokenizer = tok
        self.end = "<|im_end|>"

    def _clip(self, path: str) -> Any:
        if path not in self._clips:
            self._clips[path] = sample(path, self.data)
            while len(self._clips) > self.cache_size:
                self._clips.popitem(last=False)
        return self._clips[path]

    def target(self, answer_text: str, video: Any) -> str:
        """The GT answer in the official layout, boxes in the space the model answers in."""
        from ravst.parsing import parse_answer, render_answer

        if self.data.coord_space == "original":
            return answer_text
        answer = answer_in_space(parse_answer(answer_text).answer, self.data.coord_space,
                                 original_wh=video.original_wh, input_wh=video.input_wh)
        return render_answer(answer)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        ids_list, labels_list, mms = [], [], []
        for row in rows:
            video = self._clip(row["video_path"])
            enc = encode_prompt(self.processor, self.family, row["prompt"], video, self.data)
            answer = self.tokenizer(self.target(row["answer_text"], video) + self.end + "\n",
                                    add_special_tokens=False)["input_ids"]
            ids = enc.input_ids + list(answer)
            if self.max_length is not None and len(ids) > self.max_length:
                raise ValueError(f"QA {row['qa_id']}: {len(ids)} tokens > max_length {self.max_length}")
            ids_list.append(ids)
            labels_list.append([IGNORE_INDEX] * len(enc.input_ids) + list(answer))
            mms.append(enc.mm)
        width = max(len(x) for x in ids_list)
        pad_id = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (ids, lab) in enumerate(zip(ids_list, labels_list, strict=True)):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(lab)] = torch.tensor(lab)
            attention[i, : len(ids)] = 1
        batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
        batch.update(batch_mm(mms))  # Omni audio of different lengths: padded with the feature mask
        interleave = self.family == "qwen2_5_omni" and self.data.use_audio and self.data.use_audio_in_video
        # the reference MRoPE positions (ravst.models.mrope), passed explicitly
        batch["position_ids"] = batch_position_ids(self.model_config, input_ids, attention, batch,
                                                   use_audio_in_video=interleave)
        dtype = getattr(self.model_config, "torch_dtype", None) or getattr(self.model_config, "dtype", None)
        for key in ("pixel_values_videos", "input_features"):
            if key in batch and isinstance(dtype, torch.dtype) and dtype.is_floating_point:
                batch[key] = batch[key].to(dtype)
        if self.family == "qwen2_5_vl":
            batch["mm_token_type_ids"] = mm_token_type_ids(input_ids, self.model_config)
        elif self.data.use_audio and self.data.use_audio_in_video:
            batch["use_audio_in_video"] = True
        return batch


def build_sft_trainer(cfg: SFTRunConfig, *, train_dataset: Any = None, callbacks: list[Any] | None = None,
                      model: Any = None, processor: Any = None) -> Any:
    """A TRL ``SFTTrainer`` on the QA data with :class:`AnswerCollator`."""
    from trl import SFTConfig, SFTTrainer

    from ravst.train.data import build_dataset

    if model is None or processor is None:
        model, processor, family = load_model_and_processor(cfg.model, bf16=cfg.bf16)
    else:
        from ravst.models.mrope import verify_model_positions

        family = detect_family(model) if cfg.model.family == "auto" else cfg.model.family
        verify_model_positions(model)
    if cfg.data.use_audio and family != "qwen2_5_omni":
        raise ValueError("data.use_audio: only Qwen2.5-Omni models take audio")
    if cfg.freeze_vision_tower:
        freeze_encoders(model)
    dataset = train_dataset if train_dataset is not None else build_dataset(cfg.data)
    args = SFTConfig(
        **common_training_args(cfg),
        max_length=None,
        dataset_kwargs={"skip_prepare_dataset": True},
    )
    collator = AnswerCollator(processor, family, cfg.data, model.config, max_length=cfg.max_length)
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        data_collator=collator,
        peft_config=peft_config(cfg.lora),
        callbacks=callbacks,
    )


def save_final(trainer: Any, out_dir: str | Path) -> Path:
    """Full weights (LoRA merged) + processor, loadable by ``ravst infer``."""
    return _save_final(trainer, out_dir)


def run_sft(cfg: SFTRunConfig) -> Path:
    """Train and save ``<output_dir>/final``; returns its path."""
    trainer = build_sft_trainer(cfg)
    trainer.train()
    return save_final(trainer, Path(cfg.output_dir) / "final")
