"""Ctrl-C in an ingest whose clips Beam's worker processes fetch: one line, then a clean resume."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.http_media_server import MediaServer
from tests.ingest_helpers import (
    audiomill,
    group_members,
    ledger,
    manifest,
    slow_mirror_ingest,
    start_as_a_terminal,
)

N_CLIPS = 24


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_quietly_and_the_rerun_finishes(tmp_path: Path):
    with MediaServer(tmp_path / "www") as server:
        args, out = slow_mirror_ingest(server, tmp_path, N_CLIPS)
        proc = start_as_a_terminal(args)
        staged = out / ".staging" / "train" / "clips"
        deadline = time.time() + 240
        while proc.poll() is None and time.time() < deadline:
            if staged.is_dir() and len(list(staged.iterdir())) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "ingest finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C does
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert stderr.strip().splitlines()[-1] == "interrupted: re-run the same command to resume"
        assert "Traceback" not in stderr and "Exception in thread" not in stderr, stderr
        assert group_members(proc.pid) == []
        audiomill(*args)
    failed = {k: row["detail"] for k, row in ledger(out).items() if row["status"] != "ok"}
    assert manifest(out)["splits"]["train"]["num_clips"] == N_CLIPS, failed
    assert len(ledger(out)) == N_CLIPS
