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

from pipelines import beam_import  # noqa: F401  (Beam's import, without its root-logger warning)

# isort: split
from apache_beam.runners.worker import sdk_worker_main

from pipelines.beam_ingest import sample_states_often

if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the runner in the audiomill process stops its
    # workers; each worker dying of the signal on its own printed its traceback and the
    # runner's threads theirs, over a hundred lines before the one that says how to resume.
    # The runner starts a worker with SIGINT blocked (pipelines.worker_processes), which covers
    # the imports above; ignoring it discards one that came meanwhile.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    sample_states_often()
    sdk_worker_main.main(sys.argv)
