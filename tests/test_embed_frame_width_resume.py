"""``audiomill embed`` on a dataset embedded at another number of example slots per clip (as
before embed followed the front end's count): its shards are dropped and embedded afresh."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from features.embed import EmbedSettings, embed_dataset
from features.embedding_shards import write_embedding_hdf5
from pipelines.dataset_state import load_manifest, save_manifest
from pipelines.storage import DatasetStore
from schemas.dataset import ShardFile
from schemas.embeddings import read_embedding_hdf5
from tests.dataset_builders import one_shard_dataset
from tests.test_embed_short_clips import fake_vggish

SR = 16000


@pytest.fixture
def vggish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbedSettings:
    return fake_vggish(tmp_path, monkeypatch)


def _embedded(root: Path, clip_seconds: float, settings: EmbedSettings) -> Path:
    """One train shard of two tones filling ``clip_seconds``, embedded."""
    n = round(clip_seconds * SR)
    wave = (8000 * np.sin(np.arange(n) * 0.05)).astype(np.int16)
    ds = one_shard_dataset(root, [(wave, n), (wave, n)], SR, clip_seconds, ["c0_0", "c1_0"])
    embed_dataset(str(ds), settings, scheduler="synchronous")
    return ds


def _as_before_the_fix(ds: Path, frames: int | None) -> None:
    """Rewrite the embedding shard with one more all-zero frame per clip, counted as real, and
    the stage entry with width ``frames`` (None: no width, as embed recorded before)."""
    store = DatasetStore(str(ds))
    manifest = load_manifest(store)
    (shard,) = manifest.embeddings["vggish"]["train"].shards
    path = shard.files["hdf5"].path
    rows, attrs = read_embedding_hdf5(ds / path)
    wide = np.concatenate([rows.x, np.zeros_like(rows.x[:, :1])], axis=1)
    local = ds.parent / "wide.h5"
    write_embedding_hdf5(
        str(local), dataclasses.replace(rows, x=wide, num_frames=rows.num_frames + 1), attrs
    )
    rec = store.commit_file(str(local), path)
    shard.files["hdf5"] = ShardFile(rec.path, rec.sha256, rec.bytes)
    stage = manifest.stages["embed:vggish"]
    del stage["frames_per_clip"]
    if frames is not None:
        stage["frames_per_clip"] = frames
    save_manifest(store, manifest)


@pytest.mark.parametrize("recorded", [None, 5])
def test_shards_of_the_old_width_are_embedded_afresh(
    tmp_path: Path, vggish: EmbedSettings, caplog: pytest.LogCaptureFixture, recorded: int | None
):
    ds = _embedded(tmp_path / "ds", 4.8, vggish)
    _as_before_the_fix(ds, recorded)
    with caplog.at_level(logging.WARNING, logger="features.embed"):
        summary = embed_dataset(str(ds), vggish, scheduler="synchronous")
    assert (summary.shards_done, summary.shards_skipped, summary.dropped_shards) == (1, 0, 1)
    assert summary.dropped == [r.getMessage() for r in caplog.records]
    (line,) = summary.dropped
    assert "keep 5 example slots per clip, not the 4" in line
    assert "dropped their 1 shard(s) (splits train: 1)" in line
    manifest = load_manifest(DatasetStore(str(ds)))
    assert manifest.stages["embed:vggish"]["frames_per_clip"] == 4
    (shard,) = manifest.embeddings["vggish"]["train"].shards
    assert shard.run_id == summary.run_id
    rows, _ = read_embedding_hdf5(ds / shard.files["hdf5"].path)
    assert rows.x.shape == (2, 4, 128) and rows.num_frames.tolist() == [4, 4]


def test_ten_second_embeddings_without_a_recorded_width_are_kept(
    tmp_path: Path, vggish: EmbedSettings
):
    ds = _embedded(tmp_path / "ds", 10.0, vggish)
    store = DatasetStore(str(ds))
    manifest = load_manifest(store)
    del manifest.stages["embed:vggish"]["frames_per_clip"]
    save_manifest(store, manifest)
    (shard,) = manifest.embeddings["vggish"]["train"].shards
    before = (ds / shard.files["hdf5"].path).read_bytes()
    summary = embed_dataset(str(ds), vggish, scheduler="synchronous")
    assert (summary.shards_done, summary.shards_skipped, summary.dropped) == (0, 1, [])
    (kept,) = load_manifest(store).embeddings["vggish"]["train"].shards
    assert kept == shard
    assert (ds / shard.files["hdf5"].path).read_bytes() == before
