"""Describe and verify a dataset: ``audiomill dataset info`` and ``audiomill dataset verify``."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import h5py
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.dataset_state import (
    LedgerReadError,
    is_ledger_file_name,
    is_read_as_ledger_part,
    is_shard_file_name,
    is_waveform_file_name,
    ledger_part_shard,
    ledger_parts,
    ledger_state,
    load_manifest,
    read_error_reason,
    read_ledger,
    unledgered_note,
)
from pipelines.pack import ledger_part_path, read_committed_labels
from pipelines.storage import DatasetLock, DatasetStore, describe_holder, temporary_of
from schemas.classmap import ClassMap
from schemas.dataset import (
    CLASSES,
    DatasetManifest,
    ShardEntry,
    ShardFile,
    SplitEntry,
    ledger_dir,
)
from schemas.embeddings import embedding_hdf5_problems, embedding_parquet_problems
from schemas.failures import FailureReason
from schemas.ledger import STATUS_OK, latest_rows
from schemas.shards import hdf5_problems, parquet_problems


def _require_manifest(store: DatasetStore):
    manifest = load_manifest(store)
    if manifest is None:
        raise FileNotFoundError(f"{store.url()} is not an audiomill dataset (no manifest.json)")
    return manifest


def dataset_info(root: str, storage_options: dict | None = None) -> dict:
    """Summarize a dataset: splits, shards, clip counts, failures by reason, bytes.

    Returns
    -------
    dict
        JSON-ready summary. ``splits``, ``clips`` and ``bytes`` count waveforms;
        ``sample_rate``, ``clip_seconds`` and ``formats`` are their settings, None in a dataset
        without waveform splits (:func:`has_waveforms`); ``embeddings[model][split]`` holds
        the ``shards``, ``clips`` and ``bytes`` of each model's embedding shards (computed or
        imported). ``runs`` counts the recorded runs, ``runs_by_stage`` by what they were
        (:func:`runs_by_stage`). ``notes``: lines on what the counts rest on, such as committed
        shards whose ledger part is missing (their clips, read from the shards, count as
        requested and committed).

    Raises
    ------
    ValueError
        A ledger part cannot be read, or a shard whose ledger part is missing cannot be.
    """
    store = DatasetStore(root, storage_options)
    manifest = _require_manifest(store)
    splits = {}
    unledgered = []
    for name, split in sorted(manifest.splits.items()):
        lost = _missing_ledger_parts(store, name, split)
        unledgered += lost
        # committed all the same, with or without a failure recorded before: as ingest counts
        committed = {c for shard in lost.values() for c in read_committed_labels(store, shard)}
        rows = [r for c, r in ledger_state(store, name).items() if c not in committed]
        failed = Counter(r["reason"] for r in rows if r["status"] != STATUS_OK)
        splits[name] = {
            **_split_totals(split),
            "requested": len(rows) + len(committed),
            "failed": sum(failed.values()),
            "failures_by_reason": dict(sorted(failed.items())),
        }
    waves = has_waveforms(manifest)
    return {
        "dataset": store.url(),
        "schema_version": manifest.schema_version,
        "sample_rate": manifest.sample_rate if waves else None,
        "clip_seconds": manifest.clip_seconds if waves else None,
        "num_classes": manifest.num_classes,
        "class_map_sha256": manifest.class_map_sha256,
        "formats": manifest.formats if waves else None,
        "splits": splits,
        "clips": sum(s["clips"] for s in splits.values()),
        "bytes": sum(s["bytes"] for s in splits.values()),
        "embeddings": {
            model: {name: _split_totals(split) for name, split in sorted(emb.items())}
            for model, emb in sorted(manifest.embeddings.items())
        },
        "runs": len(manifest.runs),
        "runs_by_stage": runs_by_stage(manifest),
        "notes": [unledgered_note(store, unledgered)] if unledgered else [],
    }


def has_waveforms(manifest: DatasetManifest) -> bool:
    """Whether the manifest's waveform settings (sample rate, clip length, formats) describe
    the dataset: an ingest lists each of its splits, even one none of whose clips made it. A
    dataset of imported embeddings only has none, and placeholders for those settings."""
    return bool(manifest.splits)


def runs_by_stage(manifest: DatasetManifest) -> dict[str, int]:
    """The recorded runs counted by stage (``ingest``, ``import-embeddings``), by name."""
    return dict(sorted(Counter(run.get("stage", "unknown") for run in manifest.runs).items()))


def _split_totals(split: SplitEntry) -> dict:
    """Clips, shards and bytes of a split's committed shards."""
    return {
        "clips": split.num_clips,
        "shards": len(split.shards),
        "bytes": sum(f.bytes for s in split.shards for f in s.files.values()),
    }


