"""Reading and repairing a dataset's committed state: manifest, ledger, staged commits.

The manifest is the commit point. After a crash the dataset can hold shards that the pack stage
committed but the manifest does not list yet (their commit records are in the staging area:
:func:`adopt_commits` adds them), and files of shards whose commit never finished
(:func:`remove_orphans` deletes them, the clips are still staged and get packed again).
"""

from __future__ import annotations

import io
import json
import re
import time

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import staging
from pipelines.storage import DatasetStore, temporary_of
from schemas.dataset import (
    MANIFEST,
    DatasetManifest,
    ShardEntry,
    SplitEntry,
    ledger_dir,
    shard_index,
)
from schemas.ledger import LEDGER_SCHEMA, latest_rows

SCRATCH_SUFFIX = ".waveforms"
"""Ends the name of the scratch file that holds a shard's decoded clips while a shard without
HDF5 is built (``shard-00000.h5.waveforms``, :mod:`pipelines.shard_build`); a local dataset has
it in the split's folder, under a temporary name alone."""


def load_manifest(store: DatasetStore) -> DatasetManifest | None:
    """Return the dataset's manifest, or None for a new dataset."""
    if not store.exists(MANIFEST):
        return None
    try:
        return DatasetManifest.from_dict(json.loads(store.read_text(MANIFEST)))
    except OSError as exc:  # a directory in its place, no permission, a failing disk
        reason = read_error_reason(exc)
        raise ValueError(f"{store.url(MANIFEST)}: unreadable manifest ({reason})") from exc
    except (json.JSONDecodeError, KeyError, ValueError) as exc:
        raise ValueError(f"{store.url(MANIFEST)}: unreadable manifest ({exc})") from exc


def save_manifest(store: DatasetStore, manifest: DatasetManifest) -> None:
    """Write ``manifest.json`` atomically."""
    store.write_json_atomic(MANIFEST, manifest.to_dict())


class LedgerReadError(ValueError):
    """A ledger part that cannot be read: not a readable file, not Parquet, damaged, or not of
    the ledger's schema.

    Parameters
    ----------
    url : str
        The part's full path or URL, which the message names.
    path : str
        The part's path inside the dataset (``ledger/<split>/<name>.parquet``).
    reason : str
        Why it cannot be read, on one line.
    """

    def __init__(self, url: str, path: str, reason: str) -> None:
        super().__init__(f"{url}: ledger part cannot be read ({reason})")
        self.path = path
        self.reason = reason


def read_error_reason(exc: Exception) -> str:
    """Why a file cannot be read, on one line: the system's reason for an error of the OS
    (``Is a directory``, ``Permission denied``), else what the reader (pyarrow) says, without
    its buffer name."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(
        str(exc).replace("Could not open Parquet input source '<Buffer>': ", "").split()
    )
    return text.rstrip(".") or type(exc).__name__


def read_ledger_part(store: DatasetStore, rel: str) -> pa.Table:
    """Return the ledger part at dataset path ``rel``, cast to the ledger's schema.

    Raises
    ------
    LedgerReadError
        If the part cannot be read (a directory in its place, no permission, a failing disk)
        or is no Parquet file of the ledger's columns.
    """
    try:
        return pq.read_table(io.BytesIO(store.read_bytes(rel))).cast(LEDGER_SCHEMA)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise LedgerReadError(store.url(rel), rel, read_error_reason(exc)) from exc


_SHARD_LEDGER_PART = re.compile(r"shard-(\d{5,})\.parquet")
"""The name of a committed shard's ledger part (:func:`pipelines.pack.ledger_part_path`)."""

_RUN_LEDGER_PART = re.compile(r"(?:rejected-[\w-]+-\d{5,}|failures-[\w-]+)\.parquet")
"""The name of a ledger part named by its run: a rejected shard's
(:func:`pipelines.pack.ledger_part_path`), or a run's failures (ingest's
``failures-<run>.parquet``)."""


def ledger_part_shard(name: str) -> int | None:
    """The index of the committed shard whose ledger part is named ``name``
    (``shard-00003.parquet``), or None for any other name."""
    match = _SHARD_LEDGER_PART.fullmatch(name)
    return int(match[1]) if match else None


def is_read_as_ledger_part(name: str) -> bool:
    """Whether the readers of the ledger take a file named ``name`` in a split's ledger folder
    for a ledger part (:func:`ledger_parts`): only a name ingest gives ledger parts, so a user's
    ``notes.parquet`` there is none."""
    return ledger_part_shard(name) is not None or _RUN_LEDGER_PART.fullmatch(name) is not None


def ledger_parts(store: DatasetStore, split: str | None = None) -> list[str]:
    """Dataset paths of every committed ledger part of ``split`` (all splits when None)."""
    splits = [split] if split else store.listdir("ledger")
    return [
        f"{ledger_dir(name)}/{part}"
        for name in splits
        for part in sorted(store.listdir(ledger_dir(name)))
        if is_read_as_ledger_part(part)
    ]


