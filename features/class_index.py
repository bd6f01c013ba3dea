"""Per-class index of a split, for PANNs-style balanced sampling and per-clip weights.

:func:`build_class_index` reads the targets of every committed shard of a split with Dask, one
task per shard that reads only the ``target`` (waveforms) or ``y`` (embeddings) dataset and the
clip ids of an HDF5 shard, or only the ``labels`` and ``clip_id`` columns of a Parquet shard:
never the audio or the embeddings. Each task returns the (row, class) pairs of its positive
labels (``np.flatnonzero`` of the shard's bool matrix), so what travels back is proportional to the
labels, not to C x rows; the driver combines them with NumPy (``bincount``, a stable sort by
class) into the tables of :mod:`schemas.class_index` and commits them atomically.

:func:`load_class_index` reads an index back as NumPy arrays, refusing one whose files do not
match its ``index.json`` or whose shards are no longer those of the manifest (a stale index).

The Dask client is an argument everywhere (see :func:`dask_client`): ``None`` starts a threaded
``LocalCluster`` (reads of small ``target`` datasets are I/O and latency bound, and threads share
the results without copies), a string is a scheduler address (``tcp://host:port``) or
``"synchronous"`` or ``"threads"`` (Dask's local schedulers, no cluster), and a
``distributed.Client`` is used as is.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.dask_runtime import DaskClient, Runner, dask_client, map_shards
from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetStore
from schemas.class_index import (
    CLASSES_SCHEMA,
    CLASSES_TABLE,
    INDEX_META,
    INDEX_TABLES,
    POSITIONS,
    POSITIONS_SCHEMA,
    SOURCES,
    WEIGHTS,
    WEIGHTS_SCHEMA,
    ClassIndexMeta,
    IndexedShard,
    class_index_dir,
)
from schemas.dataset import DatasetManifest, ShardEntry

log = logging.getLogger(__name__)

FORMAT_PREFERENCE = ("hdf5", "parquet")


# --------------------------------------------------------------------------- reading shards


@dataclass(frozen=True)
class ShardSource:
    """One committed shard of a split, and the file of it a task reads.

    Attributes
    ----------
    entry : ShardEntry
        The manifest's entry.
    fmt : {"hdf5", "parquet"}
        Format read (HDF5 when the shard has it: its bool matrix is read in one piece).
    path : str
        Dataset-relative path of that file.
    kind : {"waveforms", "embeddings"}
    """

    entry: ShardEntry
    fmt: str
    path: str
    kind: str

    @property
    def committed_bytes(self) -> int:
        """Size of the file as the manifest recorded it when the shard was committed."""
        return self.entry.files[self.fmt].bytes


def split_shards(
    manifest: DatasetManifest, split: str, source: str = "waveforms", model: str = "vggish"
) -> list[ShardSource]:
    """Return the committed shards of ``split`` from ``source``, in manifest (global row) order.

    Raises
    ------
    ValueError
        If the split has no committed shards there; the message lists what the dataset has.
        Also if fewer of the split's clips have embeddings than waveforms (an embed that did not
        finish, or a split that grew since it was embedded): read, its embeddings would leave
        the other clips out.
    """
    if source == "waveforms":
        entry = manifest.splits.get(split)
        where = f"waveforms of split {split!r}"
    elif source == "embeddings":
        entry = manifest.embeddings.get(model, {}).get(split)
        where = f"{model} embeddings of split {split!r}"
    else:
        raise ValueError(f"unknown source {source!r}: expected one of {SOURCES}")
    if entry is None or not entry.shards:
        waveforms = [name for name, e in sorted(manifest.splits.items()) if e.shards]
        embeddings = [
            f"{m}/{name}"
            for m, splits in sorted(manifest.embeddings.items())
            for name, e in sorted(splits.items())
            if e.shards
        ]
        raise ValueError(
            f"the dataset has no committed shards of {where}; it has waveforms of splits "
            f"[{', '.join(waveforms)}] and embeddings (model/split) [{', '.join(embeddings)}]"
        )
    waves = manifest.splits.get(split)
    if source == "embeddings" and waves is not None and entry.num_clips < waves.num_clips:
        raise ValueError(
            f"only {entry.num_clips} of the {waves.num_clips} clips of split {split!r} have "
            f"{model} embeddings (an embed that did not finish, or clips added since): run "
            "`audiomill embed` on the dataset to embed the rest"
        )
    out = []
    for shard in entry.shards:
        fmt = next((f for f in FORMAT_PREFERENCE if f in shard.files), None)
        if fmt is None:
            raise ValueError(f"shard {shard.index} of {where} has no HDF5 or Parquet file")
        out.append(ShardSource(shard, fmt, shard.files[fmt].path, source))
    return out


def committed_size_problems(
    store: DatasetStore, files: Sequence[tuple[str, int]]
) -> list[tuple[str, str]]:
    """The shard files that are not there at the size recorded when they were committed, in
    the order given, each with what is wrong: ``"missing"`` or ``"N bytes, not M"``.

    One listing per folder, so a whole split is looked at in a few requests on object stores.

    Parameters
    ----------
    store : DatasetStore
    files : sequence of (str, int)
        Dataset-relative path of each file and its size in the manifest.
    """
    listed: dict[str, dict[str, int]] = {}
    problems = []
    for path, expected in files:
        folder, _, name = path.rpartition("/")
        if folder not in listed:
            listed[folder] = store.file_sizes(folder)
        actual = listed[folder].get(name)
        if actual is None:
            problems.append((path, "missing"))
        elif actual != expected:
            problems.append((path, f"{actual:,} bytes, not {expected:,}"))
    return problems


def check_committed_sizes(store: DatasetStore, files: Sequence[tuple[str, int]]) -> None:
    """Check that each shard file is there, at the size recorded when it was committed
    (:func:`committed_size_problems`).

    A whole split is checked before a long job reads it. A file cut short, grown or replaced
    since is caught; one changed in place at the same size is not: ``audiomill dataset verify``
    compares checksums.

    Parameters
    ----------
    store : DatasetStore
    files : sequence of (str, int)
        Dataset-relative path of each file and its size in the manifest.

    Raises
    ------
    ValueError
        Naming the files that are missing or of another size (the first three, and how many).
    """
    problems = [
        f"{store.url(path)} is {problem}" for path, problem in committed_size_problems(store, files)
    ]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(
            f"{'; '.join(problems[:3])}{more}: the manifest recorded these shard files when they "
            "were committed, so they were removed, cut short or replaced since; restore them from "
            "a copy (`audiomill dataset verify` checks every shard)"
        )


@contextlib.contextmanager
def reading_shard(where: str) -> Iterator[None]:
    """Turn a failure to read the shard file at ``where`` (damaged, missing) into a ValueError.

    Raises
    ------
    ValueError
        Naming the file and the reason, for an OSError (h5py's included), an EOFError (a file
        shorter than its layout says) or Arrow's ArrowInvalid.
    """
    try:
        yield
    except (OSError, EOFError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{where}: cannot be read ({exc})") from exc


@dataclass
class ShardLabels:
    """The positive labels of one shard, as a task returns them.

    Attributes
    ----------
    num_rows : int
    rows, classes : np.ndarray [shape=(P,), dtype=int32]
        Row and class of each positive label, sorted by row then class.
    clip_ids : pyarrow.StringArray [shape=(num_rows,)]
    """

    num_rows: int
    rows: np.ndarray
    classes: np.ndarray
    clip_ids: pa.Array


def read_shard_labels(store: DatasetStore, shard: ShardSource, num_classes: int) -> ShardLabels:
    """Read the labels and clip ids of one shard (never its audio or embeddings).

    Parameters
    ----------
    store : DatasetStore
    shard : ShardSource
    num_classes : int
        Width of the class map; a shard of another width is an error.

    Raises
    ------
    ValueError
        If the file cannot be read, lacks the datasets or columns needed, has targets of the
        wrong width or labels outside the class map, or holds another number of rows than the
        manifest says.
    """
    where = store.url(shard.path)
    if shard.fmt == "hdf5":
        key = "target" if shard.kind == "waveforms" else "y"
        with reading_shard(where), store.open_hdf5(shard.path) as hf:
            missing = [k for k in (key, "clip_id") if k not in hf]
            if missing:
                raise ValueError(f"{where}: missing datasets {missing}")
            target = hf[key][:]
            ids = hf["clip_id"][:]
        if target.ndim != 2 or target.shape[1] != num_classes:
            raise ValueError(
                f"{where}: {key} has shape {target.shape}, expected (N, {num_classes})"
            )
        # flatnonzero is several times faster than a 2-D nonzero; divmod recovers (row, class).
        rows, classes = np.divmod(np.flatnonzero(target), num_classes)
        clip_ids = pa.array(ids, type=pa.binary()).cast(pa.string())
    else:
        with reading_shard(where), store.open(shard.path) as stream:
            table = pq.read_table(stream, columns=["clip_id", "labels"])
        labels = table.column("labels").combine_chunks()
        key = pc.list_parent_indices(labels).to_numpy().astype(np.int64) * num_classes
        flat = pc.list_flatten(labels).to_numpy().astype(np.int64)
        if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
            raise ValueError(f"{where}: labels outside the class map (0..{num_classes - 1})")
        rows, classes = np.divmod(np.unique(key + flat), num_classes)
        clip_ids = table.column("clip_id").combine_chunks().cast(pa.string())
    if len(clip_ids) != shard.entry.num_clips:
        raise ValueError(
            f"{where}: {len(clip_ids)} rows, the manifest says {shard.entry.num_clips}: "
            "run `audiomill dataset verify` on the dataset"
        )
    return ShardLabels(
        num_rows=len(clip_ids),
        rows=rows.astype(np.int32),
        classes=classes.astype(np.int32),
        clip_ids=clip_ids,
    )


@dataclass
class SplitLabels:
    """The positive labels of a whole split, in global row order.

    Attributes
    ----------
    shard_indices : np.ndarray [shape=(S,), dtype=int32]
        Shard indices in manifest order.
    shard_offsets : np.ndarray [shape=(S + 1,), dtype=int64]
        Global row of each shard's first row; the last entry is the number of clips.
    global_row : np.ndarray [shape=(P,), dtype=int64]
        Global row of each positive label, sorted (then by class within a row).
    classes : np.ndarray [shape=(P,), dtype=int32]
    clip_ids : pyarrow.ChunkedArray [shape=(N,)]
        One chunk per shard (no copy).
    """

    shard_indices: np.ndarray
    shard_offsets: np.ndarray
    global_row: np.ndarray
    classes: np.ndarray
    clip_ids: pa.ChunkedArray

    @property
    def num_clips(self) -> int:
        """Clips in the split (N)."""
        return int(self.shard_offsets[-1])

    def locate(self, global_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map global rows to (shard index, row within the shard), both int32."""
        pos = np.searchsorted(self.shard_offsets, global_rows, side="right") - 1
        row = (global_rows - self.shard_offsets[pos]).astype(np.int32)
        return self.shard_indices[pos], row

    @classmethod
    def combine(cls, shards: Sequence[ShardSource], parts: Sequence[ShardLabels]) -> SplitLabels:
        """Concatenate per-shard labels (``parts[i]`` read from ``shards[i]``; none: empty).

        The output arrays are allocated once and filled shard by shard, so no temporary of
        the split's size is made.
        """
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([p.num_rows for p in parts], out=offsets[1:])
        total = sum(len(p.rows) for p in parts)
        global_row = np.empty(total, dtype=np.int64)
        classes = np.empty(total, dtype=np.int32)
        at = 0
        for part, offset in zip(parts, offsets[:-1], strict=True):
            end = at + len(part.rows)
            np.add(part.rows, offset, out=global_row[at:end])
            classes[at:end] = part.classes
            at = end
        return cls(
            shard_indices=np.array([s.entry.index for s in shards], dtype=np.int32),
            shard_offsets=offsets,
            global_row=global_row,
            classes=classes,
            clip_ids=pa.chunked_array([p.clip_ids for p in parts], type=pa.string()),
        )


