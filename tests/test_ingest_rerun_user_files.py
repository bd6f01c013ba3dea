"""A re-run of ingest removes only what ingest wrote and no commit accounts for: files and
folders a user put among a split's shards stay, and ``dataset verify`` names them."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.dataset import shard_index
from tests.ingest_helpers import audiomill
from tests.media import write_media


def test_shard_index_reads_only_shard_names() -> None:
    assert shard_index("shard-00003.h5") == 3
    assert shard_index("shard-00012.parquet") == 12
    for name in ("shard-00003.h5.tmp-ab12", "README.txt", "shard-3.h5", "shard-00003.wav", "run"):
        assert shard_index(name) is None, name


@pytest.mark.slow
def test_a_rerun_leaves_a_users_files_among_the_shards(tmp_path: Path) -> None:
    write_media(tmp_path / "audio" / "a.wav", 1.0, 16000)
    (tmp_path / "list.csv").write_text("path,labels\naudio/a.wav,x\n")
    out = tmp_path / "ds"
    base = ["ingest", "--segments", str(tmp_path / "list.csv"), "--out", str(out),
            "--sample-rate", "16000", "--clip-seconds", "1", "--workers", "1"]  # fmt: skip
    audiomill(*base)
    split = out / "waveforms" / "train"
    (split / "README.txt").write_text("my notes")
    (split / "myrun").mkdir()
    (split / "myrun" / "metrics.json").write_text("{}")
    again = audiomill(*base)
    assert "1 already done" in again.stderr, again.stderr
    assert (split / "README.txt").read_text() == "my notes"
    assert (split / "myrun" / "metrics.json").exists()
    assert (split / "shard-00000.h5").exists()
