"""The per-shard transform of ingest: validate decoded clips, write and commit one shard.

Each shard is planned by the pipeline (split, index, clips); :func:`pack_metas` checks the
decoded clips with the Great Expectations clip suite, streams the passing ones into HDF5 and/or
Parquet files (in a local dataset: next to their destination, under temporary names, so that
committing them is a rename; otherwise in a local scratch directory), commits them into the
dataset, writes the shard's ledger part and validation report (rendered while the files are
written), and finally records the commit in the staging area. It is idempotent: packing the
same clips again rewrites the same files. :func:`pack_shard` packs clips from the staging area;
``pipelines.shard_build`` packs clips it has just decoded itself.

Great Expectations is imported on first use, so processes that only fetch and decode never pay
for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import expectations_service, staging
from pipelines.shard_writers import HDF5ShardWriter, ParquetShardWriter, ShardRow
from pipelines.storage import DatasetStore, temporary_name
from pipelines.validation_reports import save_validation_report
from schemas.clip_checks import clip_coverage, describe_failed_clip_checks
from schemas.dataset import ShardEntry, ledger_dir, waveform_shard_path
from schemas.failures import FailureReason
from schemas.ledger import STATUS_FAILED, STATUS_OK, ledger_table
from schemas.shards import flac_bytes

LEDGER_FROM_META = (
    "clip_id", "split", "source", "start_s", "end_s", "origin", "line", "attempts",
    "fetch_seconds", "decode_seconds", "num_samples", "delivered_seconds",
    "source_sample_rate", "source_channels", "media_bytes", "waveform_sha256",
)  # fmt: skip


T = TypeVar("T")
R = TypeVar("R")

FORMAT_ORDER = ("hdf5", "parquet")
LOAD_AHEAD = 16
"""Clips loaded (and FLAC-encoded) ahead of the shard writers when packing with threads."""


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


_warm_up_lock = threading.Lock()
_warm_up_thread: threading.Thread | None = None


def _load_expectations() -> None:
    if expectations_service.serving():
        return  # validations run in the service process, which has GE loaded
    from schemas.expectations import warm_up as warm_up_expectations

    warm_up_expectations()


def warm_up() -> threading.Thread:
    """Import Great Expectations and make its context in a background thread, once per process.

    Importing GE takes seconds of CPU. A worker calls this when it starts, so the import runs
    while the worker fetches and decodes (mostly outside the GIL) rather than when it first
    validates a shard. Returns the thread; validation does not need to wait for it (the first
    ``import`` waits for an import in progress).
    """
    global _warm_up_thread
    with _warm_up_lock:
        if _warm_up_thread is None:
            _warm_up_thread = threading.Thread(
                target=_load_expectations, name="audiomill-warm-up", daemon=True
            )
            _warm_up_thread.start()
        return _warm_up_thread


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


def _clip_limits(settings: PackSettings) -> dict:
    """The clip suite's arguments (``schemas.expectations.clip_suite``)."""
    return {
        "target_sr": settings.sample_rate,
        "min_coverage": settings.min_coverage,
        "max_clipping": settings.max_clipping,
        "max_silence": settings.max_silence,
    }


def _validate(metas: list[dict], settings: PackSettings) -> tuple[dict[int, list[str]], dict]:
    frame = pd.DataFrame(metas)
    frame["coverage"] = [clip_coverage(m) for m in metas]
    return expectations_service.validate(frame, "clips", _clip_limits(settings), "clips")


def pack_shard(
    split: str,
    index: int,
    clip_ids: list[str],
    store: DatasetStore,
    settings: PackSettings,
    *,
    executor: Executor | None = None,
) -> dict:
    """Validate, write and commit shard ``index`` of ``split`` from staged clips.

    ``executor``, if given, reads staged clips and encodes Parquet FLAC in parallel.

    Returns
    -------
    dict
        The commit record (also written to the staging area), as :func:`pack_metas`.

    Raises
    ------
    pipelines.staging.DamagedStagedClip
        When a clip does not read back whole (naming it and its file); nothing is committed.
    """
    metas = [staging.read_staged_meta(store, split, c) for c in sorted(clip_ids)]

    def load(meta: dict) -> np.ndarray:
        return staging.read_staged_clip(store, split, meta["clip_id"], settings.num_samples)[0]

    return pack_metas(split, index, metas, load, store, settings, staged=True, executor=executor)


