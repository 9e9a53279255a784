"""Shared fixtures. Real third-party data lives in ``../shared/data`` (never copied here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI (`.ci/run`) replays a fixed set of examples so a red build always reproduces; locally the
# examples are drawn afresh each run (profile "dev") to keep finding new cases.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RAVST_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (set RAVST_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; the test is skipped when it is absent."""
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def official_qa_path() -> Path:
    return _need(SHARED_DATA / "r_avst" / "xml_test_QA.json")


@pytest.fixture(scope="session")
def videos_dir() -> Path:
    return _need(SHARED_DATA / "videos")


@pytest.fixture(scope="session")
def unav_video(videos_dir: Path) -> Path:
    """A real 60 s UnAV-100 clip (320x240, ~15 fps) with audio."""
    return _need(videos_dir / "unav100_--HuBNHXu9I.mp4")
