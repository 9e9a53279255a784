"""ravst.media on the real clips in ../shared/data/videos (skipped when absent)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from ravst.media import (
    MediaError,
    TruncatedVideoError,
    iter_frames_at,
    iter_frames_by_index,
    load_audio,
    probe,
    read_frames_at,
)


def _write_video(path: Path, *, seconds: float, fps: int = 10, audio: bool, video: bool = True) -> Path:
    """A tiny clip written with PyAV: a moving bright square (and a 440 Hz tone)."""
    import av

    with av.open(str(path), "w") as out:
        vstream = out.add_stream("mpeg4", rate=fps) if video else None
        if vstream is not None:
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astream = out.add_stream("aac", rate=16000) if audio else None
        if vstream is not None:
            for i in range(int(seconds * fps)):
                img = np.zeros((48, 64, 3), np.uint8)
                img[10:20, i % 50 : i % 50 + 10] = 255
                for packet in vstream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
            for packet in vstream.encode():
                out.mux(packet)
        if astream is not None:
            n = int(seconds * 16000)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)).astype(np.float32)
            for k in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(tone[None, k : k + 1024], format="flt", layout="mono")
                frame.sample_rate = 16000
                for packet in astream.encode(frame):
                    out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)
    return path


def test_probe_real_clips(videos_dir: Path) -> None:
    clips = sorted(videos_dir.glob("*.mp4")) + sorted(videos_dir.glob("*.avi"))
    assert len(clips) >= 2
    for clip in clips:
        info = probe(clip)
        assert info.width > 0 and info.height > 0 and info.fps > 0
        assert info.duration_s > 1 and info.num_frames > 10
        assert info.has_audio and info.audio_sample_rate and info.audio_sample_rate > 8000


def test_probe_unav_clip(unav_video: Path) -> None:
    info = probe(unav_video)
    assert (info.width, info.height) == (320, 240)
    assert abs(info.fps - 15000 / 1001) < 1e-6
    assert 59.9 < info.duration_s < 60.2
    assert info.num_frames == 900


def test_frames_at_official_times(unav_video: Path, caplog: pytest.LogCaptureFixture) -> None:
    times = [1.4, 2.4, 3.4, 60.5, 200.0]
    with caplog.at_level("WARNING", logger="ravst.media.video"):
        frames, real = read_frames_at(unav_video, times)
    assert "2 requested frame(s) past the end of the stream" in caplog.text  # counted, not silent
    assert frames.shape == (5, 240, 320, 3) and frames.dtype == np.uint8
    dt = 1001 / 15000
    # first frame whose pts >= t: within one frame interval after t
    for t, r in zip(times[:3], real[:3], strict=True):
        assert t <= r + 1e-6 < t + dt + 1e-6
    assert real[3] == real[4]  # past the end: the last frame
    assert abs(real[4] - 899 * dt) < 1e-6
    assert frames[0].std() > 1  # a real picture, not a blank


def test_streaming_equals_exhaustive_decode(videos_dir: Path) -> None:
    import av

    clip = videos_dir / "moviepy_chaplin.mp4"
    times = [0.0, 0.5, 3.0, 3.0, 7.25]
    got = list(iter_frames_at(clip, times))
    with av.open(str(clip)) as container:
        every = [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    for t, (real_t, img) in zip(times, got, strict=True):
        expected_t, expected = next((ft, fi) for ft, fi in every if ft >= t - 1e-6)
        assert real_t == pytest.approx(expected_t)
        np.testing.assert_array_equal(img, expected)


def test_order_and_resize(videos_dir: Path) -> None:
    clip = videos_dir / "salmonn_standup_1.mp4"  # portrait 360x640
    frames, real = read_frames_at(clip, [5.0, 1.0, 3.0], max_side=160)
    assert frames.shape == (3, 160, 90, 3)
    assert real[1] < real[2] < real[0]
    assert list(iter_frames_at(clip, [])) == []
    with pytest.raises(ValueError, match="not finite"):
        read_frames_at(clip, [float("nan")])


def test_memory_flat_and_stops_early(unav_video: Path) -> None:
    """Peak Python-visible memory does not grow with the number of frames decoded past."""
    tracemalloc.start()
    for _t, _img in iter_frames_at(unav_video, [0.5]):
        pass
    _, peak_short = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    for _t, _img in iter_frames_at(unav_video, [0.5, 59.0]):
        pass
    _, peak_long = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    frame_bytes = 320 * 240 * 3
    assert peak_long < peak_short + 4 * frame_bytes


def test_audio_real_clip(unav_video: Path) -> None:
    whole = load_audio(unav_video)
    assert whole.dtype == np.float32 and whole.ndim == 1
    assert abs(whole.shape[0] / 16000 - 60.0) < 0.1  # the whole minute, not cut at 10 or 30 s
    assert 0.01 < np.abs(whole).max() < 2.0  # lossy codecs overshoot 1 a little
    cut = load_audio(unav_video, start_s=12.5, end_s=20.0)
    assert cut.shape[0] == 7.5 * 16000
    np.testing.assert_array_equal(cut, whole[200000:320000])
    low = load_audio(unav_video, sample_rate=8000, end_s=2.0)
    assert low.shape[0] == 16000


def test_audio_of_other_codecs(videos_dir: Path) -> None:
    for name in ("mmaction2_test_makeup.avi", "videollama2_00003491_ukulele_duo.mp4"):
        wave = load_audio(videos_dir / name, end_s=3.0)
        assert wave.shape[0] == 48000 and np.abs(wave).max() > 0.001


def test_missing_and_corrupt_files(tmp_path: Path, unav_video: Path) -> None:
    with pytest.raises(MediaError, match=r"nope\.mp4.*no such file"):
        probe(tmp_path / "nope.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    for call in (probe, lambda p: read_frames_at(p, [1.0]), load_audio):
        with pytest.raises(MediaError, match=r"garbage\.mp4"):
            call(garbage)
    # the first 2 kB of a real clip -> still a MediaError naming the file
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(unav_video.read_bytes()[: 2000])
    with pytest.raises(MediaError, match=r"truncated\.mp4"):
        read_frames_at(truncated, [1.0, 30.0])
    assert isinstance(MediaError("x", "y"), ValueError)


def test_no_audio_and_no_video_streams(tmp_path: Path) -> None:
    silent = _write_video(tmp_path / "silent.mp4", seconds=2, audio=False)
    info = probe(silent)
    assert not info.has_audio and info.audio_sample_rate is None
    assert (info.width, info.height) == (64, 48)
    frames, real = read_frames_at(silent, [0.0, 1.0, 1.95])
    assert frames.shape == (3, 48, 64, 3) and real[1] == pytest.approx(1.0)
    with pytest.raises(MediaError, match=r"silent\.mp4: no audio stream"):
        load_audio(silent)
    sound_only = _write_video(tmp_path / "sound.m4a", seconds=1, audio=True, video=False)
    with pytest.raises(MediaError, match=r"sound\.m4a: no video stream"):
        probe(sound_only)
    with pytest.raises(MediaError, match="no video stream"):
        read_frames_at(sound_only, [0.5])
    wave = load_audio(sound_only)
    assert abs(wave.shape[0] - 16000) < 2048 and np.abs(wave).max() > 0.1


def _half_download(src: Path, tmp_path: Path) -> Path:
    """A half-downloaded MP4: remuxed with the index first (``movflags=faststart``), then cut at 50 %."""
    import av

    whole = tmp_path / "whole.mp4"
    with av.open(str(src)) as inp, av.open(str(whole), "w", options={"movflags": "faststart"}) as out:
        streams = (inp.streams.video[0], inp.streams.audio[0])
        mapping = {s.index: out.add_stream_from_template(s) for s in streams}
        for packet in inp.demux(*streams):
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    data = whole.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # the header (claimed duration) comes first
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    return half


def test_truncated_video_is_a_named_failure(unav_video: Path, tmp_path: Path) -> None:
    """Issue 13 item 6: never the last decodable frame repeated for times the file does not have."""
    from ravst.models.sampling import SamplingConfig, sample_video

    half = _half_download(unav_video, tmp_path)
    info = probe(half)
    assert info.duration_s == pytest.approx(60.06, abs=0.01)  # the header still claims the whole clip
    # the first half decodes as usual
    frames, real = read_frames_at(half, [1.0, 10.0, 20.0])
    assert frames.shape == (3, 240, 320, 3) and real[2] == pytest.approx(20.0, abs=0.07)
    with pytest.raises(TruncatedVideoError) as err:
        read_frames_at(half, [1.0, 45.0])
    exc = err.value
    assert isinstance(exc, MediaError) and exc.path == str(half)
    assert exc.claimed_duration_s == pytest.approx(60.06, abs=0.01)
    assert 25.0 < exc.last_time_s < 35.0 and exc.requested_s == 45.0
    assert "half.mp4" in str(exc) and "60.060 s" in str(exc) and f"{exc.last_time_s:.3f} s" in str(exc)
    with pytest.raises(TruncatedVideoError, match=r"half\.mp4: truncated"):
        list(iter_frames_by_index(half, [0, 899]))
    with pytest.raises(TruncatedVideoError):
        sample_video(half, SamplingConfig(fps=1.0, max_pixels=12544))
    # up to one frame period past the last decodable frame is fine (rounding), one more is not
    last = exc.last_time_s
    assert read_frames_at(half, [last + 0.05])[1][0] == pytest.approx(last)
    with pytest.raises(TruncatedVideoError):
        read_frames_at(half, [last + 0.1])


def test_frames_by_index(videos_dir: Path) -> None:
    import av

    clip = videos_dir / "moviepy_chaplin.mp4"
    got = list(iter_frames_by_index(clip, [7, 0, 100, 100, 240]))
    with av.open(str(clip)) as container:
        every = [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    assert [g[0] for g in got] == [0, 7, 100, 100, 240]
    for index, t, image in got:
        assert t == pytest.approx(every[index][0])
        np.testing.assert_array_equal(image, every[index][1])
    with pytest.raises(ValueError, match=">= 0"):
        list(iter_frames_by_index(clip, [-1]))
    # size_wh: the same frames and times, converted and scaled in one swscale pass (area filter)
    small = list(iter_frames_by_index(clip, [7, 0, 100, 100, 240], size_wh=(322, 182)))
    assert [(i, t) for i, t, _ in small] == [(i, t) for i, t, _ in got]
    for (_, _, image), (_, _, full) in zip(small, got, strict=True):
        assert image.shape == (182, 322, 3) and image.dtype == np.uint8
        # an area filter keeps the mean colour of the frame
        assert np.abs(image.reshape(-1, 3).mean(0) - full.reshape(-1, 3).mean(0)).max() < 2.0
    same = list(iter_frames_by_index(clip, [7], size_wh=(640, 360)))  # the source size: as decoded
    np.testing.assert_array_equal(same[0][2], every[7][1])


def test_video_file_opens_once_for_header_and_frames(videos_dir: Path, tmp_path: Path) -> None:
    """VideoFile: the header as probe reads it, then one decoding pass (RGB frames, or the
    decoded frames for frame_to_rgb later: the same pixels as iter_frames_by_index)."""
    from ravst.media import VideoFile, frame_to_rgb

    clip = videos_dir / "moviepy_chaplin.mp4"
    reference = list(iter_frames_by_index(clip, [0, 7, 240]))
    with VideoFile(clip) as video:
        assert video.info == probe(clip)
        decoded = list(video.decoded_frames([7, 240, 0]))
        with pytest.raises(RuntimeError, match="already decoded"):
            video.frames_by_index([0])
    assert [(i, t) for i, t, _ in decoded] == [(i, t) for i, t, _ in reference]
    for (_, _, frame), (_, _, image) in zip(decoded, reference, strict=True):
        np.testing.assert_array_equal(frame_to_rgb(frame), image)
    with VideoFile(clip) as video:
        rgb = list(video.frames_by_index([0, 7, 240]))
    for (_, _, a), (_, _, b) in zip(rgb, reference, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(MediaError, match="no such file"):
        VideoFile(tmp_path / "missing.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(MediaError, match=r"bad\.mp4"):
        VideoFile(tmp_path / "bad.mp4")


def test_frame_to_rgb_from_two_threads_at_once(videos_dir: Path) -> None:
    """The resize worker and the decoding thread may convert the same decoded frame at once
    (a starved worker's job is redone by the decoding thread): same pixels, no crash."""
    from concurrent.futures import ThreadPoolExecutor

    from ravst.media import VideoFile, frame_to_rgb

    with VideoFile(videos_dir / "videollama_dog_barking.mp4") as video:
        frames = [frame for _, _, frame in video.decoded_frames(range(0, 160, 8))]
    expected = [frame.to_ndarray(format="rgb24") for frame in frames]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            results = list(pool.map(frame_to_rgb, frames * 4))
            for k, image in enumerate(results):
                np.testing.assert_array_equal(image, expected[k % len(frames)])
