"""silero-vad's voice-activity model, loaded without deprecation noise (used by the ``av-signal``
baseline).

silero-vad ships one network in two runtimes: ``load_silero_vad()`` loads its TorchScript file
with ``torch.jit.load``, which torch >= 2.10 deprecates with a ``FutureWarning`` on every load;
``load_silero_vad(onnx=True)`` runs the ONNX export of the same network with onnxruntime, the
path silero-vad supports without TorchScript. :func:`load_vad` takes the ONNX path when
``onnxruntime`` is installed (``pip install onnxruntime``); without it, the TorchScript file,
with that one deprecation warning (matched by category, module and message) silenced and every
other warning kept. Both give the same speech spans on the real clips of ``shared/data/videos``
(tests/test_vad.py checks it where onnxruntime is installed).
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from dataclasses import dataclass
from typing import Any

__all__ = ["LoadedVAD", "load_vad"]

log = logging.getLogger(__name__)

_JIT_DEPRECATION = r"`torch\.jit\.load` is deprecated"


@dataclass(frozen=True)
class LoadedVAD:
    model: Any
    runtime: str
    """``onnx`` (onnxruntime) or ``torchscript``."""


def load_vad(*, prefer_onnx: bool = True) -> LoadedVAD:
    """The silero-vad model (``ImportError`` when silero-vad is not installed)."""
    from silero_vad import load_silero_vad

    if prefer_onnx and importlib.util.find_spec("onnxruntime") is not None:
        log.debug("silero-vad: ONNX model on onnxruntime")
        return LoadedVAD(load_silero_vad(onnx=True), "onnx")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATION, category=FutureWarning,
                                module=r"torch\.jit")
        model = load_silero_vad()
    log.debug("silero-vad: TorchScript model (install onnxruntime for the ONNX runtime)")
    return LoadedVAD(model, "torchscript")
