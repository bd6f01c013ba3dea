"""pipelines/decode_ahead.py: clips decoded while the segment list is validated, served once,
only for the identical request; and ingest's use of them."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from pipelines import decode_ahead, expectations_service, ingest, shard_build
from pipelines.beam_ingest import builds_in_this_process
from pipelines.clip_stage import ClipSettings, prepare_item
from pipelines.fetch import FetchOptions
from pipelines.ingest import IngestConfig, run_ingest
from tests.ingest_helpers import hdf5_clips, ledger
from tests.media import write_media

SETTINGS = ClipSettings(16000, 1.0, 0.9, FetchOptions())
TIMINGS = {"fetch_seconds", "decode_seconds"}


@pytest.fixture(autouse=True)
def _nothing_left_ahead():
    yield
    decode_ahead.discard()


def _items(tmp_path: Path, n: int) -> list[dict]:
    items = []
    for i in range(n):
        path = tmp_path / f"c{i}.wav"
        write_media(path, 1.0, 22050, channels=2, freq=300 + 40 * i, seed=i)
        items.append(
            {
                "clip_id": f"c{i}",
                "split": "train",
                "location": str(path),
                "precut": True,
                "start_s": 0.0,
                "end_s": None,
                "labels": [0],
                "audio_name": f"c{i}.wav",
                "origin": "list.csv",
                "line": i + 2,
            }
        )
    return items


def _without_timings(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in TIMINGS}


def test_take_serves_what_prepare_item_makes_once(tmp_path: Path):
    items = _items(tmp_path, 3)
    decode_ahead.start(items, SETTINGS, threads=2)
    for item in items:
        got = decode_ahead.take(item, SETTINGS)
        direct = prepare_item(item, SETTINGS, str(tmp_path))
        assert got["status"] == "ok"
        np.testing.assert_array_equal(got["waveform"], direct["waveform"])
        assert got["waveform"].flags.owndata  # not a row of the array the clips wait in
        assert _without_timings(got["meta"]) == _without_timings(direct["meta"])
        assert decode_ahead.take(item, SETTINGS) is None  # served once


def test_take_refuses_another_request(tmp_path: Path):
    items = _items(tmp_path, 3)
    decode_ahead.start(items, SETTINGS, threads=1)
    assert decode_ahead.take({**items[0], "end_s": 0.5}, SETTINGS) is None
    assert decode_ahead.take({**items[1], "labels": [1]}, SETTINGS) is None
    other = ClipSettings(32000, 1.0, 0.9, FetchOptions())
    assert decode_ahead.take(items[2], other) is None
    assert decode_ahead.take({**items[2], "clip_id": "elsewhere"}, SETTINGS) is None
    assert decode_ahead.take(items[2], SETTINGS)["status"] == "ok"
    decode_ahead.discard()
    decode_ahead.start(items[:1], SETTINGS, threads=1)
    decode_ahead.discard()
    assert decode_ahead.take(items[0], SETTINGS) is None


def test_stop_cancels_what_has_not_started(tmp_path: Path, monkeypatch):
    items = _items(tmp_path, 3)
    release, started = threading.Event(), threading.Event()
    calls = []

    def slow_first(item, settings, workdir):
        calls.append(item["clip_id"])
        if item["clip_id"] == "c0":
            started.set()
            release.wait(10)
        return prepare_item(item, settings, workdir)

    monkeypatch.setattr(decode_ahead, "prepare_item", slow_first)
    decode_ahead.start(items, SETTINGS, threads=1)
    assert started.wait(10)
    decode_ahead.stop()
    release.set()
    assert decode_ahead.take(items[0], SETTINGS)["status"] == "ok"  # it was under way
    assert decode_ahead.take(items[1], SETTINGS) is None
    assert decode_ahead.take(items[2], SETTINGS) is None
    assert calls == ["c0"]


def test_keep_drops_the_clips_the_plan_left_out(tmp_path: Path):
    items = _items(tmp_path, 3)
    decode_ahead.start(items, SETTINGS, threads=1)
    decode_ahead.keep([items[2], {**items[1], "clip_id": "another"}, items[0]])
    assert decode_ahead.take(items[1], SETTINGS) is None
    assert decode_ahead.take(items[0], SETTINGS)["status"] == "ok"
    assert decode_ahead.take(items[2], SETTINGS)["status"] == "ok"


def test_a_failed_decode_is_served_as_its_failure(tmp_path: Path):
    item = {**_items(tmp_path, 1)[0], "location": str(tmp_path / "missing.wav")}
    decode_ahead.start([item], SETTINGS, threads=1)
    assert decode_ahead.take(item, SETTINGS)["status"] == "failed"


def test_clips_ahead_fit_the_budget():
    assert decode_ahead.clips_ahead(320_000) == decode_ahead.AHEAD_BYTES // 640_000
    assert decode_ahead.clips_ahead(320_000 * 6) == decode_ahead.AHEAD_BYTES // (640_000 * 6)
    assert decode_ahead.clips_ahead(10**12) == 1


def test_builds_in_this_process_follows_the_runner_options():
    assert builds_in_this_process([], workers=2)
    assert builds_in_this_process([], workers=4)
    assert not builds_in_this_process([], workers=5)
    assert builds_in_this_process(["--direct_running_mode=in_memory"], workers=8)
    assert not builds_in_this_process(["--direct_running_mode=multi_processing"], workers=2)
    assert not builds_in_this_process(["--runner=FlinkRunner"], workers=1)


def _config(tmp_path: Path, name: str, clips: int) -> IngestConfig:
    audio = tmp_path / "audio"
    if not audio.exists():
        for i in range(clips):
            write_media(audio / f"c{i}.wav", 1.0, 44100, channels=2, freq=200 + 30 * i, seed=i)
    listing = tmp_path / "list.csv"
    rows = [f"c{i}.wav,,,tone" for i in range(clips)]
    rows.append(f"c{clips - 1}.wav,0.8,0.2,tone")  # start after end: the validation rejects it
    listing.write_text("path,start_seconds,end_seconds,labels\n" + "\n".join(rows) + "\n")
    return IngestConfig(
        segments=str(listing),
        out=str(tmp_path / name),
        audio_root=str(audio),
        source="local",
        sample_rate=16000,
        clip_seconds=1.0,
        shard_clips=4,
        workers=2,
    )


def _dataset(root: Path) -> tuple[dict, dict]:
    rows = {
        clip_id: (clip["waveform"].tobytes(), clip["labels"])
        for clip_id, clip in hdf5_clips(root).items()
    }
    rows_ledger = {
        clip_id: (r["status"], r["reason"], r["waveform_sha256"])
        for clip_id, r in ledger(root).items()
    }
    return rows, rows_ledger


def test_ingest_takes_the_clips_it_decoded_while_validating(tmp_path: Path, monkeypatch):
    """With the validation waiting for them, every clip of the first shard is decoded ahead;
    the shard builder decodes only the rest, and the dataset equals one built without."""
    monkeypatch.setattr(decode_ahead, "AHEAD_BYTES", 4 * 2 * 16000)  # the first shard's 4 clips
    decoded_ahead, all_four = [], threading.Event()
    real_ahead = decode_ahead.prepare_item

    def ahead_counting(item, settings, workdir):
        result = real_ahead(item, settings, workdir)
        decoded_ahead.append(item["clip_id"])
        if len(decoded_ahead) == 4:
            all_four.set()
        return result

    monkeypatch.setattr(decode_ahead, "prepare_item", ahead_counting)
    real_validate = expectations_service.validate

    def validate_after_four(frame, suite, *args):
        if suite == "segments":
            assert all_four.wait(60)
        return real_validate(frame, suite, *args)

    monkeypatch.setattr(expectations_service, "validate", validate_after_four)
    built_here = []
    real_prepare = shard_build.prepare_item

    def counting(item, settings, workdir):
        built_here.append(item["clip_id"])
        return real_prepare(item, settings, workdir)

    monkeypatch.setattr(shard_build, "prepare_item", counting)
    ahead = run_ingest(_config(tmp_path, "ahead", clips=7), log=lambda line: None)
    assert sorted(built_here) == ["c4.wav_0", "c5.wav_0", "c6.wav_0"]

    monkeypatch.setattr(expectations_service, "validate", real_validate)
    monkeypatch.setattr(ingest, "builds_in_this_process", lambda beam_args, workers: False)
    built_here.clear()
    plain = run_ingest(_config(tmp_path, "plain", clips=7), log=lambda line: None)
    assert sorted(built_here) == [f"c{i}.wav_0" for i in range(7)]
    assert (ahead.committed, ahead.failed) == (plain.committed, plain.failed)
    assert (ahead.committed, ahead.failed) == (7, {"validation": 1})
    assert _dataset(tmp_path / "ahead") == _dataset(tmp_path / "plain")
