"""A Beam worker process of an ingest killed while it starts or mid-run: the run fails with the
error that says so, without the tracebacks of Beam's threads that read its broken streams, and
the re-run finishes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.ingest_helpers import (
    audiomill,
    beam_workers,
    group_members,
    ledger,
    manifest,
    start_as_a_terminal,
)
from tests.shared_data import FSDD_RECORDINGS

RECORDINGS = FSDD_RECORDINGS
DIGITS = 4
PER_DIGIT = 10
WORKER_LEFT = "a Beam worker process ended (killed by SIGKILL)"


def _fsdd_folder(root: Path) -> Path:
    """A class folder per digit holding its first :data:`PER_DIGIT` FSDD recordings."""
    for digit in range(DIGITS):
        (root / f"d{digit}").mkdir(parents=True)
        for wav in sorted(RECORDINGS.glob(f"{digit}_*.wav"))[:PER_DIGIT]:
            shutil.copy(wav, root / f"d{digit}")
    return root


def _wait_for(ready: Callable[[], object], proc: subprocess.Popen, what: str) -> None:
    """Wait until ``ready()`` while ``proc`` runs (120 s at most)."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None and ready(), f"the ingest ended or stalled before {what}"


@pytest.mark.slow
@pytest.mark.parametrize("when", ["starting", "mid-run"])
def test_a_killed_worker_fails_the_ingest_without_thread_tracebacks_and_the_rerun_finishes(
    tmp_path: Path, when: str
):
    out = tmp_path / "ds"
    # local files on 8 cores: 2 worker processes (4 decoding threads each), a shard each
    args = ["ingest", "--segments", str(_fsdd_folder(tmp_path / "fsdd")), "--out", str(out),
            "--sample-rate", "8000", "--clip-seconds", "1", "--shard-clips", "5",
            "--workers", "8"]  # fmt: skip
    proc = start_as_a_terminal(args)
    try:
        _wait_for(lambda: beam_workers(proc.pid), proc, "its workers started")
        if when == "mid-run":
            shards = out / "waveforms" / "train"
            _wait_for(lambda: any(shards.glob("shard-*")), proc, "its first shard")
        os.kill(beam_workers(proc.pid)[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if group_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 1, stderr
    assert WORKER_LEFT in stderr.strip().splitlines()[-1], stderr
    assert "Traceback" not in stderr, stderr
    assert "run the same command again to resume" in stderr, stderr
    assert "Exception in thread" not in stderr and "RpcError" not in stderr, stderr
    assert "Failed to read inputs" not in stderr, stderr  # Beam's log of the data stream's end
    assert "Error closing worker_handler" not in stderr, stderr
    audiomill(*args)
    assert manifest(out)["splits"]["train"]["num_clips"] == DIGITS * PER_DIGIT
    assert sorted({row["status"] for row in ledger(out).values()}) == ["ok"]