FAILURE_FIELDS = ("clip_id", "split", "reason", "detail", "source", "origin", "line", "run_id")
"""What :func:`dataset_failures` gives of each failed clip."""


def dataset_failures(
    root: str,
    *,
    split: str | None = None,
    reason: str | None = None,
    run_id: str | None = None,
    storage_options: dict | None = None,
) -> list[dict]:
    """The clips whose latest ledger record is a failure, with its reason and detail.

    Parameters
    ----------
    root : str
        Dataset directory or URL.
    split, reason : str, optional
        Only this split, only this failure reason (for example ``"validation"``).
    run_id : str, optional
        Only failures that run recorded.
    storage_options : dict, optional

    Returns
    -------
    list of dict
        :data:`FAILURE_FIELDS` of each clip, ordered by split, list file, line and clip id.

    Raises
    ------
    ValueError
        If ``reason`` is no :class:`~schemas.failures.FailureReason` or no failed clip of the
        dataset has it, the dataset has no split ``split``, or no ledger row has the run id
        ``run_id``: filters that can match nothing. Filters the dataset has, each on its own,
        may still match nothing together.
    """
    store = DatasetStore(root, storage_options)
    manifest = _require_manifest(store)
    reasons = [r.value for r in FailureReason]
    if reason is not None and reason not in reasons:
        raise ValueError(f"unknown failure reason {reason!r}; the reasons: {', '.join(reasons)}")
    if split is not None:
        splits = _split_names(store, manifest)
        if split not in splits:
            raise ValueError(
                f"{store.url()} has no split {split!r}; its splits: {', '.join(splits) or 'none'}"
            )
    table = read_ledger(store, split)
    if run_id is not None:
        table = table.filter(pc.equal(table["run_id"], run_id))
        if not len(table):
            _require_run(store, run_id)
    rows = [
        {k: r[k] for k in FAILURE_FIELDS}
        for r in latest_rows(table).values()
        if r["status"] != STATUS_OK and reason in (None, r["reason"])
    ]
    if reason is not None and not rows:
        _require_reason(store, reason, table if split is None and run_id is None else None)
    return sorted(rows, key=lambda r: (r["split"], r["origin"] or "", r["line"] or 0, r["clip_id"]))


def _split_names(store: DatasetStore, manifest: DatasetManifest) -> list[str]:
    """Every split of the dataset: of its waveforms, its ledger or any model's embeddings."""
    names = set(manifest.splits) | set(store.listdir("ledger"))
    names.update(name for splits in manifest.embeddings.values() for name in splits)
    return sorted(names)


def _require_reason(store: DatasetStore, reason: str, ledger: pa.Table | None) -> None:
    """Raise a ValueError naming the reasons the dataset's failed clips have, unless one of them
    has ``reason``.

    Parameters
    ----------
    store : DatasetStore
    reason : str
    ledger : pyarrow.Table, optional
        The whole ledger, when already read.
    """
    rows = latest_rows(read_ledger(store) if ledger is None else ledger).values()
    reasons = sorted({r["reason"] for r in rows if r["status"] != STATUS_OK})
    if reason in reasons:
        return
    where = f"no failed clip of {store.url()} has reason {reason!r}"
    if not reasons:
        raise ValueError(f"{where}: it has no failed clips")
    raise ValueError(f"{where}; its reasons: {', '.join(reasons)}")


LISTED_RUNS = 5
"""How many of the latest run ids an unknown ``--run`` error names."""


