"""Shared fixtures: paths to the real data in ../shared and the local servers."""

from __future__ import annotations

import errno
import gc
import os
from pathlib import Path

import pytest

from tests.http_media_server import media_server  # noqa: F401  (fixture)
from tests.s3_server import s3_server  # noqa: F401  (fixture)
from tests.shared_data import SHARED

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture(autouse=True)
def _thaw_frozen_objects():
    """Commands run in this process (Typer's CliRunner) freeze what their imports made
    (``workflows.import_gc``); hand it back to the collector after each test, as the command
    line does when a command ends."""
    yield
    gc.unfreeze()


@pytest.fixture
def no_o_direct(monkeypatch):
    """``os.open`` refuses ``O_DIRECT`` with ``EINVAL``, as tmpfs does with older kernels."""
    real_open = os.open

    def refuse_direct(path, flags, *args, **kwargs):
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_direct)


AUDIOSET = SHARED / "audioset"


@pytest.fixture(scope="session")
def audioset_dir() -> Path:
    """AudioSet's real metadata files."""
    if not (AUDIOSET / "class_labels_indices.csv").exists():
        pytest.fail(f"shared data missing at {AUDIOSET}: CI must have ../shared beside the clone")
    return AUDIOSET


@pytest.fixture(scope="session")
def librosa_audio() -> Path:
    """The real recordings of librosa's example data (OGG, 16-48 kHz)."""
    folder = SHARED / "librosa_data" / "audio"
    if not folder.is_dir():
        pytest.fail(f"shared data missing at {folder}: CI must have ../shared beside the clone")
    return folder


@pytest.fixture(scope="session")
def audioset_classes(audioset_dir: Path):
    """AudioSet's 527-class map."""
    from schemas.classmap import ClassMap

    return ClassMap.load(audioset_dir / "class_labels_indices.csv")
