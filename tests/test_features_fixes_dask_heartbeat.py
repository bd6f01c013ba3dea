"""A worker of a local cluster whose scheduler closed first says nothing about its heartbeat."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from features.dask_runtime import QuietStageFailure

WORKER = logging.getLogger("distributed.worker")


@pytest.fixture
def kept() -> Iterator[list[str]]:
    """The messages of the records that ``distributed.worker`` lets through."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    WORKER.addHandler(handler)
    yield messages
    WORKER.removeHandler(handler)


def test_a_heartbeat_that_finds_the_scheduler_gone_is_dropped(kept: list[str]) -> None:
    plugin = QuietStageFailure()
    plugin.setup(None)
    try:
        try:
            raise OSError("in <TCP (closed) ConnectionPool.heartbeat_worker>: Stream is closed")
        except OSError:
            WORKER.exception("Failed to communicate with scheduler during heartbeat.")
        WORKER.error("Unexpected exception during heartbeat. Closing worker.")
    finally:
        plugin.teardown(None)
    WORKER.error("Failed to communicate with scheduler during heartbeat.")
    assert kept == [
        "Unexpected exception during heartbeat. Closing worker.",
        "Failed to communicate with scheduler during heartbeat.",  # the plugin's filter is gone
    ]


class _NanniedWorker:
    """A worker that a nanny started in a process of its own (as a LocalCluster of processes)."""

    nanny = "tcp://127.0.0.1:1"


def test_a_worker_in_a_nannys_process_keeps_its_filters_until_the_process_ends(
    kept: list[str],
) -> None:
    plugin = QuietStageFailure()
    plugin.setup(_NanniedWorker())
    try:
        plugin.teardown(_NanniedWorker())  # plugins are torn down before the heartbeat stops
        WORKER.error("Failed to communicate with scheduler during heartbeat.")
    finally:
        plugin.teardown(None)
    assert kept == []
