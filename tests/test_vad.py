"""silero-vad loads without a FutureWarning (the av-signal baseline loads it on every run), and its
two runtimes agree."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("silero_vad")

from ravst.models.vad import load_vad


def _speech(model: object, audio: np.ndarray) -> list[dict[str, float]]:
    import torch
    from silero_vad import get_speech_timestamps

    return get_speech_timestamps(torch.from_numpy(audio), model, sampling_rate=16000, return_seconds=True)


def test_load_emits_no_future_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_vad()
    # FutureWarning: shown to every user by default (silero-vad's own DeprecationWarning about
    # importlib.resources.path is hidden by Python's default filters outside __main__)
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
    assert loaded.runtime == ("onnx" if importlib.util.find_spec("onnxruntime") else "torchscript")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        load_vad(prefer_onnx=False)  # the TorchScript path too


def test_other_warnings_are_not_silenced(monkeypatch: pytest.MonkeyPatch) -> None:
    import silero_vad

    def noisy(*args: object, **kwargs: object) -> str:
        warnings.warn("something else", FutureWarning, stacklevel=1)
        return "model"

    monkeypatch.setattr(silero_vad, "load_silero_vad", noisy)
    with pytest.warns(FutureWarning, match="something else"):
        assert load_vad(prefer_onnx=False).model == "model"


def test_av_signal_baseline_run_has_no_future_warning(unav_video: Path) -> None:
    from ravst.models.baselines import BaselineBackend

    backend = BaselineBackend("av-signal")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert backend._vad_model() is not None


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")
def test_onnx_and_torchscript_give_the_same_speech(unav_video: Path) -> None:
    from ravst.media.audio import load_audio

    audio = np.ascontiguousarray(load_audio(unav_video, sample_rate=16000), dtype=np.float32)
    onnx, jit = load_vad().model, load_vad(prefer_onnx=False).model
    spans = _speech(jit, audio)
    assert spans and _speech(onnx, audio) == spans
