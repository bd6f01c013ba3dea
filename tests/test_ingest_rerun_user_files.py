"""A re-run of ingest removes only what ingest wrote and no commit accounts for: files and
folders a user put among a split's shards stay, and ``dataset verify`` names them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.dataset_state import is_ledger_file_name, is_shard_file_name, is_waveform_file_name
from pipelines.dataset_tools import verify_dataset
from pipelines.storage import temporary_name
from schemas.dataset import shard_index
from tests.ingest_helpers import audiomill
from tests.media import write_media

LOOK_ALIKES = ("notes.txt.tmp-old", "shard-00000.h5.tmp-backup", "shard-00001.h5.tmp-0a1b2c")
"""A user's files that end like a temporary but are none that ingest writes: a suffix other
than :func:`pipelines.storage.temporary_name`'s, or a file that is not a shard's."""


def test_shard_index_reads_only_shard_names() -> None:
    assert shard_index("shard-00003.h5") == 3
    assert shard_index("shard-00012.parquet") == 12
    for name in ("shard-00003.h5.tmp-ab12", "README.txt", "shard-3.h5", "shard-00003.wav", "run"):
        assert shard_index(name) is None, name


def test_only_temporary_names_of_our_files_are_ours() -> None:
    assert is_shard_file_name(temporary_name("shard-00003.h5"))
    assert is_waveform_file_name(temporary_name("shard-00003.parquet"))
    assert is_waveform_file_name(temporary_name("shard-00003.h5.waveforms"))
    assert not is_shard_file_name(temporary_name("shard-00003.h5.waveforms"))  # not embeddings'
    for name in (*LOOK_ALIKES, "shard-00003.h5.waveforms", temporary_name("notes.txt")):
        assert not is_waveform_file_name(name), name


def _ingested(tmp_path: Path) -> tuple[list[str], Path]:
    """Ingest one clip into ``tmp_path/ds``; return the command's arguments and the dataset."""
    write_media(tmp_path / "audio" / "a.wav", 1.0, 16000)
    (tmp_path / "list.csv").write_text("path,labels\naudio/a.wav,x\n")
    out = tmp_path / "ds"
    base = ["ingest", "--segments", str(tmp_path / "list.csv"), "--out", str(out),
            "--sample-rate", "16000", "--clip-seconds", "1", "--workers", "1"]  # fmt: skip
    audiomill(*base)
    return base, out


@pytest.mark.slow
def test_a_rerun_leaves_a_users_files_among_the_shards(tmp_path: Path) -> None:
    base, out = _ingested(tmp_path)
    split = out / "waveforms" / "train"
    (split / "README.txt").write_text("my notes")
    (split / "myrun").mkdir()
    (split / "myrun" / "metrics.json").write_text("{}")
    again = audiomill(*base)
    assert "1 already done" in again.stderr, again.stderr
    assert (split / "README.txt").read_text() == "my notes"
    assert (split / "myrun" / "metrics.json").exists()
    assert (split / "shard-00000.h5").exists()


@pytest.mark.slow
def test_a_rerun_removes_leftover_temporaries_and_keeps_look_alikes(tmp_path: Path) -> None:
    base, out = _ingested(tmp_path)
    split = out / "waveforms" / "train"
    mine = [*LOOK_ALIKES, temporary_name("notes.txt")]
    for name in mine:
        (split / name).write_text("mine")
    # what an interrupted shard write and a shard build without HDF5 leave
    leftovers = [temporary_name("shard-00001.h5"), temporary_name("shard-00001.h5.waveforms")]
    for name in leftovers:
        (split / name).write_bytes(b"half a shard")
    audiomill(*base)
    assert sorted(p.name for p in split.iterdir()) == sorted([*mine, "shard-00000.h5"])
    assert (split / "shard-00000.h5.tmp-backup").read_text() == "mine"
    report = verify_dataset(str(out))
    assert report.problems == [] and len(report.notes) == len(mine)


def test_only_temporary_names_of_ledger_parts_are_a_ledgers() -> None:
    for part in ("shard-00003.parquet", "rejected-20261205T032653-20e0f9-00002.parquet",
                 "failures-20261205T032653-20e0f9.parquet"):  # fmt: skip
        assert is_ledger_file_name(part) and is_ledger_file_name(temporary_name(part)), part
    for name in ("notes.txt.tmp-old", "shard-00003.parquet.tmp-backup", temporary_name("a.csv")):
        assert not is_ledger_file_name(name), name


@pytest.mark.slow
def test_a_rerun_removes_the_ledgers_leftover_temporaries_and_keeps_look_alikes(
    tmp_path: Path,
) -> None:
    base, out = _ingested(tmp_path)
    ledger = out / "ledger" / "train"
    before = sorted(p.name for p in ledger.iterdir())
    mine = ["notes.txt.tmp-old", "shard-00001.parquet.tmp-backup", temporary_name("notes.txt")]
    for name in mine:
        (ledger / name).write_text("mine")
    # what a run killed while committing a ledger part leaves
    for part in ("shard-00001.parquet", "failures-20261205T032653-20e0f9.parquet"):
        (ledger / temporary_name(part)).write_bytes(b"half a part")
    audiomill(*base)
    assert sorted(p.name for p in ledger.iterdir()) == sorted([*before, *mine])
