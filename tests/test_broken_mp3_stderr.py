"""Broken MP3s in an ingest: what libmpg123 (libsndfile's MP3 decoder) writes about them to file
descriptor 2 stays off stderr, while the ledger records the failures and our own messages, the
progress bar and the summary still reach stderr."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.inference_fixtures import served_runs
from tests.ingest_helpers import REPO, audiomill, ledger
from tests.media import write_media

LIBRARY_WORDS = ("Note: ", "Warning: ", "Illegal Audio-MPEG-Header", "resync", "src/libmpg123/")


def library_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(w in line for w in LIBRARY_WORDS)]


def broken_mp3s(folder: Path) -> dict[str, Path]:
    """A good MP3 and three broken ones, each of which makes libmpg123 write to stderr."""
    good = write_media(folder / "good.mp3", 2.0, 16000)
    data = good.read_bytes()
    junk = np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    broken = {
        "cut": data[: len(data) // 3],  # a download that stopped early
        "junk": junk,  # anything else named .mp3
        "spliced": data[:2000] + junk[:3000] + data[5000:],  # damage in the middle
    }
    paths = {"good": good}
    for name, content in broken.items():
        paths[name] = folder / f"{name}.mp3"
        paths[name].write_bytes(content)
    return paths


@pytest.mark.slow
def test_ingest_keeps_the_mp3_decoders_notes_off_stderr(tmp_path: Path) -> None:
    paths = broken_mp3s(tmp_path / "audio")
    rows = "".join(f"audio/{p.name},x\n" for p in paths.values())
    (tmp_path / "list.csv").write_text(f"path,labels\n{rows}audio/missing.mp3,x\n")
    out = tmp_path / "ds"
    done = audiomill("ingest", "--segments", str(tmp_path / "list.csv"), "--out", str(out),
                     "--sample-rate", "16000", "--clip-seconds", "1", "--workers", "1")  # fmt: skip
    assert library_lines(done.stderr) == [], done.stderr
    reasons = {clip.split("-")[0]: row["reason"] for clip, row in ledger(out).items()}
    assert reasons["audio_junk.mp3"] == "decode_error"
    assert reasons["audio_missing.mp3"] == "not_found"
    assert "clips " in done.stderr  # the progress bar
    failed = [line for line in done.stderr.splitlines() if ": decode_error: " in line]
    assert len(failed) == 1 and "junk.mp3: not readable by soundfile or ffmpeg" in failed[0]
    assert any(": not_found: " in line for line in done.stderr.splitlines()), done.stderr


@pytest.mark.slow
def test_predict_on_a_damaged_mp3_keeps_the_decoders_notes_off_stderr(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> None:
    served = served_runs(tmp_path_factory, worker_id)
    spliced = broken_mp3s(tmp_path)["spliced"]
    args = ["predict", str(served.wave), str(spliced), "--dataset", str(served.root), "--json"]
    done = audiomill(*args)
    assert library_lines(done.stderr) == [], done.stderr
    assert '"kind": "file"' in done.stdout


CHILDREN_AFTER_DECODING = """
import os, sys
from pipelines.audio import decode
for path in sys.argv[1:]:
    decode(path)
pid = os.getpid()
print(open(f"/proc/{pid}/task/{pid}/children").read().split())
"""


@pytest.mark.parametrize(
    ("names", "filtered"), [(("a.wav", "b.flac", "c.ogg"), False), (("a.wav", "d.mp3"), True)]
)
def test_only_a_decode_that_may_be_mpeg_starts_the_stderr_filter(
    tmp_path: Path, names: tuple[str, ...], filtered: bool
) -> None:
    paths = [str(write_media(tmp_path / name, 0.5, 16000)) for name in names]
    done = subprocess.run(
        [sys.executable, "-c", CHILDREN_AFTER_DECODING, *paths],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    assert bool(ast.literal_eval(done.stdout.strip())) == filtered, done.stdout
