"""A run that downloads its clips commits shards as it goes, not after its last download."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http_media_server import MediaServer
from tests.ingest_helpers import audiomill, cli_env, hdf5_clips, ledger, manifest
from tests.media import write_media

N_CLIPS = 12
SHARD_CLIPS = 2
"""With two shards' worth of clips a round (``pipelines.ingest.ROUND_SHARDS``), the run has
three rounds of four clips: c00-c03, c04-c07, c08-c11."""
HELD = "/c11.wav"
"""The last clip of the list, whose download the server holds until the test lets it go."""


@pytest.fixture
def held_server(tmp_path: Path) -> Iterator[tuple[MediaServer, threading.Event, threading.Event]]:
    """A media server that answers :data:`HELD` only once the second event is set; the first
    is set when the held clip is asked for."""
    asked, release = threading.Event(), threading.Event()
    with MediaServer(tmp_path / "media") as server:
        take = server._take

        def held_take(path: str):
            if path == HELD:
                asked.set()
                release.wait(120)
            return take(path)

        server._take = held_take
        yield server, asked, release
        release.set()


def _inputs(server: MediaServer, tmp: Path) -> Path:
    rows = []
    for i in range(N_CLIPS):
        write_media(server.root / f"c{i:02d}.wav", 2.0, 16000, freq=200 + 30 * i, seed=i)
        rows.append([server.url(f"c{i:02d}.wav"), 0.0, 1.0, "tone"])
    path = tmp / "list.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["url", "start_seconds", "end_seconds", "labels"])
        writer.writerows(rows)
    return path


def _args(segs: Path, out: Path) -> list[str]:
    return [
        "ingest", "--segments", str(segs), "--out", str(out), "--sample-rate", "16000",
        "--clip-seconds", "1", "--shard-clips", str(SHARD_CLIPS), "--workers", "1",
        "--timeout", "150",
    ]  # fmt: skip


def _start(segs: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "workflows", *_args(segs, out)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _committed_shards(out: Path) -> list[int]:
    """Indices of the shards the manifest lists (none before it exists)."""
    try:
        return [s["index"] for s in manifest(out)["splits"]["train"]["shards"]]
    except (FileNotFoundError, KeyError, ValueError):
        return []


def _wait_until_held(proc: subprocess.Popen, out: Path, asked: threading.Event) -> None:
    """Wait until the run has asked for the held clip (its last round has begun, so the
    rounds before have been adopted) and staged the other clips of that round."""
    deadline = time.time() + 120
    staged = out / ".staging" / "train" / "clips"
    while time.time() < deadline and proc.poll() is None:
        if asked.is_set() and len(list(staged.glob("*.clip"))) >= 3:
            return
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"the run did not reach its last clip: {proc.poll()=}")


def _assert_complete(out: Path) -> None:
    """Every clip is committed once, in shards numbered from 0, and nothing is left staged."""
    assert _committed_shards(out) == list(range(N_CLIPS // SHARD_CLIPS))
    rows = ledger(out)
    assert sorted(hdf5_clips(out)) == sorted(rows) and len(rows) == N_CLIPS
    assert all(r["status"] == "ok" for r in rows.values())
    assert list((out / ".staging" / "train" / "clips").glob("*")) == []
    assert "OK" in audiomill("dataset", "verify", str(out)).stdout


@pytest.mark.slow
def test_shards_are_committed_while_the_last_clip_downloads(held_server, tmp_path: Path):
    server, asked, release = held_server
    segs, out = _inputs(server, tmp_path), tmp_path / "ds"
    proc = _start(segs, out)
    try:
        _wait_until_held(proc, out, asked)
        # two rounds committed; the third (c08-c11) is staged, waiting for c11
        assert _committed_shards(out) == [0, 1, 2, 3]
        assert len(list((out / "waveforms" / "train").glob("shard-*.h5"))) == 4
        assert len(list((out / ".staging" / "train" / "clips").glob("*.clip"))) == 3
        assert manifest(out)["splits"]["train"]["num_clips"] == 8
    finally:
        release.set()
        _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-4000:]
    _assert_complete(out)


@pytest.mark.slow
def test_sigkill_between_rounds_then_resume_downloads_nothing_twice(held_server, tmp_path: Path):
    server, asked, release = held_server
    segs, out = _inputs(server, tmp_path), tmp_path / "ds"
    proc = _start(segs, out)
    _wait_until_held(proc, out, asked)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert _committed_shards(out) == [0, 1, 2, 3]  # two rounds adopted before the kill
    release.set()
    fetched = {f"/c{i:02d}.wav": server.hits(f"/c{i:02d}.wav") for i in range(N_CLIPS - 1)}

    audiomill(*_args(segs, out))
    # the clips committed or staged before the kill are not downloaded again
    assert {path: server.hits(path) for path in fetched} == fetched
    _assert_complete(out)


def test_a_round_that_is_not_the_last_packs_full_shards_only():
    from pipelines.beam_ingest import plan_shards

    clips = ["e", "a", "d", "b", "c"]
    assert list(plan_shards(("train", clips), {"train": 4}, 2, pack_rest=False)) == [
        ("train", 4, ["a", "b"]),
        ("train", 5, ["c", "d"]),
    ]
    assert list(plan_shards(("train", clips[:1]), {}, 2, pack_rest=False)) == []
    assert [len(c) for *_, c in plan_shards(("train", clips), {}, 2)] == [2, 2, 1]
