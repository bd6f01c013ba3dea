"""A local clip's source is recorded as an absolute path, so a re-run from another working
directory that names other media for the same clip ids is refused, and one that names the same
files is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.segments import sanitize_clip_id
from tests.ingest_helpers import audiomill, ledger
from tests.media import write_media

CLIP = sanitize_clip_id("a.wav")


def _ingest(cwd: Path, segments: str, out: Path, *extra: str, check: bool = True):
    return audiomill(
        "ingest", "--segments", segments, "--out", str(out), "--sample-rate", "8000",
        "--clip-seconds", "1", "--workers", "1", *extra, cwd=cwd, check=check,
    )  # fmt: skip


def _refused(proc, committed: Path, named: Path) -> None:
    assert proc.returncode == 2, proc.stderr
    assert f"{CLIP} (committed from {committed}, line 2 names {named})" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_a_rerun_from_another_cwd_with_another_audio_root_is_refused(tmp_path: Path) -> None:
    write_media(tmp_path / "audA" / "a.wav", 1.0, 8000, freq=440.0)
    write_media(tmp_path / "y" / "audB" / "a.wav", 1.0, 8000, freq=880.0)
    for cwd in ("x", "y/z"):
        (tmp_path / cwd).mkdir(parents=True)
    (tmp_path / "m.csv").write_text("path,labels\na.wav,dog\n")
    out = tmp_path / "ds"
    _ingest(tmp_path / "x", "../m.csv", out, "--audio-root", "../audA")
    first = tmp_path / "audA" / "a.wav"
    assert ledger(out)[CLIP]["source"] == str(first)
    other = _ingest(tmp_path / "y" / "z", str(tmp_path / "m.csv"), out, "--audio-root", "../audB",
                    check=False)  # fmt: skip
    _refused(other, first, tmp_path / "y" / "audB" / "a.wav")
    same = _ingest(tmp_path / "y", "../m.csv", out, "--audio-root", "../audA")
    assert "1 already done" in same.stderr, same.stderr


@pytest.mark.slow
def test_a_rerun_from_another_cwd_of_a_manifests_relative_path_is_refused(tmp_path: Path) -> None:
    write_media(tmp_path / "X" / "a.wav", 1.0, 8000, freq=440.0)
    write_media(tmp_path / "other" / "a.wav", 1.0, 8000, freq=880.0)
    (tmp_path / "X" / "m.csv").write_text("path,labels\na.wav,dog\n")
    out = tmp_path / "ds"
    _ingest(tmp_path, "X/m.csv", out)
    first = tmp_path / "X" / "a.wav"
    assert ledger(out)[CLIP]["source"] == str(first)
    other = _ingest(tmp_path / "other", "../X/m.csv", out, "--audio-root", ".", check=False)
    _refused(other, first, tmp_path / "other" / "a.wav")
