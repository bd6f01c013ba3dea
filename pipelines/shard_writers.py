"""Streaming writers for waveform shards (layouts in ``schemas.shards``).

Writers append one clip at a time to a local file so memory stays bounded by a few rows (HDF5)
or one row group (Parquet); committing the finished file into the dataset is the storage
layer's job.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.direct_io import UncachedRows
from pipelines.file_io import pread_into, pwrite_all
from pipelines.row_digest import RowStreamDigest
from pipelines.storage import DatasetAccessError
from schemas.shards import (
    AUDIO_NAME_MIN_WIDTH,
    PARQUET_ROW_GROUP,
    PARQUET_WAVEFORM_SCHEMA,
    WAVEFORM_SCHEMA_VERSION,
    flac_bytes,
    huggingface_metadata,
)

DATA_ALIGN = 4096
"""Alignment of the waveform dataset in an HDF5 shard (a page: what ``O_DIRECT`` may need)."""


@contextlib.contextmanager
def creating(path: str) -> Iterator[None]:
    """Create the shard file ``path`` in the block: an ``OSError`` doing so (a folder that
    cannot be written, a full disk) is a `DatasetAccessError` naming its folder and why.

    Raises
    ------
    DatasetAccessError
        ``cannot write a shard in FOLDER: REASON``, from the ``OSError``.
    """
    try:
        yield
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        folder = os.path.dirname(os.path.abspath(path))
        raise DatasetAccessError(f"cannot write a shard in {folder}: {reason}") from exc


@dataclass(frozen=True)
class ShardRow:
    """What a waveform shard holds about a clip besides its samples and true length."""

    clip_id: str
    audio_name: str
    labels: tuple[int, ...]
    start_s: float | None

    @classmethod
    def of(cls, record: Mapping) -> ShardRow:
        """The row of a planned clip or of a prepared clip's metadata (both have ``clip_id``,
        ``audio_name``, ``labels`` and ``start_s``)."""
        return cls(
            record["clip_id"], record["audio_name"], tuple(record["labels"]), record["start_s"]
        )


class HDF5ShardWriter:
    """Write a PANNs-compatible HDF5 waveform shard whose rows are known in advance.

    Everything but the waveforms and their true lengths (``num_samples``) is written when
    the writer is made, and the HDF5 library is done with the file then. The ``waveform`` and
    ``num_samples`` datasets are contiguous and allocated up front, so their rows are plain
    byte ranges of the file: waveforms are written with :meth:`add` in order, or with
    :meth:`write_waveform` in any order by several threads, with ``pwrite`` (no global lock,
    the GIL released), and the lengths by :meth:`close`. HDF5 never touches those bytes: no
    fill value is written.

    Since nothing before the waveforms changes after they are written, the file's sha256 is
    computed as they come (:class:`pipelines.row_digest.RowStreamDigest`) and :meth:`close`
    returns it: committing the shard does not read it back.

    The waveform dataset starts on a page boundary (:data:`DATA_ALIGN`), so that rows can be
    written with ``O_DIRECT``.

    Parameters
    ----------
    path : str
        Local file to create.
    rows : sequence of ShardRow
        The shard's clips, in row order.
    num_samples : int
        Samples per row (T).
    num_classes : int
        Width of ``target`` (C).
    sample_rate : int
    attrs : dict
        Extra file attributes (class map digest, clip seconds ...).
    uncached : bool
        Keep the rows out of the page cache, for a shard that is committed to a local dataset
        and not read again: they go straight to disk
        (:class:`pipelines.direct_io.DirectRowWriter`) where the file system and the row size
        allow it, and are otherwise pushed to disk as soon as they are written, only the last
        few MB staying cached (:func:`pipelines.page_cache.write_behind`). Leave it off for
        scratch files.
    """

    def __init__(
        self,
        path: str,
        rows: Sequence[ShardRow],
        *,
        num_samples: int,
        num_classes: int,
        sample_rate: int,
        attrs: dict | None = None,
        uncached: bool = False,
    ) -> None:
        self.path = path
        self.rows = list(rows)
        n = len(self.rows)
        self._row_bytes = num_samples * 2
        targets = np.zeros((n, num_classes), dtype=np.bool_)
        for i, row in enumerate(rows):
            targets[i, list(row.labels)] = True
        names = [row.audio_name.encode("utf-8") for row in rows]
        width = max([AUDIO_NAME_MIN_WIDTH, *map(len, names)])
        # No free-space tracking: the alignment gap before the waveforms must not take the
        # lengths, which go after them, outside the prefix that is hashed before any row.
        with (
            creating(path),
            h5py.File(
                path,
                "w",
                alignment_threshold=DATA_ALIGN,
                alignment_interval=DATA_ALIGN,
                fs_strategy="none",
            ) as hf,
        ):
            hf.create_dataset("audio_name", data=np.array(names, dtype=f"S{width}"))
            hf.create_dataset("target", data=targets)
            hf.create_dataset(
                "clip_id", data=[row.clip_id for row in rows], dtype=h5py.string_dtype("utf-8")
            )
            starts = [math.nan if row.start_s is None else row.start_s for row in rows]
            hf.create_dataset("start_s", data=np.array(starts, dtype=np.float64))
            waveform = _allocated(hf, "waveform", (n, num_samples), "<i2")
            lengths = _allocated(hf, "num_samples", (n,), "<i8")
            hf.attrs["sample_rate"] = np.int32(sample_rate)
            hf.attrs["schema_version"] = WAVEFORM_SCHEMA_VERSION
            for key, value in (attrs or {}).items():
                hf.attrs[key] = value
            self._offset = waveform.id.get_offset()  # None when the dataset has no bytes
            self._lengths_offset = lengths.id.get_offset()
        self._lengths = np.zeros(n, dtype="<i8")
        self._written = np.zeros(n, dtype=np.bool_)
        self._n = 0
        self._fd: int | None = None
        self._digest: RowStreamDigest | None = None
        self._uncached: UncachedRows | None = None
        if self._offset is not None:
            self._fd = os.open(path, os.O_RDWR)
            if self._lengths_offset >= self._offset + n * self._row_bytes:
                self._digest = RowStreamDigest(os.pread(self._fd, self._offset, 0), n)
            if uncached:
                self._uncached = UncachedRows(path, self._fd, self._offset, self._row_bytes)

    @property
    def num_rows(self) -> int:
        """Rows the shard holds."""
        return len(self.rows)

    def add(self, waveform: np.ndarray, num_samples: int) -> int:
        """Write the waveform of the next row in order; returns its row number."""
        if self._n >= self.num_rows:
            raise IndexError(f"shard is full ({self.num_rows} rows)")
        self.write_waveform(self._n, waveform, num_samples)
        self._n += 1
        return self._n - 1

    def write_waveform(self, row: int, waveform: np.ndarray, num_samples: int) -> None:
        """Write the waveform of ``row`` and its true length (thread-safe). The array must
        not change afterwards: it may be held until the rows before it are hashed."""
        data = np.ascontiguousarray(waveform, dtype="<i2")
        if data.nbytes != self._row_bytes:
            raise ValueError(f"row {row}: {data.size} samples, rows hold {self._row_bytes // 2}")
        offset = self._row_offset(row)
        if self._uncached is not None:
            self._uncached.write(data, offset)
        else:
            pwrite_all(self._fd, data, offset)
        if self._digest is not None:
            self._digest.add(row, data)
        self._lengths[row] = num_samples
        self._written[row] = True

    def read_waveform(self, row: int) -> np.ndarray:
        """Read back the waveform of ``row`` (thread-safe)."""
        if self._uncached is not None:
            self._uncached.flush()
        out = np.empty(self._row_bytes // 2, dtype="<i2")
        if pread_into(self._fd, out, self._row_offset(row)) < self._row_bytes:
            raise EOFError(f"{self.path}: row {row} ends past the end of the file")
        return out.astype(np.int16, copy=False)

    def _row_offset(self, row: int) -> int:
        if not 0 <= row < self.num_rows:
            raise IndexError(f"row {row} is outside the shard's {self.num_rows} rows")
        return self._offset + row * self._row_bytes

    def discard(self) -> None:
        """Close the file without finishing it (the caller removes it)."""
        self._close_fd()

    def _close_fd(self) -> None:
        if self._uncached is not None:
            self._uncached.close()
            self._uncached = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> str | None:
        """Finish the file; every row must have been written.

        Returns
        -------
        str or None
            The sha256 hex digest of the finished file, or ``None`` when it was not computed
            while writing (rows came too far out of order, or the file's layout does not put
            the lengths after the waveforms): hash the file then.
        """
        written = int(self._written.sum())
        try:
            if written != self.num_rows:
                raise ValueError(f"shard has {written} rows written, {self.num_rows} allocated")
            if self._fd is None:
                return None
            end = self._offset + self.num_rows * self._row_bytes
            if self._uncached is not None:
                self._uncached.settle(self._offset, end - self._offset)
            pwrite_all(self._fd, self._lengths, self._lengths_offset)
            if self._digest is None:
                return None
            suffix = os.pread(self._fd, os.fstat(self._fd).st_size - end, end)
            return self._digest.finish(suffix)
        finally:
            self._close_fd()


def _allocated(hf: h5py.File, name: str, shape: tuple[int, ...], dtype: str) -> h5py.Dataset:
    """A contiguous dataset whose bytes are allocated now and never filled by HDF5."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return hf.create_dataset(name, shape=shape, dtype=dtype, dcpl=dcpl, fill_time="never")


