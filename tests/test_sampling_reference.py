"""Frame sampling checked against the reference implementations the Qwen models were trained
with: qwen-vl-utils' and qwen-omni-utils' ``fetch_video`` (decord reads the file for them, a
decoder independent of our PyAV), on every real clip in ../shared/data/videos.

Equal: frame indices, frame count, source frame count and rate, ``sample_fps`` (hence
``second_per_grid_ts``), resized frame size. Pixels: within the tolerance documented in
docs/inference.md (the reference resizes in float32 with torchvision; we use torch's uint8 kernel
of the same antialiased bicubic filter, which rounds between its two passes); the opt-in
``resize="fast"`` (one swscale pass) within its own, wider, documented tolerance.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ravst.models.sampling import (
    VIDEO_MAX_PIXELS,
    VIDEO_MIN_PIXELS,
    VIDEO_TOTAL_PIXELS,
    SamplingConfig,
    frame_budget_pixels,
    sample_fps,
    sample_frame_indices,
    sample_video,
    smart_resize,
)

# Pixel tolerance against the reference (levels of 0-255), measured on the 8 real clips x 3 settings:
# mean |diff| <= 0.14, 99th percentile <= 1, max <= 12 (at sharp edges), >= 86 % of values equal.
PIXEL_MEAN_TOL = 0.25
PIXEL_P99_TOL = 1.0
PIXEL_MAX_TOL = 16
PIXEL_EQUAL_MIN = 0.8
# resize="fast" (one swscale pass, area filter), measured the same way: mean <= 2.21, p99 <= 14,
# max <= 191 (colour edges: swscale interpolates the 4:2:0 chroma, the reference replicates it),
# >= 10.9 % of values equal. An opt-in; docs/inference.md gives the numbers.
FAST_PIXEL_MEAN_TOL = 2.5
FAST_PIXEL_P99_TOL = 16.0
FAST_PIXEL_MAX_TOL = 200
FAST_PIXEL_EQUAL_MIN = 0.08

SETTINGS = {
    # ravst infer's defaults
    "default-1fps": {"fps": 1.0, "max_frames": 64},
    # what the released R-AVST trainer feeds (grpo.py: fps 0.25, total_pixels 3584*28*28, min 16*28*28)
    "released-0.25fps": {"fps": 0.25, "total_pixels": 3584 * 28 * 28, "min_pixels": 16 * 28 * 28},
    # 2 fps with a small total budget (the per-frame share decides the size)
    "2fps-small-budget": {"fps": 2.0, "max_frames": 32, "total_pixels": 64 * 28 * 28 * 16, "min_pixels": 4 * 28 * 28},
}


def _clips() -> list[Path]:
    root = Path(__file__).resolve().parents[1]
    folder = Path(os.environ.get("RAVST_SHARED_DATA", root.parent / "shared" / "data")) / "videos"
    return sorted(folder.glob("*.mp4")) + sorted(folder.glob("*.avi")) if folder.is_dir() else []


def _config(kw: dict[str, Any]) -> SamplingConfig:
    return SamplingConfig(
        fps=kw["fps"],
        max_frames=kw.get("max_frames", 768),  # qwen-vl-utils' own default: min(768, total frames)
        min_pixels=kw.get("min_pixels", VIDEO_MIN_PIXELS),
        max_pixels=kw.get("max_pixels", VIDEO_MAX_PIXELS),
        total_pixels=kw.get("total_pixels", VIDEO_TOTAL_PIXELS),
    )


def _reference(module_name: str, path: Path, kw: dict[str, Any]) -> tuple[Any, dict[str, Any], float]:
    pytest.importorskip("decord", reason="qwen-vl-utils reads files with decord (dev extra)")
    vp = pytest.importorskip(module_name)
    if vp.get_video_reader_backend() != "decord":
        pytest.skip(f"{module_name} reads video with {vp.get_video_reader_backend()}, not decord")
    (video, meta), fps = vp.fetch_video(
        {"video": str(path), **kw}, return_video_sample_fps=True, return_video_metadata=True
    )
    return video, meta, fps


@pytest.mark.slow
@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("clip", _clips(), ids=lambda p: p.name)
def test_sample_video_equals_qwen_vl_utils(shared_data: Path, clip: Path, setting: str) -> None:
    kw = SETTINGS[setting]
    ref, meta, ref_fps = _reference("qwen_vl_utils.vision_process", clip, kw)
    ours = sample_video(clip, _config(kw))
    assert list(ours.frame_indices) == [int(i) for i in meta["frames_indices"]]
    assert ours.source_num_frames == meta["total_num_frames"]
    assert ours.source_fps == pytest.approx(meta["fps"], rel=1e-9)
    assert ours.sampled_fps == pytest.approx(ref_fps, rel=1e-12)
    assert ours.second_per_grid_ts == pytest.approx(2.0 / ref_fps, rel=1e-12)
    n, _, h, w = ref.shape
    assert ours.frames.shape == (n, h, w, 3) and ours.input_wh == (w, h)
    # real timestamps: the decoded frames' own, within 2 frame periods of index / fps
    # (the AVI's frames carry pts 2 frames after their position)
    nominal = np.asarray(ours.frame_indices) / ours.source_fps
    assert np.all(np.abs(ours.times_s - nominal) <= 2 / ours.source_fps + 1e-6)
    ref_hwc = ref.permute(0, 2, 3, 1).numpy()
    diff = np.abs(ours.frames.astype(np.float64) - ref_hwc)
    assert diff.mean() <= PIXEL_MEAN_TOL
    assert np.percentile(diff, 99) <= PIXEL_P99_TOL
    assert diff.max() <= PIXEL_MAX_TOL
    assert (diff == 0).mean() >= PIXEL_EQUAL_MIN
    # the opt-in fast resize: same frames, times and size; pixels within its own (wider) tolerance
    fast = sample_video(clip, dataclasses.replace(_config(kw), resize="fast"))
    assert fast.frame_indices == ours.frame_indices and np.array_equal(fast.times_s, ours.times_s)
    assert fast.frames.shape == ours.frames.shape and fast.resize == "fast"
    diff = np.abs(fast.frames.astype(np.float64) - ref_hwc)
    assert diff.mean() <= FAST_PIXEL_MEAN_TOL
    assert np.percentile(diff, 99) <= FAST_PIXEL_P99_TOL
    assert diff.max() <= FAST_PIXEL_MAX_TOL
    assert (diff == 0).mean() >= FAST_PIXEL_EQUAL_MIN


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["unav100_--HuBNHXu9I.mp4", "videollama_dog_barking.mp4"])
def test_sample_video_equals_qwen_omni_utils(videos_dir: Path, clip: str) -> None:
    """Qwen2.5-Omni's helper (its fetch_video is the same rule): same frames, rate and size."""
    kw = SETTINGS["default-1fps"]
    ref, meta, ref_fps = _reference("qwen_omni_utils.v2_5.vision_process", videos_dir / clip, kw)
    ours = sample_video(videos_dir / clip, _config(kw), with_audio=True)
    assert list(ours.frame_indices) == [int(i) for i in meta["frames_indices"]]
    assert ours.sampled_fps == pytest.approx(ref_fps, rel=1e-12)
    assert ours.frames.shape[1:3] == tuple(ref.shape[2:4])
    # deliberate difference: the whole audio track is fed (never cut silently)
    assert ours.audio is not None and ours.audio_s == pytest.approx(ours.duration_s, abs=0.2)


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(2, 20000),
    src_fps=st.sampled_from([6.0, 15000 / 1001, 24.0, 25.0, 30000 / 1001, 60.0]),
    fps=st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.0, 4.0]),
    max_frames=st.integers(2, 800),
    min_frames=st.integers(1, 8),
)
@example(total=13949, src_fps=6.0, fps=2.0, max_frames=775, min_frames=1)  # max_frames above 768 is honoured
@example(total=3000, src_fps=25.0, fps=4.0, max_frames=800, min_frames=4)
def test_indices_equal_reference_rule(total: int, src_fps: float, fps: float, max_frames: int, min_frames: int) -> None:
    """The count from qwen-vl-utils' own ``smart_nframes``; the indices from its linspace rule."""
    import torch

    vp = pytest.importorskip("qwen_vl_utils.vision_process")
    if min_frames > max_frames:
        return
    ele = {"fps": fps, "max_frames": max_frames, "min_frames": min_frames}
    try:
        n = vp.smart_nframes(ele, total_frames=total, video_fps=src_fps)
    except ValueError:
        with pytest.raises(ValueError):
            sample_frame_indices(total, src_fps, fps=fps, max_frames=max_frames, min_frames=min_frames)
        return
    ours = sample_frame_indices(total, src_fps, fps=fps, max_frames=max_frames, min_frames=min_frames)
    assert ours.tolist() == torch.linspace(0, total - 1, n).round().long().tolist()
    assert sample_fps(n, total, src_fps) == n / max(total, 1e-6) * src_fps


