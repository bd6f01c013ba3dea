"""Feature-stage clusters: a failed task is the stage's one error, without the workers' noise."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from features.dask_runtime import QuietStageFailure, _interrupts_ignored, dask_client, map_shards


def fail_or_wait(seconds: float, marks: str) -> float:
    """Leave a file in ``marks`` saying that this task started; then, for a negative
    ``seconds``, raise after ``-seconds`` (the other tasks are running by then), else sleep."""
    Path(marks, uuid.uuid4().hex).touch()
    time.sleep(abs(seconds))
    if seconds < 0:
        raise ValueError("shard-00000.h5: cannot be read (truncated file)")
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
def test_a_failed_task_ends_the_stage_without_the_workers_copies_of_the_failure(
    processes: bool, distributed_output: Callable[[], str], tmp_path: Path
) -> None:
    items = [(-0.5, str(tmp_path)), (3.0, str(tmp_path)), (3.0, str(tmp_path))]
    with (
        pytest.raises(ValueError, match=r"shard-00000\.h5: cannot be read"),
        dask_client(processes=processes, workers=2) as client,
    ):
        list(map_shards(fail_or_wait, items, client))
    assert len(list(tmp_path.iterdir())) >= 2, "a task was running when another failed"
    logged = distributed_output()
    assert "Compute Failed" not in logged, logged
    assert "CancelledError" not in logged, logged


def test_only_the_failed_and_cancelled_task_records_are_dropped() -> None:
    kept: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: kept.append(record.getMessage())  # type: ignore[method-assign]
    worker, state_machine = (logging.getLogger(name) for name in QuietStageFailure.loggers)
    worker.addHandler(handler)  # state_machine's records propagate to it
    plugin = QuietStageFailure()
    plugin.setup(None)
    try:
        state_machine.warning("Async instruction for <Task cancelled name='execute(x)'> ended "
                              "with CancelledError")  # fmt: skip
        state_machine.warning("Failed to cancel asyncio task after 30 seconds: <Task>")
        worker.error("Compute Failed\nKey: x\nException: ValueError('a')")
        worker.error("Compute Failed to start")
    finally:
        plugin.teardown(None)
    state_machine.warning("Async instruction for <Task> ended with CancelledError")
    worker.error("Compute Failed\nKey: y")
    worker.removeHandler(handler)
    assert kept == [
        "Failed to cancel asyncio task after 30 seconds: <Task>",
        "Compute Failed to start",
        "Async instruction for <Task> ended with CancelledError",
        "Compute Failed\nKey: y",
    ]


def test_processes_started_by_a_local_cluster_ignore_ctrl_c() -> None:
    before = signal.getsignal(signal.SIGINT)
    with _interrupts_ignored():
        child = subprocess.run(
            [sys.executable, "-c", "import signal as s; print(s.getsignal(s.SIGINT) == s.SIG_IGN)"],
            capture_output=True,
            text=True,
            check=True,
        )
    assert child.stdout.strip() == "True"  # so Python raises no KeyboardInterrupt there
    assert signal.getsignal(signal.SIGINT) is before