def read_split_labels(
    store: DatasetStore,
    shards: Sequence[ShardSource],
    num_classes: int,
    client: Runner,
) -> SplitLabels:
    """Read the labels of ``shards`` with one Dask task per shard and combine them."""
    parts: list[ShardLabels | None] = [None] * len(shards)
    items = [(store, shard, num_classes) for shard in shards]
    for pos, part in map_shards(read_shard_labels, items, client):
        parts[pos] = part
    return SplitLabels.combine(shards, parts)


# --------------------------------------------------------------------------- building


def class_weights(counts: np.ndarray) -> np.ndarray:
    """Per-class weight 1 / count, 0 for classes without clips (float64, shape (C,))."""
    counts = np.asarray(counts)
    return np.divide(1.0, counts, out=np.zeros(counts.shape), where=counts > 0)


@dataclass
class IndexSummary:
    """What :func:`build_class_index` built.

    Attributes
    ----------
    split, source : str
    model : str or None
    path : str
        Location of the index directory.
    num_shards, num_clips, num_positions, num_classes : int
    classes_without_clips : list of int
        Classes of the class map with no positive clip in the split (a balanced sampler must
        skip them).
    unlabeled_clips : int
        Clips without any label (weight 0).
    seconds : float
    """

    split: str
    source: str
    model: str | None
    path: str
    num_shards: int
    num_clips: int
    num_positions: int
    num_classes: int
    classes_without_clips: list[int] = field(default_factory=list)
    unlabeled_clips: int = 0
    seconds: float = 0.0


