"""Where feature-stage tasks run: a Dask client, a cluster address or a local scheduler.

Every feature stage takes a ``client`` argument (DESIGN 4.3): ``None`` starts a
``LocalCluster``, a string names a scheduler address (``tcp://host:port``) or one of Dask's
local schedulers, and a ``distributed.Client`` is used as is. :func:`map_shards` runs one task
per shard on whichever was chosen.

When a task fails, the stage raises its exception, which names the shard and the reason; when
the workers running a task died (:class:`WorkerDiedError`), the stage names the shard. On a
cluster started here the workers' own copies of that failure are dropped
(:class:`QuietStageFailure`): the failed task's "Compute Failed" block (its exception again, with
a traceback as text), each worker's warning about the tasks it cancels as the cluster closes
("Async instruction for <Task ...> ended with CancelledError", which ``distributed`` logs only
then, after a failure or an interruption), and a worker's error, with tracebacks, when its
heartbeat finds the scheduler gone ("Failed to communicate with scheduler during heartbeat"):
the scheduler of a cluster started here lives in the command's process, so that happens only
while the command is stopping, most often on Ctrl-C, and after an interrupt the command's
own silencing of ``distributed`` does not reach the worker processes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dask
from dask.utils import format_bytes
from distributed import Client, LocalCluster, WorkerPlugin, as_completed
from distributed.scheduler import KilledWorker

from pipelines.storage import DatasetAccessError

LOCAL_SCHEDULERS = ("synchronous", "threads")
HEARTBEAT_LOST = "Failed to communicate with scheduler during heartbeat"
"""How ``distributed.worker`` begins the error it logs when a heartbeat finds no scheduler."""
MAX_LOCAL_THREADS = 8

DaskClient = Client | str | None
"""What the feature stages accept as ``client`` (see :func:`dask_client`)."""

Runner = Client | str
"""A resolved client: a ``distributed.Client`` or the name of a local Dask scheduler."""


class SchedulerError(ValueError):
    """A scheduler address that cannot be used: malformed, or no scheduler answers there."""


class WorkerDiedError(RuntimeError):
    """The workers that ran a task all died while running it, most likely over their memory
    limit; the message names the shard and how to go on."""


class QuietStageFailure(WorkerPlugin):
    """Drop a worker's copies of a failure that the stage reports itself, on its own loggers.

    ``distributed.worker`` logs "Compute Failed" with the exception and traceback of a task
    that raised, and ``distributed.worker.state_machine`` warns "Async instruction for <Task
    ...> ended with CancelledError" for every task still running when its worker closes: in our
    own clusters, only when a stage shuts them down after a task failed or the user interrupted.
    Either way the stage raises the task's exception (or stops on the interrupt) itself. A
    worker also logs "Failed to communicate with scheduler during heartbeat." with the
    connection's tracebacks when the scheduler closed first; our clusters' scheduler runs in
    the command's process, so that too happens only as the command stops. Other records of
    those loggers pass.
    """

    name = "audiomill-quiet-stage-failure"
    loggers = ("distributed.worker", "distributed.worker.state_machine")

    def setup(self, worker: Any) -> None:
        """Filter the worker's loggers (in the worker's process)."""
        for name in self.loggers:
            logging.getLogger(name).addFilter(self.keep)

    def teardown(self, worker: Any) -> None:
        """Remove the filters as the worker closes, unless it runs in a process of its nanny's,
        which ends with it: a heartbeat under way then ends after the worker's plugins are
        torn down, and would log its failure unfiltered."""
        if getattr(worker, "nanny", None):
            return
        for name in self.loggers:
            logging.getLogger(name).removeFilter(self.keep)

    def keep(self, record: logging.LogRecord) -> bool:
        """False for a failed task's block, for a task cancelled as its worker closes and for
        a heartbeat that found the scheduler gone (a filter of this plugin's own, so that
        workers closing apart each remove only theirs)."""
        message = record.getMessage()
        cancelled = message.startswith("Async instruction for ") and message.endswith(
            " ended with CancelledError"
        )
        return not (
            cancelled
            or message.startswith("Compute Failed\n")
            or message.startswith(HEARTBEAT_LOST)
        )


@contextlib.contextmanager
def dask_client(
    client: DaskClient = None, *, processes: bool = False, workers: int | None = None
) -> Iterator[Runner]:
    """Resolve the ``client`` argument of the feature stages to where tasks run.

    Parameters
    ----------
    client : distributed.Client, str or None
        A client is yielded unchanged (and left open). ``"synchronous"`` and ``"threads"`` are
        Dask's local schedulers, yielded as their names: no cluster, no per-task scheduling
        cost (``"threads"`` runs tasks on a thread pool of one thread per core). Any other
        string is a scheduler address (``tcp://host:port``), connected to for the duration.
        None starts a ``LocalCluster`` of one worker with up to 8 threads (one per core) for
        the duration: shard reads are short and I/O bound, so threads keep the cluster cheap to
        start and hand results back without serialisation. Its scheduler's HTTP server takes a
        free port (``dashboard_address=None`` would still bind 8787); its workers run
        :class:`QuietStageFailure`.
    processes : bool
        For ``None``: start ``workers`` single-threaded worker processes instead (for tasks
        that hold the GIL or load a model per worker, such as embedding).
    workers : int, optional
        Worker processes when ``processes`` (default: one per core).

    Yields
    ------
    distributed.Client or str

    Raises
    ------
    SchedulerError
        If ``client`` is an address that is malformed or where no scheduler answers (within
        ``distributed.comm.timeouts.connect``, 30 s by default).
    """
    if isinstance(client, Client) or client in LOCAL_SCHEDULERS:
        yield client
    elif isinstance(client, str):
        try:
            connected = Client(client)
        except (OSError, ValueError) as exc:
            raise SchedulerError(
                f"--scheduler {client}: cannot connect to a Dask scheduler there ({exc})"
            ) from exc
        with connected:
            yield connected
    elif client is None:
        threads = max(1, min(os.cpu_count() or 1, MAX_LOCAL_THREADS))
        shape = (
            {"n_workers": workers or os.cpu_count() or 1, "threads_per_worker": 1}
            if processes
            else {"n_workers": 1, "threads_per_worker": threads}
        )
        with _interrupts_ignored():  # the worker processes it starts inherit that
            cluster = LocalCluster(
                processes=processes,
                dashboard_address=":0",
                plugins=(QuietStageFailure(),),
                **shape,
            )
        with cluster, Client(cluster) as local:
            try:
                yield local
            except KeyboardInterrupt:
                # Closing a cluster whose workers were stopped mid-task logs what the command
                # has nothing to say about: "Worker process still alive after 4.0 seconds,
                # killing" per worker, a nanny's CancelledError, a tornado callback's NameError.
                for name in ("distributed", "tornado"):
                    logging.getLogger(name).setLevel(logging.CRITICAL)
                raise
    else:
        raise TypeError(
            "client must be a distributed.Client, a scheduler address, "
            f"{' or '.join(map(repr, LOCAL_SCHEDULERS))} or None, not {type(client).__name__}"
        )


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """Ignore SIGINT within the block (in the main thread), for the processes started in it.

    Ctrl-C reaches every process of the terminal's group: local Dask workers dying of it each
    printed their tracebacks before the command's one line. A process started with SIGINT
    ignored keeps ignoring it (Python installs its ``KeyboardInterrupt`` handler only where
    SIGINT has its default action), and the cluster stops its workers when the command does.
    The cost: a Ctrl-C while the cluster starts (seconds) is not seen; the next one is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def map_shards(
    fn: Callable[..., Any], items: Sequence[tuple], client: Runner
) -> Iterator[tuple[int, Any]]:
    """Run ``fn(*item)`` as one Dask task per item and yield ``(position, result)`` as each ends.

    On a cluster, results are yielded in completion order and released from the cluster as soon
    as they are yielded, so it never holds more than the results not yet consumed; when a task
    fails, the tasks still pending are cancelled and its exception is raised; on a cluster
    started apart (``client.cluster`` is None), a dataset access error says it happened on a
    worker (:func:`run_on_worker`). On a local scheduler the tasks run as one graph, and results
    come in order once all have run.

    Parameters
    ----------
    fn : callable
        A module-level function (workers in other processes import it by name).
    items : sequence of tuple
        The positional arguments of each task.
    client : distributed.Client or str
        A client, or the name of a local Dask scheduler (see :func:`dask_client`).

    Raises
    ------
    WorkerDiedError
        If the workers running a task died while running it (``distributed``'s
        ``KilledWorker``, after ``distributed.scheduler.allowed-failures`` retries).
    """
    if not items:
        return
    if isinstance(client, str):
        task = dask.delayed(fn, pure=False)
        yield from enumerate(dask.compute(*(task(*args) for args in items), scheduler=client))
        return
    worker_task = fn if client.cluster else functools.partial(run_on_worker, fn)
    futures = client.map(worker_task, *zip(*items, strict=True), pure=False)  # one graph update
    position = {f.key: pos for pos, f in enumerate(futures)}
    try:
        for future, result in as_completed(futures, with_results=True):
            yield position[future.key], result
            future.release()
    except KilledWorker as exc:
        shard = shard_name(items[position[exc.task]])
        raise WorkerDiedError(worker_died_message(shard, exc, client)) from None
    finally:
        client.cancel([f for f in futures if not f.done()])


def run_on_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` on a worker of a cluster started apart, saying in a dataset access error
    that it happened there: the command itself may reach the dataset (credentials in its own
    environment, a store only it can reach).

    Raises
    ------
    DatasetAccessError
        Of the type ``fn`` raised, its message prefixed with the worker's host name.
    """
    try:
        return fn(*args)
    except DatasetAccessError as exc:
        raise type(exc)(worker_access_message(exc)) from exc


def worker_access_message(exc: DatasetAccessError) -> str:
    """The message of ``exc``, raised on this worker: where, and for missing credentials, that
    those of the command's environment do not reach Dask workers."""
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    message = f"on Dask worker {socket.gethostname()}: {exc}"
    if isinstance(exc.__cause__, NoCredentialsError | PartialCredentialsError):
        message += (
            "; credentials in the environment of this command ($AWS_ACCESS_KEY_ID and the "
            "like) do not reach the workers"
        )
    return message


def shard_name(item: tuple) -> str:
    """The shard a task of ``item`` reads: the ``path`` of an argument that has one (a
    :class:`features.class_index.ShardSource`), else the first file of a shard's manifest
    entry given as a dict (as embed's tasks get it)."""
    for arg in item:
        if isinstance(path := getattr(arg, "path", None), str):
            return path
        if isinstance(arg, dict) and isinstance(files := arg.get("files"), dict) and files:
            return next(iter(files.values()))["path"]
    return repr(item)


def worker_died_message(shard: str, exc: KilledWorker, client: Client) -> str:
    """Why the stage stopped when the workers running the task of ``shard`` died, in one line:
    the last worker's memory limit and threads, and what to change (Dask's own options for
    workers started apart, fewer ``--workers`` for a cluster started here)."""
    worker = exc.last_worker
    limit = worker.memory_limit
    memory, cause = (
        (f"a memory limit of {format_bytes(limit)}", "over that limit")
        if limit
        else ("no memory limit", "out of memory")
    )
    remedy = (
        "start the workers with a larger --memory-limit or fewer --nthreads"
        if client.cluster is None
        else "use fewer --workers, so that each has more memory"
    )
    return (
        f"shard {shard}: the Dask worker running it died ({exc.allowed_failures + 1} "
        f"time(s); the last, {worker.address}, had {worker.nthreads} thread(s) and {memory}), "
        f"most likely {cause}: {remedy}, then run again to resume"
    )
