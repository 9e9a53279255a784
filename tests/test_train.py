"""AVST-Zero training on CPU: GRPO and SFT steps on tiny random Qwen2.5-VL / Omni-thinker models
with real clips (``../shared/data/videos``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ravst.train.config import DataConfig, GRPORunConfig, SFTRunConfig, load_config

pytestmark = pytest.mark.slow

CLIPS = ("mmaction2_test_makeup.avi", "videollama_boat.mp4")


def _qa_json(videos_dir: Path) -> list[dict[str, Any]]:
    out = []
    for name in CLIPS:
        stem = Path(name).stem
        out.append({
            "video_name": stem,
            "duration": 6.0,
            "annotation": [{
                "event_num": 1,
                "AV Temporal Reasoning": [{"Q": "When is the moment man makes sound and is visible?",
                                           "A": "<answer>\n<object>man</object>\n<when>[1.0, 4.0]</when>\n</answer>"}],
                "AV Spatial Reasoning": [{"Q": "What visible object(s) make sound between 0.0 and 3.0, and where?",
                                          "A": "<answer>\n<object>man</object>\n<where>\n0.0: [10.0, 10.0, 100.0, 100.0]\n"
                                               "1.0: [12.0, 10.0, 100.0, 100.0]\n</where>\n</answer>"}],
                "AV ST Reasoning": [{"Q": 'When is the moment man makes sound and is visible, and where is the "man"?',
                                     "A": "<answer>\n<object>man</object>\n<when>[1.0, 2.0]</when>\n<where>\n"
                                          "1.0: [10.0, 10.0, 100.0, 100.0]\n2.0: [12.0, 10.0, 100.0, 100.0]\n"
                                          "</where>\n</answer>"}],
            }],
        })
    return out


@pytest.fixture(scope="module")
def qa_file(tmp_path_factory: pytest.TempPathFactory, videos_dir: Path) -> tuple[Path, Path]:
    """An official-format QA file over two real clips, and a video dir holding them (symlinks)."""
    root = tmp_path_factory.mktemp("train_data")
    vdir = root / "videos"
    vdir.mkdir()
    for name in CLIPS:
        (vdir / name).symlink_to(videos_dir / name)
    path = root / "qa.json"
    path.write_text(json.dumps(_qa_json(videos_dir)))
    return path, vdir


@pytest.fixture(scope="module")
def tiny_vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ravst.testing.tiny_qwen import build_tiny_qwen_vl

    return build_tiny_qwen_vl(tmp_path_factory.mktemp("tiny_vl"))


@pytest.fixture(scope="module")
def tiny_omni(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ravst.testing.tiny_qwen import build_tiny_qwen_omni

    return build_tiny_qwen_omni(tmp_path_factory.mktemp("tiny_omni"))


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _base(model: Path, qa: tuple[Path, Path], out: Path, **data: Any) -> dict[str, Any]:
    return {
        "model": {"path": str(model)},
        "data": {"qa_files": [str(qa[0])], "video_dir": str(qa[1]), "fps": 1.0, "max_frames": 4,
                 "max_pixels": 112 * 112, "min_pixels": 56 * 56, **data},
        "output_dir": str(out),
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "max_steps": 2,
        "save_steps": 0,
        "learning_rate": 1e-2,
        "seed": 0,
    }


def _grpo_cfg(model: Path, qa: tuple[Path, Path], out: Path, **data: Any) -> GRPORunConfig:
    raw = _base(model, qa, out, **data)
    raw.update(num_generations=2, per_device_train_batch_size=2, gradient_accumulation_steps=1,
               max_completion_length=12, rewards={"similarity": "exact"})
    return GRPORunConfig.from_dict(raw)


def digit_share(completions: list[Any], **_: Any) -> list[float]:
    """A shaping reward with variance under a random policy (AVST-Zero rewards are all 0 there)."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [sum(ch.isdigit() or ch in "<>[]" for ch in t) / max(len(t), 1) for t in texts]


