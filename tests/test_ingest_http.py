"""End to end through yt-dlp against a local HTTP server: formats, rates, channels, failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from schemas.segments import SEGMENT_SCHEMA
from tests.http_media_server import MediaServer, Script
from tests.ingest_helpers import audiomill, hdf5_clips, ledger, manifest
from tests.media import write_media

CLASSES = "index,mid,display_name\n0,/m/a,Alpha\n1,/m/b,Beta\n2,/m/c,Gamma\n"
GOOD = [
    # name, seconds, rate, channels, labels
    ("wav44k2.wav", 4.0, 44100, 2, "Alpha"),
    ("flac96k1.flac", 4.0, 96000, 1, "Beta"),
    ("ogg22k2.ogg", 4.0, 22050, 2, "Gamma;Alpha"),
    ("mp316k1.mp3", 4.0, 16000, 1, "Beta"),
    ("aiff2k1.aiff", 4.0, 2000, 1, "Gamma"),
    ("wav48k6.wav", 4.0, 48000, 6, "Alpha;Beta;Gamma"),
    ("flac8k2.flac", 4.0, 8000, 2, "Alpha"),
]


def _write_inputs(server: MediaServer, tmp: Path) -> Path:
    root = server.root
    for i, (name, secs, sr, ch, _) in enumerate(GOOD):
        write_media(root / name, secs, sr, ch, freq=300 + 100 * i, seed=i)
    write_media(root / "retry.wav", 4.0, 16000, 1)
    server.script("/retry.wav", Script(status=429, times=2))
    write_media(root / "short.wav", 1.2, 16000, 1)
    full = write_media(root / "trunc_src.wav", 4.0, 16000, 1)
    (root / "truncated.wav").write_bytes(full.read_bytes()[:2000])
    (root / "empty.wav").write_bytes(b"")
    write_media(root / "fivehundred.wav", 4.0, 16000, 1)
    server.script("/fivehundred.wav", Script(status=503))
    rows = [(n, 1.0, 3.0, labels) for n, *_, labels in GOOD]
    rows += [
        ("retry.wav", 1.0, 3.0, "Alpha"),
        ("missing.wav", 1.0, 3.0, "Alpha"),
        ("short.wav", 0.0, 2.0, "Beta"),
        ("truncated.wav", 1.0, 3.0, "Beta"),
        ("empty.wav", 1.0, 3.0, "Beta"),
        ("fivehundred.wav", 1.0, 3.0, "Beta"),
    ]
    path = tmp / "manifest.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["url", "start_seconds", "end_seconds", "labels"])
        for name, start, end, labels in rows:
            w.writerow([server.url(name), start, end, labels])
    (tmp / "classes.csv").write_text(CLASSES)
    return path


@pytest.mark.slow
def test_ingest_through_ytdlp_http(media_server: MediaServer, tmp_path: Path):
    segs = _write_inputs(media_server, tmp_path)
    out = tmp_path / "ds"
    args = [
        "ingest", "--segments", str(segs), "--classes", str(tmp_path / "classes.csv"),
        "--out", str(out), "--sample-rate", "16000", "--clip-seconds", "2",
        "--format", "hdf5,parquet", "--shard-clips", "3", "--workers", "2",
        "--retries", "2", "--timeout", "10",
    ]  # fmt: skip
    proc = audiomill(*args, env=None)
    assert "committed this run" in proc.stderr

    rows = ledger(out)
    by_name = {Path(r["source"]).name: r for r in rows.values()}
    assert by_name["missing.wav"]["reason"] == "not_found"
    assert by_name["short.wav"]["reason"] == "too_short"
    assert by_name["truncated.wav"]["reason"] == "too_short"
    assert by_name["empty.wav"]["reason"] == "decode_error"
    for name in ("short.wav", "truncated.wav"):  # named by their URL, not the download
        assert by_name[name]["detail"].startswith(f"{by_name[name]['source']}: "), name
    assert by_name["fivehundred.wav"]["reason"] == "server_error"
    assert by_name["fivehundred.wav"]["transient"] is True
    assert by_name["fivehundred.wav"]["attempts"] == 3
    assert by_name["retry.wav"]["status"] == "ok"
    assert by_name["retry.wav"]["attempts"] == 3
    assert media_server.hits("/retry.wav") >= 3

    clips = hdf5_clips(out)
    good = {n for n, *_ in GOOD} | {"retry.wav"}
    assert {Path(rows[c]["source"]).name for c in clips} == good
    label_of = {n: lab for n, *_, lab in GOOD} | {"retry.wav": "Alpha"}
    index = {"Alpha": 0, "Beta": 1, "Gamma": 2}
    for clip_id, clip in clips.items():
        name = Path(rows[clip_id]["source"]).name
        assert clip["labels"] == sorted(index[x] for x in label_of[name].split(";")), name
        assert clip["num_samples"] == 32000
        assert rows[clip_id]["shard"] == clip["shard"]
        assert np.abs(clip["waveform"]).max() > 3000, name
    m = manifest(out)
    assert m["splits"]["train"]["num_clips"] == len(good)
    assert [s["num_clips"] for s in m["splits"]["train"]["shards"]] == [3, 3, 2]
    assert (out / "reports" / "validation" / "train").is_dir()
    (requested,) = (out / "segments").glob("*.parquet")
    table = pq.read_table(requested)
    assert table.num_rows == 13 and table.schema.equals(SEGMENT_SCHEMA, check_metadata=False)
    assert any(p.suffix == ".html" for p in (out / "reports" / "validation").iterdir())

    # a re-run skips committed clips and permanent failures, retries only the 503
    again = audiomill(*args)
    assert "already done (skipped)" in again.stderr
    assert "│ processed this run       │ 1" in again.stderr or "processed this run" in again.stderr
    assert manifest(out)["splits"]["train"]["num_clips"] == len(good)
    assert media_server.hits("/missing.wav") == 1

    info = json.loads(audiomill("dataset", "info", str(out), "--json").stdout)
    assert info["splits"]["train"]["clips"] == len(good)
    assert info["splits"]["train"]["failures_by_reason"] == {
        "decode_error": 1, "not_found": 1, "server_error": 1, "too_short": 2,
    }  # fmt: skip
    assert "OK" in audiomill("dataset", "verify", str(out)).stdout


@pytest.mark.slow
def test_sections_from_a_server_without_byte_ranges_are_the_asked_audio(tmp_path: Path):
    # Such a server answers every request with the whole file: ffmpeg's seeks went wrong
    # silently (a WAV section seconds late, FLAC and Ogg sections empty).
    names = ["marker.wav", "marker.flac", "marker.ogg"]
    rows = []
    with MediaServer(tmp_path / "www", ranges=False) as server:
        for i, name in enumerate(names):
            write_media(server.root / name, 8.0, 16000, 1, freq=200 + 150 * i, seed=i)
            rows.append((server.url(name), str(server.root / name)))
        (tmp_path / "classes.csv").write_text(CLASSES)
        for column, pick in (("url", 0), ("path", 1)):
            with open(tmp_path / f"{column}.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow([column, "start_seconds", "end_seconds", "labels"])
                w.writerows([row[pick], 5.0, 7.0, "Alpha"] for row in rows)
            audiomill(
                "ingest", "--segments", str(tmp_path / f"{column}.csv"), "--classes",
                str(tmp_path / "classes.csv"), "--out", str(tmp_path / column),
                "--sample-rate", "16000", "--clip-seconds", "2",
            )  # fmt: skip
    fetched, local = hdf5_clips(tmp_path / "url"), hdf5_clips(tmp_path / "path")
    assert len(fetched) == len(local) == 3

    def by_name(clips: dict[str, dict]) -> list[dict]:
        return sorted(clips.values(), key=lambda c: c["audio_name"])

    for clip, want in zip(by_name(fetched), by_name(local), strict=True):
        assert clip["num_samples"] == want["num_samples"] == 32000
        np.testing.assert_array_equal(clip["waveform"], want["waveform"])
