"""Backend plumbing that needs no model: vLLM request layout, chat payload, CLI errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from infer_helpers import write_qa_file
from ravst.cli import main
from ravst.models.openai_backend import chat_payload
from ravst.models.qwen import GenerationSettings, chat_messages
from ravst.models.sampling import SampledVideo
from ravst.models.vllm_backend import vllm_request


def _video(with_audio: bool) -> SampledVideo:
    times = np.arange(4) * 2.0
    return SampledVideo(
        path="clip.mp4",
        frames=np.zeros((4, 56, 84, 3), np.uint8),
        times_s=times,
        frame_indices=(0, 50, 100, 150),
        original_wh=(640, 426),
        input_wh=(84, 56),
        source_fps=25.0,
        source_num_frames=200,
        duration_s=8.0,
        audio=np.zeros(16000 * 8, np.float32) if with_audio else None,
    )


def test_vllm_request_carries_rate_size_and_audio() -> None:
    req = vllm_request("PROMPT", _video(True), omni=True, use_audio=True)
    assert req["prompt"] == "PROMPT"
    frames, meta = req["multi_modal_data"]["video"]
    assert frames.shape == (4, 56, 84, 3)
    assert meta["fps"] == pytest.approx(0.5) and meta["frames_indices"] == [0, 1, 2, 3] and meta["total_num_frames"] == 4
    audio, sr = req["multi_modal_data"]["audio"]
    assert sr == 16000 and len(audio) == 16000 * 8
    kw = req["mm_processor_kwargs"]
    assert kw["use_audio_in_video"] is True and kw["fps"] == pytest.approx(0.5) and kw["do_sample_frames"] is False
    assert kw["size"] == {"shortest_edge": 84 * 56, "longest_edge": 84 * 56}
    vl = vllm_request("P", _video(False), omni=False, use_audio=False)
    assert "audio" not in vl["multi_modal_data"] and "use_audio_in_video" not in vl["mm_processor_kwargs"]
    with pytest.raises(ValueError, match="audio"):
        vllm_request("P", _video(False), omni=True, use_audio=True)


def test_chat_payload_interleaves_times_and_images() -> None:
    body = chat_payload("m", "SYS", "Q?", _video(False), GenerationSettings(max_new_tokens=7))
    assert body["messages"][0] == {"role": "system", "content": "SYS"}
    parts = body["messages"][1]["content"]
    assert "84x56 pixels" in parts[0]["text"] and "8.0 s" in parts[0]["text"]
    labels = [p["text"] for p in parts[1:-1] if p["type"] == "text"]
    assert labels == ["Frame at 0.0 s:", "Frame at 2.0 s:", "Frame at 4.0 s:", "Frame at 6.0 s:"]
    assert sum(p["type"] == "image_url" for p in parts) == 4 and parts[-1] == {"type": "text", "text": "Q?"}
    assert body["max_tokens"] == 7 and body["temperature"] == 0.0


def test_chat_messages_without_system() -> None:
    msgs = chat_messages("", "hello")
    assert msgs == [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "hello"}]}]


def test_cli_reports_setup_errors(tmp_path: Path, videos_dir: Path) -> None:
    qa = write_qa_file(tmp_path)
    out = tmp_path / "p.jsonl"
    base = ["infer", "--qa", str(qa), "--videos", str(videos_dir), "--out", str(out)]
    assert main([*base, "--backend", "transformers"]) == 2  # no --model
    assert main([*base, "--backend", "openai", "--model", "m"]) == 2  # no --base-url
    assert main([*base, "--backend", "random", "--prompt", "nope"]) == 2
    assert main([*base, "--backend", "random", "--coord-space", "input"]) == 2
    if importlib.util.find_spec("vllm") is None:
        assert main([*base, "--backend", "vllm", "--model", "m"]) == 2
    assert not out.exists()


def test_cli_refuses_a_corrupt_output_file(tmp_path: Path, videos_dir: Path) -> None:
    qa = write_qa_file(tmp_path)
    out = tmp_path / "p.jsonl"
    out.write_text('{"qa_id": "a", "text": ""}\nnot json\n{"qa_id": "b", "text": ""}\n')
    before = out.read_text()
    args = ["infer", "--qa", str(qa), "--videos", str(videos_dir), "--out", str(out), "--backend", "random"]
    assert main(args) == 2
    assert out.read_text() == before  # nothing appended to a file it cannot read
