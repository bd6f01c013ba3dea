"""The local runner's worker processes (pipelines.worker_processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.ingest_helpers import cli_env, group_members

A_WORKER_DIES = """
import os
import threading

import apache_beam as beam

from pipelines.beam_ingest import direct_runner, pipeline_options


class DieOnThree(beam.DoFn):
    def process(self, x):
        if x == 3:
            os._exit(3)
        yield x


options = pipeline_options([], workers=2)
try:
    with beam.Pipeline(runner=direct_runner(options), options=options) as p:
        _ = p | beam.Create(range(8)) | beam.Reshuffle() | beam.ParDo(DieOnThree())
finally:
    unrelated = threading.Thread(target=lambda: 1 / 0, name="unrelated")
    unrelated.start()
    unrelated.join()
"""
"""A pipeline on two worker processes, one of which exits in the middle of its bundle; then a
thread of its own fails."""


def test_a_worker_that_ends_fails_the_run_instead_of_leaving_it_waiting():
    proc = subprocess.Popen(
        [sys.executable, "-c", A_WORKER_DIES],
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the run still waits for the worker that ended")
    finally:
        if group_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 1
    assert "WorkerLeftError: a Beam worker process ended (status 3)" in stderr, stderr


def test_only_the_broken_streams_of_a_worker_that_left_end_quietly():
    """Beam's threads that read the left worker's streams raise nothing, and an unrelated
    thread's exception is still printed."""
    stderr = subprocess.run(
        [sys.executable, "-c", A_WORKER_DIES],
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    ).stderr
    assert stderr.count("Exception in thread") == 1, stderr
    assert "Exception in thread unrelated:" in stderr and "ZeroDivisionError" in stderr, stderr
    assert "RpcError" not in stderr and "Error closing worker_handler" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == (
        "pipelines.worker_processes.WorkerLeftError: a Beam worker process ended (status 3)"
    ), stderr
