"""Reading packed HDF5 embedding files: opening, the layout check and blocks of rows."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import pytest

from features.import_records import ImportRecordError
from features.packed_embeddings import check_packed, open_hdf5, read_packed_rows
from schemas.errors import InputFormatError

NUM_CLASSES = 5


def _packed(path: Path, **datasets) -> Path:
    """A packed file of 4 rows, row i holding 10 - 3 * i frames (row 3: 1), then ``datasets``."""
    x = np.zeros((4, 10, 128), dtype=np.uint8)
    for i in range(4):
        x[i, : 10 - 3 * i] = i + 1
    y = np.eye(4, NUM_CLASSES, dtype=np.uint8)
    layout = {"x": x, "y": y, "video_id_list": np.array([b"vid_a", b"vid_b", b"vid_c", b"vid_d"])}
    with h5py.File(path, "w") as hf:
        for name, value in {**layout, **datasets}.items():
            hf[name] = value
    return path


def test_open_hdf5_opens_an_hdf5_stream(tmp_path):
    with _packed(tmp_path / "p.h5").open("rb") as stream, open_hdf5(stream, "p.h5") as hf:
        assert hf["x"].shape == (4, 10, 128)


def test_open_hdf5_names_a_file_that_is_not_hdf5():
    with pytest.raises(InputFormatError, match=r"^p\.h5: not an HDF5 file"):
        open_hdf5(io.BytesIO(b"not hdf5 at all"), "p.h5")


def test_check_packed_returns_the_number_of_rows(tmp_path):
    with h5py.File(_packed(tmp_path / "p.h5"), "r") as hf:
        assert check_packed(hf, "p.h5", NUM_CLASSES) == 4


@pytest.mark.parametrize(
    ("datasets", "reason"),
    [
        (
            {"y": np.zeros((4, NUM_CLASSES + 1), dtype=bool)},
            "y has 6 columns but the class map has 5",
        ),
        ({"x": np.zeros((4, 9, 128), dtype=np.uint8)}, "x must be uint8 (N, 10, 128)"),
        ({"num_frames": np.zeros(3, dtype=np.int32)}, "num_frames has shape (3,); x has 4 rows"),
        ({"clip_id": np.zeros(4)}, "clip_id must hold strings"),
    ],
)
def test_check_packed_names_a_wrong_layout(tmp_path, datasets, reason):
    path = _packed(tmp_path / "p.h5", **datasets)
    with h5py.File(path, "r") as hf, pytest.raises(InputFormatError) as info:
        check_packed(hf, "p.h5", NUM_CLASSES)
    assert reason in str(info.value)


def test_check_packed_names_missing_datasets(tmp_path):
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as hf:
        hf["x"] = np.zeros((1, 10, 128), dtype=np.uint8)
    with h5py.File(path, "r") as hf, pytest.raises(InputFormatError, match="missing"):
        check_packed(hf, "p.h5", NUM_CLASSES)


def test_read_packed_rows_reads_a_block_counting_frames_to_the_last_nonzero_one(tmp_path):
    clip_ids = {"vid_b": "vid_b_30000", "vid_c": "vid_c_0", "vid_d": "vid_d_4500"}
    with h5py.File(_packed(tmp_path / "p.h5"), "r") as hf:
        rows = read_packed_rows(hf, "p.h5", 1, 4, clip_ids)
    assert rows.video_ids == ["vid_b", "vid_c", "vid_d"]
    assert rows.clip_ids == ["vid_b_30000", "vid_c_0", "vid_d_4500"]
    assert rows.num_frames.tolist() == [7, 4, 1]
    assert rows.y.dtype == np.bool_
    assert [np.flatnonzero(y).tolist() for y in rows.y] == [[1], [2], [3]]
    assert rows.x[0, 6, 0] == 2 and not rows.x[0, 7:].any()


def test_read_packed_rows_takes_clip_ids_and_num_frames_from_the_file(tmp_path):
    clip_ids = np.array([b"c0_5000", b"c1_5000", b"c2_5000", b"c3_5000"])
    path = _packed(tmp_path / "p.h5", clip_id=clip_ids, num_frames=np.array([10, 2, 0, 1]))
    with h5py.File(path, "r") as hf:
        rows = read_packed_rows(hf, "p.h5", 0, 3, {})
    assert rows.clip_ids == ["c0_5000", "c1_5000", "c2_5000"]
    assert rows.num_frames.tolist() == [10, 2, 0]


@pytest.mark.parametrize(
    ("datasets", "reason"),
    [
        (
            {"y": np.array([[0, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 2, 0, 0, 0], [0] * 5])},
            "y holds [2], not only 0/1",
        ),
        ({"num_frames": np.array([1, 1, 11, 1])}, "num_frames 11 is not in 0..10"),
        (
            {"video_id_list": np.array([b"a", b"b", b"c d", b"e"])},
            "video_id_list 'c d' is empty or has spaces",
        ),
        ({"clip_id": np.array([b"a", b"b", b"\xff", b"e"])}, "clip_id is not UTF-8"),
    ],
)
def test_read_packed_rows_names_the_bad_row(tmp_path, datasets, reason):
    path = _packed(tmp_path / "p.h5", **datasets)
    with h5py.File(path, "r") as hf, pytest.raises(ImportRecordError) as info:
        read_packed_rows(hf, "p.h5", 1, 4, {v: f"{v}_0" for v in ("vid_b", "vid_c", "vid_d")})
    assert info.value.index == 2
    assert str(info.value).startswith("p.h5: row 2 (counting from 0): ")
    assert reason in str(info.value)
