"""A Dask worker that dies while running a shard's task (most often over its memory limit)
ends the stage in one line naming the shard, not in a ``KilledWorker`` traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import dask
import pytest

from features.dask_runtime import WorkerDiedError, dask_client, map_shards
from tests.ingest_helpers import cli_env


@dataclass(frozen=True)
class Shard:
    """What a stage's task reads: a shard file's dataset-relative ``path``."""

    path: str


def die(shard: Shard) -> None:
    """A task whose worker process ends at once, as one killed for its memory does."""
    os._exit(1)


def test_a_worker_that_dies_names_the_shard_and_the_likely_cause() -> None:
    items = [(Shard("waveforms/train/00003.h5"),)]
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        dask_client(processes=True, workers=1) as client,
        pytest.raises(WorkerDiedError) as raised,
    ):
        list(map_shards(die, items, client))
    message = str(raised.value)
    assert message.startswith("shard waveforms/train/00003.h5: the Dask worker running it died")
    assert "memory limit" in message and "run again to resume" in message
    assert "\n" not in message


SCRIPT = """
import sys

import dask

import workflows.cli as cli
from features.dask_runtime import WorkerDiedError, dask_client, map_shards
from tests.test_dask_worker_died import Shard, die


@cli.app.command("shards")
def shards() -> None:
    with dask_client(processes=True, workers=1) as client:
        list(map_shards(die, [(Shard("waveforms/train/00003.h5"),)], client))


dask.config.set({"distributed.scheduler.allowed-failures": 0})
sys.argv = ["audiomill", "shards"]
cli.main()
"""


def test_the_command_ends_in_one_line_with_status_1() -> None:
    command = [sys.executable, "-c", SCRIPT]
    proc = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("error: shard waveforms/train/00003.h5: the Dask worker running it died")
    ), proc.stderr
