"""Ingest into an S3 bucket served by a SeaweedFS server on loopback, then read it back."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from tests.ingest_helpers import audiomill, cli_env
from tests.media import write_media
from tests.s3_server import S3Server


@pytest.mark.slow
def test_ingest_to_s3_and_resume(s3_server: S3Server, tmp_path: Path):
    for i in range(5):
        write_media(
            tmp_path / "audio" / ("dog" if i % 2 else "cat") / f"c{i}.flac", 1.5, 22050, 2, seed=i
        )
    bucket = s3_server.create_bucket()
    out = f"s3://{bucket}/datasets/pets"
    env = cli_env(AUDIOMILL_STORAGE_OPTIONS=json.dumps(s3_server.storage_options))
    args = ["ingest", "--segments", str(tmp_path / "audio"), "--out", out, "--sample-rate",
            "16000", "--clip-seconds", "1.5", "--format", "hdf5,parquet", "--shard-clips", "2",
            "--workers", "2"]  # fmt: skip
    audiomill(*args, env=env)
    fs = s3_server.filesystem()
    root = f"{bucket}/datasets/pets"
    manifest = json.loads(fs.cat(f"{root}/manifest.json"))
    shards = manifest["splits"]["train"]["shards"]
    assert [s["num_clips"] for s in shards] == [2, 2, 1]
    assert fs.cat(f"{root}/classes.csv").decode().splitlines()[1:] == ["0,cat,cat", "1,dog,dog"]
    ids = []
    for shard in shards:
        with fs.open(f"{root}/{shard['files']['hdf5']['path']}", "rb") as fh, h5py.File(fh) as hf:
            assert hf.attrs["sample_rate"] == 16000
            assert hf["waveform"].shape[1] == 24000
            ids += list(hf["clip_id"].asstr()[:])
    assert len(ids) == len(set(ids)) == 5
    assert not fs.exists(f"{root}/.lock")
    staged = [p for p in fs.find(f"{root}/.staging") if p.rstrip("/") != f"{root}/.staging"]
    assert staged == []

    again = audiomill(*args, env=env)
    assert "already done (skipped)" in again.stderr
    info = json.loads(audiomill("dataset", "info", out, "--json", env=env).stdout)
    assert info["clips"] == 5 and info["splits"]["train"]["shards"] == 3
    assert "OK" in audiomill("dataset", "verify", out, env=env).stdout


@pytest.mark.slow
def test_manifest_on_s3_with_relative_paths(s3_server: S3Server, tmp_path: Path):
    for name in ("a", "b"):
        write_media(tmp_path / "audio" / f"{name}.wav", 1.0, 16000, seed=len(name))
    (tmp_path / "m.csv").write_text("path,labels\naudio/a.wav,cat\naudio/b.wav,dog\n")
    bucket = s3_server.create_bucket()
    fs = s3_server.filesystem()
    fs.put(str(tmp_path / "audio"), f"{bucket}/lists/audio", recursive=True)
    fs.put(str(tmp_path / "m.csv"), f"{bucket}/lists/m.csv")
    env = cli_env(AUDIOMILL_STORAGE_OPTIONS=json.dumps(s3_server.storage_options))
    listed = f"s3://{bucket}/lists/m.csv"
    inspected = audiomill("segments", "inspect", listed, env=env)
    assert "0 problem line(s)" in inspected.stdout
    out = tmp_path / "ds"
    audiomill("ingest", "--segments", listed, "--out", str(out), "--sample-rate", "8000",
              "--clip-seconds", "1", "--workers", "1", env=env)  # fmt: skip
    info = json.loads(audiomill("dataset", "info", str(out), "--json").stdout)
    assert info["clips"] == 2 and info["splits"]["train"]["failed"] == 0
