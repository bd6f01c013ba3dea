"""The local runner's worker processes for ingest, started and stopped without unbounded waits.

Beam's handler for subprocess workers waits for its process without a bound, and the runner
only tells a worker to stop once it has connected. Ctrl-C reaches the whole process group: a
worker still starting (importing Beam) died of it with a traceback, and one that connected after
the runner had closed its connection waited for work for ever, with the runner waiting for it.

Here a worker starts with SIGINT blocked, so no Ctrl-C stops it before
:mod:`pipelines.beam_worker` ignores the signal, and the runner stops its workers. At the end of
a run, in whatever state it is: a worker that connects from then on is told at once that there
is no more work; one that has not yet set up its harness is terminated; one that has waits up to
:data:`WORKER_EXIT_S` to end (:data:`ABORTED_EXIT_S` when the run failed or was interrupted),
then is terminated, and killed :data:`WORKER_KILL_S` later. A worker that ends while the run
still needs it fails the work sent to it with a :class:`WorkerLeftError`, instead of leaving
the runner waiting for its replies; its broken streams, like those of a worker terminated
while stopping, then end quietly when the run closes, where Beam's threads that read them
printed their ``grpc.RpcError`` tracebacks and logged the error again on closing.

A worker ends with the process that started it, even one killed (``kill -9``), which stops
nothing: left running, each held its memory for minutes and then printed gRPC tracebacks into
the terminal. The worker learns the runner's process id from :data:`RUNNER_PID`
(:func:`pipelines.beam_worker.end_with_parent`); on Linux the kernel kills it when the thread
that started it ends, which waits for it here until it has ended.

Beam stops its workers one after the other and gives up at the first exception: a Ctrl-C to
the runner's process alone (its workers ignore SIGINT) while it waited for one worker left
the others running, connected to a process that then ended, printing gRPC errors and holding
the terminal's output open. Such a Ctrl-C terminates every worker still running instead.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar

import grpc

from pipelines import beam_import  # noqa: F401  (Beam's import, without its root-logger warning)

# isort: split
from apache_beam.portability.api import beam_fn_api_pb2_grpc, endpoints_pb2
from apache_beam.runners.portability.fn_api_runner.fn_runner import ExtendedProvisionInfo
from apache_beam.runners.portability.fn_api_runner.worker_handlers import (
    GrpcServer,
    GrpcWorkerHandler,
    StateServicer,
    WorkerHandler,
)
from apache_beam.runners.portability.local_job_service import BeamFnLoggingServicer
from apache_beam.transforms.environments import Environment, SubprocessSDKEnvironment
from apache_beam.utils import thread_pool_executor
from apache_beam.utils.sentinel import Sentinel
from google.protobuf import json_format, text_format

WORKER_URN = "audiomill:env:ingest_worker:v1"
"""The environment whose workers :class:`WorkerProcessHandler` runs."""
WORKER_EXIT_S = 90.0
"""How long a worker that has set up its harness has to end once told to stop: its DoFns'
teardown waits up to 60 s for a background import (``pipelines.beam_ingest.WARM_UP_JOIN_S``)."""
ABORTED_EXIT_S = 2.0
"""How long a worker has to end once told to stop when the run failed or was interrupted: the
run takes nothing more from it, so it is not waited for through its DoFns' teardown."""
WORKER_KILL_S = 5.0
"""How long a terminated worker has to end before it is killed, and how long a stream that broke
waits to learn whether its worker ended."""

RUNNER_PID = "AUDIOMILL_RUNNER_PID"
"""The environment variable holding the process id of the runner that started a worker."""

LOG_SERVER_OPTIONS = (
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
)
"""A worker's log server allows the keepalive pings of a quiet log stream, as Beam's own
servers do (its workers ping every 20 s): with gRPC's defaults it ended the stream with
'too_many_pings' after about a minute without logs, and the worker printed gRPC's error and
'Logging client failed' lines."""

T = TypeVar("T")

_running: set[WorkerProcessHandler] = set()
"""The handlers whose worker process has started and not yet ended."""
_running_lock = threading.Lock()


@Environment.register_urn(WORKER_URN, bytes)
class WorkerEnvironment(SubprocessSDKEnvironment):
    """Workers that run a command (no shell), started and stopped by
    :class:`WorkerProcessHandler`."""

    def to_runner_api_parameter(self, context: object) -> tuple[str, bytes]:
        return WORKER_URN, self.command_string.encode("utf-8")

    @staticmethod
    def from_runner_api_parameter(
        payload: bytes,
        capabilities: Iterable[str],
        artifacts: Iterable,
        resource_hints: Mapping[str, bytes],
        context: object,
    ) -> WorkerEnvironment:
        return WorkerEnvironment(payload.decode("utf-8"), capabilities, artifacts, resource_hints)


