"""``dataset verify`` on files in a split's ledger folder that no reader takes for a ledger
part: the temporaries of ledger parts an interrupted ingest left, and a user's files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.dataset_tools import verify_dataset
from pipelines.storage import temporary_name
from tests.dataset_builders import RUN, make_dataset
from tests.ingest_helpers import audiomill
from tests.test_dataset_tools_leftovers import RERUN, SPLITS, _foreign
from tests.test_ingest_rerun_user_files import _ingested

LEDGER = Path("ledger/train")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    make_dataset(tmp_path, SPLITS, num_classes=2, failures={"train": [("validation", [0])]})
    return tmp_path


@pytest.mark.parametrize(
    "part", ["shard-00001.parquet", "shard-00002.parquet", f"failures-{RUN}.parquet"]
)
def test_a_ledger_part_temporary_is_reported_with_the_rerun_advice(root: Path, part: str):
    temporary = LEDGER / temporary_name(part)
    shutil.copy(root / LEDGER / "shard-00001.parquet", root / temporary)
    report = verify_dataset(str(root))
    assert (report.problems, report.hints) == ([f"{temporary}: not in the ledger"], [RERUN])


def test_shard_and_ledger_temporaries_share_one_rerun_advice(root: Path):
    shard = Path("waveforms/train") / temporary_name("shard-00002.h5")
    part = LEDGER / temporary_name("shard-00002.parquet")
    shutil.copy(root / "waveforms/train/shard-00001.h5", root / shard)
    shutil.copy(root / LEDGER / "shard-00001.parquet", root / part)
    report = verify_dataset(str(root))
    assert report.problems == [f"{shard}: not in the manifest", f"{part}: not in the ledger"]
    assert report.hints == [RERUN]


USERS = (
    "notes.parquet.tmp-5f0c3c6ad0b84f7e9d1c2b3a4e5f6071",  # as a temporary of ours, not ours
    "notes.txt",
    "shard-00000.parquet.bak",
    "shard-00000.parquet.tmp-backup",
)
"""A user's files in a ledger folder, sorted: no ledger part, and none of our temporaries."""


def test_files_of_the_users_in_a_ledger_folder_are_notes(root: Path):
    for name in USERS:
        (root / LEDGER / name).write_text("mine")
    report = verify_dataset(str(root))
    assert report.ok, report.problems
    assert report.notes == [_foreign(LEDGER / name) for name in USERS]


def test_the_ledger_folder_of_a_split_without_shards_is_looked_at_too(root: Path):
    (root / "ledger/extra").mkdir()
    (root / "ledger/extra/notes.txt").write_text("mine")
    report = verify_dataset(str(root))
    assert (report.problems, report.notes) == ([], [_foreign(Path("ledger/extra/notes.txt"))])


def test_verify_cli_reports_the_temporary_notes_the_users_file_and_exits_1(root: Path):
    temporary = LEDGER / temporary_name("shard-00001.parquet")
    shutil.copy(root / LEDGER / "shard-00001.parquet", root / temporary)
    (root / LEDGER / "notes.txt").write_text("mine")
    proc = audiomill("dataset", "verify", str(root), check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines() == [
        f"problem: {temporary}: not in the ledger",
        f"hint: {RERUN}",
        f"note: {_foreign(LEDGER / 'notes.txt')}",
        "2 files, 6 clips checked: 1 problem(s)",
    ]


@pytest.mark.slow
def test_the_rerun_that_verify_advises_removes_the_ledger_temporary(tmp_path: Path):
    base, out = _ingested(tmp_path)
    temporary = LEDGER / temporary_name("shard-00000.parquet")
    shutil.copy(out / LEDGER / "shard-00000.parquet", out / temporary)
    report = verify_dataset(str(out))
    assert (report.problems, report.hints) == ([f"{temporary}: not in the ledger"], [RERUN])
    audiomill(*base)
    assert not (out / temporary).exists()
    assert verify_dataset(str(out)).ok
