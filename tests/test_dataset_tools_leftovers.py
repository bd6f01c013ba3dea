"""``dataset verify`` on files in a split's shard folder that the manifest does not list."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.dataset_tools import verify_dataset
from tests.dataset_builders import make_dataset

SPLITS = {"train": [[0], [1], [0], [1], [0], [1]]}  # shards 0 and 1
WAVES = Path("waveforms/train")
RERUN = (
    "an interrupted ingest leaves this behind: run the same ingest again to adopt its shards "
    "(or to remove what it cannot adopt)"
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    make_dataset(tmp_path, SPLITS, num_classes=2)
    return tmp_path


def test_a_shard_temporary_is_reported_with_the_rerun_advice(root: Path):
    temporary = WAVES / "shard-00006.h5.tmp-0a1b2c"  # an interrupted shard write leaves it
    shutil.copy(root / WAVES / "shard-00001.h5", root / temporary)
    report = verify_dataset(str(root))
    assert report.problems == [f"{temporary}: not in the manifest", RERUN]
