"""``dataset verify`` on damaged committed shards: the damage, and nothing an ingest left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.dataset_tools import verify_dataset
from tests.dataset_builders import make_dataset
from tests.ingest_helpers import audiomill

SPLITS = {"train": [[0], [1], [0], [1], [0], [1]]}  # shards 0 (4 clips) and 1 (2 clips)


def _shard_path(root: Path, index: int) -> str:
    manifest = json.loads((root / "manifest.json").read_text())
    return manifest["splits"]["train"]["shards"][index]["files"]["hdf5"]["path"]


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "remove", "truncate"])
def test_damaged_shard_is_reported_alone(tmp_path: Path, damage: str):
    make_dataset(tmp_path, SPLITS, num_classes=2)
    rel = _shard_path(tmp_path, 0)
    size = (tmp_path / rel).stat().st_size
    if damage == "flip":
        _flip_byte(tmp_path / rel)
    elif damage == "truncate":  # one problem line that says both
        (tmp_path / rel).write_bytes((tmp_path / rel).read_bytes()[:1000])
    else:
        (tmp_path / rel).unlink()
    want = {
        "flip": f"{rel}: sha256 mismatch",
        "remove": f"{rel}: missing",
        "truncate": f"{rel}: sha256 mismatch (size 1000 != manifest {size})",
    }[damage]
    report = verify_dataset(str(tmp_path))
    assert report.problems == [want]
    assert report.clips_checked == 2  # shard 1's clips


def test_clips_of_an_unlisted_shard_are_still_reported(tmp_path: Path):
    make_dataset(tmp_path, SPLITS, num_classes=2)
    _flip_byte(tmp_path / _shard_path(tmp_path, 0))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["splits"]["train"]["shards"][1]
    manifest["splits"]["train"]["num_clips"] = 4
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    report = verify_dataset(str(tmp_path))
    assert report.problems[0] == f"{_shard_path(tmp_path, 0)}: sha256 mismatch"
    assert "split train: 2 clip(s) recorded as committed in the ledger" in report.problems[-1]
    assert len(report.hints) == 1
    assert report.hints[0].startswith("an interrupted ingest leaves this behind")


def test_verify_cli_on_a_damaged_shard(tmp_path: Path):
    make_dataset(tmp_path, SPLITS, num_classes=2)
    rel = _shard_path(tmp_path, 0)
    _flip_byte(tmp_path / rel)
    proc = audiomill("dataset", "verify", str(tmp_path), check=False)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f"problem: {rel}: sha256 mismatch",
        "2 files, 2 clips checked: 1 problem(s)",
    ]