def _require_run(store: DatasetStore, run_id: str) -> None:
    """Raise a ValueError naming the ledger's latest runs unless a ledger row has ``run_id``."""
    table = read_ledger(store).group_by("run_id").aggregate([("recorded_at", "max")])
    runs = table.sort_by([("recorded_at_max", "descending")]).column("run_id").to_pylist()
    if run_id in runs:
        return
    where = f"no ledger row of {store.url()} has run id {run_id!r}"
    if not runs:
        raise ValueError(f"{where}: the ledger is empty")
    more = f" (and {len(runs) - LISTED_RUNS} earlier)" if len(runs) > LISTED_RUNS else ""
    raise ValueError(f"{where}; its runs, latest first: {', '.join(runs[:LISTED_RUNS])}{more}")


@dataclass
class VerifyReport:
    """Result of :func:`verify_dataset`.

    Attributes
    ----------
    problems : list of str
        What is wrong with the dataset; empty means it is sound.
    hints : list of str
        What to do about the problems of what an interrupted or running ingest, embed or import
        left outside the manifest: advice, no problem of its own.
    notes : list of str
        Files in its shard and ledger folders that audiomill does not write (a user's
        ``notes.txt``): no command reads them, so they are no problem.
    files_checked, clips_checked : int
    """

    problems: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files_checked: int = 0
    clips_checked: int = 0

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def verify_dataset(
    root: str,
    storage_options: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Check every committed shard: checksum, row count, readability, layout, ledger agreement.

    Waveform and embedding shards alike; an embedding shard of a split with waveforms must also
    hold its waveform shard's clip ids in the same order. Also checks that ``classes.csv``
    matches the manifest's class map digest, that no clip id appears in two shards of one
    directory or in two splits, and reports shard files the manifest does not list and the
    temporaries of ledger parts, with a hint on what to do about them (files in shard and ledger
    folders that audiomill does not write are notes, not problems). A ledger part that cannot be
    read, or a committed shard's ledger part that is missing, is a problem of its own: the rest
    is checked without it, and the clips of the shard it records are not checked against the
    ledger. While a run holds the dataset's lock, verify names it, in the hint on what it left
    outside the manifest or else in a problem of its own: the dataset may change while it is
    read.
    """
    store = DatasetStore(root, storage_options)
    manifest = _require_manifest(store)
    report = VerifyReport()
    try:
        cmap = ClassMap.from_csv_text(store.read_text(CLASSES), store.url(CLASSES))
        if cmap.sha256 != manifest.class_map_sha256:
            report.problems.append("classes.csv does not match the manifest's class map digest")
    except OSError as exc:  # missing, a directory in its place, no permission, a failing disk
        report.problems.append(f"classes.csv unreadable: {read_error_reason(exc)}")
    except ValueError as exc:
        report.problems.append(f"classes.csv unreadable: {exc}")
    unreadable: list[LedgerReadError] = []
    ledger = {
        name: ledger_state(store, name, unreadable=unreadable)
        for name in sorted(set(manifest.splits) | set(store.listdir(LEDGER)))
    }
    report.problems.extend(f"{e.path}: cannot be read ({e.reason})" for e in unreadable)
    lost = {
        rel: shard
        for name, split in sorted(manifest.splits.items())
        for rel, shard in _missing_ledger_parts(store, name, split).items()
    }
    report.problems.extend(
        f"{rel}: missing (the ledger part of committed shard {shard.index}, {shard.num_clips} "
        "clips): its clips are not checked against the ledger"
        for rel, shard in lost.items()
    )
    ok_rows = {
        (name, c): r
        for name, rows in ledger.items()
        for c, r in rows.items()
        if r["status"] == STATUS_OK
    }
    unread_parts = [*(e.path for e in unreadable), *lost]
    groups = _shard_groups(manifest, ok_rows, _unread_ledger_shards(unread_parts))
    seen: dict[tuple[str, str, str, str], int] = {}
    unread: set[tuple[str, int]] = set()
    files = [(g, s, f) for g in groups for s in g.entry.shards for f in s.files.values()]
    for done, (group, shard, f) in enumerate(files, start=1):
        report.files_checked += 1
        problems, read = _verify_file(store, group, shard, f, seen)
        report.problems.extend(f"{f.path}: {p}" for p in problems)
        if not read and group.kind == WAVEFORMS:
            unread.add((group.split, shard.index))
        if progress:
            progress(done, len(files))
    shipped = {(split, clip) for kind, split, _, clip in seen if kind == WAVEFORMS}
    # the clips of a listed shard that cannot be read are in it as far as verify can tell: its
    # own problem says what is wrong, and re-running the ingest would not bring them back
    shipped |= {key for key, r in ok_rows.items() if (key[0], r["shard"]) in unread}
    report.clips_checked = len({(split, clip) for _, split, _, clip in seen})
    report.problems.extend(_clips_in_two_splits(seen))
    shards = any(sp.shards for sp in manifest.splits.values())
    if not any(ledger.values()) and shards and not unreadable:
        report.problems.append("ledger is empty but shards exist")  # the ledger was read whole
    listed = {f.path for g in groups for s in g.entry.shards for f in s.files.values()}
    unlisted = [rel for rel in _shard_dir_files(store) if rel not in listed]
    unlisted += _ledger_dir_files(store, list(ledger))
    ours = [rel for rel in unlisted if _is_ours(rel)]
    problems, report.hints = _uncommitted_work(store, ours, ok_rows, shipped)
    report.problems.extend(problems)
    report.notes = [f"{rel}: {FOREIGN}" for rel in unlisted if rel not in ours]
    return report


def _clips_in_two_splits(seen: dict[tuple[str, str, str, str], int]) -> list[str]:
    """One problem line for the clip ids that shards of more than one split hold (``seen`` as
    :func:`_verify_file` fills it): training on one of those splits and scoring on another
    scores training clips."""
    splits_of: dict[str, set[str]] = {}
    for _, split, _, clip in seen:
        splits_of.setdefault(clip, set()).add(split)
    shared = sorted(clip for clip, splits in splits_of.items() if len(splits) > 1)
    if not shared:
        return []
    examples = ", ".join(f"{c} ({', '.join(sorted(splits_of[c]))})" for c in shared[:3])
    return [
        f"{len(shared)} clip id(s) are in more than one split, e.g. {examples}: a clip id "
        "names one clip of the dataset, and a model trained on one of those splits and "
        "evaluated on another is scored on clips it was trained on"
    ]


WAVEFORMS = "waveforms"
"""The :attr:`ShardGroup.kind` of waveform shards (embeddings: ``embeddings/<model>``)."""

LEDGER = "ledger"
"""The folder that holds each split's ledger folder (:func:`~schemas.dataset.ledger_dir`)."""


@dataclass
class ShardGroup:
    """The shards of one directory ``<kind>/<split>`` and what verify checks them against.

    Attributes
    ----------
    kind : str
        :data:`WAVEFORMS` or ``embeddings/<model>``.
    split : str
    entry : SplitEntry
    hdf5_layout, parquet_layout : callable
        Layout checks of a shard file in each format: file object -> problems.
    ledger : dict, optional
        Waveforms: the split's committed ledger rows by clip id, each naming its shard and row.
    ledger_unread : set of int
        Waveforms: the shards whose ledger part cannot be read, whose clips have no rows to
        check against.
    aligned : dict, optional
        Embeddings of a split with waveforms: the waveform shards by index, whose clip ids each
        embedding shard of the same index holds in the same order.
    """

    kind: str
    split: str
    entry: SplitEntry
    hdf5_layout: Callable[[io.BytesIO], list[str]]
    parquet_layout: Callable[[io.BytesIO], list[str]]
    ledger: dict[str, dict] | None = None
    ledger_unread: set[int] = field(default_factory=set)
    aligned: dict[int, ShardEntry] | None = None


def _missing_ledger_parts(
    store: DatasetStore, name: str, split: SplitEntry
) -> dict[str, ShardEntry]:
    """The committed waveform shards of split ``name`` whose ledger part is not there, by the
    part's path."""
    listed = set(ledger_parts(store, name))
    return {
        rel: shard
        for shard in split.shards
        if (rel := ledger_part_path(name, shard.index, shard.run_id, committed=True)) not in listed
    }


def _unread_ledger_shards(paths: list[str]) -> dict[str, set[int]]:
    """The shard indexes of the ledger parts ``ledger/<split>/shard-NNNNN.parquet`` among
    ``paths``, by split (a failures or rejected part records no committed clip)."""
    shards: dict[str, set[int]] = {}
    for path in paths:
        _, split, name = path.rsplit("/", 2)
        if (index := ledger_part_shard(name)) is not None:
            shards.setdefault(split, set()).add(index)
    return shards


def _shard_groups(
    manifest: DatasetManifest, ok_rows: dict, ledger_unread: dict[str, set[int]]
) -> list[ShardGroup]:
    """Every directory of committed shards the manifest lists, waveforms first."""
    groups = [
        ShardGroup(
            WAVEFORMS,
            name,
            split,
            lambda f: hdf5_problems(f, manifest.num_classes, manifest.num_samples),
            lambda f: parquet_problems(f, manifest.num_classes, manifest.num_samples),
            ledger={c: r for (s, c), r in ok_rows.items() if s == name},
            ledger_unread=ledger_unread.get(name, set()),
        )
        for name, split in sorted(manifest.splits.items())
    ]
    for model, splits in sorted(manifest.embeddings.items()):
        for name, split in sorted(splits.items()):
            waves = manifest.splits.get(name, SplitEntry()).shards
            groups.append(
                ShardGroup(
                    f"embeddings/{model}",
                    name,
                    split,
                    lambda f: embedding_hdf5_problems(f, manifest.num_classes),
                    lambda f: embedding_parquet_problems(f, manifest.num_classes),
                    aligned={s.index: s for s in waves} if waves else None,
                )
            )
    return groups


def _uncommitted_work(
    store: DatasetStore, unlisted: list[str], ok_rows: dict, shipped: set[tuple[str, str]]
) -> tuple[list[str], list[str]]:
    """What an ingest, embed or import left outside the manifest (shard files, committed
    clips), and a hint per kind of shard on what to do about it: a run that holds the dataset's
    lock is still at work, and is named even when it has left nothing outside the manifest yet.

    Parameters
    ----------
    store : DatasetStore
    unlisted : list of str
        The shard files and shard temporaries in shard folders that the manifest does not list,
        and the temporaries of ledger parts in ledger folders.
    ok_rows : dict
        The committed ledger rows by ``(split, clip_id)``.
    shipped : set of (str, str)
        The ``(split, clip_id)`` of the clips in the manifest's waveform shards.

    Returns
    -------
    problems, hints : list of str
    """
    # an unfinished shard write's temporary too, which a re-run of ingest removes
    problems = [
        f"{rel}: not in the manifest" for rel in unlisted if rel.startswith(f"{WAVEFORMS}/")
    ]
    problems += [f"{rel}: not in the ledger" for rel in unlisted if rel.startswith(f"{LEDGER}/")]
    missing = Counter(split for split, clip in ok_rows if (split, clip) not in shipped)
    for split, n in sorted(missing.items()):
        problems.append(
            f"split {split}: {n} clip(s) recorded as committed in the ledger are in no shard of "
            "the manifest"
        )
    embedded = [f"{rel}: not in the manifest" for rel in unlisted if rel.startswith("embeddings/")]
    holder = DatasetLock(store).live_holder()
    if holder is not None and not problems and not embedded:
        return [_running_note(holder)], []
    kinds = [(WAVEFORMS, problems), ("embeddings", embedded)]
    return problems + embedded, [_leftover_advice(kind, holder) for kind, found in kinds if found]


def _running_note(holder: dict) -> str:
    """The problem of a dataset that a live run holds, though it has left nothing outside the
    manifest yet (an ingest that downloads first stages its clips and writes no shard).

    Parameters
    ----------
    holder : dict
        The record of the live run that holds the dataset's lock
        (:meth:`~pipelines.storage.DatasetLock.live_holder`).
    """
    who = describe_holder(holder)
    stage = _lock_stage(holder)
    running = (
        f"the dataset is locked by {who}, which may be at work on it"
        if stage is None
        else f"an {stage} is running on this dataset, {who}"
    )
    return (
        f"{running}: this check covers only what was committed when it read the dataset, not "
        "the run's work in progress; run verify again once it has finished"
    )


FOREIGN = (
    "not written by audiomill: no command reads it and ingest leaves it where it is; move it out "
    "of the dataset to silence this note"
)
"""The note on a file in a shard or ledger folder whose name audiomill does not write there (a
shard file, a shard's or a ledger part's temporary: :func:`_is_ours`): no problem of the
dataset's."""


LEFTOVERS = {
    WAVEFORMS: (
        "an interrupted ingest leaves this behind",
        "run the same ingest again to adopt its shards (or to remove what it cannot adopt)",
    ),
    "embeddings": (
        "an interrupted embed or import leaves this behind",
        "run the same embed or import again, which replaces or removes these files",
    ),
}
"""By kind of shard: where what is outside the manifest comes from when no run holds the
dataset's lock, and what to do about it."""


def _leftover_advice(kind: str, holder: dict | None) -> str:
    """The hint on the problems of shard files or clips of ``kind`` outside the manifest.

    Parameters
    ----------
    kind : str
        :data:`WAVEFORMS` or ``"embeddings"``.
    holder : dict, optional
        The record of the live run that holds the dataset's lock
        (:meth:`~pipelines.storage.DatasetLock.live_holder`): when it writes shards of this
        kind (or is unknown), they are its work in progress; otherwise the re-run must wait.
    """
    interrupted, rerun = LEFTOVERS[kind]
    if holder is None:
        return f"{interrupted}: {rerun}"
    who = describe_holder(holder)
    stage = _lock_stage(holder)
    if stage is None:
        return (
            f"the dataset is locked by {who}: the above may be its work in progress; run verify "
            "again once it has finished"
        )
    if (stage == "ingest") == (kind == WAVEFORMS):
        return (
            f"an {stage} is running on this dataset, {who}: the above is its work in progress, "
            "not committed yet; run verify again once it has finished"
        )
    return f"{interrupted}: once the {stage} running on this dataset, {who}, has finished, {rerun}"


def _lock_stage(holder: dict) -> str | None:
    """What the run of a lock record does: its owner's stage or command (``embed``,
    ``import-embeddings``, ``ingest``); ``ingest`` when it names none, as older ingests' records
    do; None when the record cannot be read."""
    if "pid" not in holder:
        return None
    owner = holder.get("owner") if isinstance(holder.get("owner"), dict) else {}
    return str(owner.get("stage") or owner.get("command") or "ingest")


def _is_ours(rel: str) -> bool:
    """Whether the file ``rel`` of a shard folder, or one of a ledger folder that no reader
    takes for a ledger part, has a name that audiomill writes there: what a re-run of ingest
    (:func:`~pipelines.dataset_state.is_waveform_file_name`; in a ledger folder, the temporaries
    of :func:`~pipelines.dataset_state.is_ledger_file_name`) or of embed and import
    (:func:`~pipelines.dataset_state.is_shard_file_name`) removes when no commit lists it."""
    name = rel.rsplit("/", 1)[-1]
    if rel.startswith(f"{LEDGER}/"):
        return temporary_of(name) is not None and is_ledger_file_name(name)
    if rel.startswith(f"{WAVEFORMS}/"):
        return is_waveform_file_name(name)
    return is_shard_file_name(name)


def _shard_dir_files(store: DatasetStore) -> list[str]:
    """Dataset-relative paths of the files in ``waveforms/<split>/`` and
    ``embeddings/<model>/<split>/``."""
    dirs = [f"{WAVEFORMS}/{split}" for split in store.listdir(WAVEFORMS)]
    dirs += [
        f"embeddings/{model}/{split}"
        for model in store.listdir("embeddings")
        for split in store.listdir(f"embeddings/{model}")
    ]
    return [f"{d}/{name}" for d in dirs for name in store.listdir(d)]


def _ledger_dir_files(store: DatasetStore, splits: list[str]) -> list[str]:
    """Dataset-relative paths of the files in ``ledger/<split>/`` of each of ``splits`` that the
    readers of the ledger do not take for a ledger part
    (:func:`~pipelines.dataset_state.is_read_as_ledger_part`)."""
    return [
        f"{ledger_dir(split)}/{name}"
        for split in splits
        for name in store.listdir(ledger_dir(split))
        if not is_read_as_ledger_part(name)
    ]


def _verify_file(
    store: DatasetStore,
    group: ShardGroup,
    shard: ShardEntry,
    f: ShardFile,
    seen: dict[tuple[str, str, str, str], int],
) -> tuple[list[str], bool]:
    """The problems of one shard file, and whether its clip ids could be read."""
    if not store.exists(f.path):
        return ["missing"], False
    try:
        data = store.read_bytes(f.path)
    except OSError as exc:  # a directory in its place, no permission, a failing disk
        return [f"cannot be read ({read_error_reason(exc)})"], False
    size = f"size {len(data)} != manifest {f.bytes}" if len(data) != f.bytes else None
    if hashlib.sha256(data).hexdigest() != f.sha256:  # one line: the checksum says it all
        return [f"sha256 mismatch ({size})" if size else "sha256 mismatch"], False
    problems = [size] if size else []
    try:
        if f.path.endswith(".h5"):
            problems += group.hdf5_layout(io.BytesIO(data))
            with h5py.File(io.BytesIO(data), "r") as hf:
                ids = list(hf["clip_id"].asstr()[:])
        else:
            problems += group.parquet_layout(io.BytesIO(data))
            ids = pq.read_table(io.BytesIO(data), columns=["clip_id"]).column(0).to_pylist()
    except (OSError, ValueError, KeyError) as exc:
        return [*problems, f"unreadable ({exc})"], False
    if len(ids) != shard.num_clips:
        problems.append(f"{len(ids)} rows, manifest says {shard.num_clips}")
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()
    if digest != shard.clip_ids_sha256:
        problems.append("clip ids differ from the manifest's")
    if group.aligned is not None:
        wave = group.aligned.get(shard.index)
        if wave is None:
            problems.append(f"no waveform shard {shard.index} in split {group.split} to align with")
        elif digest != wave.clip_ids_sha256:
            problems.append(
                f"clip ids are not those of waveform shard {shard.index} in the same order"
            )
    return problems + _clip_problems(group, shard, f.path.rsplit(".", 1)[-1], ids, seen), True


LISTED_CLIPS = 3
"""How many clips of a shard file verify names for one kind of problem; more are counted."""


def _clip_problems(
    group: ShardGroup,
    shard: ShardEntry,
    fmt: str,
    ids: list[str],
    seen: dict[tuple[str, str, str, str], int],
) -> list[str]:
    """The problems of a shard file's clips: in another shard too, or not where the ledger
    says (no committed row, another shard or row).

    Each kind of problem has a line per clip, or for more than :data:`LISTED_CLIPS` clips one
    line counting them with the first few as examples.
    """
    doubled, unledgered, elsewhere = [], [], []
    check_ledger = group.ledger is not None and shard.index not in group.ledger_unread
    for row, clip_id in enumerate(ids):
        first = seen.setdefault((group.kind, group.split, fmt, clip_id), shard.index)
        if first != shard.index:
            doubled.append((f"clip {clip_id} also in shard {first}", f"{clip_id} (shard {first})"))
        if not check_ledger:
            continue
        led = group.ledger.get(clip_id)
        if led is None:
            unledgered.append((f"clip {clip_id} has no committed ledger row", clip_id))
        elif (led["shard"], led["row"]) != (shard.index, row):
            where = f"shard {led['shard']} row {led['row']}"
            elsewhere.append((f"clip {clip_id}: ledger says {where}", f"{clip_id} ({where})"))
    return [
        *_counted(doubled, "are also in other shards"),
        *_counted(unledgered, "have no committed ledger row"),
        *_counted(elsewhere, "have another shard or row in the ledger"),
    ]


def _counted(found: list[tuple[str, str]], what: str) -> list[str]:
    """Problem lines of clips with one kind of problem.

    Parameters
    ----------
    found : list of (str, str)
        Each clip's own problem line and its example text for a count.
    what : str
        The problem, said of several clips (``have no committed ledger row``).

    Returns
    -------
    list of str
        The clips' own lines, or for more than :data:`LISTED_CLIPS` clips one line: ``12 clips
        have no committed ledger row, e.g. a, b, c``.
    """
    if len(found) <= LISTED_CLIPS:
        return [line for line, _ in found]
    examples = ", ".join(example for _, example in found[:LISTED_CLIPS])
    return [f"{len(found)} clips {what}, e.g. {examples}"]
