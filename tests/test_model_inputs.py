"""What the model sees: MRoPE position ids checked against an INDEPENDENT implementation of the
reference rule, written here from the Qwen2.5-VL paper / vLLM's documented ``get_mrope_input_positions``
(it does not import ravst's), on ``ravst infer --dump-inputs`` output of tiny VL and Omni models
over real clips, and on prompts with text before and after 1 and 2 videos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from infer_helpers import UNAV, write_qa_file  # noqa: E402
from ravst.cli import main  # noqa: E402

pytestmark = pytest.mark.slow

FRAME_ARGS = ["--fps", "1.0", "--max-frames", "8", "--min-pixels", "3136", "--max-pixels", "12544"]


# ----------------------------------------------------------------------------------------------
# The reference rule, written independently of ravst.models.mrope
# ----------------------------------------------------------------------------------------------
def _t_positions(n_steps: int, second_per_grid: float, tokens_per_second: float) -> list[int]:
    """vLLM: (arange(t) * second_per_grid_t * tokens_per_second).long(), in float32."""
    out = []
    for g in range(n_steps):
        value = np.float32(np.float32(g) * np.float32(second_per_grid)) * np.float32(tokens_per_second)
        out.append(int(np.float32(value)))
    return out


def _vision(start: int, t_pos: list[int], h: int, w: int) -> list[tuple[int, int, int]]:
    return [(start + t, start + i, start + j) for t in t_pos for i in range(h) for j in range(w)]


def ref_vl(tokens: list[int], grids: list[tuple[int, int, int]], seconds: list[float], *, video_id: int,
           merge: int, tps: float) -> list[tuple[int, int, int]]:
    """Qwen2.5-VL / vLLM ``_vl_get_input_positions``: text runs from the last block's max + 1;
    a video block at st = that value: (st + t_index, st + row, st + col)."""
    pos: list[tuple[int, int, int]] = []
    i, v = 0, 0
    while i < len(tokens):
        st = max(max(p) for p in pos) + 1 if pos else 0
        if tokens[i] == video_id:
            t, h, w = grids[v]
            block = _vision(st, _t_positions(t, seconds[v], tps), h // merge, w // merge)
            pos += block
            i += len(block)
            v += 1
        else:
            # text: consecutive tokens advance by one from st
            j = i
            while j < len(tokens) and tokens[j] != video_id:
                j += 1
            pos += [(st + k,) * 3 for k in range(j - i)]
            i = j
    assert v == len(grids)
    return pos


def _audio_tokens(n_mel: int) -> int:
    return ((n_mel - 1) // 2 + 1 - 2) // 2 + 1


def ref_omni(tokens: list[int], grids: list[tuple[int, int, int]], seconds: list[float], audio_mel: list[int], *,
             ids: dict[str, int], merge: int, tps: float, chunk_s: float, in_video: bool
             ) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Qwen2.5-Omni as vLLM's token walk (``get_mrope_input_positions``, Omni version).

    Returns the positions of ``tokens`` and the token layout vLLM's rule writes for the
    audio-in-video blocks (video chunk, then the audio of the same 2 s, ...). Inside such a block
    each video token gets its grid position (t-major) and each audio token its audio position, in
    the order the tokens come, so positions are checked even where a processor lays the chunks
    out otherwise; the layout itself is compared by the caller."""
    pos: list[Any] = []  # per token (t, h, w)
    layout: list[int] = []
    per_chunk = int(tps * chunk_s)
    i = v = a = 0

    def last_max() -> int:
        return max(pos[-1]) if pos else -1

    while i < len(tokens):
        tok = tokens[i]
        start = last_max() + 1
        if tok == ids["video"] and in_video:
            t, h, w = grids[v]
            hh, ww = h // merge, w // merge
            t_pos = _t_positions(t, seconds[v], tps)
            video_pos = _vision(start, t_pos, hh, ww)
            n_audio = _audio_tokens(audio_mel[a])
            # vLLM's layout: split_list_into_ranges(t_index, 50), each range's video then <= 50 audio
            ranges: list[list[int]] = [[] for _ in range(max(t_pos) // per_chunk + 1)]
            for tp in t_pos:
                ranges[tp // per_chunk].append(tp)
            added = 0
            for chunk in ranges:
                layout += [ids["video"]] * (len(chunk) * hh * ww)
                k = min(per_chunk, n_audio - added)
                layout += [ids["audio"]] * k
                added += k
            layout += [ids["audio"]] * (n_audio - added)
            nv = na = 0
            while i < len(tokens) and tokens[i] in (ids["video"], ids["audio"]):
                if tokens[i] == ids["video"]:
                    pos.append(video_pos[nv])
                    nv += 1
                else:
                    pos.append((start + na,) * 3)  # audio: 25 positions per second from the block start
                    na += 1
                i += 1
            assert (nv, na) == (len(video_pos), n_audio)
            v += 1
            a += 1
        elif tok == ids["video"]:
            t, h, w = grids[v]
            block = _vision(start, _t_positions(t, seconds[v], tps), h // merge, w // merge)
            pos += block
            layout += [tok] * len(block)
            i += len(block)
            v += 1
        elif tok == ids["audio"]:
            n = _audio_tokens(audio_mel[a])
            pos += [(start + x,) * 3 for x in range(n)]
            layout += [tok] * n
            i += n
            a += 1
        else:
            if in_video and i > 0 and (
                (tok == ids["vision_end"] and tokens[i - 1] == ids["audio_end"])
                or (tok == ids["audio_start"] and tokens[i - 1] == ids["vision_start"])
            ):
                start -= 1  # <audio_bos> shares <vision_bos>'s position, <vision_eos> <audio_eos>'s
            pos.append((start,) * 3)
            layout.append(tok)
            i += 1
    return pos, layout


def _layout_comparable(seconds: list[float], tps: float, chunk_s: float) -> bool:
    """vLLM and transformers' processor write the same interleaving when a grid step spans at
    most one chunk (>= 1 fps); below that transformers' processor scatters single video tokens
    between audio chunks (documented in docs/inference.md)."""
    return all(float(np.float32(s) * np.float32(tps)) <= tps * chunk_s for s in seconds)


def _rows(pos: list[tuple[int, int, int]]) -> list[list[int]]:
    return [[p[r] for p in pos] for r in range(3)]


def _omni_ids(config: Any) -> dict[str, int]:
    return {"video": config.video_token_id, "audio": config.audio_token_id,
            "vision_start": config.vision_start_token_id, "vision_end": config.vision_end_token_id,
            "audio_start": config.audio_start_token_id, "audio_end": config.audio_end_token_id}


# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from ravst.testing.tiny_qwen import build_tiny_qwen_omni, build_tiny_qwen_vl

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return {"vl": build_tiny_qwen_vl(root / "vl"), "omni": build_tiny_qwen_omni(root / "omni")}


def _dump(kind: str, models: dict[str, Path], videos_dir: Path, tmp_path: Path, *extra: str) -> list[dict[str, Any]]:
    qa = write_qa_file(tmp_path)
    dump = tmp_path / "dump"
    args = ["infer", "--qa", str(qa), "--videos", str(videos_dir), "--backend", "transformers",
            "--model", str(models[kind]), "--out", str(tmp_path / "pred.jsonl"), "--max-new-tokens", "3",
            "--batch-size", "2", "--limit", "3", "--dump-inputs", str(dump), *FRAME_ARGS, *extra]
    assert main(args) == 0
    files = sorted(dump.glob("*.json"))
    assert len(files) == 3  # --limit applies to the dump as well
    records = [json.loads(f.read_text()) for f in files]
    for f, r in zip(files, records, strict=True):
        assert f.name == r["qa_id"].replace("/", "__") + ".json"
    return records


def test_dump_inputs_vl_positions_equal_the_reference(models: dict[str, Path], videos_dir: Path,
                                                       tmp_path: Path) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(models["vl"])
    records = _dump("vl", models, videos_dir, tmp_path)
    for rec in records:
        assert rec["position_ids_source"].startswith("text rotary embedding")
        ids = rec["input_ids"]
        grid = tuple(rec["video_grid_thw"])
        want = ref_vl(ids, [grid], [rec["second_per_grid_ts"]], video_id=config.video_token_id,
                      merge=config.vision_config.spatial_merge_size, tps=config.vision_config.tokens_per_second)
        assert rec["position_ids"] == _rows(want), rec["qa_id"]
        # text before and after the video: the question starts after the whole video's time range
        video = [k for k, t in enumerate(ids) if t == config.video_token_id]
        after = video[-1] + 2  # after <|vision_end|>
        assert min(video) > 0 and after < len(ids)
        assert rec["position_ids"][0][after] > max(max(r[k] for k in video) for r in rec["position_ids"])
        assert len(rec["frame_times_s"]) == 2 * grid[0] or len(rec["frame_times_s"]) == 2 * grid[0] - 1
        assert rec["input_wh"][0] * rec["input_wh"][1] <= 12544
    unav = next(r for r in records if r["qa_id"].startswith(UNAV))
    assert unav["original_wh"] == [320, 240] and unav["second_per_grid_ts"] == pytest.approx(2 / unav["sampled_fps"],
                                                                                               rel=1e-4)


def test_dump_inputs_omni_interleaved_positions_and_layout(models: dict[str, Path], videos_dir: Path,
                                                             tmp_path: Path) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(models["omni"])
    # 2 fps: with qwen-vl-utils' frame rule a nominal 1 fps gives 0.999 fps (a 2.002 s grid step, over one
    # 2 s audio chunk), where transformers' processor and vLLM interleave differently (docs/inference.md)
    records = _dump("omni", models, videos_dir, tmp_path, "--fps", "2", "--max-frames", "128")
    comparable = 0
    for rec in records:
        assert rec["use_audio_in_video"] is True
        assert rec["audio_samples"] == round(rec["audio_s"] * rec["audio_sample_rate"])
        mel = rec["audio_feature_length"]
        assert abs(mel - rec["audio_s"] * 100) <= 2  # 100 mel frames per second, nothing cut
        want, layout = ref_omni(rec["input_ids"], [tuple(rec["video_grid_thw"])], [rec["video_second_per_grid"]],
                                [mel], ids=_omni_ids(config), merge=config.vision_config.spatial_merge_size,
                                tps=config.position_id_per_seconds, chunk_s=config.seconds_per_chunk, in_video=True)
        assert rec["position_ids"] == _rows(want), rec["qa_id"]
        if _layout_comparable([rec["video_second_per_grid"]], config.position_id_per_seconds,
                              config.seconds_per_chunk):
            assert layout == rec["input_ids"], f"{rec['qa_id']}: the processor's audio/video interleaving differs"
            comparable += 1
    assert comparable == 3
    unav = next(r for r in records if r["qa_id"].startswith(UNAV))
    assert unav["audio_s"] == pytest.approx(60.0, abs=0.1)


def test_dump_inputs_refused_for_a_baseline(tmp_path: Path, videos_dir: Path) -> None:
    qa = write_qa_file(tmp_path)
    args = ["infer", "--qa", str(qa), "--videos", str(videos_dir), "--backend", "random", "--out",
            str(tmp_path / "p.jsonl"), "--dump-inputs", str(tmp_path / "d")]
    assert main(args) == 2


def _two_video_inputs(processor: Any, clips: list[Any], *, omni: bool, in_video: bool) -> Any:
    from ravst.models.qwen import processor_kwargs

    content: list[dict[str, Any]] = [{"type": "text", "text": "first clip:"}, {"type": "video"},
                                     {"type": "text", "text": "second clip:"}, {"type": "video"},
                                     {"type": "text", "text": "When does the man speak?"}]
    text = processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)
    kwargs = processor_kwargs(processor, clips, use_audio_in_video=in_video)
    if omni and in_video:
        kwargs["audio_from_video_indices"] = [0, 1]
    return processor(text=[text], return_tensors="pt", **kwargs)


@pytest.mark.parametrize("kind,in_video", [("vl", False), ("omni", False), ("omni", True)],
                         ids=["vl", "omni-video-only", "omni-audio-in-video"])
def test_two_videos_text_between_and_after(kind: str, in_video: bool, models: dict[str, Path],
                                           videos_dir: Path) -> None:
    """Two videos in one prompt (text before, between and after): the positions the model's
    rotary embedding receives, with the ones ravst passes, equal the independent rule."""
    from transformers import AutoProcessor

    from ravst.models.mrope import capture_rotary_positions, inputs_position_ids, rope_spec
    from ravst.models.sampling import SamplingConfig, sample_video
    from ravst.testing.tiny_qwen import load_tiny_model

    processor = AutoProcessor.from_pretrained(models[kind])
    model = load_tiny_model(models[kind])
    cfg = SamplingConfig(fps=1.0, max_frames=8, min_pixels=3136, max_pixels=12544)
    clips = [sample_video(videos_dir / name, cfg, with_audio=in_video)
             for name in (("videollama_dog_barking.mp4", "videollama_boat.mp4") if kind == "vl"
                          # an Omni batch takes one frame rate: the same clip twice
                          else ("videollama_dog_barking.mp4", "videollama_dog_barking.mp4"))]
    inputs = _two_video_inputs(processor, clips, omni=kind == "omni", in_video=in_video)
    passed = inputs_position_ids(rope_spec(model.config), inputs, use_audio_in_video=in_video)
    with torch.no_grad(), capture_rotary_positions(model) as seen:
        model(**inputs, position_ids=passed)
    used = seen[0][:, 0].tolist()
    ids = inputs["input_ids"][0].tolist()
    grids = [tuple(g) for g in inputs["video_grid_thw"].tolist()]
    if kind == "vl":
        want = ref_vl(ids, grids, inputs["second_per_grid_ts"].tolist(), video_id=model.config.video_token_id,
                      merge=2, tps=model.config.vision_config.tokens_per_second)
    else:
        mel = inputs["feature_attention_mask"].sum(-1).tolist() if in_video else []
        want, layout = ref_omni(ids, grids, inputs["video_second_per_grid"].tolist(), mel,
                                ids=_omni_ids(model.config), merge=2, tps=model.config.position_id_per_seconds,
                                chunk_s=model.config.seconds_per_chunk, in_video=in_video)
        if _layout_comparable(inputs["video_second_per_grid"].tolist(), model.config.position_id_per_seconds,
                              model.config.seconds_per_chunk):
            assert layout == ids
    assert used == _rows(want)
    assert len(grids) == 2


def test_start_up_check_passes_on_a_model_that_ends_at_once(models: dict[str, Path]) -> None:
    """A trained checkpoint may answer end-of-turn as its first greedy token (an SFT-warm-started
    model did, on the synthetic check prompt): the check still sees a decoding step."""
    import torch

    from ravst.models.mrope import verify_model_positions
    from ravst.testing.tiny_qwen import load_tiny_model

    model = load_tiny_model(models["vl"])
    eos = int(model.generation_config.eos_token_id)

    def always_eos(_module: Any, _inputs: Any, logits: Any) -> Any:
        out = torch.zeros_like(logits)
        out[..., eos] = 10.0
        return out

    model.lm_head.register_forward_hook(always_eos)
    with torch.no_grad():
        first = model.generate(input_ids=torch.tensor([[1, 2, 3]]), max_new_tokens=2, do_sample=False,
                               pad_token_id=0)
    assert first[0, -1].item() == eos and first.shape[1] == 4  # it stops after one token
    check = verify_model_positions(model)
    assert set(check.verified_paths) == {"generate(position_ids)", "generate()", "forward(position_ids)"}


def test_start_up_check_reports_and_refuses(models: dict[str, Path], videos_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The check finds what the installed transformers computes; when the text model drops the
    positions it is given (they cannot be corrected), `ravst infer` refuses to run: exit 2."""
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as mod

    from ravst.models.mrope import verify_model_positions
    from ravst.testing.tiny_qwen import load_tiny_model

    check = verify_model_positions(load_tiny_model(models["vl"]))
    assert set(check.verified_paths) == {"generate(position_ids)", "generate()", "forward(position_ids)"}
    # the reference: text after the 2nd synthetic video = 1 + its block max (t = 2 s * 2/s on top)
    assert check.first_text_after_video_reference == 20
    if not check.installed_rule_matches:
        assert check.first_text_after_video_installed != check.first_text_after_video_reference

    original = mod.Qwen2_5_VLTextModel.forward

    def ignore_positions(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["position_ids"] = None  # a stack that silently computes its own positions
        return original(self, *args, **kwargs)

    monkeypatch.setattr(mod.Qwen2_5_VLTextModel, "forward", ignore_positions)
    qa = write_qa_file(tmp_path)
    args = ["infer", "--qa", str(qa), "--videos", str(videos_dir), "--backend", "transformers", "--model",
            str(models["vl"]), "--out", str(tmp_path / "p.jsonl"), "--limit", "1", *FRAME_ARGS]
    assert main(args) == 2
    assert not (tmp_path / "p.jsonl").exists()
