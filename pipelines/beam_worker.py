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
"""

from __future__ import annotations

import signal
import sys
from typing import TextIO

from pipelines import beam_import  # noqa: F401  (Beam's import, without its root-logger warning)

# isort: split
from apache_beam.runners.worker import sdk_worker_main

from pipelines.beam_ingest import sample_states_often
from pipelines.storage import ACCESS_ERROR_LINE

REPORTED_ERRORS = (ACCESS_ERROR_LINE,)
"""Exception lines of errors the ``audiomill`` command reports in one line of its own."""


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
    sys.stderr = ReportedTracebacksDropped(sys.stderr)
    # Ctrl-C reaches the whole process group: the runner in the audiomill process stops its
    # workers; each worker dying of the signal on its own printed its traceback and the
    # runner's threads theirs, over a hundred lines before the one that says how to resume.
    # The runner starts a worker with SIGINT blocked (pipelines.worker_processes), which covers
    # the imports above; ignoring it discards one that came meanwhile.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    sample_states_often()
    sdk_worker_main.main(sys.argv)
