"""Ctrl-C in an ingest while Beam's worker processes are still starting: one line, no process
left, no hang, and the re-run finishes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.http_media_server import MediaServer
from tests.ingest_helpers import (
    audiomill,
    beam_workers,
    interrupt_quietly,
    ledger,
    manifest,
    running_as_a_terminal,
    slow_mirror_ingest,
)

N_CLIPS = 6
INTERRUPT_AFTER_S = (0.0, 0.2, 0.5, 1.0)
"""When Ctrl-C comes, in seconds after the first worker process appears: a worker takes about a
second to import Beam and connect (more under load), so these fall before, while and just after
the workers connect."""
EXIT_TIMEOUT_S = 30
"""How long the interrupted ingest has to end; longer is a hang."""


def _interrupt_while_workers_start(args: list[str], after_s: float) -> None:
    """Run ``audiomill ARGS`` as a terminal would, send Ctrl-C to its process group ``after_s``
    seconds after its first worker process appears, and check that it ended cleanly."""
    with running_as_a_terminal(args) as proc:
        deadline = time.monotonic() + 120
        while proc.poll() is None and not beam_workers(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None and beam_workers(proc.pid), "no worker process started"
        time.sleep(after_s)
        interrupt_quietly(proc, group=True, timeout=EXIT_TIMEOUT_S)


@pytest.mark.slow
def test_ctrl_c_while_the_workers_start_ends_cleanly_and_the_rerun_finishes(tmp_path: Path):
    with MediaServer(tmp_path / "www") as server:
        args, out = slow_mirror_ingest(server, tmp_path, N_CLIPS)
        for after_s in INTERRUPT_AFTER_S:
            _interrupt_while_workers_start(args, after_s)
        audiomill(*args)
    failed = {k: row["detail"] for k, row in ledger(out).items() if row["status"] != "ok"}
    assert manifest(out)["splits"]["train"]["num_clips"] == N_CLIPS, failed
    assert len(ledger(out)) == N_CLIPS
