"""Batched reads of a split's shards by global row, and the ``tf.data`` pipeline over them.

:class:`ShardReader` maps global rows (shards in manifest order, the convention of
:mod:`features.class_index`) to (shard, row) and reads a batch in as few reads as it can: the
batch's rows are sorted, and each run of consecutive rows of a shard is read with one call.

Local HDF5 shards whose ``x`` is stored the way our writers store it (contiguous, unfiltered,
native byte order) are read without HDF5's read path: the dataset's byte offset in the file is
asked once, and each run is one ``os.preadv`` on the descriptor h5py holds open, scattering
the rows straight into their places in the batch (no intermediate buffer, no gather, and the
GIL is released during the copy, so parallel reads overlap). On balanced-sampler batches of
10 s waveforms from the page cache, h5py's ``Dataset.__getitem__`` took ~85 % of
:meth:`ShardReader.read` and copied ~1 GB/s, where ``preadv`` copies ~6 GB/s
(``benchmarks/sampler_bench.py``). Other layouts (chunked, compressed, remote files) are read
through h5py: the runs of the distinct rows into a buffer, then gathered into the batch's order
(repeated rows are read once).

Targets are read once per shard and kept bit-packed in memory. Shard files are opened lazily
and kept open, one set per process (a reader pickled into a worker process opens its own):
local files by path, others through fsspec file objects. Parquet-only shards are read by row
group with pyarrow, decoding the FLAC of the rows asked for.

:func:`make_dataset` wraps a reader and a sampler of :mod:`modeling.samplers` into a
``tf.data.Dataset`` of float32 batches; only the batches asked for are read, unless ``cache``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import soundfile as sf
import tensorflow as tf

from features.class_index import check_committed_sizes, reading_shard, split_shards
from modeling.samplers import Sampler, batches
from pipelines.dataset_state import load_manifest
from pipelines.file_io import pread_into
from pipelines.heap import retain_freed_memory
from pipelines.storage import DatasetStore

HDF5_KEYS = {"waveforms": ("waveform", "target"), "embeddings": ("x", "y")}
_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 1024


@dataclass(frozen=True)
class _RawRows:
    """Where the rows of a contiguous, unfiltered HDF5 dataset lie in its open file ``fd``."""

    fd: int
    offset: int
    row_bytes: int


def _preadv_exactly(fd: int, buffers: list[np.ndarray], offset: int) -> None:
    """Fill ``buffers`` (C-contiguous arrays) with the bytes of ``fd`` from ``offset`` on."""
    want = sum(b.nbytes for b in buffers)
    if os.preadv(fd, buffers, offset) == want:
        return
    # A short read (rare on regular files): finish buffer by buffer.
    for buffer in buffers:
        got = pread_into(fd, buffer, offset)
        if got < buffer.nbytes:
            raise EOFError(f"shard ended at byte {offset + got}, before the rows asked for")
        offset += buffer.nbytes


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
    shard_splits : list of str
        The split of each shard.
    failure : Exception or None
        What a read inside a :func:`make_dataset` pipeline raised; the pipeline then ends
        instead of raising it (see :func:`read_failures_raised`).
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
        located = [
            (name, s) for name in self.splits for s in split_shards(manifest, name, source, model)
        ]
        self.shards = [shard for _, shard in located]
        self.shard_splits = [name for name, _ in located]
        check_committed_sizes(self.store, [(s.path, s.committed_bytes) for s in self.shards])
        self.num_classes = manifest.num_classes
        self.num_samples = manifest.num_samples
        self.shard_offsets = np.zeros(len(self.shards) + 1, dtype=np.int64)
        np.cumsum([s.entry.num_clips for s in self.shards], out=self.shard_offsets[1:])
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._open: dict[int, Any] = {}
        self._parquet_locks: dict[int, threading.Lock] = {}
        self._raw: dict[int, _RawRows | None] = {}
        self._packed_targets: dict[int, np.ndarray] = {}
        self._x_shape: tuple[int, ...] | None = None
        self.failure: Exception | None = None
        retain_freed_memory()

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

    def _forget_if_forked(self) -> None:
        """In a forked child, drop the parent's handles: this process opens its own."""
        if self._pid != os.getpid():
            self._open, self._pid, self._lock = {}, os.getpid(), threading.Lock()
            self._packed_targets, self._raw, self._parquet_locks = {}, {}, {}

    def _handle(self, pos: int) -> Any:
        """The open h5py.File or pyarrow ParquetFile of shard ``pos`` (manifest order)."""
        self._forget_if_forked()
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
                        self._parquet_locks[pos] = threading.Lock()
                    self._open[pos] = handle
        return handle

    def file_attrs(self, pos: int) -> dict[str, Any]:
        """Attributes of shard ``pos``'s file: an HDF5 file's attributes as stored, or a
        Parquet file's ``audiomill.*`` metadata without the prefix, JSON values decoded."""
        handle = self._handle(pos)
        if self.shards[pos].fmt == "hdf5":
            return dict(handle.attrs)
        attrs: dict[str, Any] = {}
        for key, value in (handle.schema_arrow.metadata or {}).items():
            name = key.decode()
            if not name.startswith("audiomill."):
                continue
            name = name.removeprefix("audiomill.")
            try:
                attrs[name] = json.loads(value)
            except ValueError:
                attrs[name] = value.decode()
        return attrs

    def _raw_rows(self, pos: int) -> _RawRows | None:
        """Byte layout of ``x`` of local HDF5 shard ``pos`` when it can be read with ``preadv``.

        None (read through h5py) unless the dataset is contiguous, unfiltered, allocated, of
        the reader's dtype in native byte order and of rows of ``x_shape``.
        """
        self._forget_if_forked()
        if pos in self._raw:
            return self._raw[pos]
        handle = self._handle(pos)
        dataset = handle[HDF5_KEYS[self.source][0]]
        shape, dtype = self.x_shape, self.x_dtype  # before the lock: x_shape may open a file
        with self._lock:
            if pos in self._raw:
                return self._raw[pos]
            raw = None
            plist = dataset.id.get_create_plist()
            offset = dataset.id.get_offset()
            if (
                hasattr(os, "preadv")
                and self.store.is_local
                and handle.driver == "sec2"  # a plain POSIX file descriptor
                and plist.get_layout() == h5py.h5d.CONTIGUOUS
                and plist.get_nfilters() == 0
                and plist.get_external_count() == 0
                and offset is not None
                and dataset.dtype == dtype
                and tuple(dataset.shape[1:]) == shape
            ):
                # HDF5's own descriptor (it reads with pread too): no second one per shard.
                fd = int(handle.id.get_vfd_handle())
                raw = _RawRows(fd, int(offset), int(np.prod(shape)) * dtype.itemsize)
            self._raw[pos] = raw
        return raw

    def close(self) -> None:
        """Close the files this process opened."""
        with self._lock:
            for handle in self._open.values():
                if isinstance(handle, h5py.File):
                    handle.close()
            self._open, self._raw = {}, {}  # the raw reads used the h5py files' descriptors
            self._parquet_locks = {}

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"], state["_lock"], state["_packed_targets"] = {}, None, {}
        state["_raw"], state["_parquet_locks"] = {}, {}
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
        ids = np.asarray(global_rows, dtype=np.int64).reshape(-1)
        order = np.argsort(ids, kind="stable")
        pos, rows = self.locate(ids[order])
        x = np.empty((len(ids), *self.x_shape), dtype=self.x_dtype)
        y = np.empty((len(ids), self.num_classes), dtype=bool)
        # Boundaries of the groups of rows of one shard (sorted ids, so sorted ``pos``).
        bounds = [0, *(np.flatnonzero(np.diff(pos)) + 1).tolist(), len(ids)]
        for start, end in itertools.pairwise(bounds):
            if start == end:
                continue
            shard_pos = int(pos[start])
            read = self._read_hdf5 if self.shards[shard_pos].fmt == "hdf5" else self._read_parquet
            with reading_shard(self.store.url(self.shards[shard_pos].path)):
                read(shard_pos, rows[start:end], order[start:end], x, y)
        return x, y

    def _targets(self, pos: int) -> np.ndarray:
        """The targets of HDF5 shard ``pos``, bit-packed by row, read once per process."""
        packed = self._packed_targets.get(pos)
        if packed is None:
            y_key = HDF5_KEYS[self.source][1]
            packed = self._packed_targets[pos] = np.packbits(self._handle(pos)[y_key][:], axis=1)
        return packed

    def _read_hdf5(
        self, pos: int, rows: np.ndarray, dest: np.ndarray, x: np.ndarray, y: np.ndarray
    ) -> None:
        """Set ``x[dest]``, ``y[dest]`` to the sorted ``rows`` (repeats allowed) of shard ``pos``.

        Targets come from the shard's bit-packed copy in memory (C / 8 bytes a clip), so each
        run of consecutive rows costs one read of ``x``: one ``preadv`` scattering the run's
        rows into their places in ``x`` when the layout allows (:meth:`_raw_rows`), else one
        h5py hyperslab read of the distinct rows into a buffer.
        """
        y[dest] = np.unpackbits(self._targets(pos)[rows], axis=1, count=self.num_classes)
        raw = self._raw_rows(pos)
        if raw is None:
            dataset = self._handle(pos)[HDF5_KEYS[self.source][0]]

            def fill(distinct: np.ndarray, out: list[np.ndarray]) -> None:
                breaks = np.flatnonzero(np.diff(distinct) != 1) + 1
                for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(distinct)], strict=True):
                    out[0][a:b] = dataset[int(distinct[a]) : int(distinct[b - 1]) + 1]

            _fill_distinct(rows, dest, [x], fill)
            return
        # A run is consecutive rows of the file; within it, one buffer per stretch of rows
        # that is also consecutive in ``x`` (a whole run when reading in order). Batches hold
        # a few rows per shard, so a loop over Python ints beats NumPy's per-call overhead.
        buffers: list[np.ndarray] = []
        offset = 0
        buffer_start = last_row = last_dest = -2
        for r, d in zip(rows.tolist(), dest.tolist(), strict=True):
            if r == last_row + 1:
                if d == last_dest + 1:  # the current buffer grows by a row
                    buffers[-1] = x[buffer_start : d + 1]
                    last_row, last_dest = r, d
                    continue
                if len(buffers) < _IOV_MAX:  # same read, a new place in ``x``
                    buffers.append(x[d : d + 1])
                    buffer_start, last_row, last_dest = d, r, d
                    continue
            if buffers:
                _preadv_exactly(raw.fd, buffers, offset)
            buffers = [x[d : d + 1]]
            offset = raw.offset + r * raw.row_bytes
            buffer_start, last_row, last_dest = d, r, d
        _preadv_exactly(raw.fd, buffers, offset)

    def _read_parquet(
        self, pos: int, rows: np.ndarray, dest: np.ndarray, x: np.ndarray, y: np.ndarray
    ) -> None:
        """Set ``x[dest]``, ``y[dest]`` to the sorted ``rows`` of Parquet shard ``pos``.

        A ``ParquetFile`` reads from one thread at a time (read concurrently, its read cache
        mixed up the reads: wrong-cache errors, heap corruption, segfaults), so the file's
        row groups are read under its lock; the FLAC of waveforms is decoded outside it.
        """
        pf = self._handle(pos)
        lock = self._parquet_locks[pos]
        sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)]
        group_starts = np.r_[0, np.cumsum(sizes)]
        column = "audio" if self.source == "waveforms" else "embedding"

        def fill(distinct: np.ndarray, out: list[np.ndarray]) -> None:
            bx, by = out
            groups = np.searchsorted(group_starts, distinct, side="right") - 1
            at = 0
            for g in np.unique(groups):
                local = distinct[groups == g] - group_starts[g]
                with lock:
                    table = pf.read_row_group(int(g), columns=[column, "labels"])
                table = table.take(local)
                n = len(local)
                labels = table.column("labels").combine_chunks()
                parents = pc.list_parent_indices(labels).to_numpy()
                block_y = np.zeros((n, self.num_classes), dtype=bool)
                block_y[parents, pc.list_flatten(labels).to_numpy()] = True
                by[at : at + n] = block_y
                if self.source == "waveforms":
                    bx[at : at + n] = 0
                    audio = table.column("audio").combine_chunks().field("bytes").to_pylist()
                    for i, data in enumerate(audio):
                        try:
                            wave, _ = sf.read(io.BytesIO(data), dtype="int16")
                        except sf.LibsndfileError as exc:
                            row = int(group_starts[g] + local[i])
                            raise OSError(
                                f"the audio of row {row} cannot be decoded ({exc.error_string})"
                            ) from exc
                        wave = wave[: self.num_samples]
                        bx[at + i, : len(wave)] = wave
                else:
                    flat = table.column("embedding").combine_chunks().flatten().to_numpy()
                    bx[at : at + n] = flat.reshape(n, *self.x_shape)
                at += n

        _fill_distinct(rows, dest, [x, y], fill)

    def read_all(self) -> tuple[np.ndarray, np.ndarray]:
        """Read the whole split, in global row order."""
        x = np.empty((self.num_rows, *self.x_shape), dtype=self.x_dtype)
        y = np.empty((self.num_rows, self.num_classes), dtype=bool)
        for pos in range(len(self.shards)):
            start, stop = int(self.shard_offsets[pos]), int(self.shard_offsets[pos + 1])
            rows = np.arange(stop - start, dtype=np.int64)
            read = self._read_hdf5 if self.shards[pos].fmt == "hdf5" else self._read_parquet
            with reading_shard(self.store.url(self.shards[pos].path)):
                read(pos, rows, rows + start, x, y)
        return x, y


