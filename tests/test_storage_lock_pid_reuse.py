"""A local dataset lock whose pid now names another process (pid reuse) is stale; a lock of a
live run never is, however long after its process started it was taken."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipelines.storage import START_TOLERANCE_S, DatasetLock, DatasetLockedError, DatasetStore

REPO = Path(__file__).resolve().parents[1]
HOLD = (
    "import sys, time\n"
    "from pipelines.storage import DatasetLock, DatasetStore\n"
    "time.sleep(float(sys.argv[2]))\n"
    "with DatasetLock(DatasetStore(sys.argv[1]), {'stage': 'embed'}):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.read()\n"
)
"""A run that takes the lock of dataset argv[1] argv[2] seconds after it started and holds it
until its stdin closes."""


def _holding(root: Path, delay_s: float) -> subprocess.Popen[str]:
    """A process that holds the lock of ``root``, taken ``delay_s`` after it started."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root), str(delay_s)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child


def _killed_holder_lock(root: Path) -> dict:
    """The lock record a SIGKILLed run left in ``root``."""
    child = _holding(root, 0.0)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    return json.loads((root / ".lock").read_text())


def _plant(root: Path, record: dict) -> None:
    (root / ".lock").write_text(json.dumps(record))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "ds").mkdir()
    return tmp_path / "ds"


def test_a_killed_runs_lock_whose_pid_was_reused_is_taken_over(
    root: Path, caplog: pytest.LogCaptureFixture
):
    _plant(root, {**_killed_holder_lock(root), "pid": 1})  # pid 1 started long before the run
    with caplog.at_level(logging.WARNING), DatasetLock(DatasetStore(root), {"stage": "embed"}):
        assert json.loads((root / ".lock").read_text())["pid"] != 1
    assert "removed stale dataset lock" in caplog.text


def test_a_killed_runs_lock_whose_pid_a_later_process_took_is_taken_over(root: Path):
    stale = _killed_holder_lock(root)
    time.sleep(START_TOLERANCE_S + 0.5)
    later = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    try:
        _plant(root, {**stale, "pid": later.pid})
        with DatasetLock(DatasetStore(root)):
            pass
    finally:
        later.communicate()


def test_a_live_run_that_took_the_lock_long_after_it_started_is_refused(root: Path):
    child = _holding(root, 3.0)
    try:
        with pytest.raises(DatasetLockedError, match=rf"in use by pid {child.pid} "):
            DatasetLock(DatasetStore(root)).acquire()
    finally:
        child.communicate("")
    assert not (root / ".lock").exists()


def test_a_lock_whose_process_cannot_be_told_apart_is_respected(
    root: Path, monkeypatch: pytest.MonkeyPatch
):
    _plant(root, {**_killed_holder_lock(root), "pid": 1})

    def denied(pid: int) -> psutil.Process:
        raise psutil.AccessDenied(pid)

    monkeypatch.setattr(psutil, "Process", denied)
    with pytest.raises(DatasetLockedError, match="in use by pid 1 "):
        DatasetLock(DatasetStore(root)).acquire()
