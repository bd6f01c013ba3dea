"""Import heavy libraries without the cyclic garbage collector walking them over and over.

A command that imports Beam, Great Expectations and pandas (``ingest``) or TensorFlow and Dask
(``embed``, ``train``) creates about a million objects. While they are created, the collector's
full collections run again each time the objects it tracks grew by a quarter, every one of them
walking everything created so far: about 0.3 s of an ``ingest`` start. Afterwards each full
collection walks them again, holding the GIL (0.1-0.15 s each, a few per run). Imports make
almost no garbage cycles, so the block runs with the collector off, and what exists when it
ends is frozen (:func:`gc.freeze`): later collections look only at objects made after it.
Measured on the 2,000-clip ingest benchmark: 9.3 s -> 8.5 s end to end.

The command line hands the frozen objects back to the collector when its command ends
(:func:`thawed_on_exit`), so the interpreter shuts down as it would have without the freeze.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Run the block with cyclic garbage collection off, then freeze every tracked object.

    Garbage already there is collected first (milliseconds: what earlier blocks froze is not
    scanned), so that what a workflow's earlier command left behind in this process is
    reclaimed rather than frozen. The collector's previous state is restored (an enclosing
    block that turned it off keeps it off). Frozen objects stay reachable as usual; only the
    collector's scans of them stop, so a cycle among them that becomes garbage later is not
    reclaimed before :func:`thawed_on_exit` returns them to the collector.
    """
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextlib.contextmanager
def thawed_on_exit() -> Iterator[None]:
    """Run the block (a whole command), then hand what was frozen back to the collector.

    Interpreter shutdown then finalizes objects as it would without :func:`collection_paused`:
    with them still frozen, ``evaluate`` on an S3 dataset (TensorFlow and s3fs's event-loop
    thread loaded) crashed at exit with SIGSEGV. A command that skips the collection at exit
    (``pipelines.process_exit.exit_without_collecting``) freezes again in its ``atexit``
    handler, which runs after this block.
    """
    try:
        yield
    finally:
        gc.unfreeze()
