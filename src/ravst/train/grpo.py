"""AVST-Zero: GRPO on TRL 1.x with video (Qwen2.5-VL) and video + audio (Qwen2.5-Omni thinker).

Stock ``GRPOTrainer`` routes image fields only. :class:`AVGRPOTrainer` overrides four hooks:

- ``_generate_and_score_completions``: decodes the clips of the batch (``video_path`` column,
  cached per path) before TRL's generation, and attaches the per-sample video / audio tensors to
  the returned batch, as lists, so TRL's shuffling and slicing keep them aligned with the rows;
- ``_tokenize_prompts``: encodes each unique prompt with the processor (real frame times) and
  hands TRL the token ids plus the tensors for ``generate``;
- ``_get_per_token_logps_and_entropies``: feeds the tensors of exactly the rows being scored to
  the policy, old-policy and reference passes;
- ``compute_loss``: selects the tensors of the current micro-batch.

Every multimodal special token is suppressed while sampling (a sampled ``<|video_pad|>`` would
break the scoring pass). With ``vllm.enabled`` the rollout goes through TRL's colocated vLLM
engine, with the frames passed as vLLM video input.

MRoPE positions follow the reference rule (:mod:`ravst.models.mrope`) in every pass: TRL's
``generate`` starts from them (:func:`ravst.models.mrope.install_reference_positions`), and every
log-prob pass (policy, old policy, reference) gets them as ``position_ids``; the start-up check
:func:`ravst.models.mrope.verify_model_positions` refuses to train when they cannot reach the model.

A full Qwen2.5-Omni checkpoint (hub layout, ``Qwen2_5OmniModel``) trains its thinker: it is loaded
without the talker (``enable_audio_output=False``), the reference model is built the same way, and
the final model is saved in the full Omni layout (``thinker.*`` weights), which transformers,
``ravst infer`` and vLLM load (:func:`convert_thinker_checkpoint` converts a thinker-only directory).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ravst.train.config import GRPORunConfig
from ravst.train.data import sample
from ravst.train.inputs import (
    OMNI_AUDIO_KEYS,
    OMNI_VIDEO_KEYS,
    VL_KEYS,
    batch_mm,
    batch_position_ids,
    encode_prompt,
    mm_token_type_ids,
)

__all__ = ["build_grpo_trainer", "convert_thinker_checkpoint", "load_model_and_processor", "load_omni_thinker",
           "run_grpo", "save_final"]

log = logging.getLogger(__name__)

_CLIP_CACHE = 8  # decoded clips kept per trainer (a generation batch repeats each prompt G times)


def _trainer_class() -> type:
    from trl import GRPOTrainer

    class AVGRPOTrainer(GRPOTrainer):  # type: ignore[misc, valid-type]
        """GRPOTrainer that carries video (and Omni audio) tensors through generation and scoring."""

        def __init__(self, *args: Any, data_config: Any, family: str, max_prompt_text_tokens: int | None = None,
                     **kwargs: Any) -> None:
            self._data_config = data_config
            self._family = family
            self._max_text = max_prompt_text_tokens
            self._interleave = family == "qwen2_5_omni" and data_config.use_audio and data_config.use_audio_in_video
            if family == "qwen2_5_vl":
                self._mm_keys: tuple[str, ...] = VL_KEYS
            else:
                self._mm_keys = OMNI_VIDEO_KEYS + (OMNI_AUDIO_KEYS if data_config.use_audio else ())
            self._clips: OrderedDict[str, Any] = OrderedDict()
            self._batch_inputs: list[dict[str, Any]] = []
            self._batch_clips: list[Any] = []
            self._gen_mm: dict[str, list[Any]] | None = None
            self._active_mm: dict[str, list[Any]] | None = None
            from unittest import mock

            import trl.trainer.grpo_trainer as trl_grpo

            # TRL builds the reference model from the policy config's _name_or_path with the
            # architecture written there; a full Omni checkpoint needs its thinker instead
            original = trl_grpo.create_model_from_path
            with mock.patch.object(trl_grpo, "create_model_from_path", _reference_loader(original)):
                super().__init__(*args, **kwargs)
            if self.use_vllm and self.vllm_mode == "server":
                raise ValueError(
                    "vllm.mode 'server': TRL's vLLM server protocol carries token ids and image features only, "
                    "not video; use vllm.mode 'colocate'"
                )

        # ------------------------------------------------------------------ data
        def _clip(self, path: str) -> Any:
            if path in self._clips:
                self._clips.move_to_end(path)
                return self._clips[path]
            clip = sample(path, self._data_config)
            self._clips[path] = clip
            while len(self._clips) > _CLIP_CACHE:
                self._clips.popitem(last=False)
            return clip

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            self._batch_inputs = inputs
            self._batch_clips = [self._clip(x["video_path"]) for x in inputs]
            for x, clip in zip(inputs, self._batch_clips, strict=True):  # reward kwargs: box coordinate spaces
                x["input_wh"] = list(clip.input_wh)
                x["original_wh"] = list(clip.original_wh)
            try:
                out = super()._generate_and_score_completions(inputs)
                if self._gen_mm is None:
                    raise ValueError("internal: the prompts were not encoded by AVGRPOTrainer._tokenize_prompts")
                out.update(self._gen_mm)  # per-sample lists survive TRL's shuffle / split
            finally:
                self._active_mm = None
                self._gen_mm = None
            return out

        def _tokenize_prompts(self, prompts: list[Any]) -> tuple[list[list[int]], None, dict[str, Any]]:
            if len(prompts) != len(self._batch_inputs):
                raise ValueError(f"internal: {len(prompts)} prompts for {len(self._batch_inputs)} inputs")
            cache: dict[tuple[str, str], Any] = {}
            encoded = []
            for row, clip in zip(self._batch_inputs, self._batch_clips, strict=True):
                key = (row["qa_id"], row["video_path"])
                if key not in cache:
                    cache[key] = encode_prompt(self.processing_class, self._family, row["prompt"], clip,
                                               self._data_config)
                    self._check_length(row["qa_id"], cache[key].input_ids)
                encoded.append(cache[key])
            per_sample = {k: [e.mm[k] for e in encoded] for k in self._mm_keys}
            self._gen_mm = per_sample
            self._active_mm = per_sample  # old / ref log-prob passes inside super() score these rows
            fields: dict[str, Any] = self._cast(batch_mm([e.mm for e in encoded]))
            if self._family == "qwen2_5_vl":
                video_id = self.accelerator.unwrap_model(self.model).config.video_token_id
                fields["mm_token_type_ids"] = [[2 if t == video_id else 0 for t in e.input_ids] for e in encoded]
            if self._interleave:
                fields["use_audio_in_video"] = True
            return [e.input_ids for e in encoded], None, fields

        def _cast(self, fields: dict[str, Any]) -> dict[str, Any]:
            """Pixel and audio features in the model's dtype (bf16 models do not up-cast them)."""
            dtype = self.accelerator.unwrap_model(self.model).dtype
            for key in ("pixel_values_videos", "input_features"):
                if key in fields and fields[key].is_floating_point():
                    fields[key] = fields[key].to(dtype)
            return fields

        def _check_length(self, qa_id: str, ids: list[int]) -> None:
            if self._max_text is None:
                return
            special = set(self._suppressed)
            n_text = sum(1 for t in ids if t not in special)
            if n_text > self._max_text:
                raise ValueError(
                    f"QA {qa_id}: prompt has {n_text} text tokens > max_prompt_length {self._max_text} "
                    "(multimodal tokens are not counted)"
                )

        @property
        def _suppressed(self) -> list[int]:
            """Token ids never to be sampled (``generation_kwargs["suppress_tokens"]`` of the config;
            TRL keeps its own copy only for transformers generation, not for vLLM)."""
            return list((getattr(self.args, "generation_kwargs", None) or {}).get("suppress_tokens") or [])

        # ------------------------------------------------------------------ scoring
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            self._active_mm = {k: inputs[k] for k in self._mm_keys}
            try:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            finally:
                self._active_mm = None

        def _get_per_token_logps_and_entropies(self, model: Any, input_ids: Any, attention_mask: Any,
                                               logits_to_keep: int, batch_size: int | None = None,
                                               compute_entropy: bool = False, compute_aux_loss: bool = False,
                                               **_image_fields: Any) -> tuple[Any, Any, Any]:
            import torch

            mm = self._active_mm
            if mm is None or len(next(iter(mm.values()))) != input_ids.size(0):
                raise ValueError("internal: no video tensors aligned with the rows being scored")
            config = self.accelerator.unwrap_model(self.model).config
            batch_size = batch_size or input_ids.size(0)
            logps, entropies, aux = [], [], []
            for start in range(0, input_ids.size(0), batch_size):
                end = min(start + batch_size, input_ids.size(0))
                ids = input_ids[start:end]
                model_inputs = {"input_ids": ids, "attention_mask": attention_mask[start:end]}
                rows_mm = batch_mm([{k: mm[k][i] for k in self._mm_keys} for i in range(start, end)],
                                   device=ids.device)
                # the reference MRoPE positions, passed explicitly (policy, old policy and reference)
                model_inputs["position_ids"] = batch_position_ids(config, ids, attention_mask[start:end], rows_mm,
                                                                  use_audio_in_video=self._interleave)
                model_inputs.update(self._cast(rows_mm))
                if self._family == "qwen2_5_vl":
                    model_inputs["mm_token_type_ids"] = mm_token_type_ids(ids, config)
                if self._interleave:
                    model_inputs["use_audio_in_video"] = True
                if compute_aux_loss:
                    model_inputs["output_router_logits"] = True
                labels = ids.masked_fill(attention_mask[start:end] == 0, -100)
                labels[:, :-logits_to_keep] = -100
                with self.accelerator.autocast():
                    out = model(**model_inputs, labels=labels, fused_lm_head=True)
                logps.append(out.log_probs[:, -logits_to_keep:])
                if compute_entropy:
                    entropies.append(out.entropy[:, -logits_to_keep:])
                if compute_aux_loss:
                    aux.append(out.aux_loss)
            return (torch.cat(logps), torch.cat(entropies) if compute_entropy else None,
                    torch.stack(aux).mean() if compute_aux_loss else None)

        # ------------------------------------------------------------------ vLLM rollout
        def _generate_single_turn(self, prompt_ids: Any, images: Any, multimodal_fields: Any, num_generations: int,
                                  has_tool_images: bool = False) -> tuple[Any, Any]:
            if not self.use_vllm:
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                     has_tool_images)
            return self._vllm_video_rollout(prompt_ids)

        def _vllm_video_rollout(self, prompt_ids: list[list[int]]) -> tuple[list[list[int]], list[list[float]]]:
            """Completions from TRL's colocated vLLM engine, with the clip as vLLM video input.

            vLLM tokenizes the chat text itself (its own placeholder expansion); the completions are
            then scored on the prompt ids of the training processor like any other rollout."""
            from vllm import SamplingParams

            from ravst.models.vllm_backend import vllm_request
            from ravst.train.data import clean_messages

            gen = self.vllm_generation
            if getattr(gen, "tensor_parallel_size", 1) > 1:
                raise ValueError("vLLM video rollout: tensor_parallel_size > 1 is not supported")
            if self.state.global_step != self._last_loaded_step:
                gen.sync_weights()
                self._last_loaded_step = self.state.global_step
            d = self._data_config
            omni = self._family == "qwen2_5_omni"
            requests = []
            processor: Any = self.processing_class
            for row, clip in zip(self._batch_inputs, self._batch_clips, strict=True):
                # the same request `ravst infer --backend vllm` sends: chat text + frames + real fps
                text = str(processor.apply_chat_template(clean_messages(row["prompt"]), tokenize=False,
                                                         add_generation_prompt=True))
                request = vllm_request(text, clip, omni=omni, use_audio=self._interleave)
                if omni and d.use_audio and not d.use_audio_in_video:  # audio as its own input
                    request["multi_modal_data"]["audio"] = (clip.audio, clip.audio_sample_rate)
                requests.append(request)
            params = SamplingParams(
                n=1, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or -1,
                min_p=self.min_p or 0.0, repetition_penalty=self.repetition_penalty,
                max_tokens=self.max_completion_length, logprobs=0,
                logit_bias={int(t): -100.0 for t in self._suppressed} or None,  # vLLM has no suppress_tokens
                **{k: v for k, v in (gen.generation_kwargs or {}).items() if k != "suppress_tokens"},
            )
            if gen.enable_sleep_mode:
                gen.llm.wake_up(tags=["kv_cache"])
            outputs = gen.llm.generate(requests, sampling_params=params, use_tqdm=False)
            if gen.enable_sleep_mode:
                gen.llm.sleep(level=2)
                gen._llm_weights_sleeping = True
            completion_ids = [list(o.token_ids) for r in outputs for o in r.outputs]
            logprobs = [[next(iter(lp.values())).logprob for lp in o.logprobs] for r in outputs for o in r.outputs]
            return completion_ids, logprobs

    return AVGRPOTrainer


