"""SIGINT sent to the ``audiomill ingest`` process alone (not its process group, so its Beam
worker processes, which fetch the clips, do not get it): the run stops its workers itself and
ends promptly with the one interrupted line, without the workers' gRPC noise, and the re-run
finishes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.http_media_server import MediaServer
from tests.ingest_helpers import (
    audiomill,
    interrupt_quietly,
    ledger,
    manifest,
    running_as_a_terminal,
    slow_mirror_ingest,
)

N_CLIPS = 24
STAGED_BEFORE_SIGINT = (1, 6)
"""How many clips are staged when SIGINT comes: early in the first bundles, and mid-run."""
EXIT_TIMEOUT_S = 45
"""How long the interrupted ingest has to end (workers still fetching are stopped by the
runner); longer is a hang, even on a loaded machine."""
NOISE = ("Traceback", "Exception in thread", "Logging client failed", "too_many_pings", "ERROR")


def _interrupt_the_pid(args: list[str], staged: Path, after: int) -> None:
    """Run ``audiomill ARGS`` as a terminal would, send SIGINT to its process alone once
    ``after`` clips are staged in ``staged``, and check that it ended promptly and quietly."""
    with running_as_a_terminal(args) as proc:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if staged.is_dir() and len(list(staged.iterdir())) >= after:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "ingest finished before it could be interrupted"
        interrupt_quietly(proc, group=False, timeout=EXIT_TIMEOUT_S, noise=NOISE)


@pytest.mark.slow
def test_sigint_to_the_ingest_pid_alone_ends_it_promptly_and_the_rerun_finishes(tmp_path: Path):
    with MediaServer(tmp_path / "www") as server:
        args, out = slow_mirror_ingest(server, tmp_path, N_CLIPS)
        for after in STAGED_BEFORE_SIGINT:
            _interrupt_the_pid(args, out / ".staging" / "train" / "clips", after)
        audiomill(*args)
    failed = {k: row["detail"] for k, row in ledger(out).items() if row["status"] != "ok"}
    assert manifest(out)["splits"]["train"]["num_clips"] == N_CLIPS, failed
    assert len(ledger(out)) == N_CLIPS
