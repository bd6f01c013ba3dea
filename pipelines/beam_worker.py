"""Entry point of the ingest pipeline's Beam worker processes, without Beam's start-up lines.

In multi-processing mode Beam's FnApiRunner starts each worker as ``python -m
apache_beam.runners.worker.sdk_worker_main``. Importing Beam there logs its apitools warning on a
root logger without handlers, which gives that logger a stderr handler (``basicConfig``), so
every worker printed four lines before reading its log level: the warning, "Logging handler
created", "Discarding unparseable args" and "No semi_persistent_directory found". Started from
here, Beam is imported through :mod:`pipelines.beam_import`, which leaves the root logger
without a stderr handler; the harness then sends its log records to the runner, as it does
anyway, and the runner's log level decides what is shown. Errors still reach stderr: Python
prints an uncaught exception's traceback, and a warning or error logged before the harness's
handler exists goes through logging's last-resort handler.

A worker ends with the runner that started it (:func:`end_with_parent`).

A worker told to stop while it still runs a bundle (an interrupted or failed run) shuts that
bundle down; when the bundle then ended before the worker did, Beam printed the traceback of its
instruction's failure (``KeyError: 'bundle_3'`` from its bundle cache) and logged it, which the
runner shows, 15 lines and more above the one that says how to resume. The runner has stopped
waiting for that instruction's answer: an instruction that fails once the worker's control stream
has ended answers with its error, neither printed nor logged (:func:`stopped_bundles_quiet`).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TextIO

from pipelines import beam_import  # noqa: F401  (Beam's import, without its root-logger warning)

# isort: split
from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.worker import sdk_worker, sdk_worker_main

from pipelines.beam_ingest import sample_states_often
from pipelines.storage import ACCESS_ERROR_LINE
from pipelines.worker_processes import RUNNER_PID

REPORTED_ERRORS = (ACCESS_ERROR_LINE,)
"""Exception lines of errors the ``audiomill`` command reports in one line of its own."""
PR_SET_PDEATHSIG = 1
"""Linux's ``prctl`` option: the signal a process gets when the thread that started it ends."""
PARENT_POLL_S = 1.0
"""How often a worker without ``prctl`` looks whether its runner still runs."""

Task = Callable[[], beam_fn_api_pb2.InstructionResponse]
"""An instruction's work, which Beam's harness runs and answers the runner with."""
Execute = Callable[[sdk_worker.SdkHarness, Task, beam_fn_api_pb2.InstructionRequest], None]
"""``SdkHarness._execute``: run an instruction's task, print and log its failure, and answer."""


def end_with_parent(parent: int) -> None:
    """End this worker, quietly, when the runner process ``parent`` ends, killed or not.

    On Linux the kernel sends SIGKILL when the thread that started the worker ends (the runner's
    thread that waits for it, :mod:`pipelines.worker_processes`); elsewhere a thread looks every
    :data:`PARENT_POLL_S` whether the worker's parent is still ``parent``. A runner that ended
    before either was in place (while this worker imported Beam) ends the worker at once.
    """
    if not _killed_with_parent():
        threading.Thread(
            target=_watch_parent, args=(parent,), name="audiomill-parent-watch", daemon=True
        ).start()
    if os.getppid() != parent:
        os._exit(1)


def _killed_with_parent() -> bool:
    """Have Linux send SIGKILL to this process when its parent thread ends; False where that
    cannot be asked."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0


def _watch_parent(parent: int) -> None:
    """End this process once its parent is no longer ``parent``."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def stopped_bundles_quiet() -> None:
    """Have Beam's harness answer an instruction that fails once it was told to stop with the
    error alone, not printed nor logged (see the module)."""
    sdk_worker.SdkHarness._execute = quiet_once_stopped(sdk_worker.SdkHarness._execute)


def quiet_once_stopped(execute: Execute) -> Execute:
    """``execute``, whose tasks that fail once their harness has stopped (its control stream
    ended) answer with their error instead of raising it, so ``execute`` neither prints nor logs
    it; the failures of a harness still running raise as before."""

    @functools.wraps(execute)
    def quiet(
        harness: sdk_worker.SdkHarness, task: Task, request: beam_fn_api_pb2.InstructionRequest
    ) -> None:
        execute(harness, functools.partial(_answered, harness, task, request), request)

    return quiet


def _answered(
    harness: sdk_worker.SdkHarness, task: Task, request: beam_fn_api_pb2.InstructionRequest
) -> beam_fn_api_pb2.InstructionResponse:
    """``task``'s answer; its error as the answer if it fails once ``harness`` has stopped."""
    try:
        return task()
    except Exception:
        if harness._alive:
            raise
        return beam_fn_api_pb2.InstructionResponse(
            instruction_id=request.instruction_id, error=traceback.format_exc()
        )


class ReportedTracebacksDropped:
    """``sys.stderr`` of a worker, less the tracebacks of :data:`REPORTED_ERRORS`.

    Beam's worker prints the traceback of a failed bundle to its stderr, in one write, and sends
    it to the runner, whose process turns the errors above into one line naming the folder and
    the reason (``workflows.cli``): printed here, each one was a hundred lines above that line.
    Every other write, other tracebacks included, passes.

    Parameters
    ----------
    stream : TextIO
        The worker's stderr.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._dropped = False

    def write(self, text: str) -> int:
        """Write ``text`` unless it is a reported error's traceback (or the newline after one)."""
        dropped, self._dropped = self._dropped, False
        if text.startswith("Traceback (most recent call last):") and any(
            error in text for error in REPORTED_ERRORS
        ):
            self._dropped = True
            return len(text)
        if dropped and text == "\n":
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


if __name__ == "__main__":
    end_with_parent(int(os.environ.get(RUNNER_PID, os.getppid())))
    sys.stderr = ReportedTracebacksDropped(sys.stderr)
    # Ctrl-C reaches the whole process group: the runner in the audiomill process stops its
    # workers; each worker dying of the signal on its own printed its traceback and the
    # runner's threads theirs, over a hundred lines before the one that says how to resume.
    # The runner starts a worker with SIGINT blocked (pipelines.worker_processes), which covers
    # the imports above; ignoring it discards one that came meanwhile.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    sample_states_often()
    stopped_bundles_quiet()
    sdk_worker_main.main(sys.argv)
