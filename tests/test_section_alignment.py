"""Sections fetched through ffmpeg from a server with byte ranges hold the audio of the same
rows read from local paths: sample for sample (PCM, FLAC), aligned to the sample (lossy)."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from pipelines.audio import prepare_clip
from pipelines.fetch import FetchOptions, FetchRequest, fetch_media
from pipelines.ffmpeg import ffmpeg_executable
from tests.http_media_server import MediaServer
from tests.ingest_helpers import audiomill, hdf5_clips, ledger
from tests.shared_data import FSDD_RECORDINGS, SHARED

SOURCE_SECONDS = 20.0
ROWS = [
    # file, start_s, end_s
    ("f32.wav", 10.5, 19.9),
    ("low.aiff", 2.0, 12.0),
    ("hi.flac", 4.0, 14.0),
    ("vbr.mp3", 3.3, 8.3),
    ("vbr.mp3", 0.0, 5.0),
    ("opus.ogg", 2.5, 7.5),
    ("opus.ogg", 0.0, 5.0),
    ("aac.m4a", 1.7, 6.7),
    ("aac.m4a", 0.0, 5.0),
]
LOSSLESS = {".wav", ".aiff", ".flac"}
FAILING = [("low.aiff", 25.0, 30.0), ("hi.flac", 15.0, 25.0)]
CLASSES = "index,mid,display_name\n0,/m/a,Alpha\n"
CLIP = {"target_sr": 16000, "clip_seconds": 10.0}


def _music(sr: int) -> np.ndarray:
    """20 s of librosa's Brahms, stereo, at ``sr``."""
    music, rate = sf.read(SHARED / "librosa_data" / "audio" / "brahms.hq.ogg", dtype="float32")
    music = music[: round(SOURCE_SECONDS * rate)]
    return music if sr == rate else soxr.resample(music, rate, sr)


def _speech(sr: int) -> np.ndarray:
    """20 s of FSDD digits, mono, at ``sr``."""
    recordings = sorted(FSDD_RECORDINGS.glob("*.wav"))
    speech = np.concatenate([sf.read(path, dtype="float32")[0] for path in recordings[:80]])
    speech = soxr.resample(speech, 8000, sr)
    return np.resize(speech, round(SOURCE_SECONDS * sr))


def _write_sources(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    sf.write(root / "f32.wav", _music(44100), 44100, subtype="FLOAT")
    sf.write(root / "low.aiff", _speech(2000), 2000, format="AIFF", subtype="PCM_16")
    sf.write(root / "hi.flac", _music(96000), 96000, subtype="PCM_24")
    sf.write(root / "vbr.mp3", _music(44100), 44100, format="MP3")
    sf.write(root / "opus.ogg", _music(48000), 48000, format="OGG", subtype="OPUS")
    sf.write(root / "aac.wav", _music(44100), 44100)
    aac = [ffmpeg_executable(), "-v", "error", "-i", str(root / "aac.wav")]
    subprocess.run([*aac, "-c:a", "aac", "-b:a", "128k", str(root / "aac.m4a")], check=True)
    (root / "aac.wav").unlink()


def _ingest(tmp: Path, column: str, sources: list[str]) -> Path:
    segments = tmp / f"{column}.csv"
    with open(segments, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([column, "start_seconds", "end_seconds", "labels"])
        for source, (_, start, end) in zip(sources, ROWS + FAILING, strict=True):
            writer.writerow([source, start, end, "Alpha"])
    out = tmp / column
    audiomill(
        "ingest", "--segments", str(segments), "--classes", str(tmp / "classes.csv"),
        "--out", str(out), "--sample-rate", "16000", "--clip-seconds", "10",
    )  # fmt: skip
    return out


def _by_row(dataset: Path) -> tuple[dict, dict]:
    """The stored clips and the failures of ``dataset``, keyed by (file, start_s)."""
    rows = ledger(dataset)
    key = {cid: (Path(r["source"]).name, r["start_s"]) for cid, r in rows.items()}
    clips = {key[cid]: clip for cid, clip in hdf5_clips(dataset).items()}
    failed = {key[cid]: r for cid, r in rows.items() if r["status"] == "failed"}
    return clips, failed


def _best_lag(a: np.ndarray, b: np.ndarray, max_lag: int = 800) -> int:
    """The shift of ``b`` against ``a`` (in samples) that correlates them best."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    inner = slice(max_lag, len(a) - max_lag)
    scores = [
        np.dot(a[inner], b[inner.start + lag : inner.stop + lag])
        for lag in range(-max_lag, max_lag + 1)
    ]
    return int(np.argmax(scores)) - max_lag


@pytest.mark.slow
def test_sections_from_byte_ranges_are_the_rows_read_locally(tmp_path: Path) -> None:
    (tmp_path / "classes.csv").write_text(CLASSES)
    with MediaServer(tmp_path / "www", ranges=True) as server:
        _write_sources(server.root)
        names = [name for name, *_ in ROWS + FAILING]
        fetched = _ingest(tmp_path, "url", [server.url(name) for name in names])
        local = _ingest(tmp_path, "path", [str(server.root / name) for name in names])
        assert any(status == 206 for _, status in server.requests)
    got, got_failed = _by_row(fetched)
    want, want_failed = _by_row(local)
    assert sorted(got) == sorted(want) == sorted((name, start) for name, start, _ in ROWS)
    for key, clip in got.items():
        expected = want[key]
        assert clip["num_samples"] == expected["num_samples"], key
        n = clip["num_samples"]
        stored, reference = clip["waveform"][:n], expected["waveform"][:n]
        if Path(key[0]).suffix in LOSSLESS:
            diff = np.abs(stored.astype(np.int32) - reference.astype(np.int32)).max()
            assert diff <= 1, key
        else:
            assert _best_lag(reference, stored) == 0, key
    for name, start, _ in FAILING:
        failure, expected = got_failed[(name, start)], want_failed[(name, start)]
        assert failure["reason"] == expected["reason"] == "too_short", failure["detail"]
        assert failure["detail"].split(": ", 1)[1] == expected["detail"].split(": ", 1)[1]


def test_a_section_inside_a_long_first_frame_is_the_rows_audio(
    media_server: MediaServer, tmp_path: Path
) -> None:
    # A FLAC frame at 2 kHz is 2.048 s: ffmpeg's seek inside the first one of a 6 s file
    # fails, and wrote a section without frames, which read as a row past the end.
    source = media_server.root / "low.flac"
    media_server.root.mkdir(parents=True, exist_ok=True)
    sf.write(source, _speech(2000)[:12000], 2000, subtype="PCM_16")
    options = FetchOptions(retries=0, limiter_state=str(tmp_path / "ratelimit.state"))
    request = FetchRequest("low", media_server.url(source.name), 1.5, 4.0)
    media = fetch_media(request, tmp_path / "work", options)
    assert media.sectioned
    clip = prepare_clip(media.path, start_s=1.5, end_s=4.0, timestamped=True, **CLIP)
    expected = prepare_clip(source, start_s=1.5, end_s=4.0, **CLIP)
    assert clip.num_samples == expected.num_samples == 40000
    np.testing.assert_array_equal(clip.waveform, expected.waveform)
