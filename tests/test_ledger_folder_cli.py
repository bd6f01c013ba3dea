"""A user's files in a ledger folder of a dataset of FSDD recordings: ingest's re-run, ``dataset
info``, ``dataset failures`` and ``dataset verify`` run through and leave them as they were."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.ingest_helpers import audiomill
from tests.shared_data import FSDD_RECORDINGS

RECORDINGS = FSDD_RECORDINGS
MINE = ("backup-2024.parquet", "notes.parquet", "shard-00003.h5")
"""A user's files in the ledger folder, sorted: Parquet of other columns, text, and a
shard-like name whose index no shard of the dataset has."""


@pytest.mark.slow
def test_a_users_files_in_a_ledger_folder_stay_and_are_notes(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text(
        "path,labels\n" + "".join(f"{RECORDINGS}/{d}_george_0.wav,d{d}\n" for d in range(3))
    )
    out = tmp_path / "ds"
    ingest = ["ingest", "--segments", str(tmp_path / "list.csv"), "--out", str(out),
              "--sample-rate", "8000", "--clip-seconds", "1", "--workers", "1"]  # fmt: skip
    audiomill(*ingest)
    folder = out / "ledger" / "train"
    pq.write_table(pa.table({"a": [1, 2]}), folder / "backup-2024.parquet")
    (folder / "notes.parquet").write_text("my notes")
    (folder / "shard-00003.h5").write_bytes(b"mine")
    contents = {name: (folder / name).read_bytes() for name in MINE}
    again = audiomill(*ingest)
    assert "3 already done" in again.stderr, again.stderr
    assert {name: (folder / name).read_bytes() for name in MINE} == contents
    audiomill("dataset", "info", str(out))  # each exits 0, or the call raises
    audiomill("dataset", "failures", str(out))
    verify = audiomill("dataset", "verify", str(out))
    notes = [line for line in verify.stdout.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: ledger/train/{name}: not written by audiomill: no command reads it and ingest "
        "leaves it where it is; move it out of the dataset to silence this note"
        for name in MINE
    ], verify.stdout
    assert "problem" not in verify.stdout, verify.stdout