def pack_metas(
    split: str,
    index: int,
    metas: list[dict],
    load_waveform: Callable[[dict], np.ndarray],
    store: DatasetStore,
    settings: PackSettings,
    *,
    staged: bool,
    executor: Executor | None = None,
    prefilled: Prefilled | None = None,
) -> dict:
    """Validate, write and commit shard ``index`` of ``split`` from decoded clips.

    Parameters
    ----------
    split : str
    index : int
        The shard's number in its split.
    metas : list of dict
        Metadata of the decoded clips (as ``pipelines.clip_stage.prepare_item`` makes it).
    load_waveform : callable
        Returns the int16 waveform of a clip given its metadata; called once per kept clip,
        from ``executor``'s threads when one is given.
    store : DatasetStore
    settings : PackSettings
    staged : bool
        Whether the clips are in the staging area (recorded in the commit record).
    executor : concurrent.futures.Executor, optional
        Loads waveforms and encodes Parquet FLAC ahead of the writers, in parallel.
    prefilled : Prefilled, optional
        An HDF5 shard file whose rows already hold the clips' waveforms. When every clip is
        kept, in order, and the file was made for these clips' rows, it becomes the shard;
        otherwise the kept rows are copied into a new file and it is removed. It is consumed
        either way.

    Returns
    -------
    dict
        The commit record (also written to the staging area): the manifest's shard entry
        (``entry``), the clip ids packed and rejected, the ledger part's path, and ``staged``.
    """
    metas = sorted(metas, key=lambda m: m["clip_id"])
    clip_ids = [m["clip_id"] for m in metas]
    failures, result_json = _validate(metas, settings) if metas else ({}, None)
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
                    "detail": describe_failed_clip_checks(
                        meta, failures[pos], _clip_limits(settings)
                    ),
                    "transient": False,
                    "run_id": settings.run_id,
                    "recorded_at": now,
                }
            )
        else:
            kept.append(meta)
    files = {}
    with (
        ThreadPoolExecutor(1, thread_name_prefix="audiomill-report") as side,
        tempfile.TemporaryDirectory(prefix="audiomill-pack-") as tmp,
    ):
        # The report (rendering Data Docs takes a while) is written while the shard is.
        report = None
        if result_json is not None:
            stem = report_stem(split, index, settings.run_id)
            report = side.submit(save_validation_report, store, stem, result_json)
        if kept:
            files = _write_files(
                tmp, split, index, kept, load_waveform, store, settings, executor, prefilled
            )
        elif prefilled is not None:
            prefilled.remove()
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
        if report is not None:
            report.result()
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
        "staged": staged,
    }
    store.write_json_atomic(staging.commit_record_path(split, index), record)
    return record


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], executor: Executor | None, ahead: int
) -> Iterator[R]:
    """``map(fn, items)``, in order; with an executor, at most ``ahead`` calls in flight.

    Unlike ``Executor.map``, which submits every call at once, this keeps the executor's queue
    short, so several callers sharing one executor progress together. Closing the generator
    early waits for the calls in flight.
    """
    if executor is None:
        yield from map(fn, items)
        return
    pending: deque = deque()
    try:
        for item in items:
            pending.append(executor.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # stopped early (an error): no call may outlive what it reads from
        for future in pending:
            future.cancel()
        futures.wait(pending)


def shard_attrs(split: str, index: int, settings: PackSettings) -> dict:
    """File attributes (HDF5) and metadata (Parquet) of a waveform shard."""
    return {
        "class_map_sha256": settings.class_map_sha256,
        "clip_seconds": settings.clip_seconds,
        "split": split,
        "shard_index": index,
    }


@dataclass
class Prefilled:
    """An HDF5 shard file being filled by ``pipelines.shard_build``: ``writer`` (open on
    ``path``, a name :func:`shard_file` chose) holds the waveforms of the clips of its
    ``rows``, in that order."""

    writer: HDF5ShardWriter
    path: str

    def remove(self) -> None:
        """Close and delete the file (nothing if it was committed: it has been renamed)."""
        with contextlib.suppress(Exception):
            self.writer.discard()
        with contextlib.suppress(OSError):
            os.remove(self.path)


def shard_file(tmp: str, store: DatasetStore, rel: str) -> str:
    """Where to write a shard file before committing it to ``rel``.

    On a local dataset, a temporary name in the destination directory, so the commit is a
    rename rather than a copy (a crash leaves a temporary, which the next run removes); on an
    object store, a file in the local scratch directory ``tmp``, uploaded by the commit.
    """
    if not store.is_local:
        return os.path.join(tmp, rel.rsplit("/", 1)[-1])
    dest = store.local_path(rel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return str(dest.with_name(temporary_name(dest.name)))


def _write_files(
    tmp: str,
    split: str,
    index: int,
    kept: list[dict],
    load_waveform: Callable[[dict], np.ndarray],
    store: DatasetStore,
    settings: PackSettings,
    executor: Executor | None,
    prefilled: Prefilled | None,
) -> dict:
    attrs = shard_attrs(split, index, settings)
    formats = [fmt for fmt in FORMAT_ORDER if fmt in settings.formats]
    rels = {fmt: waveform_shard_path(split, index, fmt) for fmt in formats}
    in_place = (
        prefilled is not None
        and "hdf5" in rels
        and [ShardRow.of(m) for m in kept] == prefilled.writer.rows
    )
    paths, writers = {}, {}
    try:
        if in_place:
            paths["hdf5"], writers["hdf5"] = prefilled.path, prefilled.writer
        elif "hdf5" in rels:
            paths["hdf5"] = shard_file(tmp, store, rels["hdf5"])
            writers["hdf5"] = HDF5ShardWriter(
                paths["hdf5"],
                [ShardRow.of(m) for m in kept],
                num_samples=settings.num_samples,
                num_classes=settings.num_classes,
                sample_rate=settings.sample_rate,
                attrs=attrs,
                uncached=store.is_local,
            )
        if "parquet" in rels:
            paths["parquet"] = shard_file(tmp, store, rels["parquet"])
            writers["parquet"] = ParquetShardWriter(
                paths["parquet"], sample_rate=settings.sample_rate, metadata=attrs
            )
        _fill(writers, kept, load_waveform, settings.sample_rate, executor, in_place)
        digests = {fmt: writer.close() for fmt, writer in writers.items()}
        if prefilled is not None and not in_place:
            prefilled.remove()
        files = {}
        for fmt in formats:
            rec = store.commit_file(paths[fmt], rels[fmt], sha256=digests[fmt])
            files[fmt] = {"path": rels[fmt], "sha256": rec.sha256, "bytes": rec.bytes}
        return files
    except BaseException:
        for writer in writers.values():
            with contextlib.suppress(Exception):
                writer.discard()
        for path in paths.values():
            with contextlib.suppress(OSError):
                os.remove(path)
        if prefilled is not None:
            prefilled.remove()
        raise


def _fill(
    writers: dict,
    kept: list[dict],
    load_waveform: Callable[[dict], np.ndarray],
    sample_rate: int,
    executor: Executor | None,
    waveforms_written: bool,
) -> None:
    """Add the kept clips, in order, to the open writers (the HDF5 writer's waveforms are
    there already when ``waveforms_written``)."""
    encode = "parquet" in writers
    load_needed = encode or not waveforms_written

    def load(meta: dict) -> tuple[dict, np.ndarray | None, bytes | None]:
        waveform = load_waveform(meta) if load_needed else None
        flac = flac_bytes(waveform[: meta["num_samples"]], sample_rate) if encode else None
        return meta, waveform, flac

    loads = ordered_map(load, kept, executor if load_needed else None, LOAD_AHEAD)
    with contextlib.closing(loads):
        for meta, waveform, flac in loads:
            _add(writers, meta, waveform, flac, waveforms_written)


def _add(
    writers: dict,
    meta: dict,
    waveform: np.ndarray | None,
    flac: bytes | None,
    waveforms_written: bool,
) -> None:
    """Add one kept clip as the next row of the open writers."""
    if "hdf5" in writers and not waveforms_written:
        writers["hdf5"].add(waveform, meta["num_samples"])
    if "parquet" in writers:
        writers["parquet"].add(
            clip_id=meta["clip_id"],
            audio_name=meta["audio_name"],
            labels=meta["labels"],
            num_samples=meta["num_samples"],
            start_s=meta["start_s"],
            waveform=waveform,
            source=meta["source"],
            source_sample_rate=meta["source_sample_rate"],
            source_channels=meta["source_channels"],
            delivered_seconds=meta["delivered_seconds"],
            flac=flac,
        )


def read_committed_labels(store: DatasetStore, shard: ShardEntry) -> dict[str, tuple[int, ...]]:
    """The clip ids of a committed shard and each one's labels (class indices), read from its
    Parquet file's ``clip_id`` and ``labels`` columns, else its HDF5 ``clip_id`` and
    ``target``; never the audio.

    Raises
    ------
    ValueError
        Naming the file, when it cannot be read or lacks those columns or datasets.
    """
    fmt = "parquet" if "parquet" in shard.files else "hdf5"
    rel = shard.files[fmt].path
    try:
        if fmt == "parquet":
            with store.open(rel) as stream:
                table = pq.read_table(stream, columns=["clip_id", "labels"])
            ids, labels = table.column("clip_id").to_pylist(), table.column("labels").to_pylist()
            return {c: tuple(sorted(set(lab))) for c, lab in zip(ids, labels, strict=True)}
        with store.open_hdf5(rel) as hf:
            ids, target = hf["clip_id"].asstr()[:], hf["target"][:]
        return {c: tuple(np.flatnonzero(row).tolist()) for c, row in zip(ids, target, strict=True)}
    except (OSError, KeyError, ValueError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{store.url(rel)}: cannot read its clip ids and labels ({exc})") from exc
