"""``dataset verify`` on the temporaries of ledger parts an interrupted ingest left in a
split's ledger folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.dataset_tools import verify_dataset
from pipelines.storage import temporary_name
from tests.dataset_builders import RUN, make_dataset
from tests.ingest_helpers import audiomill
from tests.test_dataset_tools_leftovers import RERUN, SPLITS
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
    assert report.problems == [f"{temporary}: not in the ledger", RERUN]


def test_shard_and_ledger_temporaries_share_one_rerun_advice(root: Path):
    shard = Path("waveforms/train") / temporary_name("shard-00002.h5")
    part = LEDGER / temporary_name("shard-00002.parquet")
    shutil.copy(root / "waveforms/train/shard-00001.h5", root / shard)
    shutil.copy(root / LEDGER / "shard-00001.parquet", root / part)
    report = verify_dataset(str(root))
    assert report.problems == [f"{shard}: not in the manifest", f"{part}: not in the ledger", RERUN]


def test_verify_cli_reports_the_temporary_and_exits_1(root: Path):
    temporary = LEDGER / temporary_name("shard-00001.parquet")
    shutil.copy(root / LEDGER / "shard-00001.parquet", root / temporary)
    proc = audiomill("dataset", "verify", str(root), check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines() == [
        f"problem: {temporary}: not in the ledger",
        f"problem: {RERUN}",
        "2 files, 6 clips checked: 2 problem(s)",
    ]


@pytest.mark.slow
def test_the_rerun_that_verify_advises_removes_the_ledger_temporary(tmp_path: Path):
    base, out = _ingested(tmp_path)
    temporary = LEDGER / temporary_name("shard-00000.parquet")
    shutil.copy(out / LEDGER / "shard-00000.parquet", out / temporary)
    assert verify_dataset(str(out)).problems == [f"{temporary}: not in the ledger", RERUN]
    audiomill(*base)
    assert not (out / temporary).exists()
    assert verify_dataset(str(out)).ok