@settings(max_examples=300, deadline=None)
@given(
    h=st.integers(28, 2200),
    w=st.integers(28, 4000),
    n=st.sampled_from([2, 4, 14, 60, 64, 256, 768]),
    min_pixels=st.sampled_from([3136, 12544, VIDEO_MIN_PIXELS]),
    total=st.sampled_from([None, 3584 * 28 * 28, 24576 * 28 * 28, VIDEO_TOTAL_PIXELS]),
    max_pixels=st.sampled_from([50176, VIDEO_MAX_PIXELS, 12845056]),
)
def test_frame_size_equals_reference(
    h: int, w: int, n: int, min_pixels: int, total: int | None, max_pixels: int
) -> None:
    """Per-frame budget + smart-resize, as qwen-vl-utils' fetch_video computes them (its code)."""
    vp = pytest.importorskip("qwen_vl_utils.vision_process")
    if max(h, w) / min(h, w) > 200 or min_pixels > max_pixels:
        return
    total_ref = total if total is not None else 1e30
    cap = max(min(vp.VIDEO_MAX_TOKEN_NUM * 28 * 28, total_ref / n * vp.FRAME_FACTOR), int(min_pixels * 1.05))
    cap = min(max_pixels, cap)
    budget = frame_budget_pixels(n, min_pixels=min_pixels, max_pixels=max_pixels, total_pixels=total)
    assert budget == cap
    try:
        ref = vp.smart_resize(h, w, factor=28, min_pixels=min_pixels, max_pixels=cap)
    except (AssertionError, ValueError):
        return  # a budget below min_pixels: the reference refuses it too
    ours = smart_resize(h, w, min_pixels=min_pixels, max_pixels=budget)
    if min(ref) == 0:  # deliberate difference: the reference floors a thin side to 0; we keep 28
        assert min(ours) == 28 and max(ours) == max(ref)
        return
    assert ours == tuple(ref)
