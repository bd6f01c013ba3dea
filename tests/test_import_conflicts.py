"""Checking an import's clips against the dataset's committed clips: marks, committed clip ids,
clips of other splits, and the refusals naming them."""

from __future__ import annotations

import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from features.import_conflicts import (
    CommittedMarks,
    clip_mark,
    committed_clip_ids,
    other_splits_clip_ids,
    other_version,
    refuse_clips_elsewhere,
    scan_input,
)
from features.import_records import ImportRecordError
from features.importers import import_packed_h5
from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetStore
from schemas.classmap import ClassMap
from schemas.embeddings import EmbeddingRows

CLASSES = ClassMap.from_names("xyz")


def _rows(ids: list[str], labels: list[int], seed: int = 0) -> EmbeddingRows:
    rng = np.random.default_rng(seed)
    y = np.zeros((len(ids), len(CLASSES)), dtype=bool)
    y[np.arange(len(ids)), labels] = True
    return EmbeddingRows(
        x=rng.integers(1, 256, size=(len(ids), 10, 128), dtype=np.uint8),
        y=y,
        video_ids=list(ids),
        clip_ids=[f"{v}_0" for v in ids],
        num_frames=np.full(len(ids), 10, dtype=np.int32),
    )


def _import(tmp_path: Path, rows: EmbeddingRows, split: str) -> None:
    path = tmp_path / f"{split}.h5"
    with h5py.File(path, "w") as hf:
        hf["x"] = rows.x
        hf["y"] = rows.y
        hf["video_id_list"] = np.array([v.encode() for v in rows.video_ids])
    import_packed_h5(path, CLASSES, tmp_path / "ds", split, shard_clips=1)


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[DatasetStore, EmbeddingRows]:
    """A dataset whose split train holds a_0 and b_0 (one shard each) and split eval c_0."""
    train = _rows(["a", "b"], [0, 1])
    _import(tmp_path, train, "train")
    _import(tmp_path, _rows(["c"], [2], seed=1), "eval")
    return DatasetStore(tmp_path / "ds"), train


def test_clip_mark_packs_where_a_row_came_from_and_its_labels():
    rows = _rows(["a", "b"], [2, 2])
    first, second = clip_mark(rows, 0, 3, 7), clip_mark(rows, 1, 3, 8)
    assert struct.unpack_from("<II", first) == (3, 7)
    assert first[16:] == np.array([2], "<u4").tobytes()
    assert first[8:16] != second[8:16]  # other frames, another digest


def test_other_version_names_the_first_record_and_both_label_sets():
    rows = _rows(["a", "a"], [0, 1])
    rows.x[1] = rows.x[0]
    first = clip_mark(rows, 0, 1, 7)
    assert other_version(first, clip_mark(rows, 0, 0, 9), ["f0", "f1"], "record", CLASSES) is None
    assert other_version(first, clip_mark(rows, 1, 0, 9), ["f0", "f1"], "record", CLASSES) == (
        "it repeats the clip id of f1 record 7 and the same embeddings: labels [0 'x'] there, "
        "[1 'y'] here. The input holds two versions of one clip; keep the right one and import "
        "again"
    )


def test_committed_clip_ids_map_each_clip_to_its_shard(dataset):
    store, _ = dataset
    entry = load_manifest(store).embedding_split("vggish", "train")
    assert committed_clip_ids(store, entry) == {"a_0": 0, "b_0": 1}


def test_committed_marks_read_a_clips_shard_and_say_where_it_is(dataset):
    store, train = dataset
    entry = load_manifest(store).embedding_split("vggish", "train")
    marks = CommittedMarks(store, entry, committed_clip_ids(store, entry), len(CLASSES))
    assert "b_0" in marks and "c_0" not in marks
    committed = marks.mark("b_0")
    assert committed == clip_mark(train, 1, 1, 0)
    assert marks.where(committed) == f"{store.url(entry.shards[1].files['hdf5'].path)} row 0"


def test_other_splits_clip_ids_map_each_clip_to_its_split(dataset):
    store, _ = dataset
    manifest = load_manifest(store)
    assert other_splits_clip_ids(store, manifest, "train") == {"c_0": "eval"}
    assert other_splits_clip_ids(store, manifest, "eval") == {"a_0": "train", "b_0": "train"}


def test_scan_input_returns_clips_elsewhere_and_refuses_another_version(dataset):
    store, train = dataset
    entry = load_manifest(store).embedding_split("vggish", "train")
    marks = CommittedMarks(store, entry, committed_clip_ids(store, entry), len(CLASSES))
    elsewhere = {"c_0": "eval"}
    same = [("in.h5", np.array([4]), _rows(["c"], [2]))]
    assert scan_input(same, "row", CLASSES, elsewhere, marks) == ["c_0"]
    relabelled = _rows(["a"], [2])
    relabelled.x[0] = train.x[0]
    with pytest.raises(ImportRecordError) as info:
        scan_input([("in.h5", np.array([5]), relabelled)], "row", CLASSES, elsewhere, marks)
    assert info.value.index == 5
    assert (
        f"it repeats committed clip a_0 ({marks.where(marks.mark('a_0'))}) and the same "
        "embeddings: labels [0 'x'] there, [2 'z'] here." in str(info.value)
    )


def test_refuse_clips_elsewhere_names_how_many_and_where():
    elsewhere = {"c_0": "eval", "d_0": "eval"}
    refuse_clips_elsewhere(["a_0", "b_0"], elsewhere, "train", "ds")
    with pytest.raises(ValueError, match=r"^cannot import into split 'train' of ds: 2 clip\(s\) of "
                       r"the input are committed in another split, e\.g\. d_0 \(in 'eval'\), "
                       r"c_0 \(in 'eval'\)\."):  # fmt: skip
        refuse_clips_elsewhere(["d_0", "a_0", "c_0", "d_0"], elsewhere, "train", "ds")
