"""modeling/process_lock.py: an flock that keeps other processes off, is taken again by its own
process, leaves no file behind, and dies with its holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from modeling.process_lock import LockedError, process_lock

HOLD = """
import sys, time
from modeling.process_lock import process_lock
with process_lock(sys.argv[1], "busy"):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(lock: Path) -> subprocess.Popen:
    """A process holding ``lock`` until killed."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_another_process_is_kept_off_until_the_holder_dies(tmp_path: Path) -> None:
    lock = tmp_path / "sub" / ".work.lock"
    holder = _holder(lock)
    try:
        with pytest.raises(LockedError, match=r"^busy$"), process_lock(lock, "busy"):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock.exists()  # left by the killed holder: it blocks nothing
    with process_lock(lock, "busy"):
        assert lock.exists()
    assert not lock.exists()


def test_the_holding_process_takes_its_lock_again(tmp_path: Path) -> None:
    lock = tmp_path / ".work.lock"
    with process_lock(lock, "busy"), process_lock(lock, "busy"):
        assert lock.exists()
    assert not lock.exists()
