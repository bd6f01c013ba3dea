"""A staged clip that does not read back whole (cut short by a full disk or a bad copy, or its
samples changed) is never packed: reading it names the clip and its file, and a re-run of an
interrupted ingest fetches it again instead of failing in the pack stage for ever."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from pipelines import beam_ingest, staging
from pipelines.clip_stage import ClipSettings, stage_clip
from pipelines.fetch import FetchOptions
from pipelines.ingest import IngestConfig, run_ingest
from pipelines.pack import PackSettings, pack_shard
from pipelines.storage import DatasetStore
from tests.http_media_server import MediaServer
from tests.ingest_helpers import hdf5_clips, manifest
from tests.media import write_media
from tests.test_ingest_rounds import N_CLIPS
from tests.test_ingest_rounds import _inputs as url_list

ROW = 1000


def _stage(store: DatasetStore, clip_id: str = "a_0") -> tuple[np.ndarray, str]:
    """Stage a clip of :data:`ROW` samples (800 decoded); return its samples and file."""
    wave = np.zeros(ROW, dtype=np.int16)
    wave[:800] = np.arange(800, dtype=np.int16) - 400
    meta = {
        "clip_id": clip_id,
        "num_samples": 800,
        "waveform_sha256": hashlib.sha256(wave).hexdigest(),
    }
    staging.write_staged_clip(store, "train", wave, meta)
    return wave, str(store.local_path(staging.staged_clip_path("train", clip_id)))


def _cut(path: str, drop: int) -> None:
    os.truncate(path, os.path.getsize(path) - drop)


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "ds")


def test_a_whole_staged_clip_reads_back(store: DatasetStore) -> None:
    wave, _ = _stage(store)
    got, meta = staging.read_staged_clip(store, "train", "a_0", ROW)
    np.testing.assert_array_equal(got, wave)
    assert meta["num_samples"] == 800
    assert staging.staged_clip_problem(store, "train", "a_0", ROW) is None
    assert staging.staged_clip_problem(store, "train", "missing_0", ROW) is None


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda p: _cut(p, 1), "not whole 16-bit samples"),  # "buffer size must be a multiple"
        (lambda p: _cut(p, 600), "rows hold 1000"),  # a row short of samples
        (lambda p: os.truncate(p, 20), "cut short in its header"),
        (lambda p: os.truncate(p, 3), "no staged-clip header"),
    ],
)
def test_a_cut_staged_clip_is_named_with_its_file(store: DatasetStore, damage, problem) -> None:
    _, path = _stage(store)
    damage(path)
    with pytest.raises(staging.DamagedStagedClip) as raised:
        staging.read_staged_clip(store, "train", "a_0", ROW)
    assert "a_0" in str(raised.value) and path in str(raised.value)
    assert problem in str(raised.value)
    assert staging.staged_clip_problem(store, "train", "a_0", ROW) == str(raised.value)


def test_changed_samples_do_not_match_their_digest(store: DatasetStore) -> None:
    _, path = _stage(store)
    with open(path, "r+b") as fh:
        fh.seek(-2, os.SEEK_END)
        fh.write(b"\x01\x00")
    with pytest.raises(staging.DamagedStagedClip, match="sha256"):
        staging.read_staged_clip(store, "train", "a_0")


def test_samples_short_of_the_decoded_length_are_damaged(store: DatasetStore) -> None:
    wave = np.arange(500, dtype=np.int16)
    meta = {"clip_id": "b_0", "num_samples": 800}
    staging.write_staged_clip(store, "train", wave, meta)
    with pytest.raises(staging.DamagedStagedClip, match="800"):
        staging.read_staged_clip(store, "train", "b_0")


def test_pack_shard_commits_nothing_from_a_damaged_clip(tmp_path: Path, store) -> None:
    settings = ClipSettings(16000, 1.0, 0.9, FetchOptions(limiter_state=str(tmp_path / "lim")))
    for name in ("a", "b"):
        src = write_media(tmp_path / "src" / f"{name}.wav", 1.0, 16000)
        item = {"clip_id": f"{name}_0", "split": "train", "location": str(src), "precut": False,
                "start_s": None, "end_s": None, "labels": [0], "audio_name": name,
                "origin": "list.csv", "line": 2}  # fmt: skip
        assert stage_clip(item, store, settings, str(tmp_path / "work"))["status"] == "ok"
    path = store.local_path(staging.staged_clip_path("train", "b_0"))
    _cut(str(path), 2000)
    pack = PackSettings(("hdf5", "parquet"), 16000, 1.0, 1, "0" * 64, "run1")
    with pytest.raises(staging.DamagedStagedClip, match="b_0"):
        pack_shard("train", 0, ["a_0", "b_0"], store, pack)
    assert not [p for p in store.listdir("waveforms/train") if p.startswith("shard-")]
    assert not store.exists(staging.commit_record_path("train", 0))


def _url_config(server: MediaServer, tmp_path: Path) -> IngestConfig:
    """An ingest of :data:`N_CLIPS` clips from ``server``, 4 a shard (a round stages 8)."""
    return IngestConfig(
        segments=str(url_list(server, tmp_path)),
        out=str(tmp_path / "ds"),
        sample_rate=16000,
        clip_seconds=1.0,
        shard_clips=4,
        workers=1,
        retries=0,
    )


@pytest.mark.parametrize("drop", [1, 2000])  # a cut sample, and whole samples cut off
def test_a_rerun_fetches_a_damaged_staged_clip_again(
    media_server: MediaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, drop: int
) -> None:
    cfg = _url_config(media_server, tmp_path)

    def interrupted(*args: object, **kwargs: object) -> dict:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # the run stops when its first shard is packed
        patch.setattr(beam_ingest, "pack_shard", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_ingest(cfg, log=lambda line: None)
    clips = sorted((tmp_path / "ds" / ".staging" / "train" / "clips").glob("*.clip"))
    assert len(clips) == 8  # the first round's
    _cut(str(clips[2]), drop)

    lines: list[str] = []
    summary = run_ingest(cfg, log=lines.append)
    assert (summary.committed, summary.failed, summary.dataset_clips) == (N_CLIPS, {}, N_CLIPS)
    damaged = [line for line in lines if "damaged" in line]
    assert len(damaged) == 1 and str(clips[2]) in damaged[0], lines
    committed = hdf5_clips(tmp_path / "ds")
    assert len(committed) == N_CLIPS
    assert all(c["num_samples"] == 16000 for c in committed.values())
    shards = manifest(tmp_path / "ds")["splits"]["train"]["shards"]
    assert [s["num_clips"] for s in shards] == [4, 4, 4]
