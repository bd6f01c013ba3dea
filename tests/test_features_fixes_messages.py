"""What the feature stages say when a split's embeddings fall short of its waveforms."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from features.class_index import split_shards
from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetStore
from tests.dataset_builders import make_dataset


def test_embeddings_short_of_the_waveforms_name_no_cause_they_cannot_know(tmp_path: Path):
    built = make_dataset(
        tmp_path / "ds",
        {"train": [[0], [1], [0], [1], [0], [1]]},
        num_classes=2,
        shard_clips=2,
        embedding_formats=("hdf5",),
    )
    manifest = load_manifest(DatasetStore(built.root))
    embedded = manifest.embeddings["vggish"]["train"]
    embedded.shards = embedded.shards[:1]  # an embed interrupted after its first shard
    message = (
        "only 2 of the 6 clips of split 'train' have vggish embeddings (an embed that did not "
        "finish, or clips added since): run `audiomill embed` on the dataset to embed the rest"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        split_shards(manifest, "train", "embeddings")
