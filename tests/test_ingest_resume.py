"""Kill ingest mid-run, re-run, and get the dataset an uninterrupted run makes."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ingest_helpers import audiomill, cli_env, hdf5_clips, ledger, manifest
from tests.media import write_media

N_CLIPS = 36


def _inputs(tmp: Path) -> Path:
    audio = tmp / "audio"
    rows = []
    for i in range(N_CLIPS):
        ext = ("wav", "flac", "ogg")[i % 3]
        rel = f"{'abc'[i % 3]}/clip{i:03d}.{ext}"
        write_media(audio / rel, 3.0, (16000, 22050, 44100)[i % 3], 1 + i % 2, 200 + 10 * i, i)
        rows.append([rel, ("dog", "cat", "bird")[i % 3]])
    path = tmp / "manifest.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "labels"])
        w.writerows(rows)
    return path


def _args(segs: Path, out: Path) -> list[str]:
    return [
        "ingest", "--segments", str(segs), "--out", str(out), "--audio-root",
        str(segs.parent / "audio"), "--sample-rate", "16000", "--clip-seconds", "3",
        "--shard-clips", "5", "--workers", "2", "--format", "hdf5,parquet",
    ]  # fmt: skip


def _under_way(out: Path) -> bool:
    """Whether the run is well under way but not finished: a third of the clips staged (clips
    fetched from remote sources), or two shards committed and not yet adopted (local files,
    whose shards are built without staging)."""
    root = out / ".staging" / "train"
    staged, commits = (
        len(list((root / k).glob("*"))) if (root / k).is_dir() else 0 for k in ("clips", "commits")
    )
    return staged >= N_CLIPS // 3 or commits >= 2


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path: Path):
    segs = _inputs(tmp_path)
    reference = tmp_path / "reference"
    audiomill(*_args(segs, reference))

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflows", *_args(segs, out)],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while not _under_way(out) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "ingest finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / ".lock").exists()
    # the killed run's committed shards are not in the manifest yet: verify says so
    interrupted = audiomill("dataset", "verify", str(out), check=False)
    assert interrupted.returncode == 1
    assert re.search(r"waveforms/train/shard-\d{5}\.h5: not in the manifest", interrupted.stdout)
    assert "an interrupted ingest leaves this behind" in interrupted.stdout

    audiomill(*_args(segs, out))
    want, got = hdf5_clips(reference), hdf5_clips(out)
    assert sorted(got) == sorted(want)
    for clip_id, clip in want.items():
        assert clip["labels"] == got[clip_id]["labels"]
        assert (clip["waveform"] == got[clip_id]["waveform"]).all()
    assert manifest(out)["splits"]["train"]["num_clips"] == N_CLIPS
    rows = ledger(out)
    assert len(rows) == N_CLIPS and all(r["status"] == "ok" for r in rows.values())
    leftovers = [p for p in (out / "waveforms").rglob("*") if ".tmp-" in p.name]
    assert leftovers == []
    assert "OK" in audiomill("dataset", "verify", str(out)).stdout
    assert not (out / ".lock").exists()
