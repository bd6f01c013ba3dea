"""Embedding shard layouts (HDF5 and Parquet) and readers for them.

HDF5 (compatible with the packed files of the embedding-classifier seed, ``x``/``y``/
``video_id_list``):

=================  ==================  ==========================================
dataset            dtype, shape        meaning
=================  ==================  ==========================================
``x``              uint8 (N, F, D)     quantized embeddings, F frames of D values
``y``              bool (N, C)         multi-hot targets in class-map order
``video_id_list``  ``S<w>`` (N,)       YouTube id (AudioSet) or clip id
``clip_id``        utf-8 str (N,)      row-aligned with the waveform shard
``num_frames``     int32 (N,)          real frames (rows past it are zero)
=================  ==================  ==========================================

F is the number of 96-frame examples the VGGish front end makes of a full clip, at least 1
(10 for 10 s clips, 4 for 4.8 s: each needs 0.975 s), D = 128. File attributes:
``model``, ``checkpoint_sha256``, ``pca_sha256``, ``frontend`` (JSON of the front-end
parameters), ``class_map_sha256``, ``schema_version``.

Parquet: one row per clip with :func:`parquet_embedding_schema`: ``clip_id``, ``video_id``,
``labels`` (list of class indices), ``num_frames``, ``embedding`` (fixed-size list of F x D
uint8, row-major by frame).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.parquet_layout import column_problems, label_problems

EMBEDDING_SCHEMA_VERSION = 1
EMBEDDING_DIM = 128
VIDEO_ID_MIN_WIDTH = 11
EMBEDDING_HDF5_REQUIRED = ("x", "y", "video_id_list", "clip_id", "num_frames")


def parquet_embedding_schema(frames: int, dim: int) -> pa.Schema:
    """Arrow schema of a Parquet embedding shard with ``frames`` x ``dim`` values per clip."""
    return pa.schema(
        [
            pa.field("clip_id", pa.string(), nullable=False),
            pa.field("video_id", pa.string(), nullable=False),
            pa.field("labels", pa.list_(pa.int32()), nullable=False),
            pa.field("num_frames", pa.int32(), nullable=False),
            pa.field("embedding", pa.list_(pa.uint8(), frames * dim), nullable=False),
        ],
        metadata={
            b"audiomill.table": b"embeddings",
            b"audiomill.schema_version": str(EMBEDDING_SCHEMA_VERSION).encode(),
            b"audiomill.frames": str(frames).encode(),
            b"audiomill.dim": str(dim).encode(),
        },
    )


@dataclass
class EmbeddingRows:
    """A block of embedding rows, as held in one shard.

    Attributes
    ----------
    x : np.ndarray [shape=(N, F, D), dtype=uint8]
    y : np.ndarray [shape=(N, C), dtype=bool]
    video_ids : list of str
    clip_ids : list of str
    num_frames : np.ndarray [shape=(N,), dtype=int32]
    """

    x: np.ndarray
    y: np.ndarray
    video_ids: list[str]
    clip_ids: list[str]
    num_frames: np.ndarray

    def __len__(self) -> int:
        return len(self.clip_ids)


def read_embedding_hdf5(path_or_file) -> tuple[EmbeddingRows, dict]:
    """Read a whole HDF5 embedding shard: (rows, file attributes)."""
    with h5py.File(path_or_file, "r") as hf:
        missing = [k for k in EMBEDDING_HDF5_REQUIRED if k not in hf]
        if missing:
            raise ValueError(f"not an embedding shard: missing datasets {missing}")
        rows = EmbeddingRows(
            x=hf["x"][:],
            y=hf["y"][:],
            video_ids=[v.decode("utf-8") for v in hf["video_id_list"][:]],
            clip_ids=list(hf["clip_id"].asstr()[:]),
            num_frames=hf["num_frames"][:],
        )
        return rows, dict(hf.attrs)


def embedding_hdf5_problems(path_or_file, num_classes: int) -> list[str]:
    """Return every way an HDF5 embedding shard departs from the layout (empty list: it conforms).

    Reads the datasets' shapes and dtypes only; F (frames per row) is the file's own.
    """
    with h5py.File(path_or_file, "r") as hf:
        missing = [k for k in EMBEDDING_HDF5_REQUIRED if k not in hf]
        if missing:
            return [f"missing datasets {missing}"]
        x = hf["x"]
        n = x.shape[0] if x.ndim else 0
        frames = x.shape[1] if x.ndim == 3 else "F"
        expected = {
            "x": f"uint8({n}, {frames}, {EMBEDDING_DIM})",
            "y": f"bool{(n, num_classes)}",
            "video_id_list": f"bytes{(n,)}",
            "clip_id": f"str{(n,)}",
            "num_frames": f"int32{(n,)}",
        }
        found = {key: _dtype_shape(hf[key]) for key in expected}
    return [f"{k}: {found[k]}, expected {want}" for k, want in expected.items() if found[k] != want]


def _dtype_shape(ds: h5py.Dataset) -> str:
    """``dtype(shape)`` of a dataset, with ``bytes`` for fixed-length bytes of any width and
    ``str`` for variable-length strings."""
    if ds.dtype.kind == "S":
        kind = "bytes"
    elif h5py.check_string_dtype(ds.dtype):
        kind = "str"
    else:
        kind = str(ds.dtype)
    return f"{kind}{ds.shape}"


def embedding_parquet_problems(path_or_file, num_classes: int) -> list[str]:
    """Return every way a Parquet embedding shard departs from the layout (empty list: it
    conforms): the frames and dimension its metadata names, the columns of
    :func:`parquet_embedding_schema` for them, and labels that are class indices."""
    pf = pq.ParquetFile(path_or_file)
    meta = pf.schema_arrow.metadata or {}
    try:
        frames, dim = int(meta[b"audiomill.frames"]), int(meta[b"audiomill.dim"])
    except (KeyError, ValueError):
        return ["no audiomill.frames and audiomill.dim in the schema's metadata"]
    problems = [] if dim == EMBEDDING_DIM else [f"dim {dim}, expected {EMBEDDING_DIM}"]
    columns = column_problems(pf.schema_arrow, parquet_embedding_schema(frames, dim))
    if columns:
        return problems + columns
    return problems + label_problems(pf.read(columns=["labels"])["labels"], num_classes)


def read_embedding_parquet(path_or_file, num_classes: int) -> Iterator[EmbeddingRows]:
    """Yield a Parquet embedding shard in row-group blocks."""
    pf = pq.ParquetFile(path_or_file)
    meta = pf.schema_arrow.metadata or {}
    frames, dim = int(meta[b"audiomill.frames"]), int(meta[b"audiomill.dim"])
    for batch in pf.iter_batches():
        n = batch.num_rows
        flat = batch.column("embedding").flatten().to_numpy(zero_copy_only=False)
        y = np.zeros((n, num_classes), dtype=bool)
        for i, labels in enumerate(batch.column("labels").to_pylist()):
            y[i, labels] = True
        yield EmbeddingRows(
            x=flat.reshape(n, frames, dim).astype(np.uint8),
            y=y,
            video_ids=batch.column("video_id").to_pylist(),
            clip_ids=batch.column("clip_id").to_pylist(),
            num_frames=batch.column("num_frames").to_numpy().astype(np.int32),
        )
