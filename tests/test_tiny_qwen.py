"""Tiny random Qwen2.5-VL / Omni-thinker builders: save, reload offline, generate on frames (+ audio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from ravst.testing.tiny_qwen import (  # noqa: E402
    build_tiny_qwen_omni,
    build_tiny_qwen_vl,
    load_tiny_model,
    multimodal_token_ids,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny_qwen")
    return {"vl": build_tiny_qwen_vl(root / "vl"), "omni": build_tiny_qwen_omni(root / "omni")}


def _frames(n: int = 4, h: int = 56, w: int = 84) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind", ["vl", "omni"])
def test_reload_offline_and_special_tokens(tiny_paths: dict[str, Path], kind: str) -> None:
    from transformers import AutoProcessor

    path = tiny_paths[kind]
    assert (path / "config.json").is_file()
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    expected = "Qwen2_5_VLProcessor" if kind == "vl" else "Qwen2_5OmniProcessor"
    assert type(processor).__name__ == expected
    tok = processor.tokenizer
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    ids = multimodal_token_ids(processor)
    names = set(tok.convert_ids_to_tokens(ids))
    placeholders = {"<|video_pad|>", "<|image_pad|>"} if kind == "vl" else {"<|VIDEO|>", "<|AUDIO|>", "<|IMAGE|>"}
    assert placeholders <= names
    assert tok.eos_token_id not in ids and tok.pad_token_id not in ids
    model = load_tiny_model(path)
    assert model.config.get_text_config().vocab_size == len(tok)
    for token in placeholders:
        assert tok.convert_tokens_to_ids(token) in ids
    # the chat template is Qwen's: system turn, user turn, generation prompt
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "hi"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")


def test_vl_generates_on_video_without_emitting_multimodal_tokens(tiny_paths: dict[str, Path]) -> None:
    from transformers import AutoProcessor
    from transformers.video_utils import VideoMetadata

    path = tiny_paths["vl"]
    processor = AutoProcessor.from_pretrained(path)
    model = load_tiny_model(path)
    frames = _frames()
    meta = VideoMetadata(total_num_frames=60, fps=15.0, frames_indices=[0, 15, 30, 45], height=56, width=84)
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "When does the dog bark?"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    inputs = processor(
        text=[text],
        videos=[frames],
        return_tensors="pt",
        videos_kwargs={"video_metadata": [meta], "do_sample_frames": False, "do_resize": False},
    )
    # 4 frames at 1 s spacing: 2 temporal patches of 2 s each; 56x84 px = 2x3 merged tokens
    assert inputs["video_grid_thw"].tolist() == [[2, 4, 6]]
    assert float(inputs["second_per_grid_ts"][0]) == pytest.approx(2.0)
    bad = multimodal_token_ids(processor)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=24, do_sample=True, suppress_tokens=bad)
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    assert len(new) > 0 and not set(new) & set(bad)


@pytest.mark.parametrize("interleaved", [False, True])
def test_omni_generates_with_audio(tiny_paths: dict[str, Path], interleaved: bool) -> None:
    from transformers import AutoProcessor
    from transformers.video_utils import VideoMetadata

    path = tiny_paths["omni"]
    processor = AutoProcessor.from_pretrained(path)
    model = load_tiny_model(path)
    frames = _frames()
    wav = (0.1 * np.sin(np.linspace(0, 2000, 4 * 16000))).astype(np.float32)
    meta = VideoMetadata(total_num_frames=4, fps=1.0, frames_indices=[0, 1, 2, 3])
    content: list[dict[str, str]] = [{"type": "video"}, {"type": "text", "text": "What sounds?"}]
    extra: dict[str, object] = {"load_audio_from_video": True, "audio_from_video_indices": [0]}
    if not interleaved:
        content.insert(1, {"type": "audio"})
        extra = {}
    text = processor.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    inputs = processor(
        text=[text],
        videos=[frames],
        audio=[wav],
        return_tensors="pt",
        videos_kwargs={"video_metadata": [meta], "do_sample_frames": False, "do_resize": False, "fps": 1.0},
        **extra,
    )
    audio_id = processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    n_audio = int((inputs["input_ids"] == audio_id).sum())
    assert n_audio == 100  # 4 s of audio -> 25 tokens per second
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False, suppress_tokens=multimodal_token_ids(processor))
    assert out.shape[1] > inputs["input_ids"].shape[1]