def _reference_loader(original: Any) -> Any:
    """TRL's ``create_model_from_path`` for the reference model, loading the thinker (without the
    talker) when the path is a full Qwen2.5-Omni checkpoint, with the reference positions."""

    def load(model_id: str, *args: Any, **kwargs: Any) -> Any:
        from transformers import AutoConfig

        from ravst.models.mrope import install_reference_positions

        if not model_id:
            raise ValueError("GRPO reference model: the policy's config has no _name_or_path to rebuild it from")
        config = AutoConfig.from_pretrained(model_id)
        if getattr(config, "model_type", "") == "qwen2_5_omni":
            kwargs.pop("trust_remote_code", None)
            model = load_omni_thinker(model_id, **kwargs)
        else:
            model = original(model_id, *args, **kwargs)
        if getattr(config, "model_type", "").startswith(("qwen2_5_omni", "qwen2_5_vl")):
            install_reference_positions(model)
        return model

    return load


def load_omni_thinker(path: str | Path, **kwargs: Any) -> Any:
    """The thinker of a full Qwen2.5-Omni checkpoint (hub layout), built without the talker
    (``enable_audio_output=False``: its weights are not loaded); its config's ``_name_or_path`` is
    the checkpoint, so TRL (reference model, colocated vLLM) finds it again."""
    from transformers import Qwen2_5OmniForConditionalGeneration

    full = Qwen2_5OmniForConditionalGeneration.from_pretrained(path, enable_audio_output=False, **kwargs)
    if getattr(full, "has_talker", False) or hasattr(full, "talker"):
        raise ValueError(f"{path}: the Omni talker was built although enable_audio_output=False")
    thinker = full.thinker
    thinker.config._name_or_path = str(path)
    return thinker


