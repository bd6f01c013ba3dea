"""Files of a dataset that the system cannot read (a directory in their place, no permission, a
failing disk): verify reports each as that and checks the rest; other commands stop with one
error line naming the file."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest

from pipelines.dataset_state import LedgerReadError, load_manifest
from pipelines.dataset_tools import dataset_failures, dataset_info, verify_dataset
from pipelines.storage import DatasetStore
from tests.dataset_builders import make_dataset
from tests.ingest_helpers import audiomill

SPLITS = {"train": [[0], [1], [0], [1], [0], [1]]}  # shards 0 (4 clips) and 1 (2 clips)
PART = "ledger/train/shard-00000.parquet"
ERRORS = {
    "directory": (None, "Is a directory"),
    "permission": (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
    "eio": (OSError(errno.EIO, "Input/output error"), "Input/output error"),
}


def _shard_path(root: Path, index: int) -> str:
    manifest = json.loads((root / "manifest.json").read_text())
    return manifest["splits"]["train"]["shards"][index]["files"]["hdf5"]["path"]


def _make_unreadable(
    monkeypatch: pytest.MonkeyPatch, root: Path, rel: str, error: OSError | None
) -> None:
    """Put a directory in place of ``rel``, or make reading it raise ``error`` (the tests run
    as root, whom a file's mode does not stop)."""
    if error is None:
        path = root / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        path.mkdir()
        return
    read_bytes = DatasetStore.read_bytes

    def failing(store: DatasetStore, path: str) -> bytes:
        if path == rel:
            raise error
        return read_bytes(store, path)

    monkeypatch.setattr(DatasetStore, "read_bytes", failing)


@pytest.mark.parametrize("how", sorted(ERRORS))
def test_verify_reports_a_shard_it_cannot_read_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
):
    make_dataset(tmp_path, SPLITS, num_classes=2)
    rel = _shard_path(tmp_path, 0)
    error, reason = ERRORS[how]
    _make_unreadable(monkeypatch, tmp_path, rel, error)
    report = verify_dataset(str(tmp_path))
    assert report.problems == [f"{rel}: cannot be read ({reason})"]
    assert report.files_checked == 2 and report.clips_checked == 2  # shard 1's clips


@pytest.mark.parametrize("how", sorted(ERRORS))
def test_verify_reports_a_ledger_part_it_cannot_read_and_checks_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
):
    make_dataset(tmp_path, SPLITS, num_classes=2)
    error, reason = ERRORS[how]
    _make_unreadable(monkeypatch, tmp_path, PART, error)
    report = verify_dataset(str(tmp_path))
    assert report.problems == [f"{PART}: cannot be read ({reason})"]
    assert report.files_checked == 2 and report.clips_checked == 6


@pytest.mark.parametrize("how", sorted(ERRORS))
@pytest.mark.parametrize("call", [dataset_info, dataset_failures], ids=["info", "failures"])
def test_info_and_failures_name_a_ledger_part_they_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, call
):
    make_dataset(tmp_path, SPLITS, num_classes=2)
    error, reason = ERRORS[how]
    _make_unreadable(monkeypatch, tmp_path, PART, error)
    with pytest.raises(LedgerReadError) as raised:
        call(str(tmp_path))
    assert str(raised.value) == f"{tmp_path / PART}: ledger part cannot be read ({reason})"


def test_verify_reports_a_classes_csv_it_cannot_read(tmp_path: Path):
    make_dataset(tmp_path, SPLITS, num_classes=2)
    (tmp_path / "classes.csv").unlink()
    (tmp_path / "classes.csv").mkdir()
    assert verify_dataset(str(tmp_path)).problems == ["classes.csv unreadable: Is a directory"]


def test_a_manifest_that_cannot_be_read_is_named(tmp_path: Path):
    make_dataset(tmp_path, SPLITS, num_classes=2)
    (tmp_path / "manifest.json").unlink()
    (tmp_path / "manifest.json").mkdir()
    with pytest.raises(ValueError) as raised:
        load_manifest(DatasetStore(str(tmp_path)))
    want = f"{tmp_path / 'manifest.json'}: unreadable manifest (Is a directory)"
    assert str(raised.value) == want


def test_cli_commands_report_a_directory_in_place_of_a_shard_or_part(tmp_path: Path):
    make_dataset(tmp_path, SPLITS, num_classes=2)
    rel = _shard_path(tmp_path, 1)
    for path in (tmp_path / rel, tmp_path / PART):
        path.unlink()
        path.mkdir()
    proc = audiomill("dataset", "verify", str(tmp_path), check=False)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.splitlines() == [
        f"problem: {PART}: cannot be read (Is a directory)",
        f"problem: {rel}: cannot be read (Is a directory)",
        "2 files, 4 clips checked: 2 problem(s)",
    ]
    for command in ("info", "failures"):
        proc = audiomill("dataset", command, str(tmp_path), check=False)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"error: {tmp_path / PART}: ledger part cannot be read (Is a directory)"
        ]
