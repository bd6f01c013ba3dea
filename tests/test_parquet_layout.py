"""Parquet layout checks (``schemas.parquet_layout``) and the shard checks built on them."""

from __future__ import annotations

import io
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.embeddings import embedding_parquet_problems, parquet_embedding_schema
from schemas.parquet_layout import column_problems, label_problems
from schemas.shards import PARQUET_WAVEFORM_SCHEMA, parquet_problems

EXPECTED = pa.schema([pa.field("a", pa.int64()), pa.field("b", pa.list_(pa.int32()))])


def test_column_problems_accepts_the_layout_and_extra_columns():
    assert column_problems(EXPECTED, EXPECTED) == []
    assert column_problems(EXPECTED.append(pa.field("c", pa.string())), EXPECTED) == []


def test_column_problems_names_missing_columns_then_wrong_types():
    assert column_problems(pa.schema([pa.field("b", pa.string())]), EXPECTED) == [
        "missing columns ['a']"
    ]
    found = pa.schema([pa.field("b", pa.list_(pa.int64())), pa.field("a", pa.int32())])
    assert column_problems(found, EXPECTED) == [
        "a: int32, expected int64",
        "b: list<item: int64>, expected list<item: int32>",
    ]


def test_label_problems():
    labels = pa.chunked_array([pa.array([[0, 2], [], [1]], pa.list_(pa.int32()))])
    assert label_problems(labels, 3) == []
    assert label_problems(labels, 2) == ["labels: class indices 0..2, the dataset has classes 0..1"]
    assert label_problems(pa.chunked_array([pa.array([[], []], pa.list_(pa.int32()))]), 1) == []
    negative = pa.chunked_array([pa.array([[-1]], pa.list_(pa.int32()))])
    assert label_problems(negative, 5) == [
        "labels: class indices -1..-1, the dataset has classes 0..4"
    ]


def _parquet(table: pa.Table) -> io.BytesIO:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    buf.seek(0)
    return buf


def _waveform_table(num_samples: list[int], labels: list[list[int]]) -> pa.Table:
    n = len(num_samples)
    return pa.Table.from_pydict(
        {
            "clip_id": [f"c{i}" for i in range(n)],
            "audio_name": [f"c{i}.wav" for i in range(n)],
            "labels": labels,
            "start_s": [None] * n,
            "num_samples": num_samples,
            "sample_rate": [8000] * n,
            "source": ["x"] * n,
            "source_sample_rate": [8000] * n,
            "source_channels": [1] * n,
            "delivered_seconds": [1.0] * n,
            "audio": [{"bytes": b"", "path": f"c{i}.flac"} for i in range(n)],
        },
        schema=PARQUET_WAVEFORM_SCHEMA,
    )


def test_parquet_problems_of_waveform_shards():
    good = _waveform_table([8000, 10], [[0], [1, 2]])
    assert parquet_problems(_parquet(good), num_classes=3, num_samples=8000) == []
    assert parquet_problems(_parquet(good), num_classes=2, num_samples=100) == [
        "labels: class indices 0..2, the dataset has classes 0..1",
        "num_samples: up to 8000, clips hold 100",
    ]
    assert parquet_problems(_parquet(good.drop_columns(["audio"])), 3, 8000) == [
        "missing columns ['audio']"
    ]


def test_embedding_parquet_problems():
    schema = parquet_embedding_schema(frames=2, dim=128)
    table = pa.Table.from_pydict(
        {
            "clip_id": ["a"],
            "video_id": ["a"],
            "labels": [[4]],
            "num_frames": [2],
            "embedding": [np.zeros(256, np.uint8)],
        },
        schema=schema,
    )
    assert embedding_parquet_problems(_parquet(table), num_classes=5) == []
    assert embedding_parquet_problems(_parquet(table), num_classes=4) == [
        "labels: class indices 4..4, the dataset has classes 0..3"
    ]
    narrow = table.replace_schema_metadata({**schema.metadata, b"audiomill.dim": b"64"})
    dim, embedding = embedding_parquet_problems(_parquet(narrow), num_classes=5)
    assert dim == "dim 64, expected 128"
    # Parquet names a list's values "element", Arrow "item": the type's name says which read it
    assert re.fullmatch(
        r"embedding: fixed_size_list<\w+: uint8>\[256\], "
        r"expected fixed_size_list<item: uint8>\[128\]",
        embedding,
    )
    bare = table.replace_schema_metadata(None)
    assert embedding_parquet_problems(_parquet(bare), num_classes=5) == [
        "no audiomill.frames and audiomill.dim in the schema's metadata"
    ]
