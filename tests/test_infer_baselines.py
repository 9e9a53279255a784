"""Weight-free baselines through ``ravst infer``, their answers, and resumable runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from infer_helpers import DOG, N_QA, UNAV, read_jsonl, write_qa_file
from ravst.cli import main
from ravst.formats.official import read_official
from ravst.infer import completed_ids
from ravst.models.baselines import BaselineBackend, box_times, motion_box, segments_from_mask, sound_profile
from ravst.parsing import parse_answer
from ravst.types import Span, Task


def _infer(qa: Path, videos: Path, out: Path, backend: str, *extra: str) -> int:
    return main(["infer", "--qa", str(qa), "--videos", str(videos), "--backend", backend, "--out", str(out), *extra])


@pytest.mark.parametrize("backend", ["full-span", "whole-frame", "random"])
def test_simple_baselines_answer_in_official_layout(backend: str, videos_dir: Path, tmp_path: Path) -> None:
    qa = write_qa_file(tmp_path)
    out = tmp_path / "pred.jsonl"
    assert _infer(qa, videos_dir, out, backend) == 0
    records = {r["qa_id"]: r for r in read_jsonl(out)}
    items = {it.qa_id: it for it in read_official(qa)}
    assert set(records) == set(items)
    for qa_id, rec in records.items():
        item = items[qa_id]
        parsed = parse_answer(rec["text"], strict=True)
        assert parsed.strict_ok, (qa_id, rec["text"], parsed.issues)
        # docs/inference.md: coord_space is written only when not `original` (baselines: omitted)
        assert "coord_space" not in rec and rec.get("error") is None, rec
        answer = parsed.answer
        if item.task is not Task.SPATIAL:
            assert answer.objects == (item.query_object,)
            span = answer.span
            assert span is not None and 0.0 <= span.start_s <= span.end_s <= 60.1
            if backend != "random":
                assert span.start_s == 0.0 and span.end_s >= item.duration_s - 0.1
        if item.task is not Task.TEMPORAL:
            (track,) = answer.tracks
            w, h = rec["original_wh"]
            assert (track.xyxy[:, 2] <= w).all() and (track.xyxy[:, 3] <= h).all() and track.nonempty.all()
            if item.task is Task.SPATIAL:
                assert track.times_s.tolist() == [13.1, 14.1, 15.1, 16.1]
            if backend == "whole-frame":
                assert track.xyxy.tolist()[0] == [0.0, 0.0, w, h]


def test_random_baseline_is_seeded_per_qa(videos_dir: Path, tmp_path: Path) -> None:
    qa = write_qa_file(tmp_path)
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert _infer(qa, videos_dir, a, "random", "--seed", "3") == 0
    assert _infer(qa, videos_dir, b, "random", "--seed", "3", "--limit", "2") == 0
    assert _infer(qa, videos_dir, c, "random", "--seed", "4") == 0
    ta = {r["qa_id"]: r["text"] for r in read_jsonl(a)}
    tb = {r["qa_id"]: r["text"] for r in read_jsonl(b)}
    tc = {r["qa_id"]: r["text"] for r in read_jsonl(c)}
    assert len(tb) == 2 and all(ta[k] == v for k, v in tb.items())  # same answer whatever the subset
    assert ta != tc


def test_av_signal_finds_speech_and_motion(unav_video: Path) -> None:
    pytest.importorskip("silero_vad")
    from ravst.media.audio import load_audio
    from ravst.models.vad import load_vad

    audio = load_audio(unav_video, sample_rate=16000)
    prof = sound_profile(audio, 16000, load_vad().model)
    assert prof.has_audio and prof.speech
    # UnAV-100 GT "man speaking": [0, 10.235], [13.139, 26.235], [28.685, 60]
    gt = [(0.0, 10.235), (13.139, 26.235), (28.685, 60.0)]
    inter = sum(max(0.0, min(e, ge) - max(s, gs)) for s, e in prof.speech for gs, ge in gt)
    covered = sum(e - s for s, e in prof.speech)
    assert inter / covered > 0.8 and inter / sum(e - s for s, e in gt) > 0.8
    # silence has no sounding span
    assert sound_profile(np.zeros(16000 * 5, np.float32), 16000, None).energy == ()


def test_av_signal_end_to_end_scored(videos_dir: Path, tmp_path: Path) -> None:
    qa = write_qa_file(tmp_path)
    out = tmp_path / "pred.jsonl"
    assert _infer(qa, videos_dir, out, "av-signal") == 0
    records = {r["qa_id"]: r for r in read_jsonl(out)}
    temporal = parse_answer(records[f"{UNAV}/0/temporal/0"]["text"]).answer.span
    assert temporal is not None
    # the longest speech span of the clip ([28.7, 60] in the GT): a real signal, not the whole clip
    assert temporal.start_s > 20.0 and temporal.end_s > 55.0
    assert parse_answer(records[f"{DOG}/0/temporal/0"]["text"]).answer.objects == ("dog",)
    pytest.importorskip("ravst.evaluate")
    report = tmp_path / "eval"
    assert main(["eval", "--gt", str(qa), "--pred", str(out), "--similarity", "exact", "--quiet", "--out", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics


def test_motion_box_locates_a_moving_square() -> None:
    a = np.zeros((120, 160, 3), np.uint8)
    b = a.copy()
    b[40:70, 90:130] = 255
    box = motion_box(a, b)
    assert box is not None
    x1, y1, x2, y2 = box
    assert 80 <= x1 <= 92 and 30 <= y1 <= 42 and 128 <= x2 <= 140 and 68 <= y2 <= 80
    assert motion_box(a, a) is None


def test_box_times_and_segments() -> None:
    assert box_times(Span(0.0, 0.4)).tolist() == [0.0]
    assert box_times(Span(2.0, 5.0)).tolist() == [2.0, 3.0, 4.0, 5.0]
    mask = np.zeros(100, bool)
    mask[10:20] = True
    mask[22:30] = True  # 0.2 s gap: closed
    mask[60:62] = True  # 0.2 s long: dropped
    assert segments_from_mask(mask, hop_s=0.1, close_s=1.0, min_s=0.5) == [(1.0, 3.0)]


def test_baseline_rejects_other_coordinate_spaces() -> None:
    with pytest.raises(ValueError, match="original"):
        BaselineBackend("random", coord_space="input")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown baseline"):
        BaselineBackend("oracle")


def test_resume_skips_done_and_records_failures(videos_dir: Path, tmp_path: Path) -> None:
    qa = write_qa_file(tmp_path)
    out = tmp_path / "pred.jsonl"
    assert _infer(qa, videos_dir, out, "whole-frame", "--limit", "1") == 0
    first = read_jsonl(out)
    assert len(first) == 1
    # an interrupted write leaves half a line: it is dropped and that QA is done again
    with open(out, "a", encoding="utf-8") as fh:
        fh.write('{"qa_id": "' + first[0]["qa_id"][:5])
    assert _infer(qa, videos_dir, out, "whole-frame") == 0
    records = read_jsonl(out)
    assert records[0]["qa_id"] == first[0]["qa_id"]
    assert len(records) == N_QA and len({r["qa_id"] for r in records}) == N_QA
    # nothing left to do: the file is unchanged
    before = out.read_text()
    assert _infer(qa, videos_dir, out, "whole-frame") == 0
    assert out.read_text() == before

    # a missing video fails its QAs only; they are recorded, then retried with --retry-errors
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / f"{DOG}.mp4").symlink_to(videos_dir / f"{DOG}.mp4")
    out2 = tmp_path / "pred2.jsonl"
    assert _infer(qa, videos, out2, "full-span") == 0
    recs = {r["qa_id"]: r for r in read_jsonl(out2)}
    assert len(recs) == N_QA
    assert recs[f"{DOG}/0/temporal/0"].get("error") is None
    failed = [r for r in recs.values() if r.get("error")]
    assert len(failed) == 3 and all("not found" in r["error"] for r in failed)
    (videos / f"{UNAV}.mp4").symlink_to(videos_dir / f"{UNAV}.mp4")
    assert _infer(qa, videos, out2, "full-span", "--retry-errors") == 0
    recs2 = read_jsonl(out2)
    assert len(recs2) == N_QA and not any(r.get("error") for r in recs2)


def test_resume_refuses_another_models_records_and_bad_lines(videos_dir: Path, tmp_path: Path) -> None:
    qa = write_qa_file(tmp_path)
    out = tmp_path / "pred.jsonl"
    assert _infer(qa, videos_dir, out, "whole-frame", "--limit", "1") == 0
    before = out.read_text()
    # another backend on the same file would mix two models: refused, file untouched
    assert _infer(qa, videos_dir, out, "full-span") == 2
    assert out.read_text() == before
    # a record whose qa_id is not a string (not the last line) is refused, not skipped
    out.write_text('{"qa_id": 5}\n' + before)
    assert _infer(qa, videos_dir, out, "whole-frame") == 2
    # ... and so is a complete but malformed LAST line (only a cut-short write is dropped)
    out.write_text(before + '{"qa_id": 5}\n')
    assert _infer(qa, videos_dir, out, "whole-frame") == 2
    out.write_text(before + '{"qa_id": "x"}\n')  # no 'text' field
    assert _infer(qa, videos_dir, out, "whole-frame") == 2
    assert out.read_text() == before + '{"qa_id": "x"}\n'
    # the random baseline with another seed would mix two runs
    out.write_text("")
    assert _infer(qa, videos_dir, out, "random", "--limit", "1", "--seed", "1") == 0
    assert _infer(qa, videos_dir, out, "random", "--seed", "2") == 2
    with pytest.raises(ValueError, match=r"line 1: field 'seed' is 1"):
        completed_ids(out, model="baseline:random", expect={"backend": "random", "seed": 2})
    assert len(completed_ids(out, model="baseline:random", expect={"backend": "random", "seed": 1})) == 1


def test_setup_errors_exit_2_up_front(videos_dir: Path, tmp_path: Path) -> None:
    qa = write_qa_file(tmp_path)
    out = tmp_path / "pred.jsonl"
    assert _infer(qa, tmp_path / "no-such-videos", out, "full-span") == 2
    assert not out.exists()
    missing_model = ["infer", "--qa", str(qa), "--videos", str(videos_dir), "--backend", "transformers",
                     "--model", str(tmp_path / "no-such-model"), "--out", str(out)]
    assert main(missing_model) == 2
    bad_prompt = tmp_path / "prompt.yaml"
    bad_prompt.write_text("user: '{question}'\nfoo: 1\n")
    from ravst.models.prompts import load_template

    with pytest.raises(ValueError, match=r"unknown field\(s\) \['foo'\]"):
        load_template(str(bad_prompt))
    bad_key = tmp_path / "key.yaml"
    bad_key.write_text("user: '{question} {fps}'\n")
    with pytest.raises(ValueError, match=r"key\.yaml: .*bad placeholder \('fps'\)"):
        load_template(str(bad_key))


def test_av_signal_decodes_each_video_once(unav_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10: one decode pass per video, whatever the number of spatial QAs; the boxes are the
    ones a separate decode of the frames at t and t + 0.2 s gives (the per-QA way)."""
    import ravst.media.video as video
    from ravst.models.baselines import MOTION_DT_S, MOTION_MAX_SIDE
    from ravst.types import Answer, QAItem

    calls: list[int] = []
    real_iter = video.iter_frames_at

    def counting(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real_iter(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(video, "iter_frames_at", counting)
    backend = BaselineBackend("av-signal")
    spans = [Span(1.4, 4.3), Span(30.0, 33.0), Span(57.5, 60.0)]
    answers = []
    for k, span in enumerate(spans):
        item = QAItem(
            qa_id=f"v/0/spatial/{k}", video="v", duration_s=60.06, event_index=0, event_num=1, task=Task.SPATIAL,
            k=k, question="q", answer=Answer(), query_span=span, query_object="man",
        )
        answers.append(backend.answer(item, unav_video))
    assert len(calls) == 1  # one pass for three QAs
    monkeypatch.setattr(video, "iter_frames_at", real_iter)
    # reference: PyAV's own planar YUV array (its luma rows), area-shrunk, first frame at or after t
    import av
    import cv2

    with av.open(str(unav_video)) as container:
        every = [(float(f.time), f.to_ndarray(format="yuv420p")[: f.height]) for f in container.decode(video=0)]

    def frame_at(t: float) -> np.ndarray:
        luma = next((img for ft, img in every if ft >= t - 1e-6), every[-1][1])
        return cv2.resize(luma, (MOTION_MAX_SIDE, 120), interpolation=cv2.INTER_AREA)

    for span, answer in zip(spans, answers, strict=True):
        track = answer.tracks[0]
        for t, box in zip(track.times_s, track.xyxy, strict=True):
            a, b = frame_at(float(t)), frame_at(float(t) + MOTION_DT_S)
            ref = motion_box(a, b)
            expected = [80.0, 60.0, 240.0, 180.0] if ref is None else [v * 2 for v in ref]  # 160 -> 320 px
            np.testing.assert_allclose(box, np.round(expected, 1), err_msg=f"{span} at {t}")
