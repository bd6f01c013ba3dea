"""A folder's failed clips are named by their file in ingest's summary and ``dataset failures``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from schemas.segments import sanitize_clip_id
from tests.ingest_helpers import audiomill
from tests.media import write_media


def _folder_with_bad_files(root: Path) -> tuple[Path, Path]:
    """A folder of one good clip, a silent one and a corrupt one; the two bad files."""
    write_media(root / "dogs" / "bark.wav", 1.0, 16000)
    quiet = root / "dogs" / "quiet.wav"
    sf.write(quiet, np.zeros(16000, dtype="float32"), 16000)
    corrupt = root / "cats" / "bad.wav"
    corrupt.parent.mkdir()
    corrupt.write_bytes(np.random.default_rng(0).bytes(3000))
    return corrupt, quiet


@pytest.mark.slow
def test_folder_failures_name_their_files(tmp_path: Path):
    folder = tmp_path / "audio"
    corrupt, quiet = _folder_with_bad_files(folder)
    out = tmp_path / "ds"
    proc = audiomill(
        "ingest", "--segments", str(folder), "--out", str(out), "--sample-rate", "16000",
        "--clip-seconds", "1", "--workers", "1",
    )  # fmt: skip
    corrupt_id, quiet_id = sanitize_clip_id("cats/bad.wav"), sanitize_clip_id("dogs/quiet.wav")
    assert "2 clip(s) failed:" in proc.stderr
    assert f"  {corrupt}: {corrupt_id}: decode_error: " in proc.stderr, proc.stderr
    assert f"  {quiet}: {quiet_id}: validation: " in proc.stderr, proc.stderr
    listed = audiomill("dataset", "failures", str(out)).stdout.splitlines()
    assert [line.split(": ")[:3] for line in listed] == [
        ["train", str(corrupt), corrupt_id],
        ["train", str(quiet), quiet_id],
    ]
    as_json = audiomill("dataset", "failures", str(out), "--json").stdout.splitlines()
    assert [(r["origin"], r["line"]) for r in map(json.loads, as_json)] == [
        (str(corrupt), 0),
        (str(quiet), 0),
    ]


@pytest.mark.slow
def test_a_folder_rerun_into_another_split_says_this_run_moves_it(tmp_path: Path):
    folder = tmp_path / "audio"
    write_media(folder / "dogs" / "bark.wav", 1.0, 16000)
    out = tmp_path / "ds"
    base = ["ingest", "--segments", str(folder), "--out", str(out), "--sample-rate", "16000",
            "--clip-seconds", "1", "--workers", "1"]  # fmt: skip
    audiomill(*base)
    moved = audiomill(*base, "--split", "valid", check=False)
    assert moved.returncode == 2
    assert f"{sanitize_clip_id('dogs/bark.wav')} (train, this run says valid)" in moved.stderr
