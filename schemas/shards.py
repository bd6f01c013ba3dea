"""Waveform shard layouts (HDF5 and Parquet) and readers for them.

HDF5 (compatible with PANNs' packed files, so their loaders read ours):

================  =================  ==============================================
dataset           dtype, shape       meaning
================  =================  ==============================================
``audio_name``    ``S<w>`` (N,)      PANNs-style name (``Y<YTID>.wav`` or clip id),
                                     ``w`` >= 20
``waveform``      int16 (N, T)       T = sample_rate x clip_seconds, zero padded
``target``        bool (N, C)        multi-hot, in class-map order
``clip_id``       utf-8 str (N,)     stable clip id
``num_samples``   int64 (N,)         true length before padding
``start_s``       float64 (N,)       segment start in the source (NaN = whole file)
================  =================  ==============================================

File attributes: ``sample_rate`` (int32), ``clip_seconds``, ``schema_version``,
``class_map_sha256``.

Parquet: one row per clip with :data:`PARQUET_WAVEFORM_SCHEMA`; ``audio`` is a struct of
``bytes`` (a FLAC file) and ``path`` (the clip's name), the layout Hugging Face ``datasets``
reads as its ``Audio`` feature, which the schema metadata's ``huggingface`` entry
(:func:`huggingface_metadata`) names. Row groups hold about 100 clips for streaming reads.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import soundfile as sf

from schemas.parquet_layout import column_problems, label_problems

WAVEFORM_SCHEMA_VERSION = 1
AUDIO_NAME_MIN_WIDTH = 20
PARQUET_ROW_GROUP = 100

HDF5_REQUIRED = ("audio_name", "waveform", "target", "clip_id", "num_samples", "start_s")

PARQUET_WAVEFORM_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("audio_name", pa.string(), nullable=False),
        pa.field("labels", pa.list_(pa.int32()), nullable=False),
        pa.field("start_s", pa.float64()),
        pa.field("num_samples", pa.int64(), nullable=False),
        pa.field("sample_rate", pa.int32(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("source_sample_rate", pa.int32()),
        pa.field("source_channels", pa.int32()),
        pa.field("delivered_seconds", pa.float64()),
        # Nullable: datasets takes the Audio feature only for a field equal to the one it makes.
        pa.field(
            "audio", pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
        ),
    ],
    metadata={b"audiomill.table": b"waveforms", b"audiomill.schema_version": b"1"},
)


def _value(dtype: str) -> dict:
    """A ``datasets`` ``Value`` feature as ``Features.to_dict`` writes it."""
    return {"dtype": dtype, "_type": "Value"}


def huggingface_metadata(sample_rate: int) -> dict[bytes, bytes]:
    """The ``huggingface`` schema metadata entry of a Parquet waveform shard, as ``datasets``
    writes it in its own Parquet files, so that it reads ``audio`` as ``Audio`` at
    ``sample_rate`` and the other columns as the types it infers from them anyway.

    Parameters
    ----------
    sample_rate : int
        The dataset's sample rate, that of the stored FLAC: ``datasets`` resamples only a
        file at another rate.

    Returns
    -------
    dict
        ``{b"huggingface": JSON {"info": {"features": {column: feature}}}}``, one feature per
        column of :data:`PARQUET_WAVEFORM_SCHEMA`, in its order; ``labels`` is a
        ``Sequence``, which ``datasets`` 3 reads and later versions read as a ``List``.
    """
    features = {
        "clip_id": _value("string"),
        "audio_name": _value("string"),
        "labels": {"feature": _value("int32"), "_type": "Sequence"},
        "start_s": _value("float64"),
        "num_samples": _value("int64"),
        "sample_rate": _value("int32"),
        "source": _value("string"),
        "source_sample_rate": _value("int32"),
        "source_channels": _value("int32"),
        "delivered_seconds": _value("float64"),
        "audio": {"sampling_rate": sample_rate, "_type": "Audio"},
    }
    return {b"huggingface": json.dumps({"info": {"features": features}}).encode()}


@dataclass
class WaveformRow:
    """One clip as stored in a waveform shard.

    Attributes
    ----------
    clip_id : str
    audio_name : str
    waveform : np.ndarray
        int16, shape (T,), zero padded to the dataset's clip length.
    labels : list of int
        Class indices.
    num_samples : int
        Real samples before padding.
    start_s : float or None
    """

    clip_id: str
    audio_name: str
    waveform: np.ndarray
    labels: list[int]
    num_samples: int
    start_s: float | None


def audio_name_for(clip_id: str, source_kind: str, source: str) -> str:
    """PANNs' name for a clip: ``Y<YTID>.wav`` for YouTube segments, else the clip id."""
    return f"Y{source}.wav" if source_kind == "youtube" else clip_id