def read_ledger(
    store: DatasetStore,
    split: str | None = None,
    *,
    unreadable: list[LedgerReadError] | None = None,
) -> pa.Table:
    """Return every ledger part of ``split`` (all splits when None) as one table.

    Parameters
    ----------
    store : DatasetStore
    split : str, optional
    unreadable : list, optional
        Given, a part that cannot be read is appended to it and left out; otherwise it raises.

    Raises
    ------
    LedgerReadError
        A part cannot be read and ``unreadable`` is None.
    """
    tables = []
    for rel in ledger_parts(store, split):
        try:
            tables.append(read_ledger_part(store, rel))
        except LedgerReadError as exc:
            if unreadable is None:
                raise
            unreadable.append(exc)
    return pa.concat_tables(tables) if tables else LEDGER_SCHEMA.empty_table()


def ledger_state(
    store: DatasetStore,
    split: str | None = None,
    *,
    unreadable: list[LedgerReadError] | None = None,
) -> dict[str, dict]:
    """One row per clip: the committed row if any, else the latest failure.

    ``unreadable`` is as for :func:`read_ledger`: without it, a part that cannot be read raises
    :class:`LedgerReadError`.
    """
    return latest_rows(read_ledger(store, split, unreadable=unreadable))


def unledgered_note(store: DatasetStore, parts: list[str]) -> str:
    """The line that says committed shards have no ledger part and how their clips count.

    Parameters
    ----------
    store : DatasetStore
    parts : list of str
        The missing parts' paths inside the dataset; the line names the first three.
    """
    return (
        f"{len(parts)} committed shard(s) have no ledger part, e.g. "
        f"{', '.join(store.url(r) for r in parts[:3])}: their clips count as committed, "
        "read from the shards (`audiomill dataset verify` reports the missing parts)"
    )


def adopt_commits(store: DatasetStore, manifest: DatasetManifest, split: str) -> list[dict]:
    """Add shards recorded in the staging area to the manifest and clear their staged clips.

    The manifest is saved before any staged clip is deleted, so a crash at any point leaves
    either the staged clips or the committed shard.

    Returns
    -------
    list of dict
        The commit records adopted.
    """
    records = [
        staging.read_json(store, f"{staging.split_dir(split)}/commits/{name}")
        for name in sorted(staging.staged_names(store, split, "commits"))
    ]
    if not records:
        return []
    entry = manifest.split(split)
    known = {s.index for s in entry.shards}
    for rec in records:
        if rec["entry"] is not None and rec["index"] not in known:
            entry.shards.append(ShardEntry.from_dict(rec["entry"]))
    entry.shards.sort(key=lambda s: s.index)
    save_manifest(store, manifest)
    present = set(staging.staged_names(store, split, "clips"))
    for rec in records:
        for clip_id in rec["clip_ids"]:
            if f"{staging.clip_key(clip_id)}.clip" in present:
                store.remove(staging.staged_clip_path(split, clip_id))
        store.remove(staging.commit_record_path(split, rec["index"]))
    return records


def remove_orphans(store: DatasetStore, manifest: DatasetManifest, split: str) -> list[str]:
    """Delete shard files and shard ledger parts that no committed shard accounts for.

    Only the names ingest writes in each folder are candidates: in the split's shard folder a
    shard's (:func:`schemas.dataset.shard_index`) and their temporaries, in its ledger folder a
    committed shard's ledger part (:func:`ledger_part_shard`). A file or folder of the user's
    in either is left as it is (``dataset verify`` notes it as not written by audiomill), even
    a ``shard-00007.h5`` in the ledger folder.
    """
    entry = manifest.splits.get(split, SplitEntry())  # a split new to the dataset stays out
    listed = {f.path for s in entry.shards for f in s.files.values()}
    committed = {s.index for s in entry.shards}
    removed = []
    for name in store.listdir(f"waveforms/{split}"):
        rel = f"waveforms/{split}/{name}"
        if is_shard_file_name(name) and rel not in listed:
            store.remove(rel)
            removed.append(rel)
    for name in store.listdir(ledger_dir(split)):
        index = ledger_part_shard(name)
        if index is None:
            continue
        recorded = store.exists(staging.commit_record_path(split, index))
        if index not in committed and not recorded:
            store.remove(f"{ledger_dir(split)}/{name}")
            removed.append(f"{ledger_dir(split)}/{name}")
    return removed


def is_shard_file_name(name: str) -> bool:
    """Whether ``name`` is a shard file's, or the temporary name of one being written (as
    :func:`pipelines.storage.temporary_name` makes them: ``shard-00000.h5.tmp-backup`` is not)."""
    return shard_index(temporary_of(name) or name) is not None


def is_waveform_file_name(name: str) -> bool:
    """Whether ingest can have written a file named ``name`` into a waveform split's folder: a
    shard file, a shard's temporary, or the temporary of a shard's scratch file
    (:data:`SCRATCH_SUFFIX`)."""
    base = temporary_of(name) or ""
    if base.endswith(SCRATCH_SUFFIX):
        return shard_index(base.removesuffix(SCRATCH_SUFFIX)) is not None
    return is_shard_file_name(name)


def is_ledger_file_name(name: str) -> bool:
    """Whether ingest can have written a file named ``name`` into a split's ledger folder: a
    ledger part (:func:`is_read_as_ledger_part`) or the temporary name of one being written."""
    return is_read_as_ledger_part(temporary_of(name) or name)


def record_run(manifest: DatasetManifest, run: dict) -> None:
    """Append a run to the manifest's history and mark the stage finished."""
    manifest.runs.append(run)
    manifest.stages[run["stage"]] = {"completed": time.time(), "run_id": run["run_id"]}