def convert_thinker_checkpoint(path: str | Path) -> bool:
    """Rewrite a thinker-only Qwen2.5-Omni directory (``save_pretrained`` of the thinker) in the
    full Omni layout that vLLM's registry and ``Qwen2_5OmniForConditionalGeneration`` load:
    ``config.json`` becomes a ``Qwen2_5OmniConfig`` (``enable_audio_output: false``, architecture
    ``Qwen2_5OmniForConditionalGeneration``) and every weight gets the ``thinker.`` prefix, one
    safetensors shard at a time; an empty ``spk_dict.pt`` (no talker speakers) is written when
    absent. Returns False (nothing done) for any other directory."""
    import json

    from safetensors.torch import load_file, save_file
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniThinkerConfig

    root = Path(path)
    config_path = root / "config.json"
    raw = json.loads(config_path.read_text(encoding="utf-8"))
    if raw.get("model_type") != "qwen2_5_omni_thinker":
        return False
    thinker = Qwen2_5OmniThinkerConfig.from_pretrained(root)
    full = Qwen2_5OmniConfig(thinker_config=thinker.to_dict(), enable_audio_output=False)
    full.architectures = ["Qwen2_5OmniForConditionalGeneration"]
    shards = sorted(root.glob("*.safetensors"))
    if not shards:
        raise ValueError(f"{root}: no *.safetensors weights to convert")
    for shard in shards:
        tensors = load_file(str(shard))
        save_file({k if k.startswith("thinker.") else f"thinker.{k}": v for k, v in tensors.items()}, str(shard),
                  metadata={"format": "pt"})
    index = root / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text(encoding="utf-8"))
        data["weight_map"] = {(k if k.startswith("thinker.") else f"thinker.{k}"): v
                              for k, v in data["weight_map"].items()}
        index.write_text(json.dumps(data, indent=2), encoding="utf-8")
    full.save_pretrained(root)
    if not (root / "spk_dict.pt").is_file():  # read by Qwen2_5OmniForConditionalGeneration.from_pretrained
        import torch

        torch.save({}, root / "spk_dict.pt")  # no speakers: text output only
    log.info("%s: saved in the full Qwen2.5-Omni layout (thinker.* weights, no talker)", root)
    return True


