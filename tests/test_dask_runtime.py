"""Feature-stage clusters: a failed task is the stage's one error, without the workers' noise."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest

from features.dask_runtime import QuietCancelledTasks, dask_client, map_shards


def fail_or_wait(seconds: float) -> float:
    """Raise at once for a negative ``seconds``; else sleep that long (a task still running)."""
    if seconds < 0:
        raise ValueError("shard-00000.h5: cannot be read (truncated file)")
    time.sleep(seconds)
    return seconds


@pytest.fixture
def distributed_output(capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """What ``distributed`` logs, in this process (its handler's stream predates capture) and
    in worker processes (their stderr)."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("distributed").addHandler(handler)
    yield lambda: "\n".join(lines) + capfd.readouterr().err
    logging.getLogger("distributed").removeHandler(handler)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_a_failed_task_ends_the_stage_without_the_cancelled_tasks_warnings(
    processes: bool, distributed_output: Callable[[], str]
) -> None:
    items = [(-1.0,), (1.5,), (1.5,), (1.5,)]
    with (
        pytest.raises(ValueError, match=r"shard-00000\.h5: cannot be read"),
        dask_client(processes=processes, workers=2) as client,
    ):
        list(map_shards(fail_or_wait, items, client))
    logged = distributed_output()
    assert "Compute Failed" in logged, "the workers ran the tasks: one failed while others ran"
    assert "CancelledError" not in logged, logged


def test_only_the_warning_about_a_task_cancelled_at_close_is_dropped() -> None:
    logger = logging.getLogger(QuietCancelledTasks.logger)
    kept: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: kept.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    plugin = QuietCancelledTasks()
    plugin.setup(None)
    try:
        logger.warning("Async instruction for <Task cancelled name='execute(x)'> ended with "
                       "CancelledError")  # fmt: skip
        logger.warning("Failed to cancel asyncio task after 30 seconds: <Task>")
    finally:
        plugin.teardown(None)
    logger.warning("Async instruction for <Task> ended with CancelledError")
    logger.removeHandler(handler)
    assert kept == [
        "Failed to cancel asyncio task after 30 seconds: <Task>",
        "Async instruction for <Task> ended with CancelledError",
    ]