def _snapshot(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _changed(before: dict[str, Any], model: Any) -> list[str]:
    import torch

    now = dict(model.named_parameters())
    return [n for n, p in before.items() if not torch.equal(p, now[n].detach())]


def _count_calls(module: Any) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_config_validation_and_yaml(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_generations"):
        GRPORunConfig.from_dict({"model": {"path": "m"}, "data": {"qa_files": ["q"], "video_dir": "v"},
                                 "output_dir": "o", "num_generations": 1})
    with pytest.raises(ValueError, match="fps"):
        DataConfig(qa_files=("q",), video_dir="v", fps=0)
    path = tmp_path / "c.yaml"
    path.write_text("model: {path: m}\ndata: {qa_files: q.json, video_dir: v}\noutput_dir: o\n"
                    "rewards: {no_spatial_reward: true, spatial_task: {object: 2.0, spatial: 1.0}}\n")
    cfg = load_config(path, GRPORunConfig)
    assert cfg.data.qa_files == ("q.json",) and cfg.rewards.weights("spatial") == (1.0, 2.0, 0.0, 0.0)
    path.write_text("model: {path: m}\ndata: {qa_files: q.json, video_dir: v, fsp: 2}\noutput_dir: o\n")
    with pytest.raises(ValueError, match=r"c\.yaml.*fsp"):
        load_config(path, GRPORunConfig)


def test_repo_configs_load() -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    assert load_config(root / "avst_zero.yaml", GRPORunConfig).num_generations == 6
    omni = load_config(root / "avst_zero_omni.yaml", GRPORunConfig)
    assert omni.data.use_audio and omni.model.family == "qwen2_5_omni"
    assert load_config(root / "sft.yaml", SFTRunConfig).num_train_epochs == 1


def test_dataset_columns(qa_file: tuple[Path, Path]) -> None:
    from ravst.train.data import build_dataset, qa_from_json

    ds = build_dataset(DataConfig(qa_files=(str(qa_file[0]),), video_dir=str(qa_file[1])))
    assert len(ds) == 6
    row = ds[0]
    assert {"prompt", "qa_id", "task", "video_path", "qa", "answer_text"} <= set(row)
    item = qa_from_json(row["qa"])
    assert item.qa_id == row["qa_id"] and item.answer.span is not None
    missing = DataConfig(qa_files=(str(qa_file[0]),), video_dir=str(qa_file[1].parent), skip_missing_videos=False)
    with pytest.raises(ValueError, match="not found"):
        build_dataset(missing)


def test_grpo_vl_two_steps(tiny_vl: Path, qa_file: tuple[Path, Path], tmp_path: Path) -> None:
    from ravst.testing.tiny_qwen import load_tiny_model
    from ravst.train.grpo import build_grpo_trainer, save_final

    cfg = _grpo_cfg(tiny_vl, qa_file, tmp_path / "out")
    trainer = build_grpo_trainer(cfg, extra_rewards=[(digit_share, 1.0)])
    visual = _count_calls(trainer.model.model.visual)
    before = _snapshot(trainer.model)
    trainer.train()
    changed = _changed(before, trainer.model)
    assert changed, "no trainable parameter changed"
    assert not any(".visual." in f".{n}" for n in changed), "the frozen vision tower moved"
    # the generation and the loss pass of the policy both see the video, on both steps
    assert visual[0] >= 4
    logs = {k for h in trainer.state.log_history for k in h}
    for key in ("rewards/total/mean", "rewards/format/mean", "rewards/temporal/mean", "rewards/spatial/mean",
                "rewards/object/mean", "rewards/parse_rate", "completions/mean_length"):
        assert key in logs, key
    final = save_final(trainer, tmp_path / "final")
    model = load_tiny_model(final)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    _infer_with(final, qa_file)


def _infer_with(final: Path, qa: tuple[Path, Path], **backend: Any) -> None:
    """The checkpoint answers through `ravst infer`'s backend."""
    from ravst.formats.official import read_official
    from ravst.models.base import InferRequest
    from ravst.models.qwen import GenerationSettings, QwenBackend
    from ravst.models.sampling import SamplingConfig

    item = read_official(qa[0])[0]
    be = QwenBackend(final, sampling=SamplingConfig(fps=1.0, max_frames=4, min_pixels=56 * 56, max_pixels=112 * 112),
                     generation=GenerationSettings(max_new_tokens=4), device="cpu", dtype="float32", **backend)
    try:
        video = next(qa[1].glob(item.video + ".*"))
        pred = be.predict([InferRequest(item, video, "sys", item.question)])[0]
        assert pred.qa_id == item.qa_id and isinstance(pred.text, str)
    finally:
        be.close()


@pytest.mark.parametrize("use_audio", [True, False], ids=["audio-interleaved", "video-only"])
def test_grpo_omni_two_steps(tiny_omni: Path, qa_file: tuple[Path, Path], tmp_path: Path, use_audio: bool) -> None:
    from ravst.testing.tiny_qwen import load_tiny_model
    from ravst.train.grpo import build_grpo_trainer, save_final

    cfg = _grpo_cfg(tiny_omni, qa_file, tmp_path / "out", use_audio=use_audio)
    trainer = build_grpo_trainer(cfg, extra_rewards=[(digit_share, 1.0)])
    audio = _count_calls(trainer.model.model.audio_tower)
    before = _snapshot(trainer.model)
    trainer.train()
    assert _changed(before, trainer.model)
    assert (audio[0] >= 4) if use_audio else (audio[0] == 0)
    if use_audio:
        final = save_final(trainer, tmp_path / "final")
        assert "Thinker" in type(load_tiny_model(final)).__name__
        _infer_with(final, qa_file)


def test_sft_vl_two_steps_lora(tiny_vl: Path, qa_file: tuple[Path, Path], tmp_path: Path) -> None:
    from ravst.testing.tiny_qwen import load_tiny_model
    from ravst.train.sft import build_sft_trainer, save_final

    raw = _base(tiny_vl, qa_file, tmp_path / "out")
    raw.update(per_device_train_batch_size=2, lora={"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0})
    trainer = build_sft_trainer(SFTRunConfig.from_dict(raw))
    before = _snapshot(trainer.model)
    assert before and all("lora" in n for n in before)
    trainer.train()
    assert _changed(before, trainer.model)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses and all(math.isfinite(x) for x in losses)
    final = save_final(trainer, tmp_path / "final")
    assert not any("lora" in k for k in load_tiny_model(final).state_dict())


@pytest.mark.parametrize("interleaved", [False, True], ids=["audio-separate", "audio-interleaved"])
def test_sft_omni_two_steps(tiny_omni: Path, qa_file: tuple[Path, Path], tmp_path: Path, interleaved: bool) -> None:
    from ravst.train.sft import build_sft_trainer

    raw = _base(tiny_omni, qa_file, tmp_path / "out", use_audio=True, use_audio_in_video=interleaved)
    raw.update(per_device_train_batch_size=2)
    trainer = build_sft_trainer(SFTRunConfig.from_dict(raw))
    audio = _count_calls(trainer.model.model.audio_tower)
    before = _snapshot(trainer.model)
    trainer.train()
    assert _changed(before, trainer.model) and audio[0] == 2


def test_grpo_vl_lora_reference_by_disabled_adapter(tiny_vl: Path, qa_file: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    from ravst.train.grpo import build_grpo_trainer

    raw = _grpo_cfg(tiny_vl, qa_file, tmp_path / "out")
    cfg = GRPORunConfig.from_dict({**_base(tiny_vl, qa_file, tmp_path / "out"), "num_generations": 2,
                                   "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                                   "max_completion_length": 8, "max_steps": 1,
                                   "rewards": {"similarity": "exact", "no_spatial_reward": True},
                                   "lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0}})
    assert raw.lora.enabled is False and cfg.lora.enabled
    trainer = build_grpo_trainer(cfg, extra_rewards=[(digit_share, 1.0)])
    before = _snapshot(trainer.model)
    assert before and all("lora" in n for n in before)
    trainer.train()
    assert _changed(before, trainer.model)


def test_sft_collator_labels_only_the_answer_in_input_pixels(tiny_vl: Path, qa_file: tuple[Path, Path]) -> None:
    from transformers import AutoConfig, AutoProcessor

    from ravst.parsing import parse_answer
    from ravst.train.data import build_dataset
    from ravst.train.sft import IGNORE_INDEX, AnswerCollator

    data = DataConfig(qa_files=(str(qa_file[0]),), video_dir=str(qa_file[1]), fps=1.0, max_frames=4,
                      max_pixels=112 * 112, min_pixels=56 * 56)
    ds = build_dataset(data)
    processor = AutoProcessor.from_pretrained(tiny_vl)
    collator = AnswerCollator(processor, "qwen2_5_vl", data, AutoConfig.from_pretrained(tiny_vl))
    rows = [ds[1], ds[2]]  # spatial + spatio-temporal: answers with boxes
    batch = collator(rows)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert int((batch["mm_token_type_ids"] == 2).sum()) > 0 and "pixel_values_videos" in batch
    for i, row in enumerate(rows):
        labels = batch["labels"][i]
        ids = batch["input_ids"][i][labels != IGNORE_INDEX]
        text = processor.tokenizer.decode(ids)
        assert text.endswith("<|im_end|>\n")
        target = parse_answer(text.removesuffix("<|im_end|>\n")).answer
        gt = parse_answer(row["answer_text"]).answer
        video = collator._clip(row["video_path"])
        scale = np.array(video.input_wh * 2) / np.array(video.original_wh * 2)
        np.testing.assert_allclose(target.tracks[0].xyxy, gt.tracks[0].xyxy * scale, atol=0.06)
        # the prompt (video placeholders included) is never a target
        first = int((labels != IGNORE_INDEX).nonzero()[0])
        assert (batch["mm_token_type_ids"][i, first:] == 0).all()


def test_cli_train_grpo_and_dry_run(tiny_vl: Path, qa_file: tuple[Path, Path], tmp_path: Path) -> None:
    import yaml

    from ravst.cli import main

    raw = _base(tiny_vl, qa_file, tmp_path / "out")
    raw.update(num_generations=2, per_device_train_batch_size=2, gradient_accumulation_steps=1,
               max_completion_length=6, rewards={"similarity": "exact"})
    path = tmp_path / "grpo.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["train", "grpo", "--config", str(path), "--dry-run"]) == 0
    assert main(["train", "grpo", "--config", str(path), "--set", "data.fps=-1", "--dry-run"]) == 1
    assert main(["train", "grpo", "--config", str(path), "--set", "max_prompt_length=20"]) == 1  # checked up front
    # the dry run loads the processor (no model) and finds the same too-long prompts
    assert main(["train", "grpo", "--config", str(path), "--set", "max_prompt_length=20", "--dry-run"]) == 1
    assert main(["train", "grpo", "--config", str(path), "--set", "max_steps=1"]) == 0
    final = tmp_path / "out" / "final"
    assert (final / "config.json").exists() and (final / "processor_config.json").exists()
    assert main(["train", "sft", "--config", str(tmp_path / "missing.yaml")]) == 1


def test_vllm_rollout_requests_carry_the_video(tiny_vl: Path, qa_file: tuple[Path, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The colocated-vLLM rollout (GPU only) with a stand-in engine: what it sends and reads back."""
    import sys
    import types

    from ravst.train.grpo import build_grpo_trainer

    class Params:
        def __init__(self, **kw: Any) -> None:
            self.kw = kw

    seen: dict[str, Any] = {}

    class LLM:
        def generate(self, requests: list[dict[str, Any]], sampling_params: Params, use_tqdm: bool) -> list[Any]:
            seen.update(requests=requests, params=sampling_params.kw)
            out = types.SimpleNamespace(token_ids=[5, 6, 7], logprobs=[{5: types.SimpleNamespace(logprob=-1.0)},
                                                                      {6: types.SimpleNamespace(logprob=-2.0)},
                                                                      {7: types.SimpleNamespace(logprob=-0.5)}])
            return [types.SimpleNamespace(outputs=[out]) for _ in requests]

    trainer = build_grpo_trainer(_grpo_cfg(tiny_vl, qa_file, tmp_path / "out"))
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=Params))
    trainer.vllm_generation = types.SimpleNamespace(llm=LLM(), enable_sleep_mode=False, generation_kwargs={},
                                                    tensor_parallel_size=1, sync_weights=lambda: seen.update(sync=1))
    trainer._last_loaded_step = -1
    rows = [trainer.train_dataset[0], trainer.train_dataset[0]]
    trainer._batch_inputs = rows
    trainer._batch_clips = [trainer._clip(r["video_path"]) for r in rows]
    ids, logps = trainer._vllm_video_rollout([[1, 2], [1, 2]])
    assert ids == [[5, 6, 7]] * 2 and logps == [[-1.0, -2.0, -0.5]] * 2 and seen["sync"] == 1
    req = seen["requests"][0]
    clip = trainer._batch_clips[0]
    video = req["multi_modal_data"]["video"]  # frames, or (frames, metadata): ravst.models.vllm_backend decides
    assert (video[0] if isinstance(video, tuple) else video) is clip.frames
    assert req["mm_processor_kwargs"]["fps"] == pytest.approx(clip.sampled_fps)
    assert "<|video_pad|>" in req["prompt"] and rows[0]["prompt"][-1]["content"][-1]["text"][:20] in req["prompt"]
    banned = seen["params"]["logit_bias"]
    assert trainer.model.config.video_token_id in banned and set(banned.values()) == {-100.0}
    assert seen["params"]["max_tokens"] == 12 and "suppress_tokens" not in seen["params"]


def test_vllm_server_mode_is_refused_at_config_time() -> None:
    from ravst.train.config import VLLMSettings

    with pytest.raises(ValueError, match=r"server.*cannot roll out video"):
        VLLMSettings(enabled=True, mode="server")
    assert VLLMSettings(enabled=True, mode="colocate").mode == "colocate"


def test_config_checks_types_and_the_generation_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"model": {"path": "m"}, "data": {"qa_files": ["qa.json"], "video_dir": "v"}, "output_dir": "o"}
    with pytest.raises(ValueError, match=r"GRPORunConfig\.lora\.r: expected int, got str 'abc'"):
        GRPORunConfig.from_dict({**base, "lora": {"r": "abc"}})
    with pytest.raises(ValueError, match="must be a multiple of num_generations"):
        GRPORunConfig.from_dict({**base, "gradient_accumulation_steps": 5})
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert GRPORunConfig.from_dict({**base, "gradient_accumulation_steps": 2}).num_generations == 6


# ---------------------------------------------------------------- issue 10: what the model sees
MIXED = ("unav100_--HuBNHXu9I.mp4", "mmaction2_test_makeup.avi")  # 60 s and a short clip, both with audio


@pytest.fixture(scope="module")
def mixed_qa(tmp_path_factory: pytest.TempPathFactory, videos_dir: Path) -> tuple[Path, Path]:
    """QAs over a 60 s and a short clip: different audio lengths in one batch."""
    root = tmp_path_factory.mktemp("mixed")
    vdir = root / "videos"
    vdir.mkdir()
    for name in MIXED:
        (vdir / name).symlink_to(videos_dir / name)
    rows = _qa_json(videos_dir)
    for row, name in zip(rows, MIXED, strict=True):
        row["video_name"] = Path(name).stem
    path = root / "qa.json"
    path.write_text(json.dumps(rows))
    return path, vdir


@pytest.fixture(scope="module")
def tiny_omni_full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ravst.testing.tiny_qwen import build_tiny_qwen_omni_full

    return build_tiny_qwen_omni_full(tmp_path_factory.mktemp("tiny_omni_full"))


def _omni_shipped(model: Path, qa: tuple[Path, Path], out: Path, **extra: Any) -> GRPORunConfig:
    """configs/avst_zero_omni.yaml (beta 0.04, no LoRA, audio interleaved) on a tiny model, CPU-sized."""
    root = Path(__file__).resolve().parents[1] / "configs"
    shipped = load_config(root / "avst_zero_omni.yaml", GRPORunConfig)
    raw = _base(model, qa, out, use_audio=True, use_audio_in_video=True)
    raw["data"]["fps"] = 0.25
    raw["model"]["family"] = shipped.model.family
    raw.update(num_generations=2, per_device_train_batch_size=2, gradient_accumulation_steps=1,
               max_completion_length=8, rewards={"similarity": "exact"}, beta=shipped.beta)
    raw.update(extra)
    return GRPORunConfig.from_dict(raw)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_grpo_from_a_full_omni_checkpoint(tiny_omni_full: Path, qa_file: tuple[Path, Path], tmp_path: Path,
                                          lora: bool) -> None:
    """The hub layout (Qwen2_5OmniModel, talker weights) trains its thinker with beta > 0; the
    reference model is the thinker too; the result loads in the full Omni layout again."""
    from transformers import Qwen2_5OmniForConditionalGeneration

    from ravst.train.grpo import build_grpo_trainer, save_final

    extra = {"lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0}} if lora else {}
    cfg = _omni_shipped(tiny_omni_full, qa_file, tmp_path / "out", **extra)
    assert cfg.beta == 0.04 and cfg.lora.enabled is lora
    trainer = build_grpo_trainer(cfg, extra_rewards=[(digit_share, 1.0)])
    policy = trainer.accelerator.unwrap_model(trainer.model)
    assert "Thinker" in type(policy.get_base_model() if lora else policy).__name__
    if not lora:
        assert "Thinker" in type(trainer.ref_model).__name__
    trainer.train()
    kls = [h["kl"] for h in trainer.state.log_history if "kl" in h]
    assert kls and kls[0] == pytest.approx(0.0, abs=1e-6)  # policy == reference at step 1
    final = save_final(trainer, tmp_path / "final")
    config = json.loads((final / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_omni" and config["architectures"] == ["Qwen2_5OmniForConditionalGeneration"]
    full = Qwen2_5OmniForConditionalGeneration.from_pretrained(final, enable_audio_output=False)
    assert not hasattr(full, "talker")
    _infer_with(final, qa_file)


def test_grpo_kl_zero_at_step_one_with_shuffled_clips(tiny_omni: Path, mixed_qa: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    """Two prompts per device over clips of 60 s and a few seconds of audio (padded features), the
    rows shuffled by TRL: the policy and reference passes see the same tensors and positions, so
    the KL of step 1 is exactly 0."""
    from ravst.train.grpo import build_grpo_trainer

    cfg = _omni_shipped(tiny_omni, mixed_qa, tmp_path / "out", per_device_train_batch_size=4, max_steps=1)
    assert cfg.per_device_train_batch_size // cfg.num_generations == 2  # two prompts per device
    trainer = build_grpo_trainer(cfg, extra_rewards=[(digit_share, 1.0)])
    trainer.train()
    kls = [h["kl"] for h in trainer.state.log_history if "kl" in h]
    assert kls and kls[0] == pytest.approx(0.0, abs=1e-6)


def test_sft_omni_batch_of_different_audio_lengths(tiny_omni: Path, mixed_qa: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    from ravst.train.sft import AnswerCollator, build_sft_trainer

    raw = _base(tiny_omni, mixed_qa, tmp_path / "out", use_audio=True, use_audio_in_video=True)
    raw["data"]["fps"] = 0.25
    raw.update(per_device_train_batch_size=2)
    cfg = SFTRunConfig.from_dict(raw)
    trainer = build_sft_trainer(cfg)
    collator: AnswerCollator = trainer.data_collator
    rows = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    long_short = [next(r for r in rows if "unav100" in r["video_path"]),
                  next(r for r in rows if "makeup" in r["video_path"])]
    batch = collator(long_short)
    mask = batch["feature_attention_mask"]
    assert batch["input_features"].shape[0] == 2 and mask.shape[1] == batch["input_features"].shape[-1]
    lengths = mask.sum(-1).tolist()
    assert lengths[0] == pytest.approx(6000, abs=2) and lengths[1] < lengths[0] / 2  # 100 mel frames per second
    assert int(mask[1, lengths[1]:].sum()) == 0  # the short clip is padded and masked out
    assert batch["position_ids"].shape == (3, 2, batch["input_ids"].shape[1])
    before = _snapshot(trainer.model)
    trainer.train()
    assert _changed(before, trainer.model)