def flac_bytes(waveform: np.ndarray, sample_rate: int) -> bytes:
    """Encode an int16 waveform as a FLAC file in memory."""
    buf = io.BytesIO()
    sf.write(buf, waveform, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def read_hdf5_rows(path_or_file) -> Iterator[WaveformRow]:
    """Yield the rows of an HDF5 waveform shard (a path or an open binary file object)."""
    with h5py.File(path_or_file, "r") as hf:
        names = hf["audio_name"][:]
        ids = hf["clip_id"].asstr()[:]
        targets = hf["target"][:]
        lengths = hf["num_samples"][:]
        starts = hf["start_s"][:]
        for i in range(len(ids)):
            yield WaveformRow(
                clip_id=ids[i],
                audio_name=names[i].decode("utf-8"),
                waveform=hf["waveform"][i],
                labels=np.flatnonzero(targets[i]).tolist(),
                num_samples=int(lengths[i]),
                start_s=None if np.isnan(starts[i]) else float(starts[i]),
            )


def read_parquet_rows(path_or_file, num_samples: int) -> Iterator[WaveformRow]:
    """Yield the rows of a Parquet waveform shard, decoding FLAC and padding to ``num_samples``."""
    pf = pq.ParquetFile(path_or_file)
    for batch in pf.iter_batches(batch_size=PARQUET_ROW_GROUP):
        for r in batch.to_pylist():
            audio, _ = sf.read(io.BytesIO(r["audio"]["bytes"]), dtype="int16")
            wave = np.zeros(num_samples, dtype=np.int16)
            wave[: len(audio)] = audio[:num_samples]
            yield WaveformRow(
                clip_id=r["clip_id"],
                audio_name=r["audio_name"],
                waveform=wave,
                labels=list(r["labels"]),
                num_samples=r["num_samples"],
                start_s=r["start_s"],
            )


def hdf5_problems(path_or_file, num_classes: int, num_samples: int) -> list[str]:
    """Return every way an HDF5 shard departs from the layout (empty list: it conforms)."""
    problems = []
    with h5py.File(path_or_file, "r") as hf:
        missing = [k for k in HDF5_REQUIRED if k not in hf]
        if missing:
            return [f"missing datasets {missing}"]
        n = hf["waveform"].shape[0]
        expected = {
            "waveform": ((n, num_samples), np.int16),
            "target": ((n, num_classes), np.bool_),
            "num_samples": ((n,), np.int64),
            "start_s": ((n,), np.float64),
        }
        for key, (shape, dtype) in expected.items():
            ds = hf[key]
            if ds.shape != shape or ds.dtype != dtype:
                problems.append(f"{key}: {ds.dtype}{ds.shape}, expected {np.dtype(dtype)}{shape}")
        for key in ("audio_name", "clip_id"):
            if hf[key].shape != (n,):
                problems.append(f"{key}: shape {hf[key].shape}, expected ({n},)")
        if hf["audio_name"].dtype.kind != "S":
            problems.append("audio_name is not fixed-length bytes")
        if "sample_rate" not in hf.attrs:
            problems.append("missing attribute sample_rate")
    return problems


def parquet_problems(path_or_file, num_classes: int, num_samples: int) -> list[str]:
    """Return every way a Parquet waveform shard departs from the layout (empty list: it
    conforms): the columns of :data:`PARQUET_WAVEFORM_SCHEMA` with their types, labels that
    are class indices, and true lengths of at most ``num_samples``."""
    pf = pq.ParquetFile(path_or_file)
    problems = column_problems(pf.schema_arrow, PARQUET_WAVEFORM_SCHEMA)
    if problems:
        return problems
    table = pf.read(columns=["labels", "num_samples"])
    problems = label_problems(table["labels"], num_classes)
    longest = pc.max(table["num_samples"]).as_py()
    if longest is not None and longest > num_samples:
        problems.append(f"num_samples: up to {longest}, clips hold {num_samples}")
    return problems