def load_model_and_processor(model_cfg: Any, *, bf16: bool) -> tuple[Any, Any, str]:
    """The model to train (the thinker for Omni), its processor and its family; the start-up
    position check (:func:`ravst.models.mrope.verify_model_positions`) has run on it."""
    import torch
    from transformers import AutoConfig, AutoProcessor

    from ravst.models.mrope import verify_model_positions
    from ravst.train.inputs import detect_family

    config = AutoConfig.from_pretrained(model_cfg.path)
    family = detect_family(config) if model_cfg.family == "auto" else model_cfg.family
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(
        model_cfg.dtype, torch.bfloat16 if bf16 else torch.float32
    )
    kwargs: dict[str, Any] = {"dtype": dtype}
    model: Any
    if model_cfg.attn_implementation:
        kwargs["attn_implementation"] = model_cfg.attn_implementation
    if family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLForConditionalGeneration

        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_cfg.path, **kwargs)
    elif config.model_type == "qwen2_5_omni":  # full Omni checkpoint: train its thinker, no talker
        model = load_omni_thinker(model_cfg.path, **kwargs)
    else:
        from transformers import Qwen2_5OmniThinkerForConditionalGeneration

        model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(model_cfg.path, **kwargs)
    processor = AutoProcessor.from_pretrained(model_cfg.path)
    verify_model_positions(model)  # PositionMismatchError: `ravst train` exits with 2
    return model, processor, family


