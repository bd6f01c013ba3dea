"""The import commands return the clips they imported, which ``audiomill run``'s summary table
shows in its clips column, as it does for ingest, embed and index."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from schemas.classmap import ClassMap
from tests.test_importers import frames, release_record, write_tfrecord

CLASSES = ClassMap.from_names("xyz")


@pytest.fixture
def classes_csv(tmp_path: Path) -> Path:
    path = tmp_path / "classes.csv"
    path.write_text(CLASSES.to_csv_text())
    return path


def test_import_packed_h5_returns_the_clips_it_imported(tmp_path: Path, classes_csv: Path):
    from workflows.cli_features import import_packed

    packed = tmp_path / "p.h5"
    rng = np.random.default_rng(0)
    with h5py.File(packed, "w") as hf:
        hf["x"] = np.stack([frames(rng, 10) for _ in range(2)])
        hf["y"] = np.eye(2, len(CLASSES), dtype=bool)
        hf["clip_id"] = np.array([b"a_0", b"b_0"])
        hf["video_id_list"] = np.array([b"a", b"b"])
    out = str(tmp_path / "ds")
    assert import_packed([str(packed)], str(classes_csv), out, "train") == {"clips": 2}
    assert import_packed([str(packed)], str(classes_csv), out, "train") == {"clips": 0}


def test_import_tfrecord_returns_the_clips_it_imported(tmp_path: Path, classes_csv: Path):
    from workflows.cli_features import import_tfrecord

    rng = np.random.default_rng(0)
    records = [release_record("--PJHxphWEs", 30.0, [0], frames(rng, 10))]
    path = write_tfrecord(tmp_path / "r.tfrecord", records)
    result = import_tfrecord([str(path)], str(classes_csv), str(tmp_path / "ds"), "train")
    assert result == {"clips": 1}
