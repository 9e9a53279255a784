"""Frame sampling, Qwen's smart-resize rule, and prompt templates."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ravst.models.prompts import BOX2_INSTRUCTION, get_template, load_template
from ravst.models.sampling import (
    VIDEO_MAX_PIXELS,
    SamplingConfig,
    frame_times,
    sample_frame_indices,
    sample_video,
    smart_resize,
)

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


def test_frame_indices_hand_computed() -> None:
    # 60.06 s at 15000/1001 fps (900 frames), 1 fps: n = 60.06 -> 60; linspace(0, 899, 60) rounded
    idx = sample_frame_indices(900, 15000 / 1001, fps=1.0, max_frames=64)
    assert len(idx) == 60 and idx[0] == 0 and idx[-1] == 899 and idx[1] == 15 and idx[2] == 30
    assert idx.max() < 900  # never a frame past the stream's end
    # 7.08 s at 24 fps (170 frames), 2 fps: n = 14.17 -> 14 (even)
    assert len(sample_frame_indices(170, 24.0, fps=2.0, max_frames=64)) == 14
    # short clip: at least min_frames (4), floored to even, at most total frames
    assert sample_frame_indices(30, 10.0, fps=0.25, max_frames=64).tolist() == [0, 10, 19, 29]
    assert sample_frame_indices(3, 10.0, fps=1.0, max_frames=64).tolist() == [0, 2]
    assert len(sample_frame_indices(3600, 60.0, fps=2.0, max_frames=8)) == 8
    assert frame_times(900, 15.0, fps=1.0, max_frames=64)[1] == 1.0
    with pytest.raises(ValueError, match="at least 2 frames"):
        sample_frame_indices(1, 10.0, fps=1.0, max_frames=64)


@pytest.mark.parametrize(
    "kwargs",
    [{"fps": 0}, {"max_frames": 1}, {"min_frames": 0}, {"min_pixels": 10, "max_pixels": 5}, {"max_audio_s": -1.0},
     {"resize": "bicubic"}],
)
def test_sampling_config_validates(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SamplingConfig(**kwargs)


def test_sample_video_real_times_and_sizes(videos_dir: Path) -> None:
    clip = videos_dir / "videollama_dog_barking.mp4"  # 854x480, 24 fps, 170 frames, 7.08 s
    v = sample_video(clip, SamplingConfig(fps=2.0, max_frames=64, max_pixels=50176), with_audio=True)
    assert len(v.times_s) == 14 and v.frames.shape == (14, 140, 280, 3)
    assert v.input_wh == (280, 140) and v.original_wh == (854, 480)
    # hand-computed: round(linspace(0, 169, 14)), times = index / 24 (this clip's pts are exact)
    expected = np.round(np.linspace(0, 169, 14)).astype(int)
    assert v.frame_indices == tuple(expected.tolist())
    assert np.allclose(v.times_s, expected / 24.0, atol=1e-6)
    assert v.sampled_fps == pytest.approx(14 / 170 * 24) and v.second_per_grid_ts == pytest.approx(2 / (14 / 170 * 24))
    assert v.audio is not None and v.audio_s == pytest.approx(7.08, abs=0.2) and v.audio_cut_s == 0.0
    cut = sample_video(clip, SamplingConfig(fps=1.0, max_audio_s=3.0), with_audio=True)
    assert cut.audio_s == pytest.approx(3.0, abs=0.01) and cut.audio_cut_s == pytest.approx(4.08, abs=0.05)


def test_unav_clip_spacing_is_the_references(unav_video: Path) -> None:
    """Issue 10 item 2: 60.06 s clip at 1 fps -> 60 frames, sample_fps 0.999, 2.002 s per grid step."""
    v = sample_video(unav_video, SamplingConfig(fps=1.0, max_frames=64, max_pixels=12544))
    assert len(v.times_s) == 60 and v.frame_indices[-1] == 899 and v.times_s[-1] == pytest.approx(899 * 1001 / 15000)
    assert v.sampled_fps == pytest.approx(0.999, abs=1e-3) and v.second_per_grid_ts == pytest.approx(2.002, abs=1e-3)
    assert len(set(v.frame_indices)) == 60  # no frame repeated


def test_pixel_budgets(videos_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    clip = videos_dir / "videollama_dog_barking.mp4"
    big = sample_video(clip, SamplingConfig(fps=2.0))
    small = sample_video(clip, SamplingConfig(fps=2.0, min_pixels=3136, total_pixels=15 * 28 * 28 * 8))
    assert big.input_wh[0] * big.input_wh[1] > small.input_wh[0] * small.input_wh[1]
    assert small.input_wh[0] * small.input_wh[1] * len(small.times_s) <= 15 * 28 * 28 * 8 * 2
    # the paper's 12,845,056 is an IMAGE limit: video frames are capped at 602,112 (logged)
    with caplog.at_level("WARNING", logger="ravst.models.sampling"):
        paper = sample_video(clip, SamplingConfig(fps=2.0, max_pixels=12845056 - 28))
    assert paper.input_wh == big.input_wh and paper.input_wh[0] * paper.input_wh[1] <= VIDEO_MAX_PIXELS
    assert "exceeds the per-frame video cap" in caplog.text


def test_pipelined_resize_equals_frame_by_frame(videos_dir: Path) -> None:
    """Frames are resized in a worker thread while the next ones decode: the result is exactly
    the frame-by-frame one (same pixels, order, real times, indices)."""
    from ravst.media.video import iter_frames_by_index
    from ravst.models.sampling import resize_frame

    clip = videos_dir / "videollama_dog_barking.mp4"
    v = sample_video(clip, SamplingConfig(fps=2.0))
    w, h = v.input_wh
    assert (w, h) != v.original_wh and len(v.frame_indices) == 14
    serial = list(iter_frames_by_index(clip, list(v.frame_indices)))
    assert [i for i, _, _ in serial] == list(v.frame_indices)
    assert np.array_equal(v.times_s, [t for _, t, _ in serial])
    assert np.array_equal(v.frames, np.stack([resize_frame(image, h, w) for _, _, image in serial]))
    # input size == source size (factor 2 keeps 854x480): frames as decoded, no resize
    same = sample_video(clip, SamplingConfig(fps=2.0, factor=2))
    assert same.input_wh == same.original_wh
    assert np.array_equal(same.frames, np.stack([image for _, _, image in serial]))


def test_infer_resize_flag(caplog: pytest.LogCaptureFixture) -> None:
    import argparse

    from ravst.infer import _sampling, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--qa", "q.json", "--videos", "v", "--backend", "random", "--out", "o.jsonl"]
    assert _sampling(parser.parse_args(base)).resize == "reference"
    with caplog.at_level("WARNING", logger="ravst.infer"):
        assert _sampling(parser.parse_args([*base, "--resize", "fast"])).resize == "fast"
    assert "--resize fast" in caplog.text
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--resize", "bicubic"])


def test_resize_error_propagates_and_closes_the_decoder(videos_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ravst.media.video as video
    import ravst.models.sampling as sampling

    real_decoded, real_resize = video.VideoFile.decoded_frames, sampling.resize_frame
    closed: list[int] = []
    calls: list[int] = []

    def tracked(self, indices):  # type: ignore[no-untyped-def]
        n = 0
        try:
            for item in real_decoded(self, indices):
                n += 1
                yield item
        finally:
            closed.append(n)

    def failing(frame, height, width):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("resize failed on frame 4")
        return real_resize(frame, height, width)

    monkeypatch.setattr(video.VideoFile, "decoded_frames", tracked)
    monkeypatch.setattr(sampling, "resize_frame", failing)
    with pytest.raises(RuntimeError, match="frame 4"):
        sample_video(videos_dir / "videollama_dog_barking.mp4", SamplingConfig(fps=2.0))
    # the decoder stopped a few frames after the failure (bounded look-ahead) and was closed
    assert len(closed) == 1 and 4 <= closed[0] < 14


def test_starved_worker_hands_the_resize_to_the_decoding_thread(
    videos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle-priority worker that gets no CPU (here: it sleeps before its first job) must not
    stall sampling: after one wait of _STEAL_AFTER_S the decoding thread resizes the frames
    itself, with the same pixels."""
    import threading
    import time

    import ravst.models.sampling as sampling
    from ravst.media.video import iter_frames_by_index
    from ravst.models.sampling import resize_frame

    clip = videos_dir / "videollama_dog_barking.mp4"
    expected = sample_video(clip, SamplingConfig(fps=2.0))
    where: list[str] = []
    real_resize = sampling.resize_frame

    def recording(frame, height, width):  # type: ignore[no-untyped-def]
        where.append(threading.current_thread().name)
        return real_resize(frame, height, width)

    monkeypatch.setattr(sampling, "_background_thread", lambda: time.sleep(1.0))
    monkeypatch.setattr(sampling, "_STEAL_AFTER_S", 0.02)
    monkeypatch.setattr(sampling, "resize_frame", recording)
    start = time.perf_counter()
    starved = sample_video(clip, SamplingConfig(fps=2.0))
    assert time.perf_counter() - start < 1.0  # did not wait for the sleeping worker
    assert where and all(not name.startswith("ravst-resize") for name in where)
    assert np.array_equal(starved.frames, expected.frames)
    w, h = expected.input_wh
    serial = [resize_frame(image, h, w) for _, _, image in iter_frames_by_index(clip, list(expected.frame_indices))]
    assert np.array_equal(starved.frames, np.stack(serial))


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux only")
def test_resize_worker_runs_at_idle_priority() -> None:
    import threading

    from ravst.models.sampling import _background_thread

    policies: list[int] = []
    main_before = os.sched_getscheduler(0)

    def body() -> None:
        _background_thread()
        policies.append(os.sched_getscheduler(threading.get_native_id()))

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert policies == [os.SCHED_IDLE]
    assert os.sched_getscheduler(0) == main_before  # the calling process/thread is untouched


