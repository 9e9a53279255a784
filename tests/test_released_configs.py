"""configs/released/*.yaml reproduce the released scripts and pass `ravst train grpo --dry-run`;
`ravst train grpo` checks its data before any model and fails in one line on a model it cannot load."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from ravst.cli import main
from ravst.train.cli import _load
from ravst.train.config import GRPORunConfig

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT / "configs" / "released"
CLIP = "videollama_boat.mp4"


def _released(name: str) -> GRPORunConfig:
    return _load(RELEASED / name, [], GRPORunConfig)


def test_vl_config_is_the_released_script() -> None:
    """Values of run_grpo.sh / grpo.py / my_qwen_utils.py (read from the release, f3171074)."""
    c = _released("avst_zero_vl.yaml")
    assert (c.max_prompt_length, c.max_completion_length, c.num_generations) == (512, 1024, 6)
    assert c.data.total_pixels == 3584 * 28 * 28 and c.data.min_pixels == 16 * 28 * 28
    assert c.data.fps == 0.25 and c.beta == 0.04 and c.gradient_accumulation_steps == 1
    assert c.rewards.mode == "official" and c.rewards.official_tau == 0.75
    assert c.rewards.official_vocab and c.rewards.official_vocab.endswith("Train_gt_object_vocab.pt")


def test_omni_config_is_the_released_script() -> None:
    """Values of grpo_omni.sh and the bundled qwen-omni-utils."""
    c = _released("avst_zero_omni.yaml")
    assert (c.max_prompt_length, c.max_completion_length) == (2048, 2048)
    assert (c.beta, c.lr_scheduler_type, c.weight_decay, c.max_grad_norm) == (0.001, "cosine", 0.01, 5.0)
    assert c.gradient_accumulation_steps == 8 and c.learning_rate == 1e-6
    assert c.data.max_frames == 16 and c.data.max_pixels == 128 * 28 * 28 and c.data.max_audio_s == 10.0
    assert c.data.use_audio and c.data.use_audio_in_video and c.model.family == "qwen2_5_omni"


def _qa(tmp: Path, videos_dir: Path) -> tuple[Path, Path]:
    vdir = tmp / "videos"
    vdir.mkdir()
    (vdir / CLIP).symlink_to(videos_dir / CLIP)
    qa = [{"video_name": Path(CLIP).stem, "duration": 6.0, "annotation": [{
        "event_num": 1,
        "AV Temporal Reasoning": [{"Q": "When is the moment boat makes sound and is visible?",
                                   "A": "<answer>\n<object>boat</object>\n<when>[1.0, 4.0]</when>\n</answer>"}],
        "AV Spatial Reasoning": [{"Q": "What visible object(s) make sound between 0.0 and 3.0, and where?",
                                  "A": "<answer>\n<object>boat</object>\n<where>\n0.0: [10.0, 10.0, 100.0, 100.0]\n"
                                       "</where>\n</answer>"}],
    }]}]
    path = tmp / "qa.json"
    path.write_text(json.dumps(qa))
    return path, vdir


def _overrides(model: Path | str, qa: tuple[Path, Path], out: Path, vocab: Path) -> list[str]:
    return ["--set", f"model.path={model}", "--set", "model.attn_implementation=null",
            "--set", f"data.qa_files=[{qa[0]}]", "--set", f"data.video_dir={qa[1]}",
            "--set", f"output_dir={out}", "--set", f"rewards.official_vocab={vocab}",
            "--set", "bf16=false", "--set", "use_cpu=true"]


@pytest.mark.parametrize(("name", "family"), [("avst_zero_vl.yaml", "vl"), ("avst_zero_omni.yaml", "omni")])
def test_released_configs_pass_the_dry_run(name: str, family: str, tmp_path: Path, videos_dir: Path,
                                           shared_data: Path) -> None:
    from ravst.testing.tiny_qwen import build_tiny_qwen_omni, build_tiny_qwen_vl

    model = (build_tiny_qwen_vl if family == "vl" else build_tiny_qwen_omni)(tmp_path / "model")
    qa = _qa(tmp_path, videos_dir)
    vocab = shared_data / "r_avst" / "Train_gt_object_vocab.pt"
    args = ["train", "grpo", "--config", str(RELEASED / name), "--dry-run", *_overrides(model, qa, tmp_path / "o", vocab)]
    assert main(args) == 0
    # a vocabulary that is not there is found by the dry run, not by the first reward call
    assert main([*args, "--set", f"rewards.official_vocab={tmp_path / 'missing.pt'}"]) == 1


def test_data_is_checked_before_the_model(tmp_path: Path, videos_dir: Path, shared_data: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    qa = _qa(tmp_path, videos_dir)
    vocab = shared_data / "r_avst" / "Test_gt_object_vocab.pt"
    base = ["train", "grpo", "--config", str(RELEASED / "avst_zero_vl.yaml"),
            *_overrides("Qwen/Qwen2.5-VL-7B-Instruct", qa, tmp_path / "o", vocab)]
    # a QA file that is not there: the error names it, no model is looked up
    caplog.clear()
    assert main([*base, "--set", f"data.qa_files=[{tmp_path / 'xml_train_QA.json'}]"]) == 1
    assert "xml_train_QA.json" in caplog.text and "model.path" not in caplog.text


def test_an_offline_model_is_one_clear_line(tmp_path: Path, videos_dir: Path, shared_data: Path,
                                            caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    qa = _qa(tmp_path, videos_dir)
    vocab = shared_data / "r_avst" / "Test_gt_object_vocab.pt"
    base = ["train", "grpo", "--config", str(RELEASED / "avst_zero_vl.yaml"),
            *_overrides("ravst-no-such-org/no-such-model", qa, tmp_path / "o", vocab)]
    for extra in ([], ["--dry-run"]):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert main([*base, *extra]) == 1
        errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        msg: Any = errors[0].getMessage()
        assert "ravst-no-such-org/no-such-model" in msg and "HF_HUB_OFFLINE" in msg and "--set model.path=DIR" in msg
        assert "Traceback" not in caplog.text
