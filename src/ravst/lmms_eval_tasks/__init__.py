"""R-AVST as an lmms-eval task family: ``ravst_temporal``, ``ravst_spatial``,
``ravst_spatiotemporal`` and the group ``ravst``.

This folder is the ``--include_path`` (``python -m ravst.lmms_eval_tasks`` prints it)::

    RAVST_QA=xml_test_QA.json RAVST_VIDEOS=videos/ \\
      lmms-eval --model qwen2_5_vl --model_args pretrained=Qwen/Qwen2.5-VL-7B-Instruct \\
      --include_path "$(python -m ravst.lmms_eval_tasks)" --tasks ravst

Scoring is ravst's own (``ravst.evaluate.evaluate``, the ``ravst`` protocol): the figures equal
``ravst eval`` on the same answers. See docs/lmms_eval.md.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TASKS", "task_dir"]

TASKS = ("ravst_temporal", "ravst_spatial", "ravst_spatiotemporal")


def task_dir() -> Path:
    """The folder holding the task YAMLs (pass it to ``lmms-eval --include_path``)."""
    return Path(__file__).resolve().parent
