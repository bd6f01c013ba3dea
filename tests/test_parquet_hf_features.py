"""The Hugging Face ``datasets`` features a Parquet waveform shard records in its schema
metadata, so that ``load_dataset("parquet", ...)`` reads ``audio`` as an ``Audio`` feature.

``datasets`` (``Features.from_arrow_schema``) takes a column's feature from the ``huggingface``
entry only when the Arrow field that feature makes equals the file's field, nullability
included, and otherwise infers it from the Arrow type; these tests check both sides with
pyarrow alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.shard_writers import ParquetShardWriter
from schemas.shards import PARQUET_WAVEFORM_SCHEMA

SR = 16000
T = 1600


def _write_shard(path: Path, **metadata) -> pa.Schema:
    """A two-clip waveform shard at ``SR``; returns the schema read back from the file."""
    writer = ParquetShardWriter(str(path), sample_rate=SR, metadata=metadata or None)
    for i in range(2):
        writer.add(
            clip_id=f"clip-{i}",
            audio_name=f"clip-{i}",
            waveform=np.full(T, 100 * (i + 1), dtype=np.int16),
            labels=[i],
            num_samples=T - 100 * i,
            start_s=None,
        )
    writer.close()
    return pq.read_schema(path)


def _features(schema: pa.Schema) -> dict:
    return json.loads(schema.metadata[b"huggingface"])["info"]["features"]


def _arrow_type(feature: dict) -> pa.DataType:
    """The Arrow type ``datasets`` makes of a ``Value`` or ``Sequence`` feature."""
    if feature["_type"] == "Sequence":
        return pa.list_(_arrow_type(feature["feature"]))
    assert feature["_type"] == "Value"
    return pa.type_for_alias(feature["dtype"])


def test_audio_is_an_audio_feature_at_the_shard_rate(tmp_path):
    features = _features(_write_shard(tmp_path / "s.parquet"))
    assert features["audio"] == {"_type": "Audio", "sampling_rate": SR}


def test_features_name_every_column_in_order(tmp_path):
    schema = _write_shard(tmp_path / "s.parquet")
    assert list(_features(schema)) == schema.names == PARQUET_WAVEFORM_SCHEMA.names


def test_audio_field_is_the_one_the_audio_feature_makes(tmp_path):
    field = _write_shard(tmp_path / "s.parquet").field("audio")
    audio_type = pa.struct({"bytes": pa.binary(), "path": pa.string()})
    assert field.equals(pa.field("audio", audio_type))  # nullable, as datasets' fields are


def test_other_columns_keep_the_type_datasets_infers(tmp_path):
    schema = _write_shard(tmp_path / "s.parquet")
    features = _features(schema)
    for field in schema:
        if field.name != "audio":
            assert _arrow_type(features[field.name]) == field.type, field.name


def test_audiomill_metadata_is_kept(tmp_path):
    schema = _write_shard(tmp_path / "s.parquet", split="train", shard_index=3)
    assert schema.metadata[b"audiomill.table"] == b"waveforms"
    assert schema.metadata[b"audiomill.schema_version"] == b"1"
    assert schema.metadata[b"split"] == b"train"
    assert schema.metadata[b"shard_index"] == b"3"
