"""An ingest whose shard folder cannot be written says so in one line, and loses nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.http_media_server import MediaServer
from tests.ingest_helpers import audiomill, ledger, manifest
from tests.shared_data import FSDD_RECORDINGS
from tests.unwritable import immutable

RECORDINGS = FSDD_RECORDINGS


def _refused(args: tuple[str, ...], out: Path) -> str:
    """Run ``audiomill ARGS`` with the train shard folder of dataset ``out`` made unwritable;
    check that it ends in exit 2 and one line saying that folder cannot be written; return its
    stderr."""
    shards = out / "waveforms" / "train"
    with immutable(shards):
        proc = audiomill(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert last == f"error: cannot write a shard in {shards}: Operation not permitted", proc.stderr
    return proc.stderr


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_an_unwritable_shard_folder_is_one_error_line(tmp_path: Path, fmt: str):
    folder = tmp_path / "fold"
    for label, wav in (("zero", "0_jackson_0.wav"), ("one", "1_jackson_0.wav")):
        (folder / label).mkdir(parents=True)
        shutil.copy(RECORDINGS / wav, folder / label)
    out = tmp_path / "ds"
    args = ("ingest", "--segments", str(folder), "--out", str(out), "--sample-rate", "8000",
            "--clip-seconds", "1", "--format", fmt)  # fmt: skip
    audiomill(*args)
    shutil.copy(RECORDINGS / "1_theo_6.wav", folder / "one" / "new.wav")
    stderr = _refused(args, out)
    assert "Traceback" not in stderr and "BuildShard" not in stderr, stderr
    audiomill(*args)
    assert sorted(r["status"] for r in ledger(out).values()) == ["ok"] * 3
    assert manifest(out)["splits"]["train"]["num_clips"] == 3


def test_a_worker_process_that_cannot_write_a_shard_ends_in_one_error_line(
    tmp_path: Path,
):
    www = tmp_path / "www"
    www.mkdir()
    for wav in ("0_jackson_0.wav", "1_jackson_0.wav", "1_theo_6.wav"):
        shutil.copy(RECORDINGS / wav, www)
    out, listed = tmp_path / "ds", tmp_path / "u.csv"
    with MediaServer(www) as server:
        rows = [f"{server.url('0_jackson_0.wav')},zero", f"{server.url('1_jackson_0.wav')},one"]
        listed.write_text("url,labels\n" + "\n".join(rows) + "\n")
        args = ("ingest", "--segments", str(listed), "--out", str(out), "--sample-rate", "8000",
                "--clip-seconds", "1", "--format", "parquet")  # fmt: skip
        audiomill(*args)
        listed.write_text(f"{listed.read_text()}{server.url('1_theo_6.wav')},one\n")
        stderr = _refused(args, out)
        assert "ERROR:apache_beam" not in stderr and "Traceback" not in stderr, stderr
        audiomill(*args)
    assert sorted(r["status"] for r in ledger(out).values()) == ["ok"] * 3
