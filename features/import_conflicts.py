"""Check an import's clips against the dataset's committed clips, before anything is written.

A clip id names one clip of the dataset: an input clip committed in another split is refused, and
so is another version (other labels or other embeddings) of a clip the split holds, or of a clip
that came earlier in the input. Clips are compared by their :func:`clip_mark`, a few bytes a clip.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
from collections.abc import Iterable, Iterator
from typing import IO

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features.import_records import FRAMES, ImportRecordError, concat_rows
from pipelines.storage import DatasetStore
from schemas.classmap import ClassMap
from schemas.dataset import DatasetManifest, ShardEntry, SplitEntry
from schemas.embeddings import EmbeddingRows, read_embedding_hdf5, read_embedding_parquet

MARK_HEAD = "<II8s"  # a clip's file number, record number and frames digest (see clip_mark)


def clip_mark(rows: EmbeddingRows, i: int, file: int, record: int) -> bytes:
    """Where row ``i`` came from (its file's number and record), a digest of its frames and its
    labels, packed in one small bytes object: what a later copy of its clip id is checked
    against, for about 40 bytes a clip."""
    frames = rows.x[i].tobytes() + int(rows.num_frames[i]).to_bytes(4, "little")
    digest = hashlib.blake2b(frames, digest_size=8).digest()
    labels = np.flatnonzero(rows.y[i]).astype("<u4").tobytes()
    return struct.pack(MARK_HEAD, file, record, digest) + labels


def _unmark(mark: bytes) -> tuple[int, int, bytes, list[int]]:
    """(file number, record, frames digest, labels) of a :func:`clip_mark`."""
    file, record, digest = struct.unpack_from(MARK_HEAD, mark)
    labels = np.frombuffer(mark, "<u4", offset=struct.calcsize(MARK_HEAD)).tolist()
    return file, record, digest, labels


def other_version(
    first: bytes, again: bytes, files: list[str], unit: str, class_map: ClassMap
) -> str | None:
    """Why a repeat of a clip id in the input (``again``) is another version of the clip that
    came ``first``: other labels or other embeddings, naming both; None for an exact copy."""
    if (differs := _difference(first, again, class_map)) is None:
        return None
    file, record, _, _ = _unmark(first)
    return (
        f"it repeats the clip id of {files[file]} {unit} {record} {differs}. "
        "The input holds two versions of one clip; keep the right one and import again"
    )


def _difference(first: bytes, again: bytes, class_map: ClassMap) -> str | None:
    """How the clip of mark ``again`` differs from that of mark ``first``, as ``and the same
    embeddings: labels [...] there, [...] here`` (or ``but other embeddings: ...``); None for
    an exact copy."""
    _, _, digest, labels = _unmark(first)
    _, _, digest_again, labels_again = _unmark(again)
    if digest == digest_again and labels == labels_again:
        return None
    frames = "and the same embeddings" if digest == digest_again else "but other embeddings"
    return (
        f"{frames}: labels {_label_text(labels, class_map)} there, "
        f"{_label_text(labels_again, class_map)} here"
    )


def _label_text(labels: list[int], class_map: ClassMap) -> str:
    """Class indices with their names, as ``[0 'Speech', 137 'Music']``."""
    return "[" + ", ".join(f"{k} {class_map[k].display_name!r}" for k in labels) + "]"


def committed_clip_ids(store: DatasetStore, entry: SplitEntry) -> dict[str, int]:
    """Clip ids of the split's committed shards, waveform or embedding, each mapped to the
    position in ``entry.shards`` of the shard that holds it."""
    seen: dict[str, int] = {}
    for k, shard in enumerate(entry.shards):
        with _committed_shard(store, shard) as (fmt, _, stream):
            if fmt == "parquet":
                ids = pq.read_table(stream, columns=["clip_id"]).column("clip_id").to_pylist()
            else:
                with h5py.File(stream, "r") as hf:
                    ids = list(hf["clip_id"].asstr()[:])
        seen.update(dict.fromkeys(ids, k))
    return seen


@contextlib.contextmanager
def _committed_shard(store: DatasetStore, shard: ShardEntry) -> Iterator[tuple[str, str, IO]]:
    """Open a committed shard, its Parquet file if it has one, else its HDF5 file: (format,
    path in the dataset, stream). A shard that cannot be read is a ValueError naming it."""
    fmt = "parquet" if "parquet" in shard.files else "hdf5"
    rel = shard.files[fmt].path
    try:
        with store.open(rel) as stream:
            yield fmt, rel, stream
    except (OSError, KeyError, ValueError, pa.ArrowException) as exc:
        raise ValueError(
            f"{store.url(rel)}, a committed shard of the dataset, cannot be read ({exc})"
        ) from exc


class CommittedMarks:
    """The :func:`clip_mark` of each committed clip of a split (its shard's position for the file
    number, its row for the record), a whole shard read, once, when one of its clips is first
    asked for.

    Parameters
    ----------
    store : DatasetStore
    entry : SplitEntry
        The split's embedding shards.
    clip_ids : dict
        From :func:`committed_clip_ids` of ``entry``.
    num_classes : int
    """

    def __init__(
        self, store: DatasetStore, entry: SplitEntry, clip_ids: dict[str, int], num_classes: int
    ) -> None:
        self.store = store
        self.entry = entry
        self.clip_ids = clip_ids
        self.num_classes = num_classes
        self._marks: dict[str, bytes] = {}
        self._paths: dict[int, str] = {}

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self.clip_ids

    def mark(self, clip_id: str) -> bytes:
        """The mark of committed clip ``clip_id``."""
        k = self.clip_ids[clip_id]
        if k not in self._paths:
            with _committed_shard(self.store, self.entry.shards[k]) as (fmt, rel, stream):
                if fmt == "parquet":
                    rows = concat_rows(list(read_embedding_parquet(stream, self.num_classes)))
                else:
                    rows = read_embedding_hdf5(stream)[0]
            self._paths[k] = self.store.url(rel)
            for j, committed in enumerate(rows.clip_ids):
                if self.clip_ids.get(committed) == k:
                    self._marks[committed] = clip_mark(rows, j, k, j)
        return self._marks[clip_id]

    def where(self, mark: bytes) -> str:
        """The shard and row of a :meth:`mark`, as ``<shard file> row <j>``."""
        k, j, _, _ = _unmark(mark)
        return f"{self._paths[k]} row {j}"


def scan_input(
    blocks: Iterable[tuple[str, np.ndarray, EmbeddingRows]],
    unit: str,
    class_map: ClassMap,
    elsewhere: dict[str, str],
    committed: CommittedMarks,
) -> list[str]:
    """Read the input once, before anything is written: return its clip ids that other splits
    hold (``elsewhere``), and refuse a record that gives a clip the split holds (``committed``)
    other labels or embeddings than its committed row.

    Raises
    ------
    ImportRecordError
        For the input's first such record, naming the clip, its committed shard and row, and
        both label sets (or that the embeddings differ).
    """
    found: dict[str, None] = {}
    for path, records, rows in blocks:
        rows.num_frames = np.minimum(rows.num_frames, FRAMES)  # as a shard keeps them
        for i, clip_id in enumerate(rows.clip_ids):
            if clip_id in elsewhere:
                found[clip_id] = None
            if clip_id not in committed:
                continue
            first = committed.mark(clip_id)
            if differs := _difference(first, clip_mark(rows, i, 0, 0), class_map):
                raise ImportRecordError(
                    path,
                    int(records[i]),
                    f"it repeats committed clip {clip_id} ({committed.where(first)}) {differs}. "
                    "A dataset cannot relabel or replace a committed clip: leave it out of the "
                    "input or import into a new --out. Nothing was written.",
                    unit,
                )
    return list(found)


def other_splits_clip_ids(
    store: DatasetStore, manifest: DatasetManifest, split: str
) -> dict[str, str]:
    """Each clip id committed in a split other than ``split``, mapped to that split's name.

    A split's clip ids are read from its waveform shards (their ``clip_id`` column, never the
    audio) if it has any, as its embedding shards are computed from them, else from its
    embedding shards of every model.
    """
    entries = {name: [e] for name, e in manifest.splits.items() if e.shards}
    for splits in manifest.embeddings.values():
        for name, entry in splits.items():
            if name not in manifest.splits or not manifest.splits[name].shards:
                entries.setdefault(name, []).append(entry)
    where: dict[str, str] = {}
    for name, found in entries.items():
        if name != split:
            for entry in found:
                where.update(dict.fromkeys(committed_clip_ids(store, entry), name))
    return where


def refuse_clips_elsewhere(
    clip_ids: Iterable[str], elsewhere: dict[str, str], split: str, url: str
) -> None:
    """Refuse an input that holds clips committed in another split of the dataset.

    Parameters
    ----------
    clip_ids : iterable of str
        The clip ids of the input.
    elsewhere : dict
        From :func:`other_splits_clip_ids`.
    split : str
        The split the input would go to.
    url : str
        The dataset, for the message.

    Raises
    ------
    ValueError
        Naming how many clips, the first three with the split that holds each, and what to do.
    """
    found = list(dict.fromkeys(c for c in clip_ids if c in elsewhere))
    if not found:
        return
    shown = ", ".join(f"{c} (in {elsewhere[c]!r})" for c in found[:3])
    raise ValueError(
        f"cannot import into split {split!r} of {url}: {len(found)} clip(s) of the input are "
        f"committed in another split, e.g. {shown}. A clip id names one clip of the dataset, "
        "so a clip cannot be in two splits (train/eval leakage): import these files into the "
        "split that holds them, leave those clips out, or import into a new --out. Nothing was "
        "written."
    )
