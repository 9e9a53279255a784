"""Configuration dataclasses for AVST-Zero GRPO and the SFT baseline, read from YAML.

A YAML file has one section per dataclass (``model``, ``data``, ``rewards``, ``lora``, ``vllm``)
plus the training fields at the top level. Unknown keys are errors (no silent typos).
Defaults are the paper's ("AVST-Zero Training"): 6 generations, ``max_prompt_length`` 512,
``max_completion_length`` 1024, ``max_pixels`` 12,845,056, ``min_pixels`` 3,136, one epoch,
batch 1 per device.

>>> cfg = GRPORunConfig.from_dict({"model": {"path": "m"}, "data": {"qa_files": ["a.json"],
...                                 "video_dir": "v"}, "output_dir": "out"})
>>> cfg.num_generations, cfg.max_completion_length, cfg.data.max_pixels
(6, 1024, 12845056)
>>> GRPORunConfig.from_dict({"model": {"path": "m"}, "data": {"qa_files": ["a"], "video_dir": "v"},
...                          "output_dir": "o", "typo": 1})
Traceback (most recent call last):
...
ValueError: GRPORunConfig: unknown key(s) ['typo']; known: ...
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ravst.rewards import RewardConfig

__all__ = [
    "DataConfig",
    "GRPORunConfig",
    "LoraSettings",
    "ModelConfig",
    "SFTRunConfig",
    "VLLMSettings",
    "load_config",
]

T = TypeVar("T")

TASK_NAMES = ("temporal", "spatial", "spatiotemporal")
MODEL_FAMILIES = ("auto", "qwen2_5_vl", "qwen2_5_omni")


@dataclass(frozen=True)
class ModelConfig:
    path: str = field(metadata={"help": "Local directory or hub id of the base model (Qwen2.5-VL / Qwen2.5-Omni)."})
    family: str = field(
        default="auto",
        metadata={"help": "qwen2_5_vl, qwen2_5_omni (the thinker is trained) or auto (from config.json)."},
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "e.g. flash_attention_2, sdpa, eager; None = transformers' default."}
    )
    dtype: str = field(default="auto", metadata={"help": "float32, bfloat16, float16 or auto (bf16 flag decides)."})

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("model.path: must be set")
        if self.family not in MODEL_FAMILIES:
            raise ValueError(f"model.family: {self.family!r} is not one of {MODEL_FAMILIES}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"model.dtype: {self.dtype!r} is not auto/float32/bfloat16/float16")


@dataclass(frozen=True)
class DataConfig:
    qa_files: tuple[str, ...] = field(metadata={"help": "Official-format QA files (xml_test_QA.json layout)."})
    video_dir: str = field(metadata={"help": "Directory holding <video_name>.<ext> for every QA file entry."})
    tasks: tuple[str, ...] = field(default=TASK_NAMES, metadata={"help": "Task families to keep."})
    fps: float = field(
        default=1.0,
        metadata={"help": "Frames per second fed to the model (the released code used 0.25; GT boxes are 1 Hz)."},
    )
    max_frames: int = field(default=64, metadata={"help": "Frame budget per clip (evenly spread above it)."})
    max_pixels: int = field(default=12845056, metadata={"help": "Max H*W of a resized frame (paper: 12845056)."})
    min_pixels: int = field(default=3136, metadata={"help": "Min H*W of a resized frame (paper: 3136)."})
    total_pixels: int | None = field(
        default=None, metadata={"help": "Optional H*W budget summed over all frames (qwen-vl-utils' total_pixels)."}
    )
    use_audio: bool = field(default=False, metadata={"help": "Feed the audio track (Omni only)."})
    use_audio_in_video: bool = field(
        default=True,
        metadata={"help": "Omni: interleave audio with the frames (like ravst infer) instead of a separate part."},
    )
    max_audio_s: float | None = field(default=None, metadata={"help": "Cut audio longer than this (logged)."})
    coord_space: str = field(
        default="input",
        metadata={"help": "Space the model answers boxes in: input (pixels of the frames it sees, Qwen2.5-VL; "
                  "ravst infer's default), original, norm1 or norm1000. Rewards convert from it, SFT targets to it."},
    )
    prompt: str = field(
        default="box2", metadata={"help": "Prompt template: a built-in name (box2, box2-user, plain) or a file."}
    )
    max_samples: int | None = field(default=None, metadata={"help": "Keep only the first N QAs (debugging)."})
    skip_missing_videos: bool = field(
        default=True, metadata={"help": "Drop QAs whose video file is absent (logged) instead of failing."}
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "qa_files", tuple(str(p) for p in self.qa_files))
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if not self.qa_files:
            raise ValueError("data.qa_files: at least one QA file is needed")
        bad = [t for t in self.tasks if t not in TASK_NAMES]
        if bad or not self.tasks:
            raise ValueError(f"data.tasks: {bad or 'empty'} not in {TASK_NAMES}")
        if not self.fps > 0:
            raise ValueError(f"data.fps: must be > 0, got {self.fps}")
        if self.max_frames < 2:
            raise ValueError(f"data.max_frames: must be >= 2, got {self.max_frames}")
        if self.min_pixels <= 0 or self.max_pixels < self.min_pixels:
            raise ValueError(f"data: need 0 < min_pixels <= max_pixels, got {self.min_pixels}, {self.max_pixels}")
        if self.coord_space not in ("input", "original", "norm1", "norm1000"):
            raise ValueError(f"data.coord_space: {self.coord_space!r} is not input/original/norm1/norm1000")
        from ravst.train.data import sampling_config

        sampling_config(self)  # validates fps / pixels / audio limits the way inference does
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"data.max_samples: must be >= 1, got {self.max_samples}")


@dataclass(frozen=True)
class LoraSettings:
    enabled: bool = field(default=False, metadata={"help": "Train a LoRA adapter instead of the full model."})
    r: int = field(default=64, metadata={"help": "LoRA rank."})
    alpha: int = field(default=128, metadata={"help": "LoRA alpha."})
    dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    target_modules: str = field(
        default=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        metadata={"help": "Regex of module names (language model only by default; the vision tower stays frozen)."},
    )

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha < 1:
            raise ValueError(f"lora: r and alpha must be >= 1, got {self.r}, {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout: must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class VLLMSettings:
    enabled: bool = field(default=False, metadata={"help": "Roll out with vLLM (TRL use_vllm). Needs a GPU."})
    mode: str = field(default="colocate", metadata={
        "help": "colocate (vLLM in the trainer process). 'server' (`trl vllm-serve`) is refused: TRL's server "
                "protocol carries token ids and image features only, not the video (or audio) inputs."})
    gpu_memory_utilization: float = field(default=0.3, metadata={"help": "colocate: share of GPU memory for vLLM."})
    tensor_parallel_size: int = field(default=1, metadata={"help": "colocate: vLLM tensor parallel size."})
    server_host: str = field(default="0.0.0.0", metadata={"help": "server: host of `trl vllm-serve`."})
    server_port: int = field(default=8000, metadata={"help": "server: port of `trl vllm-serve`."})
    enable_sleep_mode: bool = field(default=False, metadata={"help": "colocate: offload vLLM between rollouts."})
    max_model_length: int | None = field(default=None, metadata={"help": "vLLM max model length."})

    def __post_init__(self) -> None:
        if self.mode not in ("colocate", "server"):
            raise ValueError(f"vllm.mode: {self.mode!r} is not colocate or server")
        if self.enabled and self.mode == "server":
            raise ValueError(
                "vllm.mode: 'server' cannot roll out video: TRL's vLLM server protocol carries token ids and "
                "image features only; use 'colocate'"
            )
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(f"vllm.gpu_memory_utilization: must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.tensor_parallel_size < 1:
            raise ValueError("vllm.tensor_parallel_size: must be >= 1")


@dataclass(frozen=True)
class _RunBase:
    model: ModelConfig = field(metadata={"help": "Base model."})
    data: DataConfig = field(metadata={"help": "Training data."})
    output_dir: str = field(metadata={"help": "Where checkpoints and the final model are written."})
    lora: LoraSettings = field(default_factory=LoraSettings, metadata={"help": "LoRA settings."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs (paper: 1)."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after N optimizer steps (-1: epochs decide)."})
    per_device_train_batch_size: int = field(default=1, metadata={"help": "Per-device batch (paper: 1)."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Gradient accumulation steps."})
    learning_rate: float = field(default=1e-6, metadata={"help": "Peak learning rate."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "transformers scheduler name."})
    warmup_ratio: float = field(default=0.0, metadata={"help": "Warm-up share of the steps."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    bf16: bool = field(default=True, metadata={"help": "bf16 mixed precision (set false on CPU)."})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "Trade compute for memory."})
    use_cpu: bool = field(default=False, metadata={"help": "Force CPU (tests, smoke runs)."})
    logging_steps: int = field(default=1, metadata={"help": "Log every N steps."})
    save_steps: int = field(default=500, metadata={"help": "Checkpoint every N steps (0: only at the end)."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep at most N checkpoints."})
    seed: int = field(default=42, metadata={"help": "Random seed."})
    report_to: str = field(default="none", metadata={"help": "none, tensorboard, wandb ..."})
    deepspeed: str | None = field(default=None, metadata={"help": "DeepSpeed JSON (usually set via accelerate)."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "DataLoader workers."})
    freeze_vision_tower: bool = field(default=True, metadata={"help": "Keep the vision (and audio) encoders frozen."})

    def __post_init__(self) -> None:
        if not self.output_dir:
            raise ValueError("output_dir: must be set")
        if self.per_device_train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("per_device_train_batch_size and gradient_accumulation_steps must be >= 1")
        if self.num_train_epochs <= 0 and self.max_steps <= 0:
            raise ValueError("set num_train_epochs > 0 or max_steps > 0")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate: must be > 0, got {self.learning_rate}")
        if self.use_cpu and self.bf16:
            raise ValueError("bf16: set false with use_cpu: true")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio: must be in [0, 1), got {self.warmup_ratio}")
        if self.data.use_audio and self.model.family == "qwen2_5_vl":
            raise ValueError("data.use_audio: Qwen2.5-VL has no audio encoder (use a qwen2_5_omni model)")

    @classmethod
    def from_dict(cls: type[T], raw: dict[str, Any]) -> T:
        return _build(cls, raw, cls.__name__)


@dataclass(frozen=True)
class GRPORunConfig(_RunBase):
    """AVST-Zero: GRPO on R-AVST-style data (paper defaults)."""

    rewards: RewardConfig = field(default_factory=RewardConfig, metadata={"help": "Reward weights and mode."})
    vllm: VLLMSettings = field(default_factory=VLLMSettings, metadata={"help": "vLLM rollout."})
    gradient_accumulation_steps: int = field(
        default=6,
        metadata={"help": "With batch 1 per device, the generation batch (batch x GPUs x this) must be a "
                  "multiple of num_generations: 6 works for any GPU count."},
    )
    num_generations: int = field(default=6, metadata={"help": "Completions per prompt (paper: 6)."})
    max_prompt_length: int = field(
        default=512,
        metadata={"help": "Max TEXT tokens of a prompt (paper: 512); multimodal placeholders are not counted "
                  "and never cut; longer prompts are rejected with an error naming the QA."},
    )
    max_completion_length: int = field(default=1024, metadata={"help": "Max generated tokens (paper: 1024)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling."})
    beta: float = field(default=0.04, metadata={"help": "KL coefficient (paper eq. 1)."})
    epsilon: float = field(default=0.2, metadata={"help": "PPO clip range (paper eq. 1)."})
    num_iterations: int = field(default=1, metadata={"help": "Optimisation passes per generation batch (mu)."})
    loss_type: str = field(default="grpo", metadata={"help": "TRL loss_type: grpo (paper), dapo, dr_grpo, bnpo."})
    scale_rewards: str = field(default="group", metadata={"help": "group (paper's GRPO), batch or none."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_generations < 2:
            raise ValueError(f"num_generations: GRPO needs >= 2, got {self.num_generations}")
        if self.max_prompt_length < 1 or self.max_completion_length < 1:
            raise ValueError("max_prompt_length and max_completion_length must be >= 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature: must be > 0, got {self.temperature}")
        if self.beta < 0 or not 0 < self.epsilon < 1:
            raise ValueError(f"beta must be >= 0 and epsilon in (0, 1), got {self.beta}, {self.epsilon}")
        if self.scale_rewards not in ("group", "batch", "none"):
            raise ValueError(f"scale_rewards: {self.scale_rewards!r} is not group/batch/none")
        if self.vllm.enabled and self.use_cpu:
            raise ValueError("vllm.enabled needs a GPU (use_cpu is true)")
        # TRL's rule, checked here so that a bad combination fails before any model is loaded:
        # the generation batch (batch per device x processes x accumulation steps) holds whole groups.
        processes = int(os.environ.get("WORLD_SIZE") or 1)
        generation_batch = self.per_device_train_batch_size * processes * self.gradient_accumulation_steps
        if generation_batch % self.num_generations:
            raise ValueError(
                f"gradient_accumulation_steps: the generation batch per_device_train_batch_size "
                f"({self.per_device_train_batch_size}) x processes ({processes}) x gradient_accumulation_steps "
                f"({self.gradient_accumulation_steps}) = {generation_batch} must be a multiple of num_generations "
                f"({self.num_generations})"
            )


@dataclass(frozen=True)
class SFTRunConfig(_RunBase):
    """The SFT baseline of the paper's Table 4: the ground-truth answers as targets."""

    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate."})
    max_length: int | None = field(
        default=None, metadata={"help": "Error (naming the QA) on an example longer than this many tokens (None: no limit)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_length is not None and self.max_length < 8:
            raise ValueError(f"max_length: must be >= 8, got {self.max_length}")


def _resolve(tp: Any) -> tuple[Any, bool]:
    """The dataclass (or None) inside a field type, and whether it is a tuple type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _resolve(args[0]) if len(args) == 1 else (None, False)
    if origin is tuple:
        return None, True
    return (tp if dataclasses.is_dataclass(tp) else None), False


def _check_scalar(hint: Any, value: Any, where: str) -> None:
    """A config value of a plain type (``int``, ``float``, ``bool``, ``str``, or ``X | None``) must
    have that type (an int is a valid float; a bool is not a number)."""
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    plain = [t for t in allowed if t in (int, float, bool, str)]
    if not plain or len(plain) + (type(None) in allowed) != len(allowed):
        return  # not a plain scalar field: the dataclass validates it
    if value is None and type(None) in allowed:
        return
    ok = any(
        isinstance(value, bool) if t is bool
        else isinstance(value, t) and not isinstance(value, bool) if t is int
        else isinstance(value, (int, float)) and not isinstance(value, bool) if t is float
        else isinstance(value, str)
        for t in plain
    )
    if not ok:
        names = " or ".join(t.__name__ for t in allowed)
        raise ValueError(f"{where}: expected {names}, got {type(value).__name__} {value!r}")


def _build(cls: type[T], raw: Any, where: str) -> T:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        sub, is_tuple = _resolve(hints[name])
        if sub is not None and isinstance(value, dict):
            kwargs[name] = _build(sub, value, f"{where}.{name}")
        elif is_tuple and isinstance(value, list):
            kwargs[name] = tuple(value)
        elif is_tuple and isinstance(value, str):
            kwargs[name] = (value,)
        else:
            _check_scalar(hints[name], value, f"{where}.{name}")
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required fields
        raise ValueError(f"{where}: {exc}") from exc


def load_config(path: str | Path, cls: type[T]) -> T:
    """Read a YAML file into ``cls`` (``GRPORunConfig`` or ``SFTRunConfig``); errors name the file."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read config: {exc}") from exc
    try:
        return _build(cls, raw or {}, cls.__name__)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