def build_class_index(
    dataset: str | os.PathLike[str],
    split: str,
    *,
    source: str = "waveforms",
    model: str = "vggish",
    client: DaskClient = None,
    storage_options: dict | None = None,
) -> IndexSummary:
    """Build the per-class index of ``split`` and commit it under ``index/<split>/``.

    Parameters
    ----------
    dataset : str or os.PathLike
        Dataset directory or fsspec URL.
    split : str
    source : {"waveforms", "embeddings"}
        Index the waveform shards of the split, or the embedding shards of ``model`` (for a
        dataset of imported embeddings without waveforms).
    model : str
        Embedding model, used when ``source`` is ``"embeddings"``.
    client : distributed.Client, str or None
        Where the per-shard reads run; see :func:`dask_client`.
    storage_options : dict, optional
        fsspec options of the dataset's filesystem.

    Returns
    -------
    IndexSummary

    Raises
    ------
    DatasetAccessError
        If the dataset cannot be written: checked before the shards are read where it can be
        (a local dataset), else when the index is committed.

    Notes
    -----
    The index describes the manifest as read at the start; shards committed meanwhile make it
    stale, which :func:`load_class_index` detects. The tables are written first and
    ``index.json`` last (the old one is removed first), so an interrupted build leaves no index
    rather than a wrong one. Memory is proportional to the number of positive labels, never
    to clips x classes: about 100 bytes per label at the peak, clip ids included (2 million
    AudioSet-like clips: about 0.5 GiB, where their dense targets alone take 1 GiB).
    """
    started = time.perf_counter()
    store = DatasetStore(dataset, storage_options)
    manifest = load_manifest(store)
    if manifest is None:
        raise FileNotFoundError(f"{store.url()} has no manifest.json: not an audiomill dataset")
    shards = split_shards(manifest, split, source, model)
    check_committed_sizes(store, [(s.path, s.committed_bytes) for s in shards])
    num_classes = manifest.num_classes
    rel_dir = class_index_dir(split, source, model)
    store.check_writable(rel_dir)
    with dask_client(client) as active:
        labels = read_split_labels(store, shards, num_classes, active)

    n = labels.num_clips
    counts = np.bincount(labels.classes, minlength=num_classes).astype(np.int64)
    starts = np.zeros(num_classes, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    num_labels = np.bincount(labels.global_row, minlength=n).astype(np.int32)
    weights = np.bincount(
        labels.global_row, weights=class_weights(counts)[labels.classes], minlength=n
    )
    # Positions grouped by class: a stable sort keeps each class's clips in global row order.
    by_class = labels.global_row[np.argsort(labels.classes, kind="stable")]
    class_column = np.repeat(np.arange(num_classes, dtype=np.int32), counts)
    tables = {
        POSITIONS: pa.table([class_column, *labels.locate(by_class)], schema=POSITIONS_SCHEMA),
        CLASSES_TABLE: pa.table(
            [np.arange(num_classes, dtype=np.int32), counts, starts], schema=CLASSES_SCHEMA
        ),
        WEIGHTS: pa.table(
            [*labels.locate(np.arange(n)), labels.clip_ids, num_labels, weights],
            schema=WEIGHTS_SCHEMA,
        ),
    }
    files = _commit_tables(store, rel_dir, tables)
    seconds = time.perf_counter() - started
    meta = ClassIndexMeta(
        split=split,
        source=source,
        model=model if source == "embeddings" else None,
        class_map_sha256=manifest.class_map_sha256,
        num_classes=num_classes,
        num_clips=n,
        num_positions=len(labels.classes),
        shards=[
            IndexedShard(
                index=s.entry.index,
                num_clips=s.entry.num_clips,
                offset=int(offset),
                clip_ids_sha256=s.entry.clip_ids_sha256,
                files=_shard_state(s.entry)[2],
            )
            for s, offset in zip(shards, labels.shard_offsets[:-1], strict=True)
        ],
        files=files,
        created=time.time(),
        build_seconds=seconds,
    )
    with store.writing():
        store.write_json_atomic(f"{rel_dir}/{INDEX_META}", meta.to_dict())
    summary = IndexSummary(
        split=split,
        source=source,
        model=meta.model,
        path=store.url(rel_dir),
        num_shards=len(shards),
        num_clips=n,
        num_positions=meta.num_positions,
        num_classes=num_classes,
        classes_without_clips=np.flatnonzero(counts == 0).tolist(),
        unlabeled_clips=int(np.count_nonzero(num_labels == 0)),
        seconds=seconds,
    )
    log.info(
        "class index of %s: %d clips, %d positions in %.1f s",
        summary.path,
        n,
        summary.num_positions,
        seconds,
    )
    return summary


def _commit_tables(
    store: DatasetStore, rel_dir: str, tables: dict[str, pa.Table]
) -> dict[str, dict[str, str | int]]:
    """Remove the index.json of `rel_dir`, then commit each table there as a Parquet file.

    Returns
    -------
    dict
        The ``sha256`` and ``bytes`` of each committed file, by name.

    Raises
    ------
    DatasetAccessError
        If the dataset cannot be written.
    """
    with store.writing():
        store.remove(f"{rel_dir}/{INDEX_META}")
    files: dict[str, dict[str, str | int]] = {}
    with tempfile.TemporaryDirectory(prefix="audiomill-index-") as tmp:
        for name, table in tables.items():
            local = os.path.join(tmp, name)
            pq.write_table(table, local, compression="zstd")
            with store.writing():
                rec = store.commit_file(local, f"{rel_dir}/{name}")
            files[name] = {"sha256": rec.sha256, "bytes": rec.bytes}
    return files


# --------------------------------------------------------------------------- reading


class StaleClassIndexError(RuntimeError):
    """The index no longer describes the dataset's committed shards."""


def _shard_state(entry: ShardEntry) -> tuple[int, str, dict[str, str]]:
    """What an index records of a shard: rows, clip ids digest, file digests by format."""
    return (
        entry.num_clips,
        entry.clip_ids_sha256,
        {fmt: f.sha256 for fmt, f in sorted(entry.files.items())},
    )


def stale_reasons(meta: ClassIndexMeta, manifest: DatasetManifest | None) -> list[str]:
    """Return every way the shards an index was built from differ from the manifest's.

    An empty list means the index is current.
    """
    if manifest is None:
        return ["the dataset has no manifest.json"]
    reasons = []
    if meta.class_map_sha256 != manifest.class_map_sha256:
        reasons.append("the class map changed")
    if meta.source == "waveforms":
        entry = manifest.splits.get(meta.split)
    else:
        entry = manifest.embeddings.get(meta.model or "", {}).get(meta.split)
    current = {s.index: s for s in (entry.shards if entry else [])}
    recorded = {s.index: s for s in meta.shards}
    changed = [
        i
        for i in sorted(current.keys() & recorded.keys())
        if _shard_state(current[i])
        != (recorded[i].num_clips, recorded[i].clip_ids_sha256, recorded[i].files)
    ]
    for what, indices in (
        ("committed since", sorted(current.keys() - recorded.keys())),
        ("removed since", sorted(recorded.keys() - current.keys())),
        ("changed since", changed),
    ):
        if indices:
            shown = ", ".join(map(str, indices[:10])) + (" ..." if len(indices) > 10 else "")
            reasons.append(f"{len(indices)} shard(s) {what} the index was built: {shown}")
    return reasons


@dataclass
class ClassIndex:
    """A per-class index in memory.

    Attributes
    ----------
    meta : ClassIndexMeta
    counts : np.ndarray [shape=(C,), dtype=int64]
        Positive clips per class.
    starts : np.ndarray [shape=(C + 1,), dtype=int64]
        Class ``c``'s positions are ``starts[c]:starts[c + 1]`` of the position arrays.
    shard, row : np.ndarray [shape=(P,), dtype=int32]
        Shard index and row of each position, grouped by class.
    global_row : np.ndarray [shape=(P,), dtype=int64]
        Global row of each position (see :mod:`schemas.class_index`).
    shard_indices : np.ndarray [shape=(S,), dtype=int32]
    shard_offsets : np.ndarray [shape=(S + 1,), dtype=int64]
        Global row of each shard's first row; the last entry is the number of clips N.
    weights : np.ndarray [shape=(N,), dtype=float64]
        Per-clip weight by global row: sum over its labels of 1 / count.
    num_labels : np.ndarray [shape=(N,), dtype=int32]
    clip_ids : pyarrow.StringArray [shape=(N,)]
    """

    meta: ClassIndexMeta
    counts: np.ndarray
    starts: np.ndarray
    shard: np.ndarray
    row: np.ndarray
    global_row: np.ndarray
    shard_indices: np.ndarray
    shard_offsets: np.ndarray
    weights: np.ndarray
    num_labels: np.ndarray
    clip_ids: pa.Array

    @property
    def num_classes(self) -> int:
        """Classes of the class map (C)."""
        return len(self.counts)

    @property
    def num_clips(self) -> int:
        """Clips indexed (N)."""
        return int(self.shard_offsets[-1])

    def rows_of(self, c: int) -> np.ndarray:
        """Global rows of the positive clips of class ``c`` (a view)."""
        return self.global_row[self.starts[c] : self.starts[c + 1]]

    def pairs_of(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(shard index, row) of the positive clips of class ``c`` (views)."""
        span = slice(self.starts[c], self.starts[c + 1])
        return self.shard[span], self.row[span]

    def per_class(self) -> list[np.ndarray]:
        """Global rows of each class's positive clips: PANNs' ``indexes_per_class``."""
        return [self.rows_of(c) for c in range(self.num_classes)]

    def locate(self, global_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map global rows to (shard index, row within the shard)."""
        global_rows = np.asarray(global_rows, dtype=np.int64)
        if global_rows.size and (global_rows.min() < 0 or global_rows.max() >= self.num_clips):
            raise IndexError(f"global rows must be in [0, {self.num_clips})")
        pos = np.searchsorted(self.shard_offsets, global_rows, side="right") - 1
        return self.shard_indices[pos], global_rows - self.shard_offsets[pos]


def _find_index_dir(store: DatasetStore, split: str, source: str | None, model: str) -> str:
    candidates = [source] if source else list(SOURCES)
    dirs = [class_index_dir(split, s, model) for s in candidates]
    for rel_dir in dirs:
        if store.exists(f"{rel_dir}/{INDEX_META}"):
            return rel_dir
    raise FileNotFoundError(
        f"no class index of split {split!r} at {' or '.join(store.url(d) for d in dirs)}: "
        "build it with build_class_index"
    )


def load_class_index(
    dataset: str | os.PathLike[str],
    split: str,
    *,
    source: str | None = None,
    model: str = "vggish",
    storage_options: dict | None = None,
    check: bool = True,
) -> ClassIndex:
    """Read the per-class index of ``split``.

    Parameters
    ----------
    dataset : str or os.PathLike
        Dataset directory or fsspec URL.
    split : str
    source : {"waveforms", "embeddings"}, optional
        Which index; None takes the waveform index if there is one, else that of ``model``'s
        embeddings.
    model : str
    storage_options : dict, optional
    check : bool
        Refuse an index whose shards are no longer the manifest's.

    Raises
    ------
    FileNotFoundError
        If the index was never built (or a rebuild is under way or was interrupted).
    ValueError
        If a table does not match ``index.json``.
    StaleClassIndexError
        If ``check`` and the dataset's shards changed since the index was built.
    """
    store = DatasetStore(dataset, storage_options)
    rel_dir = _find_index_dir(store, split, source, model)
    meta = ClassIndexMeta.from_dict(json.loads(store.read_text(f"{rel_dir}/{INDEX_META}")))
    if check and (reasons := stale_reasons(meta, load_manifest(store))):
        raise StaleClassIndexError(
            f"the class index at {store.url(rel_dir)} is stale ({'; '.join(reasons)}): "
            "rebuild it with build_class_index"
        )
    tables = {}
    for name in INDEX_TABLES:
        data = store.read_bytes(f"{rel_dir}/{name}")
        expected = meta.files.get(name, {}).get("sha256")
        if hashlib.sha256(data).hexdigest() != expected:
            raise ValueError(
                f"{store.url(rel_dir, name)} does not match {INDEX_META} (written by another "
                "build?): rebuild the index with build_class_index"
            )
        tables[name] = pq.read_table(io.BytesIO(data))
    counts = tables[CLASSES_TABLE].column("count").to_numpy()
    positions = tables[POSITIONS]
    shard = positions.column("shard").to_numpy()
    row = positions.column("row").to_numpy()
    shard_indices = np.array([s.index for s in meta.shards], dtype=np.int32)
    shard_offsets = np.array([s.offset for s in meta.shards] + [meta.num_clips], dtype=np.int64)
    by_index = np.argsort(shard_indices)
    pos = by_index[np.searchsorted(shard_indices, shard, sorter=by_index)]
    starts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    weights = tables[WEIGHTS]
    return ClassIndex(
        meta=meta,
        counts=counts,
        starts=starts,
        shard=shard,
        row=row,
        global_row=shard_offsets[pos] + row,
        shard_indices=shard_indices,
        shard_offsets=shard_offsets,
        weights=weights.column("weight").to_numpy(),
        num_labels=weights.column("num_labels").to_numpy(),
        clip_ids=weights.column("clip_id").combine_chunks(),
    )
