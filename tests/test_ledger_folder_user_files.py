"""A user's files in a split's ledger folder: the readers of the ledger take only the names
audiomill writes there for ledger parts, and ``dataset verify`` notes the others."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.dataset_state import (
    is_ledger_file_name,
    is_read_as_ledger_part,
    ledger_parts,
    read_ledger,
)
from pipelines.dataset_tools import dataset_failures, dataset_info, verify_dataset
from pipelines.pack import ledger_part_path
from pipelines.storage import DatasetStore, temporary_name
from schemas.ledger import STATUS_FAILED, ledger_table
from tests.dataset_builders import RUN, make_dataset
from tests.test_dataset_tools_leftovers import SPLITS, _foreign

LEDGER = Path("ledger/train")
NOT_PARTS = ("backup-2024.parquet", "notes.parquet", "shard-00007.h5", "table.parquet")
"""Names of a user's files in a ledger folder, sorted: none is a ledger part's."""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    make_dataset(tmp_path, SPLITS, num_classes=2, failures={"train": [("validation", [0])]})
    return tmp_path


def users_files(root: Path) -> dict[str, bytes]:
    """Write a user's files into the ledger folder, their contents by name: Parquet of the
    ledger's own columns (a failure of a clip the dataset does not have), text, a shard-like
    name, and Parquet of other columns."""
    folder = root / LEDGER
    row = {"clip_id": "old_0", "split": "train", "status": STATUS_FAILED, "reason": "fetch"}
    pq.write_table(
        ledger_table([{**row, "run_id": RUN, "recorded_at": 1.0}]), folder / "backup-2024.parquet"
    )
    (folder / "notes.parquet").write_text("my notes")
    (folder / "shard-00007.h5").write_bytes(b"mine")
    pq.write_table(pa.table({"a": [1, 2]}), folder / "table.parquet")
    return {name: (folder / name).read_bytes() for name in NOT_PARTS}


def test_only_the_names_ingest_gives_ledger_parts_are_read_as_parts() -> None:
    for part in (
        ledger_part_path("train", 3, RUN, committed=True),
        ledger_part_path("train", 3, "20261205T032653-20e0f9", committed=False),
        ledger_part_path("train", 123456, RUN, committed=False),
        f"ledger/train/failures-{RUN}.parquet",
    ):
        name = part.rsplit("/", 1)[-1]
        assert is_read_as_ledger_part(name) and is_ledger_file_name(name), name
        assert is_ledger_file_name(temporary_name(name)), name
    for name in (*NOT_PARTS, "shard-00003.parquet.bak", "rejected.parquet", "failures.parquet"):
        assert not is_read_as_ledger_part(name), name
        assert not is_ledger_file_name(name) and not is_ledger_file_name(temporary_name(name))


def test_the_readers_of_the_ledger_leave_a_users_parquet_files_out(root: Path) -> None:
    store = DatasetStore(str(root))
    before = (ledger_parts(store), read_ledger(store), dataset_info(str(root)))
    before_failures = dataset_failures(str(root))
    users_files(root)
    assert ledger_parts(store) == before[0]
    assert read_ledger(store).equals(before[1])
    assert dataset_info(str(root)) == before[2]
    assert dataset_failures(str(root)) == before_failures


def test_verify_notes_a_users_parquet_files_in_a_ledger_folder(root: Path) -> None:
    users_files(root)
    report = verify_dataset(str(root))
    assert report.ok, report.problems
    assert report.notes == [_foreign(LEDGER / name) for name in NOT_PARTS]
