"""The same local file's segment named by another path (relative, absolute, a link) is one
clip: a row naming a committed clip's audio under another id, in any split, or an earlier
row's, is a malformed line naming that clip, not a second clip (a leak between splits). The
same file's other segments, a hard link to it, and the file changed since its clip was
ingested are clips of their own."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.ingest_helpers import audiomill, ledger, manifest
from tests.shared_data import FSDD_RECORDINGS

RECORDING = FSDD_RECORDINGS / "5_theo_0.wav"


def _ingest(work: Path, segments: str):
    return audiomill(
        "ingest", "--segments", segments, "--out", str(work / "ds"), "--sample-rate", "8000",
        "--clip-seconds", "1", "--workers", "1", cwd=work,
    )  # fmt: skip


@pytest.mark.slow
def test_a_committed_file_by_its_absolute_path_is_not_a_second_clip(tmp_path: Path) -> None:
    shutil.copyfile(RECORDING, tmp_path / "c.wav")
    (tmp_path / "rel.csv").write_text("path,labels,split\nc.wav,five,train\n")
    (tmp_path / "abs.csv").write_text(f"path,labels,split\n{tmp_path / 'c.wav'},five,test\n")
    _ingest(tmp_path, "rel.csv")
    again = _ingest(tmp_path, "abs.csv")
    assert (
        f"abs.csv:2: the same audio as clip 'c.wav_0', committed in split 'train' from "
        f"{tmp_path / 'c.wav'}: not ingested again under another id"
    ) in again.stderr, again.stderr
    assert sorted(manifest(tmp_path / "ds")["splits"]) == ["train"]
    assert {c: r["status"] for c, r in ledger(tmp_path / "ds").items()} == {"c.wav_0": "ok"}

    # a file changed since its clip was ingested holds other audio: a clip id of its own takes it
    shutil.copyfile(RECORDING.with_name("1_theo_3.wav"), tmp_path / "c.wav")
    (tmp_path / "new.csv").write_text("path,labels,clip_id\nc.wav,five,c-new\n")
    taken = _ingest(tmp_path, "new.csv")
    assert "malformed:" not in taken.stderr, taken.stderr
    rows = ledger(tmp_path / "ds")
    assert {c: r["status"] for c, r in rows.items()} == {"c.wav_0": "ok", "c-new": "ok"}
    assert rows["c-new"]["waveform_sha256"] != rows["c.wav_0"]["waveform_sha256"]


@pytest.mark.slow
def test_one_file_by_several_paths_in_a_list_is_one_clip(tmp_path: Path) -> None:
    shutil.copyfile(RECORDING, tmp_path / "c.wav")
    (tmp_path / "link.wav").symlink_to(tmp_path / "c.wav")
    os.link(tmp_path / "c.wav", tmp_path / "hard.wav")  # a file of its own (benchmarks use them)
    (tmp_path / "m.csv").write_text(
        "path,labels,split,start_seconds,end_seconds\n"
        "c.wav,five,train,,\n"
        f"{tmp_path / 'c.wav'},five,test,,\n"
        "link.wav,five,train,,\n"
        "c.wav,five,train,0.05,0.25\n"
        "hard.wav,five,train,,\n"
    )
    run = _ingest(tmp_path, "m.csv")
    for line in (3, 4):
        assert (
            f"m.csv:{line}: the same audio as line 2 (clip 'c.wav_0', split 'train') by another "
            "path: not ingested twice"
        ) in run.stderr, run.stderr
    assert sorted(manifest(tmp_path / "ds")["splits"]) == ["train"]
    rows = ledger(tmp_path / "ds")
    assert {c: r["status"] for c, r in rows.items()} == dict.fromkeys(
        ("c.wav_0", "c.wav_50", "hard.wav_0"), "ok"
    )
