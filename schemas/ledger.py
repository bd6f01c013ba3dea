"""The ledger: what happened to every requested clip.

The ledger is a directory of Parquet parts under ``<dataset>/ledger/<split>/``. Each ingest run
adds parts (one per committed shard, one for fetch failures, one for rejected segments); the
logical ledger is their union reduced to one row per ``clip_id``: a committed (``ok``) row wins
over any failure, otherwise the most recently recorded row wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyarrow as pa

LEDGER_SCHEMA_VERSION = 1
STATUS_OK = "ok"
STATUS_FAILED = "failed"

LEDGER_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("transient", pa.bool_()),
        pa.field("attempts", pa.int32()),
        pa.field("source", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("origin", pa.string()),
        pa.field("line", pa.int32()),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("recorded_at", pa.float64(), nullable=False),
        pa.field("fetch_seconds", pa.float64()),
        pa.field("decode_seconds", pa.float64()),
        pa.field("shard", pa.int32()),
        pa.field("row", pa.int32()),
        pa.field("num_samples", pa.int64()),
        pa.field("delivered_seconds", pa.float64()),
        pa.field("source_sample_rate", pa.int32()),
        pa.field("source_channels", pa.int32()),
        pa.field("media_bytes", pa.int64()),
        pa.field("waveform_sha256", pa.string()),
    ],
    metadata={b"audiomill.table": b"ledger", b"audiomill.schema_version": b"1"},
)


def ledger_table(rows: Iterable[Mapping]) -> pa.Table:
    """Build a ledger table from row dicts; missing columns are null, unknown keys rejected."""
    rows = list(rows)
    names = set(LEDGER_SCHEMA.names)
    for r in rows:
        extra = set(r) - names
        if extra:
            raise ValueError(f"unknown ledger columns {sorted(extra)}")
    return pa.Table.from_pylist(
        [{n: r.get(n) for n in LEDGER_SCHEMA.names} for r in rows], schema=LEDGER_SCHEMA
    )


def latest_rows(table: pa.Table) -> dict[str, dict]:
    """Reduce a ledger to one row per clip: ``ok`` beats failures, then the latest record wins."""
    best: dict[str, dict] = {}
    for row in table.sort_by([("recorded_at", "ascending")]).to_pylist():
        prev = best.get(row["clip_id"])
        if prev is None or row["status"] == STATUS_OK or prev["status"] != STATUS_OK:
            best[row["clip_id"]] = row
    return best
