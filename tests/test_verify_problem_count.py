"""`dataset verify` counts real problems only: the advice on what an interrupted ingest, embed
or import left behind is a hint line of its own, printed once after the problems."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.dataset_builders import make_dataset
from tests.ingest_helpers import audiomill

INGEST_HINT = (
    "hint: an interrupted ingest leaves this behind: run the same ingest again to adopt its "
    "shards (or to remove what it cannot adopt)"
)
EMBED_HINT = (
    "hint: an interrupted embed or import leaves this behind: run the same embed or import "
    "again, which replaces or removes these files"
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An embedded dataset: one waveform and one embedding shard file in split train."""
    make_dataset(tmp_path, {"train": [[0], [1], [0]]}, num_classes=2, embedding_formats=("hdf5",))
    return tmp_path


@pytest.mark.parametrize(
    ("kind", "hint"), [("waveforms", INGEST_HINT), ("embeddings/vggish", EMBED_HINT)]
)
@pytest.mark.parametrize("strays", [1, 2])
def test_the_hint_is_printed_once_and_not_counted(root: Path, kind: str, hint: str, strays: int):
    folder = root / kind / "train"
    names = [f"shard-0000{9 - n}.h5" for n in range(strays)][::-1]
    for name in names:
        shutil.copy(folder / "shard-00000.h5", folder / name)
    proc = audiomill("dataset", "verify", str(root), check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines() == [
        *(f"problem: {kind}/train/{name}: not in the manifest" for name in names),
        hint,
        f"2 files, 3 clips checked: {strays} problem(s)",
    ]


def test_both_hints_follow_the_problems_of_both_kinds(root: Path):
    for kind in ("waveforms", "embeddings/vggish"):
        folder = root / kind / "train"
        shutil.copy(folder / "shard-00000.h5", folder / "shard-00009.h5")
    proc = audiomill("dataset", "verify", str(root), check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines() == [
        "problem: waveforms/train/shard-00009.h5: not in the manifest",
        "problem: embeddings/vggish/train/shard-00009.h5: not in the manifest",
        INGEST_HINT,
        EMBED_HINT,
        "2 files, 3 clips checked: 2 problem(s)",
    ]
