"""Scratch folders of ingest workers: a killed worker's folder goes when the next one starts, a
closed one when the clips using it are done."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pipelines.worker_dirs import ScratchDir, worker_dir


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_folders_of_dead_workers_of_the_kind_are_removed(scratch: Path) -> None:
    dead, alive = _dead_pid(), os.getppid()
    gone = scratch / f"audiomill-fetch-{dead}-abc"
    (gone / "partial").mkdir(parents=True)
    kept = [
        scratch / f"audiomill-fetch-{alive}-abc",  # a running worker's
        scratch / f"audiomill-shard-{dead}-abc",  # another kind
        scratch / "audiomill-fetch-12345678",  # not named by a worker
    ]
    for folder in kept:
        folder.mkdir()
    made = Path(worker_dir("fetch"))
    assert made.parent == scratch and made.name.startswith(f"audiomill-fetch-{os.getpid()}-")
    assert not gone.exists()
    assert all(folder.is_dir() for folder in kept)
    assert Path(worker_dir("fetch")).is_dir() and made.is_dir()  # its own stays


def test_scratch_dir_closed_while_in_use_goes_when_its_users_are_done(scratch: Path) -> None:
    busy = ScratchDir("fetch")
    with busy.use() as path:
        with busy.use():
            busy.close()
        assert Path(path).is_dir(), "one clip still uses it"
    assert not Path(busy.path).exists()
    idle = ScratchDir("fetch")
    idle.close()
    assert not Path(idle.path).exists()
