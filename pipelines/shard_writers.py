"""Streaming writers for waveform shards (layouts in ``schemas.shards``).

Writers append one clip at a time to a local file so memory stays bounded by one row (HDF5)
or one row group (Parquet); committing the finished file into the dataset is the storage
layer's job.
"""

from __future__ import annotations

import math
import os

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.file_io import pread_into, pwrite_all
from pipelines.page_cache import drop_cached, write_behind
from schemas.shards import (
    AUDIO_NAME_MIN_WIDTH,
    PARQUET_ROW_GROUP,
    PARQUET_WAVEFORM_SCHEMA,
    WAVEFORM_SCHEMA_VERSION,
    flac_bytes,
)


class HDF5ShardWriter:
    """Write a PANNs-compatible HDF5 waveform shard of a known number of rows.

    Rows are appended with :meth:`add`, or filled in any order, by several threads, with
    :meth:`write_waveform` and :meth:`set_row`; either way the file is the same.

    The ``waveform`` dataset is contiguous and allocated when it is created, so its rows are
    plain byte ranges of the file: they are written and read with ``pwrite``/``pread`` on a
    second descriptor, without h5py's global lock and with the GIL released (decoding threads
    would otherwise queue behind each other's row writes). HDF5 itself never touches those
    bytes: no fill value is written, and it caches no raw data of a dataset it does not read.

    Parameters
    ----------
    path : str
        Local file to create.
    num_rows : int
        Rows the shard will hold (datasets are allocated up front, as PANNs does).
    num_samples : int
        Samples per row (T).
    num_classes : int
        Width of ``target`` (C).
    sample_rate : int
    audio_name_width : int
        Byte width of ``audio_name`` (at least 20, as in PANNs).
    attrs : dict
        Extra file attributes (class map digest, clip seconds ...).
    write_behind : bool
        Push each row to disk as soon as it is written and keep only the last few MB of rows
        in the page cache (:func:`pipelines.page_cache.write_behind`): for a shard that is
        committed to a local dataset and not read again. Leave it off for scratch files.
    """

    def __init__(
        self,
        path: str,
        *,
        num_rows: int,
        num_samples: int,
        num_classes: int,
        sample_rate: int,
        audio_name_width: int = AUDIO_NAME_MIN_WIDTH,
        attrs: dict | None = None,
        write_behind: bool = False,
    ) -> None:
        self._hf = h5py.File(path, "w")
        self._n = 0
        self.num_rows = num_rows
        hf = self._hf
        width = max(AUDIO_NAME_MIN_WIDTH, audio_name_width)
        hf.create_dataset("audio_name", shape=(num_rows,), dtype=f"S{width}")
        waveform = hf.create_dataset(
            "waveform",
            shape=(num_rows, num_samples),
            dtype=np.int16,
            dcpl=_early_allocation(),
            fill_time="never",
        )
        hf.create_dataset("target", shape=(num_rows, num_classes), dtype=np.bool_)
        hf.create_dataset("clip_id", shape=(num_rows,), dtype=h5py.string_dtype("utf-8"))
        hf.create_dataset("num_samples", shape=(num_rows,), dtype=np.int64)
        hf.create_dataset("start_s", shape=(num_rows,), dtype=np.float64)
        hf.attrs["sample_rate"] = np.int32(sample_rate)
        hf.attrs["schema_version"] = WAVEFORM_SCHEMA_VERSION
        for key, value in (attrs or {}).items():
            hf.attrs[key] = value
        # Small per-row fields are kept here and written in one piece by close().
        self._names: list[bytes] = [b""] * num_rows
        self._targets = np.zeros((num_rows, num_classes), dtype=np.bool_)
        self._ids: list[str] = [""] * num_rows
        self._lengths = np.zeros(num_rows, dtype=np.int64)
        self._starts = np.zeros(num_rows, dtype=np.float64)
        self._set = np.zeros(num_rows, dtype=np.bool_)
        self._row_bytes = num_samples * 2
        self._offset = waveform.id.get_offset()  # None when the dataset has no bytes
        self._fd = os.open(path, os.O_RDWR) if self._offset is not None else None
        self.write_behind = write_behind

    def add(
        self,
        *,
        clip_id: str,
        audio_name: str,
        waveform: np.ndarray,
        labels: list[int],
        num_samples: int,
        start_s: float | None,
    ) -> int:
        """Append one clip; returns its row number."""
        if self._n >= self.num_rows:
            raise IndexError(f"shard is full ({self.num_rows} rows)")
        i = self._n
        self.write_waveform(i, waveform)
        self.set_row(
            i,
            clip_id=clip_id,
            audio_name=audio_name,
            labels=labels,
            num_samples=num_samples,
            start_s=start_s,
        )
        self._n += 1
        return i

    def write_waveform(self, row: int, waveform: np.ndarray) -> None:
        """Write the waveform of ``row`` (thread-safe)."""
        data = np.ascontiguousarray(waveform, dtype="<i2")
        if data.nbytes != self._row_bytes:
            raise ValueError(f"row {row}: {data.size} samples, rows hold {self._row_bytes // 2}")
        offset = self._row_offset(row)
        pwrite_all(self._fd, data, offset)
        if self.write_behind:
            write_behind(self._fd, offset, data.nbytes)

    def read_waveform(self, row: int) -> np.ndarray:
        """Read back the waveform of ``row`` (thread-safe)."""
        out = np.empty(self._row_bytes // 2, dtype="<i2")
        if pread_into(self._fd, out, self._row_offset(row)) < self._row_bytes:
            raise EOFError(f"{self._hf.filename}: row {row} ends past the end of the file")
        return out.astype(np.int16, copy=False)

    def _row_offset(self, row: int) -> int:
        if not 0 <= row < self.num_rows:
            raise IndexError(f"row {row} is outside the shard's {self.num_rows} rows")
        return self._offset + row * self._row_bytes

    def set_row(
        self,
        row: int,
        *,
        clip_id: str,
        audio_name: str,
        labels: list[int],
        num_samples: int,
        start_s: float | None,
    ) -> None:
        """Set the small fields of ``row`` (written by :meth:`close`)."""
        self._names[row] = audio_name.encode("utf-8")
        self._targets[row] = False
        self._targets[row, list(labels)] = True
        self._ids[row] = clip_id
        self._lengths[row] = num_samples
        self._starts[row] = math.nan if start_s is None else start_s
        self._set[row] = True

    def discard(self) -> None:
        """Close the file without finishing it (the caller removes it)."""
        self.write_behind = False
        self._close_rows()
        self._hf.close()

    def _close_rows(self) -> None:
        if self.write_behind and self._fd is not None:
            drop_cached(self._fd, self._offset, self.num_rows * self._row_bytes, wait_written=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Finish the file; every allocated row must have been written."""
        written = int(self._set.sum())
        self._close_rows()
        if written != self.num_rows:
            self._hf.close()
            raise ValueError(f"shard has {written} rows written, {self.num_rows} allocated")
        hf = self._hf
        if self.num_rows:
            hf["audio_name"][:] = self._names
            hf["target"][:] = self._targets
            hf["clip_id"][:] = self._ids
            hf["num_samples"][:] = self._lengths
            hf["start_s"][:] = self._starts
        hf.flush()
        hf.close()


def _early_allocation() -> h5py.h5p.PropDCID:
    """Dataset creation properties that allocate the whole dataset when it is created."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return dcpl


class ParquetShardWriter:
    """Write a Parquet waveform shard, one FLAC-encoded clip per row, in row groups of ~100."""

    def __init__(self, path: str, *, sample_rate: int, metadata: dict | None = None) -> None:
        schema = PARQUET_WAVEFORM_SCHEMA.with_metadata(
            {
                **PARQUET_WAVEFORM_SCHEMA.metadata,
                **{k.encode(): str(v).encode() for k, v in (metadata or {}).items()},
            }
        )
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