def test_sample_video_opens_the_file_once(videos_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import av

    opened: list[str] = []
    real_open = av.open

    def counting(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting)
    sample_video(videos_dir / "videollama_dog_barking.mp4", SamplingConfig(fps=2.0))
    assert len(opened) == 1


def test_box2_prompt_is_the_papers_text() -> None:
    if not PAPER.is_file():
        pytest.skip(f"paper text absent: {PAPER}")
    paper = PAPER.read_text(encoding="utf-8")
    start = paper.index("You are an expert in audio-visual video grounding.")
    end = paper.index("</answer>", paper.index("Example:", start)) + len("</answer>")

    def norm(s: str) -> str:
        return re.sub(r"\s+", " ", s).strip()

    # the paper's PDF-extraction artefacts, and their fix (the released trainer's spelling)
    fixes = {"\u2018": "'", "\u2019": "'", "dog </object>": "dog</object>", "cat </object>": "cat</object>",
             "<where>for": "<where> for", "<when>and": "<when> and"}
    text = paper[start:end]
    assert all(bad in text for bad in fixes)  # the artefacts are really in the paper
    for bad, good in fixes.items():
        text = text.replace(bad, good)
    assert norm(BOX2_INSTRUCTION) == norm(text)
    assert not any(bad in BOX2_INSTRUCTION for bad in fixes)


# The released trainer's strings as its source writes them (zhlllau/R-AVST,
# AVST-Zero/src/open_r1/trainer/grpo_trainer_video_gqa.py): Python literal syntax, so the test
# reads them through the parser, independently of how prompts.py builds them.
RELEASED_SYSTEM_SRC = (
                '''You are an expert in audio-visual video grounding.

                For each question, output within <answer></answer>:
                - <object>: grounded object(s), e.g. 'man', 'dog', separated by commas
                - <when>: [start, end] in seconds, 1 decimal
                - <where> for each object by each second within the object appearing duration:
                timestamp: [x1, y1, x2, y2]

                Only include tags <object>, <when> and <where>. No extra text.

                Example:
                <answer>
                <when>[10.0,20.5]</when>
                <object>dog</object>
                <where>
                10.0: [100,200,300,400]
                11.0: [109,280,320,432]
                12.0: [100,200,300,400]
                </where>
                <object>cat</object>
                <where>
                12.5: [50,60,150,160]
                13.5: [55,62,140,150]
                </where>
                </answer>'''
)
RELEASED_QUESTION_SRC = """
    'Q: [QUESTION]\n\n'
    'Please answer based on the video content using the specified XML-style format.'
"""


def test_released_template_reproduces_the_trainer() -> None:
    from ravst.models.qwen import chat_messages

    t = get_template("released")
    q = "During the event of 'dog barking', what objects are sounding? {not a placeholder}"
    assert t.render_system() == RELEASED_SYSTEM_SRC
    assert t.render_user(question=q) == RELEASED_QUESTION_SRC.replace("[QUESTION]", q)
    assert not t.video_first
    # the trainer's conversation: system turn, then the question text BEFORE the video
    messages = chat_messages(t.render_system(), t.render_user(question=q), video_first=t.video_first)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert [c["type"] for c in messages[1]["content"]] == ["text", "video"]
    assert [c["type"] for c in chat_messages("s", "u")[1]["content"]] == ["video", "text"]


def test_released_template_reaches_the_model_inputs(videos_dir: Path) -> None:
    """infer requests carry the template's video position to the backends (here: openai's body)."""
    from ravst.infer import _requests
    from ravst.models.openai_backend import chat_payload
    from ravst.models.qwen import GenerationSettings
    from ravst.types import Answer, QAItem, Task

    item = QAItem(qa_id="videollama_dog_barking/0/temporal/0", video="videollama_dog_barking", duration_s=7.1,
                  event_index=0, event_num=1, task=Task.TEMPORAL, k=0, question="When?", answer=Answer())
    (req,) = list(_requests([item], videos_dir, get_template("released")))
    assert not isinstance(req, tuple) and req.video_first is False and req.user.startswith("\n    'Q: When?")
    video = sample_video(req.video_path, SamplingConfig(fps=1.0, max_pixels=12544))
    body = chat_payload("m", req.system, req.user, video, GenerationSettings(), video_first=req.video_first)
    parts = body["messages"][1]["content"]
    assert parts[0] == {"type": "text", "text": req.user} and parts[-1]["type"] == "image_url"


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
    yaml_spec.write_text("user: 'Video {video}: {question}'\nvideo_first: false\n")
    loaded = load_template(str(yaml_spec))
    assert loaded.render_user(question="q", video="v1") == "Video v1: q" and loaded.video_first is False
    assert custom.video_first is True
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"user": "no placeholder"}))
    with pytest.raises(ValueError, match="question"):
        load_template(str(bad))
    bad.write_text(json.dumps({"user": "{question} {oops}"}))
    with pytest.raises(ValueError, match="placeholder"):
        load_template(str(bad))
    with pytest.raises(ValueError, match="neither"):
        load_template("no-such-template")
