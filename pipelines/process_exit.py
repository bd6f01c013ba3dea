"""Leave the interpreter without the parts of its shutdown that cost time or crash.

Once Great Expectations, pandas and Beam (an ingest) or TensorFlow (an embedding worker) are
loaded, the collections that interpreter finalization runs over hundreds of thousands of
objects take the best part of a second, and a worker's exit, like the driver's, is on the
critical path of every run: closing a Dask cluster of two embedding workers took 1.3 s with
them, 0.13 s without (:func:`exit_without_collecting`).

Native teardown after that can also abort a process whose work succeeded: a thread of Arrow's
pools that still needs the interpreter while it finalizes ends in ``std::terminate``
("terminate called without an active exception", exit status -6; apache/arrow#34314 and
#45017), seen now and then after ``audiomill dataset verify`` and in a benchmark process that
read Parquet. A command line ends with :func:`exit_now` instead.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import os
import sys
import threading
from typing import NoReturn


@functools.cache
def exit_without_collecting() -> None:
    """Skip the cyclic garbage collection of interpreter shutdown in this process.

    ``gc.freeze()`` at exit moves all objects out of the collector's reach, so shutdown only
    releases what reference counting frees. Call it only where nothing relies on the collector
    at exit: outputs are closed and committed before the process ends (ingest workers commit
    shards, ledger parts and staged files before ``teardown``; embedding workers commit each
    shard before its task returns). ``atexit`` handlers registered earlier (``weakref.finalize``,
    temporary directories) still run afterwards. Registered once per process, however often it
    is called.
    """
    atexit.register(gc.freeze)


def exit_now(status: int | str | None = 0) -> NoReturn:
    """End the process after Python's own shutdown steps, without the interpreter's teardown.

    Runs what interpreter shutdown runs first, in its order: waits for non-daemon threads and
    the thread pools' exit hooks (``threading._shutdown``), then the ``atexit`` handlers;
    flushes the standard streams; then ``os._exit``. Module teardown, the last collections and
    native static destructors (where Arrow's pools can abort the process) are skipped. Call it
    only once everything the process writes is closed, as a command's outputs are when it
    returns.

    Parameters
    ----------
    status : int, str or None
        As for ``sys.exit``: None is 0, an int the exit status, a string is printed to
        standard error and the status is 1.
    """
    if status is None:
        code = 0
    elif isinstance(status, int):
        code = status
    else:
        print(status, file=sys.stderr)
        code = 1
    threading._shutdown()  # what interpreter shutdown starts with; no public equivalent
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