def freeze_encoders(model: Any) -> int:
    """Freeze the vision and audio towers; returns the number of frozen tensors."""
    n = 0
    for name, param in model.named_parameters():
        if ".visual." in f".{name}" or "audio_tower." in name:
            param.requires_grad_(False)
            n += 1
    return n


def suppress_token_ids(processor: Any) -> list[int]:
    """Every multimodal special token id of the tokenizer (never to be sampled)."""
    from ravst.testing.tiny_qwen import multimodal_token_ids

    return multimodal_token_ids(processor)


def check_prompt_lengths(dataset: Any, processor: Any, max_text_tokens: int) -> int:
    """Before training: the longest prompt's text tokens (placeholders unexpanded, specials not
    counted); raises ``ValueError`` naming the QAs over ``max_text_tokens``."""
    from ravst.train.data import clean_messages

    tok = getattr(processor, "tokenizer", processor)
    special = set(suppress_token_ids(processor))
    longest, over = 0, []
    for row in dataset:
        text = processor.apply_chat_template(clean_messages(row["prompt"]), tokenize=False, add_generation_prompt=True)
        n = sum(1 for t in tok(text, add_special_tokens=False)["input_ids"] if t not in special)
        longest = max(longest, n)
        if n > max_text_tokens:
            over.append(row["qa_id"])
    if over:
        raise ValueError(f"{len(over)} prompt(s) have more than max_prompt_length={max_text_tokens} text tokens "
                         f"(longest {longest}), e.g. QA {over[0]}: raise max_prompt_length or shorten the prompt")
    log.info("prompts: at most %d text tokens (max_prompt_length %d)", longest, max_text_tokens)
    return longest


def peft_config(lora: Any) -> Any:
    if not lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, task_type="CAUSAL_LM")


def common_training_args(cfg: Any) -> dict[str, Any]:
    """TrainingArguments fields shared by GRPO and SFT."""
    return {
        "output_dir": cfg.output_dir,
        "num_train_epochs": cfg.num_train_epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "warmup_steps": cfg.warmup_ratio,  # transformers 5: a float < 1 is a ratio
        "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm,
        "bf16": cfg.bf16,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "use_cpu": cfg.use_cpu,
        "logging_steps": cfg.logging_steps,
        "save_strategy": "steps" if cfg.save_steps > 0 else "no",
        "save_steps": max(cfg.save_steps, 1),
        "save_total_limit": cfg.save_total_limit,
        "seed": cfg.seed,
        "report_to": cfg.report_to,
        "deepspeed": cfg.deepspeed,
        "dataloader_num_workers": cfg.dataloader_num_workers,
        "remove_unused_columns": False,
    }


