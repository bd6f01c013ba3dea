"""A dataset folder whose manifest.json is lost but whose shards and ledger remain is refused
by ingest before anything is written or removed: taken for a new dataset, its shards and
ledger parts would count as orphans and be deleted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.ingest import run_ingest
from tests.ingest_helpers import audiomill
from tests.media import write_media
from tests.test_ingest_driver import local_config


def _lists(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two lists of 3 local clips each (A and B) and their audio folder."""
    audio = tmp_path / "audio"
    for i in range(6):
        write_media(audio / f"c{i}.wav", 1.0, 16000, freq=300 + 50 * i, seed=i)
    lists = []
    for name, clips in (("a", range(3)), ("b", range(3, 6))):
        listing = tmp_path / f"{name}.csv"
        listing.write_text("path,labels\n" + "".join(f"c{i}.wav,tone\n" for i in clips))
        lists.append(listing)
    return lists[0], lists[1], audio


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: its size and modification time."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def test_shards_without_a_manifest_are_refused_and_left_as_they_are(tmp_path: Path) -> None:
    list_a, list_b, audio = _lists(tmp_path)
    out = tmp_path / "ds"
    run_ingest(local_config(list_a, audio, out), log=lambda line: None)
    run_ingest(local_config(list_b, audio, out), log=lambda line: None)
    (out / "manifest.json").unlink()
    before = _snapshot(out)
    assert "waveforms/train/shard-00000.h5" in before
    with pytest.raises(ValueError) as refused:
        run_ingest(local_config(list_b, audio, out), log=lambda line: None)
    message = str(refused.value)
    assert str(out) in message
    assert "no manifest.json" in message
    assert "shard-00000.h5" in message
    assert "Restore manifest.json from a backup" in message and "new --out" in message
    assert _snapshot(out) == before


@pytest.mark.parametrize(
    "rel",
    [
        "ledger/train/failures-20240101T000000-abcdef.parquet",
        "embeddings/vggish/train/shard-00000.h5",
    ],
)
def test_a_ledger_part_or_embedding_shard_alone_is_refused(tmp_path: Path, rel: str) -> None:
    list_a, _, audio = _lists(tmp_path)
    out = tmp_path / "ds"
    (out / rel).parent.mkdir(parents=True)
    (out / rel).write_bytes(b"kept")
    with pytest.raises(ValueError, match=r"no manifest\.json"):
        run_ingest(local_config(list_a, audio, out), log=lambda line: None)
    assert (out / rel).read_bytes() == b"kept"
    assert sorted(os.listdir(out)) == sorted({rel.split("/")[0]})


def test_a_folder_with_only_other_files_is_ingested(tmp_path: Path) -> None:
    list_a, _, audio = _lists(tmp_path)
    out = tmp_path / "ds"
    (out / "waveforms" / "train").mkdir(parents=True)
    (out / "waveforms" / "train" / "shard-notes.txt").write_text("mine")
    (out / "README.txt").write_text("mine")
    summary = run_ingest(local_config(list_a, audio, out), log=lambda line: None)
    assert summary.committed == 3
    assert (out / "waveforms" / "train" / "shard-notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_the_cli_refuses_with_the_status_of_other_refusals(tmp_path: Path) -> None:
    list_a, _, audio = _lists(tmp_path)
    out = tmp_path / "ds"
    base = ["ingest", "--segments", str(list_a), "--out", str(out), "--audio-root", str(audio),
            "--sample-rate", "16000", "--clip-seconds", "1", "--workers", "1"]  # fmt: skip
    audiomill(*base)
    (out / "manifest.json").unlink()
    refused = audiomill(*base, check=False)
    assert refused.returncode == 2, refused.stderr
    assert "no manifest.json" in refused.stderr
    assert (out / "waveforms" / "train" / "shard-00000.h5").exists()