def _fill_distinct(
    rows: np.ndarray,
    dest: np.ndarray,
    outs: list[np.ndarray],
    fill: Callable[[np.ndarray, list[np.ndarray]], None],
) -> None:
    """Read sorted ``rows`` (repeats allowed) once each and place them at ``dest`` of ``outs``.

    ``fill(distinct, buffers)`` writes the distinct rows, in order, into one buffer per array
    of ``outs``; the buffers are the destination itself when the rows are distinct and go to
    consecutive places (a whole shard read in order), else they are gathered into ``dest``.
    """
    keep = np.r_[True, np.diff(rows) != 0]
    distinct = rows[keep]
    n = len(distinct)
    if n == len(rows) and (n == 1 or (np.diff(dest) == 1).all()):
        d = int(dest[0])
        fill(distinct, [out[d : d + n] for out in outs])
        return
    buffers = [np.empty((n, *out.shape[1:]), dtype=out.dtype) for out in outs]
    fill(distinct, buffers)
    inverse = np.cumsum(keep) - 1
    for out, buffer in zip(outs, buffers, strict=True):
        out[dest] = buffer[inverse]


def to_float(x: np.ndarray) -> np.ndarray:
    """Scale int16 waveforms to [-1, 1) (/ 32768) or uint8 embeddings by (x - 128) / 128."""
    out = np.empty(x.shape, dtype=np.float32)
    if x.dtype == np.int16:
        return np.multiply(x, np.float32(1 / 32768), out=out)
    np.subtract(x, np.float32(128), out=out)
    return np.multiply(out, np.float32(1 / 128), out=out)