class WorkerLogs(BeamFnLoggingServicer):
    """Beam's servicer of a subprocess worker's log records; ``opened`` is set once the worker
    has set up its harness, which opens its log stream just before connecting to the runner."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = threading.Event()

    def Logging(self, log_bundles: Iterable, context: object = None) -> Iterator:
        self.opened.set()
        return super().Logging(log_bundles, context)


class WorkerLeftError(RuntimeError):
    """A worker process ended while the run still needed it."""


@WorkerHandler.register_environment(WORKER_URN, bytes)
class WorkerProcessHandler(GrpcWorkerHandler):
    """Beam's worker handler for :class:`WorkerEnvironment`: one worker process, started on a
    thread of its own with SIGINT blocked, and stopped in bounded time (see the module)."""

    def __init__(
        self,
        command: bytes,
        state: StateServicer,
        provision_info: ExtendedProvisionInfo,
        grpc_server: GrpcServer,
    ) -> None:
        super().__init__(state, provision_info, grpc_server)
        self.argv = shlex.split(command.decode("utf-8"))
        self.logs = WorkerLogs()
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._left: WorkerLeftError | None = None
        self._ended = threading.Event()  # the worker process ended
        self._closing = threading.Event()
        self.control_conn.set_input = self._reading(self.control_conn.set_input)
        self.data_conn.set_inputs = self._reading(self.data_conn.set_inputs)

    def close(self) -> None:
        with self._lock:
            self._stopping = True  # the worker's end from now on is no failure
        self._closing.set()
        try:
            super().close()
        except WorkerLeftError:  # the data channel's again, which the run failed with already
            self.stop_worker()
        except KeyboardInterrupt:  # Beam closes no other handler: end every worker still running
            with _running_lock:
                handlers = list(_running)
            for handler in handlers:
                handler.end_worker()
            raise

    def _reading(self, set_input: Callable[[Iterator[T]], None]) -> Callable[[Iterator[T]], None]:
        """``set_input`` of the worker's control or data connection, whose messages then pass
        through :meth:`_until_left`."""
        return lambda messages: set_input(self._until_left(messages))

    def _until_left(self, messages: Iterator[T]) -> Iterator[T]:
        """The worker's ``messages``; once the worker has left, its broken stream ends when the
        handler closes instead of raising ``grpc.RpcError`` on Beam's reading thread (the run
        fails with the :class:`WorkerLeftError` instead)."""
        try:
            yield from messages
        except grpc.RpcError:
            if not self._ended.wait(WORKER_KILL_S) or (self._left is None and not self._stopping):
                raise
            self._closing.wait()

    def start_worker(self) -> None:
        # A thread of its own: a Ctrl-C in this (the main) thread cannot come between the
        # worker's start and its record in self.process.
        threading.Thread(target=self._run, name="audiomill-worker", daemon=True).start()

    def _run(self) -> None:
        """Start the worker (unless it is already being stopped); if it ends while the run still
        needs it, fail the work sent to it."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # the worker inherits this
        with self._lock:
            if self._stopping:
                return
            self._log_server, log_port = start_log_server(self.logs)
            env = dict(
                os.environ,
                CONTROL_API_SERVICE_DESCRIPTOR=_descriptor(self.control_address),
                LOGGING_API_SERVICE_DESCRIPTOR=_descriptor(f"localhost:{log_port}"),
                PIPELINE_OPTIONS=json_format.MessageToJson(
                    self.provision_info.provision_info.pipeline_options
                ),
                WORKER_ID=self.worker_id,
                **{RUNNER_PID: str(os.getpid())},
            )
            self.process = subprocess.Popen(self.argv, env=env)
            with _running_lock:
                _running.add(self)
        status = self.process.wait()
        with _running_lock:
            _running.discard(self)
        how = f"killed by {signal.Signals(-status).name}" if status < 0 else f"status {status}"
        with self._lock:
            if not self._stopping:
                self._left = WorkerLeftError(f"a Beam worker process ended ({how})")
        self._ended.set()
        if self._left is not None:
            self.control_conn.abort(self._left)
            self.data_conn._exception = self._left  # a bundle waiting for its output fails

    def stop_worker(self) -> None:
        # Beam's close has told a connected worker to stop; one that connects later is told so
        # as soon as it does.
        self.control_conn.push(Sentinel.sentinel)
        with self._lock:
            self._stopping = True
        if self.process is None:
            return
        if not self.logs.opened.is_set():
            self.process.terminate()
        finished = sys.exc_info()[1] is None  # not closing a run that failed or was interrupted
        try:
            self.process.wait(WORKER_EXIT_S if finished else ABORTED_EXIT_S)
        except subprocess.TimeoutExpired:
            self.end_worker()
        self._log_server.stop(0)

    def end_worker(self) -> None:
        """Terminate the worker process unless it has ended, and kill it if it is still running
        :data:`WORKER_KILL_S` later; its broken streams end quietly."""
        with self._lock:
            self._stopping = True
        self._closing.set()
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(WORKER_KILL_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_log_server(logs: WorkerLogs) -> tuple[grpc.Server, int]:
    """Start a gRPC server of ``logs`` for one worker on a free port; returns it and its port."""
    server = grpc.server(
        thread_pool_executor.shared_unbounded_instance(), options=LOG_SERVER_OPTIONS
    )
    beam_fn_api_pb2_grpc.add_BeamFnLoggingServicer_to_server(logs, server)
    port = server.add_insecure_port("[::]:0")
    server.start()
    return server, port


def _descriptor(url: str) -> str:
    """An ``ApiServiceDescriptor`` for ``url`` in the text format Beam's workers read."""
    return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))
