"""An import whose files hold no records says so, and a first one leaves no dataset behind."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest

from features.importers import import_audioset_tfrecords, import_packed_h5
from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetStore
from schemas.classmap import ClassMap
from tests.test_importers import release_record, write_tfrecord


def _packed(path: Path, n: int, width: int) -> Path:
    with h5py.File(path, "w") as hf:
        hf["x"] = np.full((n, 10, 128), 7, dtype=np.uint8)
        hf["y"] = np.eye(width, dtype=bool)[np.arange(n) % width]
        hf["video_id_list"] = np.array([f"vid_{i:07d}".encode() for i in range(n)], dtype="S11")
    return path


def test_a_first_import_of_files_without_records_leaves_no_dataset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    src = tmp_path / "tfr"
    src.mkdir()
    (src / "a.tfrecord").write_bytes(b"")
    (src / "b.tfrecord").write_bytes(b"")
    out = tmp_path / "new" / "imp"
    with caplog.at_level(logging.WARNING, logger="features.importers"):
        summary = import_audioset_tfrecords(
            str(src / "*.tfrecord"), ClassMap.from_names("abcd"), out, "bal_train"
        )
    assert (summary.read, summary.imported, summary.created) == (0, 0, False)
    assert summary.files_without_records == [str(src / "a.tfrecord"), str(src / "b.tfrecord")]
    assert f"2 of the 2 input file(s) held no records: {src / 'a.tfrecord'}, " in caplog.text
    assert f"so no dataset was made at {out}" in caplog.text
    assert not (tmp_path / "new").exists()
    # the next import's class map is not bound by the one that imported nothing
    summary = import_packed_h5(_packed(tmp_path / "p.h5", 3, 3), ClassMap.from_names("xyz"),
                               out, "bal_train")  # fmt: skip
    assert (summary.imported, summary.created) == (3, True)
    assert load_manifest(DatasetStore(out)).num_classes == 3


def test_a_file_without_records_among_others_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    src = tmp_path / "tfr"
    src.mkdir()
    rng = np.random.default_rng(1)
    frames = rng.integers(1, 256, size=(10, 128), dtype=np.uint8)
    write_tfrecord(src / "a.tfrecord", [release_record("aaaaaaaaaaa", 0.0, [1], frames)])
    (src / "b.tfrecord").write_bytes(b"")
    out = tmp_path / "imp"
    with caplog.at_level(logging.WARNING, logger="features.importers"):
        summary = import_audioset_tfrecords(
            str(src / "*.tfrecord"), ClassMap.from_names("abcd"), out, "bal_train"
        )
    assert (summary.imported, summary.created) == (1, True)
    assert summary.files_without_records == [str(src / "b.tfrecord")]
    assert f"1 of the 2 input file(s) held no records: {src / 'b.tfrecord'}" in caplog.text
    assert load_manifest(DatasetStore(out)).embeddings["vggish"]["bal_train"].num_clips == 1


def test_an_import_of_nothing_into_a_dataset_keeps_it(tmp_path: Path):
    out = tmp_path / "imp"
    classes = ClassMap.from_names("abc")
    import_packed_h5(_packed(tmp_path / "p.h5", 2, 3), classes, out, "train")
    summary = import_packed_h5(_packed(tmp_path / "none.h5", 0, 3), classes, out, "train")
    assert (summary.imported, summary.created) == (0, True)
    assert summary.files_without_records == [str(tmp_path / "none.h5")]
    assert load_manifest(DatasetStore(out)).embeddings["vggish"]["train"].num_clips == 2
