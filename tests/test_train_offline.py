"""`ravst train grpo` with a hub model id and no network (HF_HUB_OFFLINE not set): one clear
line at once, no model or processor load, no retry log. No test here reaches the network: the
probe is pointed at loopback ports or replaced."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from ravst.cli import main
from ravst.train import cli as train_cli

ROOT = Path(__file__).resolve().parents[1]
CLIP = "videollama_boat.mp4"


def _qa(tmp: Path, videos_dir: Path) -> tuple[Path, Path]:
    vdir = tmp / "videos"
    vdir.mkdir()
    (vdir / CLIP).symlink_to(videos_dir / CLIP)
    qa = [{"video_name": Path(CLIP).stem, "duration": 6.0, "annotation": [{
        "event_num": 1,
        "AV Temporal Reasoning": [{"Q": "When is the moment boat makes sound and is visible?",
                                   "A": "<answer>\n<object>boat</object>\n<when>[1.0, 4.0]</when>\n</answer>"}]}]}]
    path = tmp / "qa.json"
    path.write_text(json.dumps(qa))
    return path, vdir


def test_probe_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        assert train_cli.hub_unreachable() is None
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    why = train_cli.hub_unreachable()
    assert why is not None and f"127.0.0.1:{port} unreachable" in why


@pytest.mark.parametrize("dry_run", [False, True])
def test_no_network_is_one_line_before_any_load(dry_run: bool, tmp_path: Path, videos_dir: Path,
                                                caplog: pytest.LogCaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(train_cli, "hub_unreachable", lambda: "huggingface.co:443 unreachable (test)")

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model or processor load was attempted")

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", no_load)
    qa, vdir = _qa(tmp_path, videos_dir)
    argv = ["train", "grpo", "--config", str(ROOT / "configs" / "avst_zero.yaml"),
            "--set", "model.path=ravst-no-such-org/no-such-model", "--set", f"data.qa_files=[{qa}]",
            "--set", f"data.video_dir={vdir}", "--set", f"output_dir={tmp_path / 'o'}",
            "--set", "bf16=false", "--set", "use_cpu=true", "--set", "model.attn_implementation=null",
            *(["--dry-run"] if dry_run else [])]
    with caplog.at_level(logging.WARNING):
        assert main(argv) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, errors
    msg = errors[0]
    assert "ravst-no-such-org/no-such-model" in msg
    assert "no network to the Hugging Face Hub: huggingface.co:443 unreachable" in msg
    assert "--set model.path=DIR" in msg and "Traceback" not in caplog.text