def build_grpo_trainer(cfg: GRPORunConfig, *, train_dataset: Any = None, callbacks: list[Any] | None = None,
                       model: Any = None, processor: Any = None,
                       extra_rewards: list[tuple[Any, float]] | None = None) -> Any:
    """An ``AVGRPOTrainer`` ready to ``train()`` (dataset built from ``cfg.data`` unless given).

    ``extra_rewards``: additional ``(reward_function, weight)`` pairs (TRL signature), added to
    the AVST-Zero total (e.g. a shaping reward of your own).
    """
    from trl import GRPOConfig

    from ravst.rewards import make_reward_functions
    from ravst.train.data import build_dataset
    from ravst.train.inputs import detect_family

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
    check_prompt_lengths(dataset, processor, cfg.max_prompt_length)
    rewards_cfg = cfg.rewards
    if rewards_cfg.coord_space is None:
        rewards_cfg = dataclasses.replace(rewards_cfg, coord_space=cfg.data.coord_space)
    elif rewards_cfg.coord_space != cfg.data.coord_space:
        raise ValueError(f"rewards.coord_space {rewards_cfg.coord_space!r} differs from data.coord_space "
                         f"{cfg.data.coord_space!r}")
    funcs: list[Any]
    funcs, weights = make_reward_functions(rewards_cfg)
    for func, weight in extra_rewards or []:
        funcs.append(func)
        weights.append(float(weight))
    args = GRPOConfig(
        **common_training_args(cfg),
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        num_iterations=cfg.num_iterations,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        reward_weights=weights,
        generation_kwargs={"suppress_tokens": suppress_token_ids(processor)},
        use_vllm=cfg.vllm.enabled,
        vllm_mode=cfg.vllm.mode,
        vllm_gpu_memory_utilization=cfg.vllm.gpu_memory_utilization,
        vllm_tensor_parallel_size=cfg.vllm.tensor_parallel_size,
        vllm_server_host=cfg.vllm.server_host,
        vllm_server_port=cfg.vllm.server_port,
        vllm_enable_sleep_mode=cfg.vllm.enable_sleep_mode,
        vllm_max_model_length=cfg.vllm.max_model_length,
    )
    trainer_cls = _trainer_class()
    return trainer_cls(
        model=model,
        args=args,
        processing_class=processor,
        reward_funcs=funcs,
        train_dataset=dataset,
        callbacks=callbacks,
        peft_config=peft_config(cfg.lora),
        data_config=cfg.data,
        family=family,
        max_prompt_text_tokens=cfg.max_prompt_length,
    )


def _zero3(trainer: Any) -> bool:
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return bool(trainer.is_deepspeed_enabled and plugin is not None and plugin.zero_stage == 3)


def save_final(trainer: Any, out_dir: str | Path) -> Path:
    """Save a model ``ravst infer`` can load: full weights (a LoRA adapter merged in) + processor.

    Full fine-tuning goes through ``trainer.save_model`` (which consolidates DeepSpeed ZeRO-3
    shards). A LoRA adapter is merged in memory, or, under ZeRO-3 (sharded weights), saved next to
    ``out_dir`` (``<out_dir>-adapter``) and merged into a fresh copy of the base model.
    """
    out = Path(out_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    main = trainer.accelerator.is_main_process
    if not hasattr(model, "merge_and_unload"):
        trainer.save_model(str(out))
    elif not _zero3(trainer):
        merged = model.merge_and_unload()
        if main:
            merged.save_pretrained(out)
    else:
        adapter = out.with_name(out.name + "-adapter")
        trainer.save_model(str(adapter))
        if main:
            from peft import PeftModel
            from transformers import AutoConfig

            base_path = model.peft_config["default"].base_model_name_or_path
            dtype = model.get_base_model().dtype
            if getattr(AutoConfig.from_pretrained(base_path), "model_type", "") == "qwen2_5_omni":
                base = load_omni_thinker(base_path, dtype=dtype)
            else:
                base = type(model.get_base_model()).from_pretrained(base_path, dtype=dtype)
            PeftModel.from_pretrained(base, str(adapter)).merge_and_unload().save_pretrained(out)
    if main:
        trainer.processing_class.save_pretrained(out)
        convert_thinker_checkpoint(out)  # an Omni thinker: the full Omni layout (vLLM, transformers)
    trainer.accelerator.wait_for_everyone()
    log.info("final model saved to %s", out)
    return out


def run_grpo(cfg: GRPORunConfig) -> Path:
    """Train and save ``<output_dir>/final``; returns its path."""
    trainer = build_grpo_trainer(cfg)
    trainer.train()
    return save_final(trainer, Path(cfg.output_dir) / "final")
