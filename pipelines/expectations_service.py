"""Great Expectations validations and Data Docs, in a process of their own when that pays.

Importing Great Expectations (GE) costs well over a second of one core: two thirds of what an
ingest imports, and the segment validation that every run starts with waits for it. A command
that will validate calls :func:`start` before anything imports GE: a child process is forked
that imports GE at once, on another core, while this one imports Beam and reads the segment
list; from then on this process's :func:`validate` and :func:`render_html` calls run in the
child, and this process never imports GE. Without a service (GE already imported, no ``fork``
on the platform, other threads running when it would fork, or a Beam worker in another
process) the same calls run GE in-process.

Requests go over a pipe one at a time (GE's calls were serialized in-process too); a failure
in the child comes back as a :class:`ValidationServiceError` with its traceback.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from pipelines.heap import release_freed_memory

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

SUITES = {"segments": "segment_suite", "clips": "clip_suite"}
"""Suite names :func:`validate` accepts, and the :mod:`schemas.expectations` factory each
names (called with the keyword arguments given)."""


class ValidationServiceError(RuntimeError):
    """Great Expectations failed in the service process; the message holds its traceback."""


class _Service:
    """The forked child and this process's end of its pipe."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child_end, self._conn), name="audiomill-expectations", daemon=True
        )
        self._process.start()
        child_end.close()
        self.owner = os.getpid()
        self._lock = threading.Lock()

    def call(self, request: tuple) -> Any:
        with self._lock:
            try:
                self._conn.send(request)
                status, value = self._conn.recv()
            except (EOFError, OSError) as exc:
                code = self._process.exitcode
                raise ValidationServiceError(
                    f"the Great Expectations process ended (exit code {code}): {exc!r}"
                ) from exc
        if status == "error":
            raise ValidationServiceError(f"Great Expectations failed in its process:\n{value}")
        return value

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        # Idle on its pipe it would exit by itself; it may still be importing GE (a command
        # that failed early), and it holds nothing but GE's state.
        self._process.terminate()
        self._process.join()


_service: _Service | None = None
_service_lock = threading.Lock()


def start() -> bool:
    """Fork the service process for this process, unless GE is imported already (nothing to
    gain), ``fork`` is unavailable, other threads run (a fork copies only the calling thread,
    and locks other threads hold, such as an import lock, would stay held in the child), or a
    service runs; returns whether one serves now."""
    global _service
    with _service_lock:
        if _active() is None:
            usable = "fork" in multiprocessing.get_all_start_methods()
            alone = threading.active_count() == 1
            if usable and alone and "great_expectations" not in sys.modules:
                _service = _Service()
        return _active() is not None


def stop() -> None:
    """End this process's service; idempotent."""
    global _service
    with _service_lock:
        service, _service = _active(), None
    if service is not None:
        service.close()


def serving() -> bool:
    """Whether this process's validations run in a service process."""
    return _active() is not None


def _active() -> _Service | None:
    # A process forked from the one that started the service inherits the variable, not the pipe.
    return _service if _service is not None and _service.owner == os.getpid() else None


def validate(
    frame: pd.DataFrame | pa.Table, suite: str, suite_args: dict[str, Any], asset_name: str
) -> tuple[dict[int, list[str]], dict]:
    """Validate ``frame`` with a named suite (``schemas.expectations.validate_frame``).

    Parameters
    ----------
    frame : pandas.DataFrame or pyarrow.Table
        The rows. A table is made a DataFrame where GE runs: a long segment list crosses to
        the service as compact Arrow buffers, and this process never holds its pandas form.
    suite : {"segments", "clips"}
        The suite factory of :mod:`schemas.expectations` to call with ``suite_args``.
    suite_args : dict
        Keyword arguments of the suite factory.
    asset_name : str
        The GE data asset to validate as.

    Returns
    -------
    (failures, result_json)
        Failed expectation names by row position, and GE's result as JSON.
    """
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {', '.join(SUITES)}, got {suite!r}")
    return _dispatch(("validate", frame, suite, suite_args, asset_name))


def render_html(result_json: dict) -> str:
    """A validation result as a Data Docs page (``schemas.expectations.render_html``)."""
    return _dispatch(("render", result_json))


def _dispatch(request: tuple) -> Any:
    """Run ``request`` in this process's service, or here without one."""
    service = _active()
    return service.call(request) if service is not None else _handle(request)


def _handle(request: tuple) -> Any:
    import pyarrow as pa

    from schemas import expectations

    if request[0] == "render":
        return expectations.render_html(request[1])
    _, frame, suite, suite_args, asset_name = request
    if isinstance(frame, pa.Table):
        frame = frame.to_pandas()
    factory = getattr(expectations, SUITES[suite])
    outcome = expectations.validate_frame(frame, factory(**suite_args), asset_name=asset_name)
    return outcome.failures, outcome.result_json


def _serve(conn: Connection, parent_end: Connection) -> None:
    """The service process: import GE now, then answer requests until the pipe closes.

    A parent that is gone (ended, or killed while a request was in flight) ends the service
    quietly: the pipe's other end is closed, and there is no one to tell.
    """
    parent_end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupt is the parent's to handle
    # Importing GE makes about a million objects; collections walking them as they are made
    # would slow the import (the parent's critical path) by a fifth.
    gc.disable()
    try:
        from schemas import expectations

        expectations.warm_up()
    finally:
        gc.freeze()
        gc.enable()
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", _handle(request))
        except Exception:
            reply = ("error", traceback.format_exc())
        del request  # the frame, freed before the heap is trimmed
        try:
            conn.send(reply)
        except OSError:  # the parent is gone (killed): nobody waits for the reply
            return
        del reply
        release_freed_memory()


@contextlib.contextmanager
def running() -> Iterator[bool]:
    """:func:`start` on entry, :func:`stop` on exit; yields whether a service serves."""
    try:
        yield start()
    finally:
        stop()
