"""End to end: tiny random Qwen2.5-VL and Omni thinker answer a tiny official-layout QA file over
real clips through ``ravst infer``; the predictions are then scored by ``ravst eval``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from infer_helpers import N_QA, TINY_FRAME_ARGS, UNAV, read_jsonl, write_qa_file, write_silent_clip  # noqa: E402
from ravst.cli import main  # noqa: E402
from ravst.testing.tiny_qwen import build_tiny_qwen_omni, build_tiny_qwen_vl  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return {"vl": build_tiny_qwen_vl(root / "vl"), "omni": build_tiny_qwen_omni(root / "omni")}


@pytest.mark.parametrize("kind", ["vl", "omni"])
def test_infer_transformers_end_to_end(
    kind: str, models: dict[str, Path], videos_dir: Path, tmp_path: Path
) -> None:
    qa = write_qa_file(tmp_path)
    out = tmp_path / "pred.jsonl"
    args = ["infer", "--qa", str(qa), "--videos", str(videos_dir), "--backend", "transformers"]
    args += ["--model", str(models[kind]), "--out", str(out), "--max-new-tokens", "12", "--batch-size", "2"]
    assert main(args + TINY_FRAME_ARGS) == 0
    records = read_jsonl(out)
    assert len(records) == N_QA
    assert all(r.get("error") is None for r in records), [r.get("error") for r in records]
    for r in records:
        assert r["coord_space"] == "input" and r["model"] == str(models[kind])
        assert isinstance(r["text"], str)
        times = r["frame_times_s"]
        assert times == sorted(times) and 1 <= len(times) <= 6
    unav = [r for r in records if r["qa_id"].startswith(UNAV)]
    # 60.06 s clip (900 frames) at 0.5 fps with a budget of 6 frames: qwen-vl-utils' indices
    # round(linspace(0, 899, 6)) = 0, 180, 360, 539, 719, 899 at 15000/1001 fps
    assert np.allclose(unav[0]["frame_times_s"], np.array([0, 180, 360, 539, 719, 899]) * 1001 / 15000, atol=1e-3)
    # 320x240 resized by the smart-resize rule into <= 12544 px, sides multiples of 28
    assert unav[0]["input_wh"] == [112, 84] and unav[0]["original_wh"] == [320, 240]
    if kind == "omni":
        # the whole 60 s audio track was fed, nothing cut
        assert unav[0]["audio_s"] == pytest.approx(60.0, abs=0.1) and unav[0]["audio_cut_s"] == 0.0

    pytest.importorskip("ravst.evaluate")
    report = tmp_path / "eval"
    assert main(["eval", "--gt", str(qa), "--pred", str(out), "--similarity", "exact", "--quiet", "--out", str(report)]) == 0
    assert (report / "metrics.json").is_file()


def test_omni_keeps_all_audio_of_a_60s_clip(models: dict[str, Path], unav_video: Path) -> None:
    """The Whisper extractor's 30 s default would cut a 60 s track to 750 tokens: all 1500 stay."""
    from transformers import AutoProcessor

    from ravst.models.qwen import build_inputs, chat_messages, processor_kwargs
    from ravst.models.sampling import SamplingConfig, sample_video

    processor = AutoProcessor.from_pretrained(models["omni"])
    video = sample_video(unav_video, SamplingConfig(fps=0.25, max_frames=4, max_pixels=12544), with_audio=True)
    inputs = build_inputs(processor, [("", "What sounds?")], [video])
    n_audio = int((inputs["input_ids"] == processor.audio_token_id).sum())
    assert n_audio == 1500  # 25 audio tokens per second
    assert abs(int(inputs["feature_attention_mask"].sum()) - 6000) <= 2  # 100 mel frames per second
    # what the processor does on its own (chunk_length 30 s): half the track is silently dropped
    kwargs = processor_kwargs(processor, [video])
    kwargs.pop("audio_kwargs")
    text = processor.apply_chat_template(chat_messages("", "q"), tokenize=False, add_generation_prompt=True)
    default = processor(text=[text], return_tensors="pt", **kwargs)
    assert int((default["input_ids"] == processor.audio_token_id).sum()) == 750


