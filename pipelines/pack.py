"""The per-shard transform of ingest: validate staged clips, write and commit one shard.

Each shard is planned by the pipeline (split, index, clips); this function checks the decoded
clips with the Great Expectations clip suite, streams the passing ones into HDF5 and/or Parquet
files in a local scratch directory, commits them into the dataset, writes the shard's ledger
part and validation report, and finally records the commit in the staging area. It is
idempotent: packing the same plan again rewrites the same files.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass

import pandas as pd
import pyarrow.parquet as pq

from pipelines import staging
from pipelines.shard_writers import HDF5ShardWriter, ParquetShardWriter
from pipelines.storage import DatasetStore
from pipelines.validation_reports import save_validation_report
from schemas.dataset import ledger_dir, waveform_shard_path
from schemas.expectations import clip_suite, validate_frame
from schemas.failures import FailureReason
from schemas.ledger import STATUS_FAILED, STATUS_OK, ledger_table

LEDGER_FROM_META = (
    "clip_id", "split", "source", "start_s", "end_s", "origin", "line", "attempts",
    "fetch_seconds", "decode_seconds", "num_samples", "delivered_seconds",
    "source_sample_rate", "source_channels", "media_bytes", "waveform_sha256",
)  # fmt: skip


@dataclass(frozen=True)
class PackSettings:
    """What every shard of a run looks like."""

    formats: tuple[str, ...]
    sample_rate: int
    clip_seconds: float
    num_classes: int
    class_map_sha256: str
    run_id: str
    min_coverage: float = 0.9
    max_clipping: float = 0.01
    max_silence: float = 0.99

    @property
    def num_samples(self) -> int:
        """Samples per row."""
        return round(self.sample_rate * self.clip_seconds)


def ledger_part_path(split: str, index: int, run_id: str, committed: bool) -> str:
    """Dataset-relative path of a shard's ledger part.

    A shard whose clips all failed validation commits no files, so its index may be used
    again by a later run: its ledger part is named by the run to stay unique.
    """
    if committed:
        return f"{ledger_dir(split)}/shard-{index:05d}.parquet"
    return f"{ledger_dir(split)}/rejected-{run_id}-{index:05d}.parquet"


def report_stem(split: str, index: int, run_id: str) -> str:
    """Dataset-relative path, without extension, of a shard's clip validation report (named
    by run: indices of shards whose clips were all rejected are used again)."""
    return f"reports/validation/{split}/clips-{run_id}-shard-{index:05d}"


def _validate(metas: list[dict], settings: PackSettings) -> tuple[dict[int, list[str]], dict]:
    frame = pd.DataFrame(metas)
    kept = frame["delivered_seconds"] - frame["early_start_trimmed_s"]
    frame["coverage"] = kept / frame["requested_seconds"].clip(lower=1e-9)
    outcome = validate_frame(
        frame,
        clip_suite(
            settings.sample_rate,
            min_coverage=settings.min_coverage,
            max_clipping=settings.max_clipping,
            max_silence=settings.max_silence,
        ),
        asset_name="clips",
    )
    return outcome.failures, outcome.result_json


def pack_shard(
    split: str, index: int, clip_ids: list[str], store: DatasetStore, settings: PackSettings
) -> dict:
    """Validate, write and commit shard ``index`` of ``split`` from staged clips.

    Returns
    -------
    dict
        The commit record (also written to the staging area): the manifest's shard entry
        (``entry``), the clip ids packed and rejected, and the ledger part's path.
    """
    clip_ids = sorted(clip_ids)
    metas = [staging.read_staged_meta(store, split, c) for c in clip_ids]
    failures, result_json = _validate(metas, settings)
    now = time.time()
    rows, kept = [], []
    for pos, meta in enumerate(metas):
        base = {k: meta.get(k) for k in LEDGER_FROM_META}
        if pos in failures:
            rows.append(
                {
                    **base,
                    "status": STATUS_FAILED,
                    "reason": FailureReason.VALIDATION.value,
                    "detail": "failed expectations: " + ", ".join(failures[pos]),
                    "transient": False,
                    "run_id": settings.run_id,
                    "recorded_at": now,
                }
            )
        else:
            kept.append(meta)
    files = {}
    with tempfile.TemporaryDirectory(prefix="audiomill-pack-") as tmp:
        if kept:
            files = _write_files(tmp, split, index, kept, store, settings)
        for row_no, meta in enumerate(kept):
            rows.append(
                {
                    **{k: meta.get(k) for k in LEDGER_FROM_META},
                    "status": STATUS_OK,
                    "run_id": settings.run_id,
                    "recorded_at": now,
                    "shard": index,
                    "row": row_no,
                }
            )
        ledger_local = os.path.join(tmp, "ledger.parquet")
        pq.write_table(ledger_table(rows), ledger_local)
        ledger_rel = ledger_part_path(split, index, settings.run_id, committed=bool(kept))
        store.commit_file(ledger_local, ledger_rel)
    save_validation_report(store, report_stem(split, index, settings.run_id), result_json)
    kept_ids = [m["clip_id"] for m in kept]
    record = {
        "split": split,
        "index": index,
        "entry": {
            "index": index,
            "num_clips": len(kept),
            "files": files,
            "run_id": settings.run_id,
            "clip_ids_sha256": hashlib.sha256("\n".join(kept_ids).encode()).hexdigest(),
        }
        if kept
        else None,
        "clip_ids": clip_ids,
        "rejected": [clip_ids[p] for p in sorted(failures)],
        "ledger": ledger_rel,
    }
    store.write_json_atomic(staging.commit_record_path(split, index), record)
    return record


def _write_files(
    tmp: str, split: str, index: int, kept: list[dict], store: DatasetStore, settings: PackSettings
) -> dict:
    attrs = {
        "class_map_sha256": settings.class_map_sha256,
        "clip_seconds": settings.clip_seconds,
        "split": split,
        "shard_index": index,
    }
    writers = {}
    if "hdf5" in settings.formats:
        writers["hdf5"] = HDF5ShardWriter(
            os.path.join(tmp, "shard.h5"),
            num_rows=len(kept),
            num_samples=settings.num_samples,
            num_classes=settings.num_classes,
            sample_rate=settings.sample_rate,
            audio_name_width=max(len(m["audio_name"].encode()) for m in kept),
            attrs=attrs,
        )
    if "parquet" in settings.formats:
        writers["parquet"] = ParquetShardWriter(
            os.path.join(tmp, "shard.parquet"), sample_rate=settings.sample_rate, metadata=attrs
        )
    for meta in kept:
        waveform, _ = staging.read_staged_clip(store, split, meta["clip_id"])
        common = {
            "clip_id": meta["clip_id"],
            "audio_name": meta["audio_name"],
            "waveform": waveform,
            "labels": meta["labels"],
            "num_samples": meta["num_samples"],
            "start_s": meta["start_s"],
        }
        if "hdf5" in writers:
            writers["hdf5"].add(**common)
        if "parquet" in writers:
            writers["parquet"].add(
                **common,
                source=meta["source"],
                source_sample_rate=meta["source_sample_rate"],
                source_channels=meta["source_channels"],
                delivered_seconds=meta["delivered_seconds"],
            )
    files = {}
    for fmt, writer in writers.items():
        writer.close()
        local = os.path.join(tmp, "shard.h5" if fmt == "hdf5" else "shard.parquet")
        rel = waveform_shard_path(split, index, fmt)
        rec = store.commit_file(local, rel)
        files[fmt] = {"path": rel, "sha256": rec.sha256, "bytes": rec.bytes}
    return files