class ParquetShardWriter:
    """Write a Parquet waveform shard, one FLAC-encoded clip per row, in row groups of ~100."""

    def __init__(self, path: str, *, sample_rate: int, metadata: dict | None = None) -> None:
        schema = PARQUET_WAVEFORM_SCHEMA.with_metadata(
            {
                **PARQUET_WAVEFORM_SCHEMA.metadata,
                **huggingface_metadata(sample_rate),
                **{k.encode(): str(v).encode() for k, v in (metadata or {}).items()},
            }
        )
        with creating(path):
            self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        self._schema = schema
        self._rows: list[dict] = []
        self._n = 0
        self.sample_rate = sample_rate

    def add(
        self,
        *,
        clip_id: str,
        audio_name: str,
        waveform: np.ndarray,
        labels: list[int],
        num_samples: int,
        start_s: float | None,
        source: str | None = None,
        source_sample_rate: int | None = None,
        source_channels: int | None = None,
        delivered_seconds: float | None = None,
        flac: bytes | None = None,
    ) -> int:
        """Append one clip (only its ``num_samples`` real samples are encoded).

        ``flac`` is the clip already encoded as
        ``schemas.shards.flac_bytes(waveform[:num_samples], sample_rate)``, for callers that
        encode in parallel; it is encoded here when omitted.
        """
        if flac is None:
            flac = flac_bytes(waveform[:num_samples], self.sample_rate)
        self._rows.append(
            {
                "clip_id": clip_id,
                "audio_name": audio_name,
                "labels": list(labels),
                "start_s": start_s,
                "num_samples": num_samples,
                "sample_rate": self.sample_rate,
                "source": source,
                "source_sample_rate": source_sample_rate,
                "source_channels": source_channels,
                "delivered_seconds": delivered_seconds,
                "audio": {
                    "bytes": flac,
                    "path": f"{clip_id}.flac",
                },
            }
        )
        if len(self._rows) >= PARQUET_ROW_GROUP:
            self._flush()
        self._n += 1
        return self._n - 1

    def discard(self) -> None:
        """Close the file without finishing it (the caller removes it)."""
        self._rows = []
        self._writer.close()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def close(self) -> None:
        """Write the last row group and the footer."""
        self._flush()
        self._writer.close()
