"""``dataset verify`` on files in a split's shard folder that the manifest does not list."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.dataset_tools import verify_dataset
from pipelines.storage import temporary_name
from tests.dataset_builders import make_dataset
from tests.ingest_helpers import audiomill

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


# an interrupted shard write, or a shard build without HDF5, leaves it
@pytest.mark.parametrize("name", ["shard-00006.h5", "shard-00006.h5.waveforms"])
def test_a_shard_temporary_is_reported_with_the_rerun_advice(root: Path, name: str):
    temporary = WAVES / temporary_name(name)
    shutil.copy(root / WAVES / "shard-00001.h5", root / temporary)
    report = verify_dataset(str(root))
    assert (report.problems, report.hints) == ([f"{temporary}: not in the manifest"], [RERUN])


def _foreign(rel: Path) -> str:
    return (
        f"{rel}: not written by audiomill: no command reads it and ingest leaves it where it "
        "is; move it out of the dataset to silence this note"
    )


@pytest.mark.parametrize(
    "name",
    [
        "notes.txt",
        "shard-00001.h5.bak",
        "notes.txt.tmp-0a1b2c",
        "shard-00001.h5.tmp-backup",
        "shard-00006.h5.tmp-0a1b2c",
        "shard-00006.h5.waveforms",
        "notes.txt.tmp-5f0c3c6ad0b84f7e9d1c2b3a4e5f6071",  # as a temporary of ours, not ours
    ],
)
def test_a_file_audiomill_does_not_write_is_a_note_not_a_problem(root: Path, name: str):
    (root / WAVES / name).write_text("mine")
    report = verify_dataset(str(root))
    assert report.problems == [] and report.ok
    assert report.notes == [_foreign(WAVES / name)]


def test_the_rerun_advice_is_for_shard_files_alone(root: Path):
    shutil.copy(root / WAVES / "shard-00001.h5", root / WAVES / "shard-00002.h5")
    (root / WAVES / "notes.txt").write_text("mine")
    report = verify_dataset(str(root))
    assert report.problems == [f"{WAVES / 'shard-00002.h5'}: not in the manifest"]
    assert report.hints == [RERUN]
    assert report.notes == [_foreign(WAVES / "notes.txt")]


def test_a_file_of_the_users_among_embeddings_is_a_note(tmp_path: Path):
    make_dataset(tmp_path, SPLITS, num_classes=2, embedding_formats=("hdf5",))
    rel = Path("embeddings/vggish/train/README")
    (tmp_path / rel).write_text("mine")
    report = verify_dataset(str(tmp_path))
    assert (report.problems, report.notes) == ([], [_foreign(rel)])


def test_verify_cli_prints_the_note_and_exits_0(root: Path):
    (root / WAVES / "notes.txt").write_text("mine")
    proc = audiomill("dataset", "verify", str(root), check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"note: {_foreign(WAVES / 'notes.txt')}",
        "2 files, 6 clips checked: OK",
    ]
