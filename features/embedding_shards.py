"""Write embedding shards (layouts in ``schemas.embeddings``) and commit them into a dataset."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.dataset_state import is_shard_file_name
from pipelines.storage import DatasetStore
from schemas.dataset import ShardEntry, ShardFile, SplitEntry, embedding_shard_path
from schemas.embeddings import (
    EMBEDDING_SCHEMA_VERSION,
    VIDEO_ID_MIN_WIDTH,
    EmbeddingRows,
    parquet_embedding_schema,
)


def write_embedding_hdf5(path: str, rows: EmbeddingRows, attrs: dict) -> None:
    """Write ``rows`` as an HDF5 embedding shard at the local ``path``.

    Parameters
    ----------
    path : str
        Local file to create.
    rows : EmbeddingRows
    attrs : dict
        File attributes; dict values are stored as JSON text.
    """
    width = max([VIDEO_ID_MIN_WIDTH, *(len(v.encode()) for v in rows.video_ids)])
    with h5py.File(path, "w") as hf:
        hf.create_dataset("x", data=rows.x.astype(np.uint8))
        hf.create_dataset("y", data=rows.y.astype(np.bool_))
        hf.create_dataset(
            "video_id_list", data=np.array([v.encode() for v in rows.video_ids], dtype=f"S{width}")
        )
        hf.create_dataset(
            "clip_id", data=np.array(rows.clip_ids, dtype=object), dtype=h5py.string_dtype()
        )
        hf.create_dataset("num_frames", data=rows.num_frames.astype(np.int32))
        hf.attrs["schema_version"] = EMBEDDING_SCHEMA_VERSION
        for key, value in attrs.items():
            hf.attrs[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value


def write_embedding_parquet(path: str, rows: EmbeddingRows, attrs: dict) -> None:
    """Write ``rows`` as a Parquet embedding shard at the local ``path``."""
    n, frames, dim = rows.x.shape
    schema = parquet_embedding_schema(frames, dim)
    schema = schema.with_metadata(
        {**schema.metadata, **{f"audiomill.{k}".encode(): json.dumps(v).encode()
                               for k, v in attrs.items()}}
    )  # fmt: skip
    flat = pa.array(rows.x.reshape(n * frames * dim).astype(np.uint8), type=pa.uint8())
    table = pa.table(
        {
            "clip_id": rows.clip_ids,
            "video_id": rows.video_ids,
            "labels": [np.flatnonzero(r).astype(np.int32).tolist() for r in rows.y],
            "num_frames": rows.num_frames.astype(np.int32),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, frames * dim),
        },
        schema=schema,
    )
    pq.write_table(table, path, row_group_size=1000, compression="zstd")


def commit_embedding_shard(
    store: DatasetStore,
    model: str,
    split: str,
    index: int,
    rows: EmbeddingRows,
    attrs: dict,
    formats: tuple[str, ...],
    run_id: str,
) -> ShardEntry:
    """Write shard ``index`` of ``model``/``split`` in each format and commit it atomically.

    Returns
    -------
    ShardEntry
        The manifest entry (files with checksums); the caller records it in the manifest.
    """
    writers = {"hdf5": write_embedding_hdf5, "parquet": write_embedding_parquet}
    files = {}
    with tempfile.TemporaryDirectory(prefix="audiomill-emb-") as tmp:
        for fmt in formats:
            local = os.path.join(tmp, f"shard.{fmt}")
            writers[fmt](local, rows, attrs)
            rel = embedding_shard_path(model, split, index, fmt)
            rec = store.commit_file(local, rel)
            files[fmt] = ShardFile(path=rel, sha256=rec.sha256, bytes=rec.bytes)
    return ShardEntry(
        index=index,
        num_clips=len(rows),
        files=files,
        run_id=run_id,
        clip_ids_sha256=hashlib.sha256("\n".join(rows.clip_ids).encode()).hexdigest(),
    )


def remove_uncommitted_shards(store: DatasetStore, entry: SplitEntry, rel_dir: str) -> list[str]:
    """Delete what an interrupted run left in the embedding folder ``rel_dir``: shard files that
    no committed shard of ``entry`` lists, and the temporaries of shard writes.

    Only shard names and their temporaries (:func:`pipelines.dataset_state.is_shard_file_name`)
    are candidates: a file of the user's in the folder is left as it is. Call it only while
    holding the dataset's lock: a live run's temporaries look the same.

    Returns
    -------
    list of str
        The removed paths, relative to the dataset.
    """
    listed = {f.path for shard in entry.shards for f in shard.files.values()}
    removed = [
        rel
        for name in store.listdir(rel_dir)
        if is_shard_file_name(name) and (rel := f"{rel_dir}/{name}") not in listed
    ]
    for rel in removed:
        store.remove(rel)
    return removed
