"""A Beam worker told to stop mid-bundle prints nothing of the bundle it no longer runs for."""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipelines.beam_worker import quiet_once_stopped
from tests.ingest_helpers import cli_env, group_members

# isort: split
from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.worker.sdk_worker import SdkHarness

EXIT_TIMEOUT_S = 60
"""How long an interrupted run and its workers have to end."""

ENDS_ONCE_STOPPED = """
import os
import signal
import sys
import threading
import time

import apache_beam as beam

from pipelines.beam_ingest import direct_runner, pipeline_options

BUNDLE_END_S = 1.0


class EndsOnceStopped(beam.DoFn):
    def setup(self):
        self.torn_down = threading.Event()

    def process(self, x):
        if os.environ["BUNDLES"] == "fail":
            raise ValueError("a bundle that failed")
        open(os.path.join(os.environ["MARKS"], str(os.getpid())), "w").close()
        self.torn_down.wait(60)
        yield x

    def teardown(self):
        self.torn_down.set()
        time.sleep(BUNDLE_END_S)  # the worker exits once its teardown is done


signal.signal(signal.SIGINT, signal.default_int_handler)
os.environ.update(MARKS=sys.argv[1], BUNDLES=sys.argv[2])  # the workers inherit them
options = pipeline_options([], workers=2)
with beam.Pipeline(runner=direct_runner(options), options=options) as p:
    _ = p | beam.Create(range(8)) | beam.Reshuffle() | beam.ParDo(EndsOnceStopped())
"""
"""A pipeline on two worker processes whose DoFn, once it has written a file named by its
worker's process id in the folder ``argv[1]``, ends its bundle when its worker, told to stop,
tears it down, and gives the bundle ``BUNDLE_END_S`` to end before the worker exits: the worker
then fails that bundle's instruction (a KeyError from Beam's bundle cache). With ``argv[2]``
``fail``, the DoFn fails its bundle at once instead."""

INSTRUCTION_ERROR = "Error processing instruction"
"""The start of the error a worker logs when an instruction fails."""


def _run(marks: Path, mode: str) -> subprocess.Popen:
    """Start :data:`ENDS_ONCE_STOPPED` in a process group of its own."""
    return subprocess.Popen(
        [sys.executable, "-c", ENDS_ONCE_STOPPED, str(marks), mode],
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _ended(proc: subprocess.Popen) -> str:
    """Wait for ``proc`` to end; its stderr."""
    try:
        _, stderr = proc.communicate(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the run or its workers still ran {EXIT_TIMEOUT_S} s later")
    finally:
        if group_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return stderr


@pytest.mark.parametrize("group", [False, True], ids=["runner-alone", "process-group"])
def test_ctrl_c_mid_bundle_prints_no_error_of_the_abandoned_bundle(tmp_path: Path, group: bool):
    """SIGINT while the workers run bundles: each worker, told to stop, tears its bundle down,
    which then fails; neither its stderr nor its log records, which the runner shows, say so."""
    proc = _run(tmp_path, "stop")
    deadline = time.monotonic() + 120
    while proc.poll() is None and not any(tmp_path.iterdir()):
        assert time.monotonic() < deadline, "no bundle started"
        time.sleep(0.01)
    if group:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGINT)
    stderr = _ended(proc)
    assert stderr.strip().splitlines()[-1] == "KeyboardInterrupt", stderr
    assert INSTRUCTION_ERROR not in stderr and "KeyError" not in stderr, stderr
    assert stderr.count("Traceback (most recent call last):") == 1, stderr


def test_a_bundle_that_fails_while_the_run_needs_it_still_shows_its_error(tmp_path: Path):
    stderr = _ended(_run(tmp_path, "fail"))
    assert INSTRUCTION_ERROR in stderr, stderr
    assert "ValueError: a bundle that failed" in stderr.strip().splitlines()[-1], stderr


def _released_bundle_3() -> beam_fn_api_pb2.InstructionResponse:
    raise KeyError("bundle_3")


@pytest.mark.parametrize("stopped", [True, False], ids=["stopped", "running"])
def test_an_instruction_failing_once_its_harness_stopped_answers_without_printing_or_logging(
    stopped: bool, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The failure of a bundle that ends once its harness has stopped is only answered; that of
    a harness still running is printed and logged as well, as Beam does."""
    harness = SimpleNamespace(_alive=not stopped, _responses=queue.Queue())
    request = beam_fn_api_pb2.InstructionRequest(instruction_id="bundle_3")
    with caplog.at_level(logging.ERROR):
        quiet_once_stopped(SdkHarness._execute)(harness, _released_bundle_3, request)
    response = harness._responses.get_nowait()
    assert response.instruction_id == "bundle_3"
    assert "KeyError: 'bundle_3'" in response.error
    shown = ("KeyError: 'bundle_3'" in capsys.readouterr().err, bool(caplog.records))
    assert shown == ((False, False) if stopped else (True, True))
