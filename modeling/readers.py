"""Batched reads of a split's shards by global row, and the ``tf.data`` pipeline over them.

:class:`ShardReader` maps global rows (shards in manifest order, the convention of
:mod:`features.class_index`) to (shard, row) and reads a batch in as few HDF5 reads as it can:
the batch's distinct rows are sorted, runs of consecutive rows of a shard are read with one
hyperslab read each into a buffer, and the buffer is gathered back into the batch's order
(repeated rows are read once). Targets are read once per shard and kept bit-packed in memory.
Shard files are opened lazily and kept open, one set per process
(a reader pickled into a worker process opens its own): local files by path, others through
fsspec file objects. Parquet-only shards are read by row group with pyarrow, decoding the FLAC
of the rows asked for.

:func:`make_dataset` wraps a reader and a sampler of :mod:`modeling.samplers` into a
``tf.data.Dataset`` of float32 batches; only the batches asked for are read, unless ``cache``.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import h5py
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import soundfile as sf
import tensorflow as tf

from features.class_index import split_shards
from modeling.samplers import Sampler, batches
from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetStore

HDF5_KEYS = {"waveforms": ("waveform", "target"), "embeddings": ("x", "y")}


class ShardReader:
    """Read rows of a split's waveform or embedding shards by global row.

    Parameters
    ----------
    dataset : str or os.PathLike
        Dataset directory or fsspec URL.
    split : str or sequence of str
        One split, or several read as one (their rows concatenated in the order given).
    source : {"waveforms", "embeddings"}
    model : str
        Embedding model, used when ``source`` is ``"embeddings"``.
    storage_options : dict, optional
        fsspec options of the dataset's filesystem.

    Attributes
    ----------
    num_rows : int
        Clips in the split (N).
    num_classes : int
    shard_offsets : np.ndarray [shape=(S + 1,), dtype=int64]
        Global row of each shard's first row; the last entry is N.
    """

    def __init__(
        self,
        dataset: str | os.PathLike[str],
        split: str | Sequence[str],
        source: str = "waveforms",
        *,
        model: str = "vggish",
        storage_options: dict | None = None,
    ) -> None:
        self.store = DatasetStore(dataset, storage_options)
        manifest = load_manifest(self.store)
        if manifest is None:
            raise FileNotFoundError(f"{self.store.url()} has no manifest.json")
        self.source = source
        self.splits = [split] if isinstance(split, str) else list(split)
        self.shards = [
            s for name in self.splits for s in split_shards(manifest, name, source, model)
        ]
        self.num_classes = manifest.num_classes
        self.num_samples = manifest.num_samples
        self.shard_offsets = np.zeros(len(self.shards) + 1, dtype=np.int64)
        np.cumsum([s.entry.num_clips for s in self.shards], out=self.shard_offsets[1:])
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._open: dict[int, Any] = {}
        self._packed_targets: dict[int, np.ndarray] = {}
        self._x_shape: tuple[int, ...] | None = None

    @property
    def num_rows(self) -> int:
        """Clips in the split (N)."""
        return int(self.shard_offsets[-1])

    @property
    def x_shape(self) -> tuple[int, ...]:
        """Shape of one row of ``x``: ``(T,)`` for waveforms, ``(F, D)`` for embeddings."""
        if self._x_shape is None:
            if self.source == "waveforms":
                self._x_shape = (self.num_samples,)
            elif self.shards[0].fmt == "hdf5":
                self._x_shape = tuple(self._handle(0)["x"].shape[1:])
            else:
                meta = self._handle(0).schema_arrow.metadata
                self._x_shape = (int(meta[b"audiomill.frames"]), int(meta[b"audiomill.dim"]))
        return self._x_shape

    @property
    def x_dtype(self) -> np.dtype:
        """int16 for waveforms, uint8 for embeddings."""
        return np.dtype(np.int16 if self.source == "waveforms" else np.uint8)

    # ------------------------------------------------------------------ open files

    def _handle(self, pos: int) -> Any:
        """The open h5py.File or pyarrow ParquetFile of shard ``pos`` (manifest order)."""
        if self._pid != os.getpid():
            self._open, self._pid, self._lock = {}, os.getpid(), threading.Lock()
            self._packed_targets = {}
        handle = self._open.get(pos)
        if handle is None:
            with self._lock:
                handle = self._open.get(pos)
                if handle is None:
                    shard = self.shards[pos]
                    if self.store.is_local:
                        source: Any = str(self.store.local_path(shard.path))
                    else:
                        source = self.store.open(shard.path)
                    if shard.fmt == "hdf5":
                        handle = h5py.File(source, "r")
                    else:
                        handle = pq.ParquetFile(source)
                    self._open[pos] = handle
        return handle

    def close(self) -> None:
        """Close the files this process opened."""
        with self._lock:
            for handle in self._open.values():
                if isinstance(handle, h5py.File):
                    handle.close()
            self._open = {}

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"], state["_lock"], state["_packed_targets"] = {}, None, {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._pid = os.getpid()

    # ------------------------------------------------------------------ reading

    def locate(self, global_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map global rows to (shard position in manifest order, row within the shard)."""
        global_rows = np.asarray(global_rows, dtype=np.int64)
        if global_rows.size and (global_rows.min() < 0 or global_rows.max() >= self.num_rows):
            raise IndexError(f"global rows must be in [0, {self.num_rows})")
        pos = np.searchsorted(self.shard_offsets, global_rows, side="right") - 1
        return pos, global_rows - self.shard_offsets[pos]

    def read(self, global_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read rows by global row id, in the order given (repeats allowed).

        Parameters
        ----------
        global_rows : np.ndarray [shape=(B,)]

        Returns
        -------
        x : np.ndarray [shape=(B, T), dtype=int16] or [shape=(B, F, D), dtype=uint8]
        y : np.ndarray [shape=(B, C), dtype=bool]
        """
        unique, inverse = np.unique(np.asarray(global_rows, dtype=np.int64), return_inverse=True)
        pos, rows = self.locate(unique)
        x = np.empty((len(unique), *self.x_shape), dtype=self.x_dtype)
        y = np.empty((len(unique), self.num_classes), dtype=bool)
        # Boundaries of the groups of rows of one shard (``unique`` is sorted, so is ``pos``).
        cuts = np.flatnonzero(np.diff(pos)) + 1
        for start, end in zip(np.r_[0, cuts], np.r_[cuts, len(unique)], strict=True):
            if start == end:
                continue
            shard_pos = int(pos[start])
            if self.shards[shard_pos].fmt == "hdf5":
                self._read_hdf5(shard_pos, rows[start:end], x[start:end], y[start:end])
            else:
                self._read_parquet(shard_pos, rows[start:end], x[start:end], y[start:end])
        return x[inverse.ravel()], y[inverse.ravel()]

    def _targets(self, pos: int) -> np.ndarray:
        """The targets of HDF5 shard ``pos``, bit-packed by row, read once per process."""
        packed = self._packed_targets.get(pos)
        if packed is None:
            y_key = HDF5_KEYS[self.source][1]
            packed = self._packed_targets[pos] = np.packbits(self._handle(pos)[y_key][:], axis=1)
        return packed

    def _read_hdf5(self, pos: int, rows: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        """Fill ``x``, ``y`` with the sorted, distinct ``rows`` of HDF5 shard ``pos``.

        Targets come from the shard's bit-packed copy in memory (C / 8 bytes a clip), so each
        run of consecutive rows costs one HDF5 read of ``x``.
        """
        dataset = self._handle(pos)[HDF5_KEYS[self.source][0]]
        y[:] = np.unpackbits(self._targets(pos)[rows], axis=1, count=self.num_classes)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(rows)], strict=True):
            x[a:b] = dataset[int(rows[a]) : int(rows[b - 1]) + 1]

    def _read_parquet(self, pos: int, rows: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        """Fill ``x``, ``y`` with the sorted, distinct ``rows`` of Parquet shard ``pos``."""
        pf = self._handle(pos)
        sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)]
        group_starts = np.r_[0, np.cumsum(sizes)]
        groups = np.searchsorted(group_starts, rows, side="right") - 1
        column = "audio" if self.source == "waveforms" else "embedding"
        at = 0
        for g in np.unique(groups):
            local = rows[groups == g] - group_starts[g]
            table = pf.read_row_group(int(g), columns=[column, "labels"]).take(local)
            n = len(local)
            labels = table.column("labels").combine_chunks()
            parents = pc.list_parent_indices(labels).to_numpy()
            block_y = np.zeros((n, self.num_classes), dtype=bool)
            block_y[parents, pc.list_flatten(labels).to_numpy()] = True
            y[at : at + n] = block_y
            if self.source == "waveforms":
                x[at : at + n] = 0
                audio = table.column("audio").combine_chunks().field("bytes").to_pylist()
                for i, data in enumerate(audio):
                    wave, _ = sf.read(io.BytesIO(data), dtype="int16")
                    wave = wave[: self.num_samples]
                    x[at + i, : len(wave)] = wave
            else:
                flat = table.column("embedding").combine_chunks().flatten().to_numpy()
                x[at : at + n] = flat.reshape(n, *self.x_shape)
            at += n

    def read_all(self) -> tuple[np.ndarray, np.ndarray]:
        """Read the whole split, in global row order."""
        x = np.empty((self.num_rows, *self.x_shape), dtype=self.x_dtype)
        y = np.empty((self.num_rows, self.num_classes), dtype=bool)
        for pos in range(len(self.shards)):
            span = slice(int(self.shard_offsets[pos]), int(self.shard_offsets[pos + 1]))
            rows = np.arange(span.stop - span.start, dtype=np.int64)
            if self.shards[pos].fmt == "hdf5":
                self._read_hdf5(pos, rows, x[span], y[span])
            else:
                self._read_parquet(pos, rows, x[span], y[span])
        return x, y


def to_float(x: np.ndarray) -> np.ndarray:
    """Scale int16 waveforms to [-1, 1) (/ 32768) or uint8 embeddings by (x - 128) / 128."""
    out = np.empty(x.shape, dtype=np.float32)
    if x.dtype == np.int16:
        return np.multiply(x, np.float32(1 / 32768), out=out)
    np.subtract(x, np.float32(128), out=out)
    return np.multiply(out, np.float32(1 / 128), out=out)


def make_dataset(
    reader: ShardReader,
    sampler: Sampler,
    batch_size: int,
    *,
    prefetch: int = 2,
    parallel_reads: int = 2,
    cache: bool = False,
    drop_remainder: bool = False,
    transform: Callable[[np.ndarray], np.ndarray] = to_float,
    on_batch: Callable[[int], None] | None = None,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(x, y)`` float32 batches of the rows ``sampler`` draws.

    Parameters
    ----------
    reader : ShardReader
    sampler : Sampler
        Drawn lazily, in Python, as batches are asked for.
    batch_size : int
    prefetch : int
        Batches read ahead.
    parallel_reads : int
        Batches read at once (``num_parallel_calls``; batch order is kept).
    cache : bool
        Read the whole split into memory once (int16 or uint8, as stored) and gather batches
        from it; otherwise only the rows drawn are ever read.
    drop_remainder : bool
        Drop a last, smaller batch of a finite sampler.
    transform : callable
        Maps a batch of stored ``x`` (int16 or uint8) to the float32 the model takes;
        :func:`to_float` by default, ``np.float32`` for models that dequantize themselves.
    on_batch : callable, optional
        Called with the batch number (0, 1, ...) right after that batch's rows were drawn, in
        the generator's thread, so the caller can record ``sampler.state()`` for each batch.

    Returns
    -------
    tf.data.Dataset
        Elements ``x`` (B, T) or (B, F, D) and ``y`` (B, C), float32; by default waveforms
        scaled by 1 / 32768, embeddings to (x - 128) / 128.

    Notes
    -----
    The sampler runs ahead of what the model consumed by up to ``prefetch + parallel_reads``
    batches, so ``sampler.state()`` read during training is ahead of the batches trained on.
    For an exact resume save the state when a dataset is built (an epoch of ``k`` batches) and
    the number of batches consumed, or drive :func:`modeling.samplers.batches` yourself.
    """

    def rows() -> Iterator[np.ndarray]:
        for number, ids in enumerate(batches(sampler, batch_size, drop_remainder=drop_remainder)):
            if on_batch is not None:
                on_batch(number)
            yield ids

    if cache:
        all_x, all_y = reader.read_all()

        def load(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return transform(all_x[ids]), all_y[ids].astype(np.float32)

    else:

        def load(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            x, y = reader.read(ids)
            return transform(x), y.astype(np.float32)

    x_shape = (None, *reader.x_shape)
    y_shape = (None, reader.num_classes)

    def read_batch(ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = tf.numpy_function(load, [ids], [tf.float32, tf.float32], stateful=False)
        x.set_shape(x_shape)
        y.set_shape(y_shape)
        return x, y

    ds = tf.data.Dataset.from_generator(
        rows, output_signature=tf.TensorSpec(shape=(None,), dtype=tf.int64)
    )
    return ds.map(read_batch, num_parallel_calls=parallel_reads).prefetch(prefetch)
