"""``audiomill embed`` recovers embeddings whose shard files were deleted, as its errors advise."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from features.class_index import check_committed_sizes
from features.embed import EmbedSettings, embed_dataset
from pipelines.dataset_state import load_manifest, save_manifest
from pipelines.storage import DatasetStore
from tests.dataset_builders import make_dataset
from tests.test_embed_short_clips import fake_vggish

SPLITS = {"train": [[0], [1], [0], [1]], "test": [[0], [1], [1]]}


@pytest.fixture
def vggish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbedSettings:
    return fake_vggish(tmp_path, monkeypatch)


def _embedded(root: Path, pca: str) -> Path:
    """A dataset embedded (2 train shards, 2 test shards) by a run with PCA digest ``pca``."""
    ds = make_dataset(root, SPLITS, num_classes=2, shard_clips=2, embedding_formats=("hdf5",)).root
    store = DatasetStore(str(ds))
    manifest = load_manifest(store)
    prov = {"model": "vggish", "checkpoint_sha256": "c" * 64, "pca_sha256": pca, "frontend": {}}
    manifest.stages["embed:vggish"] = {"run_id": "r", "provenance": prov, "completed": 1.0}
    save_manifest(store, manifest)
    return ds


def _all_committed(ds: Path) -> None:
    store = DatasetStore(str(ds))
    manifest = load_manifest(store)
    files = [
        (f.path, f.bytes)
        for entry in manifest.embeddings["vggish"].values()
        for shard in entry.shards
        for f in shard.files.values()
    ]
    assert len(files) == 4
    check_committed_sizes(store, files)


def test_a_deleted_model_folder_starts_afresh_with_other_weights(
    tmp_path: Path, vggish: EmbedSettings, caplog: pytest.LogCaptureFixture
):
    ds = _embedded(tmp_path / "ds", "o" * 64)
    shutil.rmtree(ds / "embeddings" / "vggish")
    with caplog.at_level(logging.WARNING, logger="features.embed"):
        summary = embed_dataset(str(ds), vggish, scheduler="synchronous")
    assert (summary.shards_done, summary.shards_skipped, summary.dropped_shards) == (4, 0, 4)
    assert "embeddings/vggish is gone: dropped its 4 shard(s)" in caplog.text
    assert summary.dropped == [r.getMessage() for r in caplog.records]
    manifest = load_manifest(DatasetStore(str(ds)))
    assert manifest.stages["embed:vggish"]["provenance"]["pca_sha256"] == "p" * 64
    _all_committed(ds)


def test_a_deleted_split_folder_is_embedded_again(tmp_path: Path, vggish: EmbedSettings):
    ds = _embedded(tmp_path / "ds", "p" * 64)
    shutil.rmtree(ds / "embeddings" / "vggish" / "test")
    summary = embed_dataset(str(ds), vggish, scheduler="synchronous")
    assert (summary.shards_done, summary.shards_skipped, summary.dropped_shards) == (2, 2, 2)
    assert "dropped 2 shard(s) of" in summary.dropped[0]
    assert "shard-00000.h5 is missing" in summary.dropped[0]
    _all_committed(ds)


def test_a_shard_file_cut_short_is_embedded_again(tmp_path: Path, vggish: EmbedSettings):
    ds = _embedded(tmp_path / "ds", "p" * 64)
    path = ds / "embeddings" / "vggish" / "train" / "shard-00001.h5"
    path.write_bytes(path.read_bytes()[:100])
    summary = embed_dataset(str(ds), vggish, scheduler="synchronous")
    assert (summary.shards_done, summary.shards_skipped, summary.dropped_shards) == (1, 3, 1)
    assert "shard-00001.h5 is 100 bytes, not" in summary.dropped[0]
    _all_committed(ds)


def test_other_weights_are_still_refused_while_their_files_remain(
    tmp_path: Path, vggish: EmbedSettings
):
    ds = _embedded(tmp_path / "ds", "o" * 64)
    shutil.rmtree(ds / "embeddings" / "vggish" / "test")
    before = (ds / "manifest.json").read_text()
    with pytest.raises(ValueError, match=r"made with another pca.*delete embeddings/vggish"):
        embed_dataset(str(ds), vggish, scheduler="synchronous")
    assert (ds / "manifest.json").read_text() == before


def test_nothing_is_dropped_when_every_file_is_there(tmp_path: Path, vggish: EmbedSettings):
    ds = _embedded(tmp_path / "ds", "p" * 64)
    summary = embed_dataset(str(ds), vggish, scheduler="synchronous")
    assert (summary.shards_done, summary.shards_skipped, summary.dropped) == (0, 4, [])