def raw_float(x: np.ndarray) -> np.ndarray:
    """Cast stored embeddings (uint8) to float32 without rescaling (the model dequantizes)."""
    return x.astype(np.float32)


def _to_float_graph(x: tf.Tensor) -> tf.Tensor:
    scaled = tf.cast(x, tf.float32)
    if x.dtype == tf.int16:
        return scaled * tf.constant(1 / 32768, tf.float32)
    return (scaled - tf.constant(128, tf.float32)) * tf.constant(1 / 128, tf.float32)


GRAPH_TRANSFORMS: dict[Any, Callable[[tf.Tensor], tf.Tensor]] = {
    to_float: _to_float_graph,
    raw_float: lambda x: tf.cast(x, tf.float32),
    np.float32: lambda x: tf.cast(x, tf.float32),
}
"""NumPy transforms of :func:`make_dataset` and the TensorFlow ops equal to them bit for bit
(int16 and uint8 convert exactly to float32, and the scales are powers of two), which
:func:`make_dataset` runs in the graph instead: the batch crosses from Python as stored (half
or a quarter of the bytes of float32) and TensorFlow converts it on its own threads."""


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
        :func:`to_float` by default, :func:`raw_float` (or ``np.float32``) for models that
        dequantize themselves. Those of :data:`GRAPH_TRANSFORMS` run as TensorFlow ops.
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
    A read that fails ends the dataset early, after the batches read before it, and is kept
    as ``reader.failure``; consume the dataset within :func:`read_failures_raised`, which
    raises it. An exception raised inside ``tf.data`` would instead be logged by TensorFlow's
    native code, traceback and all, once per op it passes through, before reaching the caller
    as an error holding it as text.

    The sampler runs ahead of what the model consumed by up to ``prefetch + parallel_reads``
    batches, so ``sampler.state()`` read during training is ahead of the batches trained on.
    For an exact resume save the state when a dataset is built (an epoch of ``k`` batches) and
    the number of batches consumed, or drive :func:`modeling.samplers.batches` yourself.
    """

    def rows() -> Iterator[np.ndarray]:
        retain_freed_memory()  # after TensorFlow's generator dataset set its own malloc options
        for number, ids in enumerate(batches(sampler, batch_size, drop_remainder=drop_remainder)):
            if reader.failure is not None:
                return
            if on_batch is not None:
                on_batch(number)
            yield ids

    graph = GRAPH_TRANSFORMS.get(transform)
    if graph is None:
        out_types = [tf.float32, tf.float32]

        def convert(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return transform(x), y.astype(np.float32)

    else:
        out_types = [tf.as_dtype(reader.x_dtype), tf.bool]

        def convert(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return x, y

    if cache:
        all_x, all_y = reader.read_all()

        def read(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return all_x[ids], all_y[ids]

    else:
        read = reader.read

    def load(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        try:
            return convert(*read(ids))
        except Exception as exc:
            reader.failure = exc
            x = np.empty((0, *reader.x_shape), dtype=out_types[0].as_numpy_dtype)
            return x, np.empty((0, reader.num_classes), dtype=out_types[1].as_numpy_dtype)

    x_shape = (None, *reader.x_shape)
    y_shape = (None, reader.num_classes)

    def read_batch(ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = tf.numpy_function(load, [ids], out_types, stateful=False)
        if graph is not None:
            x, y = graph(x), tf.cast(y, tf.float32)
        x.set_shape(x_shape)
        y.set_shape(y_shape)
        return x, y

    ds = tf.data.Dataset.from_generator(
        rows, output_signature=tf.TensorSpec(shape=(None,), dtype=tf.int64)
    )
    ds = ds.map(read_batch, num_parallel_calls=parallel_reads)
    return ds.filter(lambda x, y: tf.shape(x)[0] > 0).prefetch(prefetch)  # a failed read: none


@contextlib.contextmanager
def read_failures_raised(*readers: ShardReader) -> Iterator[None]:
    """Raise the failure of a read of ``readers`` inside a :func:`make_dataset` pipeline.

    Such a read (a shard gone or damaged, a store out of reach) ends its dataset early, so a
    consumer in the block gets fewer batches than it asked for; at the end of the block the
    exception the read raised is raised, naming the shard or the store, and the warning Keras
    gives for the missing batches ("Your input ran out of data") is dropped. Other warnings of
    the block are shown as usual once it ends. An error raised in the block (TensorFlow's,
    or Keras's own when no batch came at all) is replaced by the read's failure when there
    is one.
    """
    with warnings.catch_warnings(record=True) as caught:
        try:
            yield
        except Exception:
            failure = _first_failure(readers)
            if failure is None:
                raise
            raise failure from None
    failure = _first_failure(readers)
    if failure is not None:
        raise failure
    for shown in caught:
        warnings.showwarning(shown.message, shown.category, shown.filename, shown.lineno)


def _first_failure(readers: Sequence[ShardReader]) -> Exception | None:
    return next((r.failure for r in readers if r.failure is not None), None)
