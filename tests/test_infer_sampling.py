"""Frame sampling, Qwen's smart-resize rule, and prompt templates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ravst.models.prompts import BOX2_INSTRUCTION, get_template, load_template
from ravst.models.sampling import SamplingConfig, frame_times, sample_video, smart_resize

PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "R-AVST.txt"


@settings(max_examples=200, deadline=None)
@given(
    h=st.integers(10, 4000),
    w=st.integers(10, 4000),
    lo=st.sampled_from([3136, 56 * 56 * 4, 128 * 28 * 28]),
    hi=st.sampled_from([12544, 602112, 12845056]),
)
def test_smart_resize_matches_transformers(h: int, w: int, lo: int, hi: int) -> None:
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

    if max(h, w) / min(h, w) > 200 or lo > hi:
        return
    ours = smart_resize(h, w, min_pixels=lo, max_pixels=hi)
    assert ours == tuple(hf_smart_resize(h, w, factor=28, min_pixels=lo, max_pixels=hi))
    assert ours[0] % 28 == 0 and ours[1] % 28 == 0


def test_smart_resize_rejects_extreme_aspect() -> None:
    with pytest.raises(ValueError, match="aspect"):
        smart_resize(10, 3000, min_pixels=3136, max_pixels=12544)


def test_frame_times() -> None:
    assert frame_times(3.0, fps=1.0, max_frames=10).tolist() == [0.0, 1.0, 2.0]
    assert frame_times(3.2, fps=1.0, max_frames=10).tolist() == [0.0, 1.0, 2.0, 3.0]
    assert frame_times(0.0, fps=1.0, max_frames=10).tolist() == [0.0]
    spread = frame_times(60.0, fps=2.0, max_frames=8)
    assert len(spread) == 8 and spread[-1] == 52.5
    with pytest.raises(ValueError):
        frame_times(float("nan"), fps=1.0, max_frames=4)


@pytest.mark.parametrize(
    "kwargs", [{"fps": 0}, {"max_frames": 0}, {"min_pixels": 10, "max_pixels": 5}, {"max_audio_s": -1.0}]
)
def test_sampling_config_validates(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SamplingConfig(**kwargs)


def test_sample_video_real_times_and_sizes(videos_dir: Path) -> None:
    clip = videos_dir / "videollama_dog_barking.mp4"  # 854x480, 24 fps, 7.08 s
    v = sample_video(clip, SamplingConfig(fps=2.0, max_frames=64, max_pixels=50176), with_audio=True)
    assert len(v.times_s) == 15 and v.frames.shape == (15, 140, 280, 3)
    assert v.input_wh == (280, 140) and v.original_wh == (854, 480)
    assert np.allclose(v.times_s, np.arange(15) * 0.5, atol=1 / 24 + 1e-6)
    assert v.frame_indices[:3] == (0, 12, 24) and v.sampled_fps == pytest.approx(2.0, rel=0.01)
    assert v.audio is not None and v.audio_s == pytest.approx(7.08, abs=0.2) and v.audio_cut_s == 0.0
    cut = sample_video(clip, SamplingConfig(fps=1.0, max_audio_s=3.0), with_audio=True)
    assert cut.audio_s == pytest.approx(3.0, abs=0.01) and cut.audio_cut_s == pytest.approx(4.08, abs=0.05)


def test_total_pixels_budget_shrinks_frames(videos_dir: Path) -> None:
    clip = videos_dir / "videollama_dog_barking.mp4"
    big = sample_video(clip, SamplingConfig(fps=2.0))
    small = sample_video(clip, SamplingConfig(fps=2.0, total_pixels=15 * 28 * 28 * 8))
    assert big.input_wh[0] * big.input_wh[1] > small.input_wh[0] * small.input_wh[1]
    assert small.input_wh[0] * small.input_wh[1] * len(small.times_s) <= 15 * 28 * 28 * 8 * 2


def test_box2_prompt_is_the_papers_text() -> None:
    if not PAPER.is_file():
        pytest.skip(f"paper text absent: {PAPER}")
    paper = PAPER.read_text(encoding="utf-8")
    start = paper.index("You are an expert in audio-visual video grounding.")
    end = paper.index("</answer>", paper.index("Example:", start)) + len("</answer>")

    def norm(s: str) -> str:
        return re.sub(r"\s+", " ", s).strip()

    assert norm(BOX2_INSTRUCTION) == norm(paper[start:end])


def test_templates_render_and_load(tmp_path: Path) -> None:
    t = get_template("box2")
    assert t.render_system() == BOX2_INSTRUCTION
    assert "Q: Where?" in t.render_user(question="Where?")
    assert get_template("box2-user").render_user(question="Q1").startswith(BOX2_INSTRUCTION)
    spec = tmp_path / "p.json"
    spec.write_text(json.dumps({"system": "Be brief.", "user": "{question} (clip of {duration_s} s)"}))
    custom = load_template(str(spec))
    assert custom.name == "p" and custom.render_user(question="When?", duration_s=12.34) == "When? (clip of 12.3 s)"
    yaml_spec = tmp_path / "p.yaml"
    yaml_spec.write_text("user: 'Video {video}: {question}'\n")
    assert load_template(str(yaml_spec)).render_user(question="q", video="v1") == "Video v1: q"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"user": "no placeholder"}))
    with pytest.raises(ValueError, match="question"):
        load_template(str(bad))
    bad.write_text(json.dumps({"user": "{question} {oops}"}))
    with pytest.raises(ValueError, match="placeholder"):
        load_template(str(bad))
    with pytest.raises(ValueError, match="neither"):
        load_template("no-such-template")
