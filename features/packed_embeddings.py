"""Read packed HDF5 embedding files: check their layout, then read their rows in blocks.

A packed file holds ``x`` uint8 (N, 10, 128), ``y`` bool or 0/1 integers (N, C) and
``video_id_list`` bytes (N,), with optional ``clip_id`` (strings) and ``num_frames`` (integers
in 0..10); our own HDF5 embedding shards have this layout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import fsspec
import h5py
import numpy as np

from features.import_records import FRAMES, ImportRecordError, id_problem
from schemas.embeddings import EMBEDDING_DIM, EmbeddingRows
from schemas.errors import InputFormatError

PACKED_REQUIRED = ("x", "y", "video_id_list")
PACKED_OPTIONAL = ("clip_id", "num_frames")


def open_hdf5(stream, path: str) -> h5py.File:
    """``stream`` opened as HDF5; a file that is not HDF5 is an error naming ``path``."""
    try:
        return h5py.File(stream, "r")
    except OSError as exc:
        raise InputFormatError(path, f"not an HDF5 file ({exc})") from exc


@contextlib.contextmanager
def open_packed(path: str, storage_options: dict | None) -> Iterator[h5py.File]:
    """Open the packed file ``path`` (local or fsspec URL) as HDF5."""
    with (
        fsspec.open(path, "rb", **(storage_options or {})) as stream,
        open_hdf5(stream, path) as hf,
    ):
        yield hf


def check_packed(hf: h5py.File, path: str, num_classes: int) -> int:
    """Check the layout of a packed file; return its number of rows."""
    missing = [k for k in PACKED_REQUIRED if k not in hf]
    if missing:
        raise InputFormatError(
            path, f"not a packed embedding file: missing {missing} (needs x, y, video_id_list)"
        )
    names = (*PACKED_REQUIRED, *PACKED_OPTIONAL)
    groups = [k for k in names if k in hf and not isinstance(hf[k], h5py.Dataset)]
    if groups:
        raise InputFormatError(path, f"{groups} must be datasets; they are groups")
    x, y = hf["x"], hf["y"]
    if x.dtype != np.uint8 or x.shape[1:] != (FRAMES, EMBEDDING_DIM):
        raise InputFormatError(
            path, f"x must be uint8 (N, {FRAMES}, {EMBEDDING_DIM}); it is {x.dtype} {x.shape}"
        )
    n = x.shape[0]
    if y.ndim == 2 and y.shape[0] != n:
        raise InputFormatError(path, f"y has {y.shape[0]} rows; x has {n}")
    if y.ndim != 2 or not (y.dtype == np.bool_ or y.dtype.kind in "iu"):
        raise InputFormatError(
            path, f"y must be bool or 0/1 integers (N, C); it is {y.dtype} {y.shape}"
        )
    if y.shape[1] != num_classes:
        raise InputFormatError(
            path,
            f"y has {y.shape[1]} columns but the class map has {num_classes} classes; "
            "import with the class map the file was made with",
        )
    for name in ("video_id_list", *PACKED_OPTIONAL):
        if name in hf and hf[name].shape != (n,):
            raise InputFormatError(path, f"{name} has shape {hf[name].shape}; x has {n} rows")
    for name in ("video_id_list", "clip_id"):
        if name in hf and hf[name].dtype.kind not in "SOU":
            raise InputFormatError(path, f"{name} must hold strings; it is {hf[name].dtype}")
    if "num_frames" in hf and hf["num_frames"].dtype.kind not in "iu":
        raise InputFormatError(path, f"num_frames must be integers; it is {hf['num_frames'].dtype}")
    return n


def read_packed_rows(
    hf: h5py.File, path: str, start: int, stop: int, clip_ids: Mapping[str, str]
) -> EmbeddingRows:
    """Read rows ``start:stop`` of a checked packed file.

    A file without ``clip_id`` names each row's clip ``clip_ids[video id]``.
    """
    x = hf["x"][start:stop]
    y_raw = hf["y"][start:stop]
    if y_raw.dtype != np.bool_:
        bad = np.flatnonzero(((y_raw != 0) & (y_raw != 1)).any(axis=1))
        if bad.size:
            row = start + int(bad[0])
            values = sorted(set(np.unique(y_raw[bad[0]]).tolist()) - {0, 1})
            raise ImportRecordError(path, row, f"y holds {values}, not only 0/1", unit="row")
    video_ids = read_strings(hf, "video_id_list", path, start, stop)
    if "clip_id" in hf:
        row_clip_ids = read_strings(hf, "clip_id", path, start, stop)
    else:
        row_clip_ids = [clip_ids[v] for v in video_ids]
    if "num_frames" in hf:
        num_frames = hf["num_frames"][start:stop].astype(np.int64)
        bad = np.flatnonzero((num_frames < 0) | (num_frames > FRAMES))
        if bad.size:
            row = start + int(bad[0])
            raise ImportRecordError(
                path, row, f"num_frames {num_frames[bad[0]]} is not in 0..{FRAMES}", unit="row"
            )
    else:
        voiced = x.any(axis=2)
        num_frames = np.where(voiced.any(axis=1), FRAMES - np.argmax(voiced[:, ::-1], axis=1), 0)
    return EmbeddingRows(
        x=x,
        y=y_raw.astype(bool),
        video_ids=video_ids,
        clip_ids=row_clip_ids,
        num_frames=num_frames.astype(np.int32),
    )


def read_strings(hf: h5py.File, name: str, path: str, start: int, stop: int) -> list[str]:
    """Rows ``start:stop`` of a string dataset decoded as UTF-8, each checked by `id_problem`."""
    raw = hf[name][start:stop]
    out = []
    for k, value in enumerate(raw):
        try:
            text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError as exc:
            raise ImportRecordError(path, start + k, f"{name} is not UTF-8 ({exc})", "row") from exc
        if problem := id_problem(text):
            raise ImportRecordError(path, start + k, f"{name} {problem}", unit="row")
        out.append(text)
    return out
