"""``dataset verify`` while a run holds the dataset's lock, and the lock's refusal in words."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.dataset_tools import VerifyReport, verify_dataset
from pipelines.storage import DatasetLock, DatasetLockedError, DatasetStore, describe_holder
from tests.dataset_builders import make_dataset
from tests.ingest_helpers import audiomill

RUN_ID = "20261204T194640-ca81c8"
STARTED = "2026-12-04T19:46:40.123456+00:00"
HOST = socket.gethostname()
INTERRUPTED = "an interrupted ingest leaves this behind: run the same ingest again"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A dataset with a waveform shard file and an embedding shard file the manifest does not
    list, as a run leaves them before it commits."""
    make_dataset(tmp_path, {"train": [[0], [1], [0]]}, num_classes=2, embedding_formats=("hdf5",))
    for kind in ("waveforms", "embeddings/vggish"):
        shard = tmp_path / kind / "train" / "shard-00000.h5"
        shutil.copy(shard, shard.with_name("shard-00001.h5"))
    return tmp_path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _plant_lock(root: Path, pid: int, owner: dict) -> None:
    """A lock record of a run of ``pid`` on this host, as :class:`DatasetLock` writes it."""
    record = {"host": HOST, "pid": pid, "started": STARTED, "token": "t", "owner": owner}
    (root / ".lock").write_text(json.dumps(record))


def _advice(report: VerifyReport) -> tuple[str, str]:
    """The hints on the waveforms and on the embeddings outside the manifest."""
    assert report.problems == [
        "waveforms/train/shard-00001.h5: not in the manifest",
        "embeddings/vggish/train/shard-00001.h5: not in the manifest",
    ]
    assert len(report.hints) == 2, report.hints
    return report.hints[0], report.hints[1]


def test_a_running_ingest_is_named_not_a_rerun_advised(root: Path):
    _plant_lock(root, os.getpid(), {"host": HOST, "pid": os.getpid(), "run_id": RUN_ID})
    waves, embedded = _advice(verify_dataset(str(root)))
    who = f"pid {os.getpid()} on host {HOST} since 2026-12-04 19:46:40 UTC (run {RUN_ID})"
    assert waves == (
        f"an ingest is running on this dataset, {who}: the above is its work in progress, not "
        "committed yet; run verify again once it has finished"
    )
    assert embedded.startswith(
        f"an interrupted embed or import leaves this behind: once the ingest running on this "
        f"dataset, {who}, has finished, run the same embed or import again"
    )


def test_a_running_embed_is_named_for_the_embeddings(root: Path):
    _plant_lock(root, os.getpid(), {"run_id": RUN_ID, "stage": "embed"})
    waves, embedded = _advice(verify_dataset(str(root)))
    who = f"pid {os.getpid()} on host {HOST} since 2026-12-04 19:46:40 UTC (embed run {RUN_ID})"
    assert waves.startswith(
        f"an interrupted ingest leaves this behind: once the embed running on this dataset, "
        f"{who}, has finished, run the same ingest again to adopt its shards"
    )
    assert embedded.startswith(f"an embed is running on this dataset, {who}: the above is its")


def test_a_lock_that_cannot_be_read_may_be_a_run_at_work(root: Path):
    (root / ".lock").write_text("")
    waves, embedded = _advice(verify_dataset(str(root)))
    assert (
        waves
        == embedded
        == (
            "the dataset is locked by an unknown run (its lock file is unreadable): the above "
            "may be its work in progress; run verify again once it has finished"
        )
    )


@pytest.mark.parametrize("lock", ["none", "stale"])
def test_without_a_live_run_a_rerun_is_advised(root: Path, lock: str):
    if lock == "stale":
        _plant_lock(root, _dead_pid(), {"run_id": RUN_ID})  # what acquire would take over
    waves, embedded = _advice(verify_dataset(str(root)))
    assert waves.startswith(INTERRUPTED)
    assert embedded.startswith("an interrupted embed or import leaves this behind: run the same")


def test_verify_cli_while_an_ingest_runs(root: Path):
    with DatasetLock(DatasetStore(str(root)), {"run_id": RUN_ID}):
        proc = audiomill("dataset", "verify", str(root), check=False)
    assert proc.returncode == 1
    assert f"hint: an ingest is running on this dataset, pid {os.getpid()} " in proc.stdout
    assert INTERRUPTED not in proc.stdout


def test_lock_refusal_is_a_sentence(tmp_path: Path):
    _plant_lock(tmp_path, os.getpid(), {"host": HOST, "pid": os.getpid(), "run_id": RUN_ID})
    with pytest.raises(DatasetLockedError) as refused:
        DatasetLock(DatasetStore(str(tmp_path)), settle_s=0.01).acquire()
    assert str(refused.value) == (
        f"dataset {tmp_path} is in use by pid {os.getpid()} on host {HOST} since "
        f"2026-12-04 19:46:40 UTC (run {RUN_ID}). Wait for that run to finish; if that process "
        f"is dead, remove {tmp_path / '.lock'} and run again."
    )


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    """A sound dataset: nothing outside the manifest, as while an ingest only downloads."""
    make_dataset(tmp_path, {"train": [[0], [1], [0]]}, num_classes=2)
    return tmp_path


RUNNING = (
    "this check covers only what was committed when it read the dataset, not the run's work "
    "in progress; run verify again once it has finished"
)


@pytest.mark.parametrize(
    ("owner", "run"), [({"run_id": RUN_ID}, "an ingest"), ({"stage": "embed"}, "an embed")]
)
def test_a_live_run_is_named_though_it_has_written_nothing_yet(
    committed: Path, owner: dict, run: str
):
    _plant_lock(committed, os.getpid(), owner)
    who = describe_holder(json.loads((committed / ".lock").read_text()))
    assert verify_dataset(str(committed)).problems == [
        f"{run} is running on this dataset, {who}: {RUNNING}"
    ]


def test_a_lock_that_cannot_be_read_is_named_though_nothing_is_left(committed: Path):
    (committed / ".lock").write_text("")
    assert verify_dataset(str(committed)).problems == [
        "the dataset is locked by an unknown run (its lock file is unreadable), which may be at "
        f"work on it: {RUNNING}"
    ]


def test_a_stale_lock_of_a_sound_dataset_is_no_problem(committed: Path):
    _plant_lock(committed, _dead_pid(), {"run_id": RUN_ID})
    assert verify_dataset(str(committed)).ok


def test_verify_cli_while_a_downloading_ingest_holds_the_lock(committed: Path):
    with DatasetLock(DatasetStore(str(committed)), {"run_id": RUN_ID}):
        proc = audiomill("dataset", "verify", str(committed), check=False)
    assert proc.returncode == 1, proc.stderr
    problem, summary = proc.stdout.splitlines()
    who = f"pid {os.getpid()} on host {HOST} since "
    assert problem.startswith(f"problem: an ingest is running on this dataset, {who}")
    assert problem.endswith(f"(run {RUN_ID}): {RUNNING}")
    assert summary == "1 files, 3 clips checked: 1 problem(s)"
