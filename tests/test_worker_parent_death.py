"""Beam worker processes end with the process that runs them: a ``kill -9`` of ``audiomill
ingest`` left them running for minutes, printing gRPC tracebacks into the terminal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.ingest_helpers import beam_workers, cli_env, group_members
from tests.test_worker_processes import SLOW_TO_STOP

START_S = 120.0
"""How long the pipeline has to start its workers (Beam's import, on a busy machine)."""
GONE_S = 5.0
"""How long the workers have to end once their parent was killed, when it died mid-bundle."""
STARTING_GONE_S = 60.0
"""The same, for workers still importing Beam when their parent died: they end once they look."""


@pytest.fixture
def stalled_run(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """:data:`SLOW_TO_STOP` on two workers that stall in ``process``, in a session of its own;
    whatever is left of its process group is killed after the test."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_TO_STOP, str(tmp_path), "process"],
        env=cli_env(),
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    yield proc
    if group_members(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_workers_end_when_their_parent_is_killed_mid_bundle(
    stalled_run: subprocess.Popen, tmp_path: Path
) -> None:
    _wait_for(lambda: any(tmp_path.iterdir()), START_S, "no worker reached its bundle")
    assert beam_workers(stalled_run.pid)
    stalled_run.kill()
    stalled_run.wait()
    _wait_for(lambda: not beam_workers(stalled_run.pid), GONE_S, "the workers outlived it")
    assert b"Traceback" not in stalled_run.stderr.read()


def test_workers_still_starting_end_when_their_parent_is_killed(
    stalled_run: subprocess.Popen,
) -> None:
    _wait_for(lambda: beam_workers(stalled_run.pid), START_S, "no worker started")
    stalled_run.kill()
    stalled_run.wait()
    _wait_for(lambda: not beam_workers(stalled_run.pid), STARTING_GONE_S, "the workers ran on")
