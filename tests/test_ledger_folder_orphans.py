"""Ingest's clean-up of orphans removes only the names ingest writes in each folder: shards in
a shard folder, ledger parts in a ledger folder; a user's file in a ledger folder stays, even
one named like a shard whose index no commit has."""

from __future__ import annotations

from pathlib import Path

from pipelines.dataset_state import load_manifest, remove_orphans
from pipelines.storage import DatasetStore
from tests.dataset_builders import make_dataset
from tests.test_dataset_tools_leftovers import SPLITS
from tests.test_ledger_folder_user_files import LEDGER, NOT_PARTS, users_files

WAVES = Path("waveforms/train")


def test_the_orphan_clean_up_removes_only_ingests_names_in_each_folder(tmp_path: Path) -> None:
    make_dataset(tmp_path, SPLITS, num_classes=2)
    mine = users_files(tmp_path)
    # what a run killed before its commit of shard 7 leaves: the shard and its ledger part
    (tmp_path / WAVES / "shard-00007.h5").write_bytes(b"half a shard")
    (tmp_path / LEDGER / "shard-00007.parquet").write_bytes(b"half a part")
    store = DatasetStore(str(tmp_path))
    removed = remove_orphans(store, load_manifest(store), "train")
    assert sorted(removed) == [f"{LEDGER}/shard-00007.parquet", f"{WAVES}/shard-00007.h5"]
    assert {name: (tmp_path / LEDGER / name).read_bytes() for name in NOT_PARTS} == mine