def test_vl_gets_real_timestamps(models: dict[str, Path], unav_video: Path) -> None:
    """second_per_grid_ts follows the real sampling rate (not the processor's 24 fps default)."""
    from transformers import AutoProcessor

    from ravst.models.qwen import build_inputs
    from ravst.models.sampling import SamplingConfig, sample_video

    processor = AutoProcessor.from_pretrained(models["vl"])
    video = sample_video(unav_video, SamplingConfig(fps=0.5, max_frames=64, max_pixels=12544))
    inputs = build_inputs(processor, [("", "When?")], [video])
    assert len(video.times_s) == 30  # qwen-vl-utils: 60.06 s * 0.5 = 30.03 -> 30 (even)
    # 2 frames per grid step at qwen-vl-utils' sample_fps 30 / 900 * 14.985 = 0.4995
    assert float(inputs["second_per_grid_ts"][0]) == pytest.approx(2 / (30 / 900 * 15000 / 1001), rel=1e-6)
    assert inputs["video_grid_thw"].tolist() == [[15, 6, 8]]


def test_omni_batch_with_a_silent_clip(models: dict[str, Path], unav_video: Path, tmp_path: Path) -> None:
    """A clip without audio is fed video only (not an error); its batch mate keeps its audio."""
    from ravst.models.base import InferRequest
    from ravst.models.qwen import GenerationSettings, QwenBackend
    from ravst.models.sampling import SamplingConfig
    from ravst.types import Answer, QAItem, Task

    silent = write_silent_clip(tmp_path / "silent.mp4")
    backend = QwenBackend(
        models["omni"],
        sampling=SamplingConfig(fps=1.0, max_frames=4, max_pixels=12544),
        generation=GenerationSettings(max_new_tokens=4),
    )

    def req(path: Path, name: str) -> InferRequest:
        item = QAItem(f"{name}/0/temporal/0", name, 3.0, 0, 1, Task.TEMPORAL, 0, "When?", Answer(), query_object="x")
        return InferRequest(item, path, "", "When?")

    preds = backend.predict([req(silent, "silent"), req(unav_video, "unav")])
    assert [p.qa_id for p in preds] == ["silent/0/temporal/0", "unav/0/temporal/0"]
    assert preds[0].extra["audio_in_video"] is False and preds[0].extra["audio_s"] == 0.0
    assert preds[1].extra["audio_in_video"] is True and preds[1].extra["audio_s"] == pytest.approx(60.0, abs=0.1)
    assert all(p.error is None for p in preds)


def test_lora_adapter_checkpoint_loads_merged(models: dict[str, Path], videos_dir: Path, tmp_path: Path) -> None:
    """An intermediate checkpoint of a LoRA run holds only the adapter: infer loads its base model
    (adapter_config.json's base_model_name_or_path) and merges the adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(models["vl"])
    peft_model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.01)  # a non-zero adapter, so merging changes the weights
    adapter_dir = tmp_path / "checkpoint-1"
    peft_model.save_pretrained(adapter_dir)
    assert (adapter_dir / "adapter_config.json").is_file() and not (adapter_dir / "config.json").exists()

    qa = write_qa_file(tmp_path)
    out = tmp_path / "pred.jsonl"
    args = ["infer", "--qa", str(qa), "--videos", str(videos_dir), "--backend", "transformers",
            "--model", str(adapter_dir), "--out", str(out), "--max-new-tokens", "4", "--limit", "1"]
    assert main(args + TINY_FRAME_ARGS) == 0
    records = read_jsonl(out)
    assert len(records) == 1 and records[0].get("error") is None and records[0]["model"] == str(adapter_dir)
