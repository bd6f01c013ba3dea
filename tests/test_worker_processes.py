"""The local runner's worker processes (pipelines.worker_processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pipelines.worker_processes import WorkerLogs, start_log_server
from tests.ingest_helpers import cli_env, group_members

# isort: split
from apache_beam.portability.api import beam_fn_api_pb2_grpc

EXIT_TIMEOUT_S = 60
"""How long an interrupted run and its workers have to end; a worker waited for through a
teardown of minutes (or left running) takes longer."""

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


SLOW_TO_STOP = """
import os
import signal
import sys
import time

import apache_beam as beam

from pipelines.beam_ingest import direct_runner, pipeline_options


def stall(step):
    if step in os.environ["STALL_IN"].split(","):
        open(os.path.join(os.environ["STALL_MARKS"], str(os.getpid())), "w").close()
        time.sleep(300)


class Stalls(beam.DoFn):
    def process(self, x):
        stall("process")
        yield x

    def teardown(self):
        stall("teardown")


signal.signal(signal.SIGINT, signal.default_int_handler)
os.environ.update(STALL_MARKS=sys.argv[1], STALL_IN=sys.argv[2])  # the workers inherit them
options = pipeline_options([], workers=2)
with beam.Pipeline(runner=direct_runner(options), options=options) as p:
    _ = p | beam.Create(range(8)) | beam.Reshuffle() | beam.ParDo(Stalls())
"""
"""A pipeline on two worker processes whose DoFn stalls for minutes in the steps ``argv[2]``
(``process``, ``teardown`` or both, comma-separated), each time once it has written a file
named by its worker's process id in the folder ``argv[1]``."""


def _interrupted_while_stalled(marks: Path, steps: str) -> tuple[list[int], str]:
    """Run :data:`SLOW_TO_STOP` stalling in ``steps``, send SIGINT to its process alone once a
    worker stalls, and return the processes left in its group once it ended, and its stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_TO_STOP, str(marks), steps],
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and not any(marks.iterdir()):
            assert time.monotonic() < deadline, f"no worker stalled in {steps}"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run or its workers still ran {EXIT_TIMEOUT_S} s after SIGINT")
        return group_members(proc.pid), stderr
    finally:
        if group_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def test_ctrl_c_while_the_runner_stops_a_worker_stops_every_worker(tmp_path: Path):
    """SIGINT to the runner's process alone while it waits for its first worker to end, past
    the point where Beam would tell the others to stop: no worker is left behind."""
    left, stderr = _interrupted_while_stalled(tmp_path, "teardown")
    assert left == []
    assert stderr.strip().splitlines()[-1] == "KeyboardInterrupt", stderr
    assert "Exception in thread" not in stderr and "Logging client failed" not in stderr, stderr


def test_an_interrupted_run_does_not_wait_for_its_workers_teardown(tmp_path: Path):
    """SIGINT to the runner's process alone mid-bundle: the workers told to stop are
    terminated when they do not end soon, not waited for through a teardown of minutes."""
    left, stderr = _interrupted_while_stalled(tmp_path, "process,teardown")
    assert left == []
    assert stderr.strip().splitlines()[-1] == "KeyboardInterrupt", stderr
    assert "Exception in thread" not in stderr and "Logging client failed" not in stderr, stderr


QUIET_S = 8.0
"""How long the test's log stream stays quiet: eight of its client's keepalive periods (a
server that allows no pings without data ended it after the fourth or fifth)."""


def test_a_quiet_worker_keeps_its_log_stream():
    """A worker pings its log stream while it has nothing to log (Beam's channels every 20 s,
    this test's every second): the log server, like Beam's own servers, lets it, where it
    answered 'too_many_pings' after a minute, and the worker printed 'Logging client failed'."""
    server, port = start_log_server(WorkerLogs())
    channel = grpc.insecure_channel(
        f"localhost:{port}",
        options=[
            ("grpc.keepalive_time_ms", 1000),
            ("grpc.keepalive_timeout_ms", 300_000),
            ("grpc.keepalive_permit_without_calls", True),
            ("grpc.http2.max_pings_without_data", 0),
        ],
    )
    quiet = threading.Event()

    def nothing_to_log() -> Iterator:
        quiet.wait(QUIET_S)
        yield from ()

    try:
        replies = beam_fn_api_pb2_grpc.BeamFnLoggingStub(channel).Logging(nothing_to_log())
        assert list(replies) == []
    finally:
        channel.close()
        server.stop(0)
