"""Import AudioSet's released embeddings and packed HDF5 embedding files into embedding shards.

Two sources become the shards of ``schemas.embeddings`` (``embeddings/<model>/<split>/``):

- **AudioSet's release** (:func:`import_audioset_tfrecords`): TFRecord files of
  ``tf.train.SequenceExample`` records, context ``video_id`` (bytes), ``start_time_seconds``,
  ``end_time_seconds`` (float) and ``labels`` (int64 indices into ``class_labels_indices.csv``),
  feature list ``audio_embedding`` with one 128-byte uint8 string per second.
- **Packed HDF5 files** (:func:`import_packed_h5`), the input of the embedding-classifier seed:
  ``x`` uint8 (N, 10, 128), ``y`` bool or 0/1 integers (N, C), ``video_id_list`` bytes (N,).
  They record no start times, which AudioSet clip ids hold (``<YTID>_<start_ms>``): see
  :mod:`features.packed_clip_ids` for the ids their rows get.

Design choices, shared by both importers:

- **Bad input stops the import with an error naming the file and the record (or row)**: a
  record that is not a SequenceExample, a frame that is not one 128-byte string, a label outside
  the class map, a ``y`` of the wrong width. A label that does not fit the class map means the
  wrong class map (or the wrong files), so it is never dropped silently.
- **Idempotent and resumable**: the clip ids of the split's committed shards are read first and
  clips already there are skipped, as are exact repeats of a clip within the input. A repeat of
  a clip id with other labels or other embeddings is another version of the clip, which the
  import cannot choose between: an error naming both records and both label sets. A record
  giving a committed clip other labels or embeddings is refused the same way, before anything
  is written (the input is read once more first where the split holds clips), naming the
  committed shard and row: a dataset cannot relabel or replace a committed clip. Only shards
  holding clips of the input are read for that, each once. Shards are committed before the
  manifest that lists them is saved (at the end, on an error, and every
  ``checkpoint_seconds`` in between), and shard files the manifest does not list are deleted at
  the start, so a crash at any point loses only uncommitted work and duplicates nothing.
- **A clip id names one clip of the dataset**: an input holding clips committed in another
  split (waveform or imported, of any model) is refused before anything is written, naming how
  many and a few with their split: the same clip in two splits leaks training data into
  evaluation. Finding them reads the input once more, the read that checks the clips the split
  holds (above), so this costs a second read only where the dataset holds clips.
- **Frames**: rows hold exactly 10 frames (VGGish over 10 s clips). Shorter clips are zero-padded
  and ``num_frames`` says how many frames are real; frames past the 10th are dropped and
  counted (:attr:`ImportSummary.truncated`). A clip with no frame at all is skipped and counted
  (:attr:`ImportSummary.empty`): an empty row is no training example.
- Imports go to splits without waveforms: a split's waveform shards have embedding shards
  computed from them with the same index, which imported shards would collide with.
- Everything runs under the dataset lock and streams: blocks of records are read, parsed and
  committed, and only the set of clip ids grows with the number of clips (about 100 bytes a
  clip; while the input is read first, as much again for the committed clips it repeats). A
  run that commits shards (stage ``import-embeddings``) is recorded in the manifest; one that
  commits none to an existing dataset leaves ``manifest.json`` as it was. A first import that
  fails or commits no shard (its files hold no records, say) removes the dataset directory it
  made, so the next import's class map is not bound by it; input files that held no record are
  named in a warning.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import itertools
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import fsspec
import numpy as np

from features.embedding_shards import commit_embedding_shard, remove_uncommitted_shards
from features.import_conflicts import (
    CommittedMarks,
    clip_mark,
    committed_clip_ids,
    other_splits_clip_ids,
    other_version,
    refuse_clips_elsewhere,
    scan_input,
)
from features.import_records import FRAMES, ImportRecordError, concat_rows
from features.import_target import locked_target
from features.packed_clip_ids import packed_clip_ids
from features.packed_embeddings import check_packed, open_packed, read_packed_rows
from features.release_tfrecords import parse_release_batch, tfrecord_batches
from pipelines.dataset_state import load_manifest, record_run, save_manifest
from pipelines.storage import DatasetStore
from schemas.classmap import ClassMap
from schemas.dataset import (
    CLASSES,
    SHARD_EXTENSIONS,
    DatasetManifest,
    SplitEntry,
)
from schemas.embeddings import EmbeddingRows
from schemas.segments import split_name_problem

log = logging.getLogger(__name__)

FORMATS = tuple(SHARD_EXTENSIONS)
SOURCE_RELEASE = "audioset-release"
SOURCE_PACKED = "packed-hdf5"
STAGE = "import-embeddings"
RELEASE_SAMPLE_RATE = 16000
RELEASE_CLIP_SECONDS = 10.0
H5_READ_ROWS = 4096
RUN_FILES_LISTED = 20  # input files named in the manifest's run record (the release has ~4000)

Progress = Callable[[int, int | None], None]


@dataclass
class ImportSummary:
    """What an import did.

    Attributes
    ----------
    run_id : str
    model, split : str
        Where the rows went: ``embeddings/<model>/<split>/``.
    source : str
        ``audioset-release`` or ``packed-hdf5``.
    files : list of str
        The input files, in the order they were read.
    read : int
        Records (or rows) read.
    imported : int
        Clips written to new shards.
    already_imported : int
        Clips skipped because the split already holds their clip id, with the same labels and
        embeddings (another version of a committed clip is an :class:`ImportRecordError`).
    duplicates : int
        Clips skipped because their clip id came earlier in this import's input, with the same
        labels and embeddings (another version of the clip is an :class:`ImportRecordError`).
    empty : int
        Clips skipped because they have no frame.
    truncated : int
        Imported clips that had more than 10 frames (only the first 10 were kept).
    shards : list of int
        Indices of the shards this import committed.
    seconds : float
    split_clips : int
        Clips in the split after the import.
    files_without_records : list of str
        Input files that held no record (or row) at all.
    created : bool
        Whether the dataset exists after the import: False when a first import committed no
        shard, which leaves no dataset behind.
    unknown_starts : int
        Packed files: videos of the input whose start time neither segment lists nor the
        dataset gave, so that their clip id is ``<YTID>_0``.
    """

    run_id: str
    model: str
    split: str
    source: str
    files: list[str]
    read: int = 0
    imported: int = 0
    already_imported: int = 0
    duplicates: int = 0
    empty: int = 0
    truncated: int = 0
    shards: list[int] = field(default_factory=list)
    seconds: float = 0.0
    split_clips: int = 0
    files_without_records: list[str] = field(default_factory=list)
    created: bool = True
    unknown_starts: int = 0

    @property
    def skipped(self) -> int:
        """Clips read but not imported."""
        return self.already_imported + self.duplicates + self.empty


def import_audioset_tfrecords(
    pattern: str | Sequence[str],
    classes: str | os.PathLike[str] | ClassMap | None,
    out: str | os.PathLike[str],
    split: str,
    *,
    model: str = "vggish",
    shard_clips: int = 1000,
    formats: Sequence[str] = ("hdf5",),
    storage_options: dict | None = None,
    checkpoint_seconds: float = 60.0,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import AudioSet's released embedding TFRecords into the embedding shards of ``split``.

    Parameters
    ----------
    pattern : str or sequence of str
        TFRecord files: glob patterns (``tf.io.gfile.glob``, so local paths and ``gs://``) or
        directories (meaning ``<dir>/*.tfrecord``). Files are read in sorted order, a file
        matched by several patterns (or spelled as another local path) once; GZIP
        compression is not supported (the release does not use it).
    classes : path, ClassMap or None
        The class map the records' ``labels`` index (``class_labels_indices.csv``); None uses
        the dataset's ``classes.csv``.
    out : str or os.PathLike
        The dataset (local directory or fsspec URL); created if new (16 kHz, 10 s clips).
    split : str
        Split to add the clips to.
    model : str
        Embedding model name: the shards go to ``embeddings/<model>/<split>/``.
    shard_clips : int
        Clips per shard (the last shard of an import may hold fewer).
    formats : sequence of str
        Shard formats, among ``hdf5`` and ``parquet``.
    storage_options : dict, optional
        fsspec options of the dataset (and of a class map given by URL).
    checkpoint_seconds : float
        Save the manifest at most this often while shards are committed (0: after each shard).
    progress : callable, optional
        Called after each batch with (records read, None).

    Returns
    -------
    ImportSummary

    Raises
    ------
    FileNotFoundError
        If a pattern matches no file (naming those that match none).
    ImportRecordError
        For an unreadable or malformed record, a label outside the class map, or a record
        repeating an earlier one's clip id, or a committed clip's, with other labels or
        embeddings; it names the file and the record. Shards committed before the error stay
        in the dataset, and a re-run skips their clips; a committed clip's other version is
        refused before anything is written.
    """
    import tensorflow as tf  # deferred: importing TensorFlow takes seconds

    globs = [
        f"{pat.rstrip('/')}/*.tfrecord" if tf.io.gfile.isdir(pat) else pat
        for pat in _as_list(pattern)
    ]
    matches = {pat: tf.io.gfile.glob(pat) for pat in globs}
    if unmatched := [pat for pat, found in matches.items() if not found]:
        raise FileNotFoundError(f"no TFRecord file matches {', '.join(unmatched)}")
    files = _distinct_sorted(path for found in matches.values() for path in found)

    def blocks(
        class_map: ClassMap, counts: ImportSummary, progress: Progress | None
    ) -> Iterator[tuple[str, np.ndarray, EmbeddingRows]]:
        for path in files:
            for start, raws in tfrecord_batches(tf, path):
                records, rows = parse_release_batch(tf, raws, path, start, len(class_map))
                counts.empty += len(raws) - len(rows)
                counts.read += len(raws)
                yield path, records, rows
                if progress:
                    progress(counts.read, None)

    return _run_import(
        blocks,
        files=files,
        source=SOURCE_RELEASE,
        unit="record",
        classes=classes,
        out=out,
        split=split,
        model=model,
        shard_clips=shard_clips,
        formats=formats,
        storage_options=storage_options,
        checkpoint_seconds=checkpoint_seconds,
        progress=progress,
    )


def import_packed_h5(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    classes: str | os.PathLike[str] | ClassMap | None,
    out: str | os.PathLike[str],
    split: str,
    *,
    model: str = "vggish",
    shard_clips: int = 1000,
    formats: Sequence[str] = ("hdf5",),
    storage_options: dict | None = None,
    checkpoint_seconds: float = 60.0,
    progress: Progress | None = None,
    segments: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
) -> ImportSummary:
    """Import a packed HDF5 embedding file (``x``, ``y``, ``video_id_list``) into ``split``.

    ``x`` must be uint8 (N, 10, 128); ``y`` bool or 0/1 integers (N, C) with C the class map's
    size; ``video_id_list`` bytes or strings (N,). Optional datasets: ``clip_id`` (strings, else
    the clip id comes from ``segments`` or the dataset, see :mod:`features.packed_clip_ids`,
    since packed files do not record start times) and ``num_frames``
    (integers in 0..10, else it is 1 + the position of the last frame that is not all zeros, as
    shorter clips are zero-padded at the end; a real quantized frame is never all zeros, since
    that would need all 128 PCA components clipped to -2). Our own HDF5 embedding shards have
    this layout, so they can be imported too.

    Parameters
    ----------
    path : str, os.PathLike or sequence of them
        Local paths or fsspec URLs (opened with ``storage_options``), read in sorted order as
        one input, a file given twice (or spelled as another local path) once.
    classes, out, split, model, shard_clips, formats, storage_options, checkpoint_seconds
        As for :func:`import_audioset_tfrecords`.
    progress : callable, optional
        Called after each block of rows with (rows read, rows in the files opened so far).
    segments : str, os.PathLike or sequence of them, optional
        AudioSet segment lists (local paths or fsspec URLs) giving each row without a
        ``clip_id`` the clip id ``<YTID>_<start_ms>`` of its video's segment.

    Returns
    -------
    ImportSummary

    Raises
    ------
    FileNotFoundError
        If a file does not exist (before anything is written).
    InputFormatError
        If the file is not HDF5, or a dataset is missing or has the wrong type or shape (``y``
        wider or narrower than the class map included).
    ImportRecordError
        For a row whose ``y`` is not 0/1, whose ids do not decode, whose ``num_frames`` is
        out of range, or that repeats an earlier row's clip id, or a committed clip's, with
        other labels or embeddings; for a row whose video ``segments`` do not hold or hold at
        several starts, or, without them, that the dataset holds as several clips (before
        anything is written); it names the file and the row.
    """
    files = _distinct_sorted(_as_list(path))
    _check_files_exist(files, storage_options)
    lists = _as_list(segments) if segments else None
    clip_ids: dict[str, str] = {}

    def name_clips(class_map: ClassMap, held: Iterable[str], counts: ImportSummary) -> None:
        named = packed_clip_ids(files, lists, class_map, held, storage_options)
        clip_ids.update(named.by_video)
        counts.unknown_starts = named.unknown_starts

    def blocks(
        class_map: ClassMap, counts: ImportSummary, progress: Progress | None
    ) -> Iterator[tuple[str, np.ndarray, EmbeddingRows]]:
        for path in files:
            yield from _packed_blocks(path, class_map, clip_ids, counts, progress, storage_options)

    return _run_import(
        blocks,
        files=files,
        source=SOURCE_PACKED,
        unit="row",
        classes=classes,
        out=out,
        split=split,
        model=model,
        shard_clips=shard_clips,
        formats=formats,
        storage_options=storage_options,
        checkpoint_seconds=checkpoint_seconds,
        progress=progress,
        name_clips=name_clips,
    )


def _packed_blocks(
    path: str,
    class_map: ClassMap,
    clip_ids: dict[str, str],
    counts: ImportSummary,
    progress: Progress | None,
    storage_options: dict | None,
) -> Iterator[tuple[str, np.ndarray, EmbeddingRows]]:
    """The blocks (see :data:`Blocks`) of one packed file, its non-empty rows only, a row
    without ``clip_id`` named ``clip_ids[video id]``."""
    with open_packed(path, storage_options) as hf:
        total = check_packed(hf, path, len(class_map))
        rows_before = counts.read
        for start in range(0, total, H5_READ_ROWS):
            stop = min(start + H5_READ_ROWS, total)
            rows = read_packed_rows(hf, path, start, stop, clip_ids)
            counts.read += len(rows)
            keep = rows.num_frames > 0
            counts.empty += int(np.count_nonzero(~keep))
            yield path, np.arange(start, stop)[keep], _select(rows, keep)
            if progress:
                progress(counts.read, rows_before + total)


def _as_list(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """One input or several, as a list of strings."""
    return (
        [os.fspath(inputs)]
        if isinstance(inputs, str | os.PathLike)
        else [os.fspath(one) for one in inputs]
    )


def _distinct_sorted(paths: Iterable[str]) -> list[str]:
    """``paths`` sorted, each file once: local paths compared as absolute paths, URLs as they
    are; a file keeps its first spelling."""
    by_file: dict[str, str] = {}
    for path in paths:
        by_file.setdefault(path if "://" in path else os.path.abspath(path), path)
    return [by_file[key] for key in sorted(by_file)]


def _check_files_exist(paths: list[str], storage_options: dict | None) -> None:
    """Raise ``FileNotFoundError`` (as opening it would) for the first of ``paths`` missing."""
    for path in paths:
        fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
        if not fs.exists(fs_path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)


# --- the shared driver -----------------------------------------------------------------------


class _NothingCommitted(Exception):
    """A first import committed no shard: raised under the lock so that
    :func:`features.import_target.locked_target` removes the dataset directory it made, and
    caught by :func:`_run_import`, for which it is no failure."""


Blocks = Callable[
    [ClassMap, ImportSummary, Progress | None], Iterator[tuple[str, np.ndarray, EmbeddingRows]]
]
"""Reads an import's input: given the class map, the counts to add to and a progress callback,
yields (input file, the record (or row) number of each row in it, rows) blocks."""

NameClips = Callable[[ClassMap, Iterable[str], ImportSummary], None]
"""Names the clips of an import's input before anything is written: given the class map, the
clip ids the dataset holds and the counts to add to; raises for an input it cannot name."""


def _run_import(
    blocks: Blocks,
    *,
    files: list[str],
    source: str,
    unit: str,
    classes: str | os.PathLike[str] | ClassMap | None,
    out: str | os.PathLike[str],
    split: str,
    model: str,
    shard_clips: int,
    formats: Sequence[str],
    storage_options: dict | None,
    checkpoint_seconds: float,
    progress: Progress | None,
    name_clips: NameClips | None = None,
) -> ImportSummary:
    """Lock the dataset, then commit the rows of ``blocks`` as shards of ``model``/``split``.

    ``name_clips``, if given, is called first, with the clip ids of the dataset. When the
    dataset holds clips, ``blocks`` is read once more first, without ``progress``, to refuse
    clips other splits hold and other versions of clips the split holds before anything is
    written.
    """
    formats = tuple(formats)
    bad = sorted(set(formats) - set(FORMATS))
    if bad or not formats:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}; got {list(formats)}")
    if shard_clips < 1:
        raise ValueError("shard_clips must be at least 1")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", model):
        raise ValueError(f"model {model!r} must be letters, digits, '_', '.' or '-'")
    if problem := split_name_problem(split):
        raise ValueError(problem)
    started = time.time()
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    store = DatasetStore(out, storage_options)
    summary = ImportSummary(run_id=run_id, model=model, split=split, source=source, files=files)
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "run_id": run_id, "stage": STAGE}
    # A first import that commits nothing leaves no dataset (and no class map) behind.
    with contextlib.suppress(_NothingCommitted), locked_target(store, owner):
        class_map = _class_map(classes, store, storage_options)
        manifest = load_manifest(store)
        is_new = manifest is None
        if manifest is None:
            manifest = DatasetManifest(
                class_map_sha256=class_map.sha256,
                num_classes=len(class_map),
                sample_rate=RELEASE_SAMPLE_RATE,
                clip_seconds=RELEASE_CLIP_SECONDS,
                formats=list(formats),
            )
        elif manifest.class_map_sha256 != class_map.sha256:
            raise ValueError(
                f"cannot add to {store.url()}: its class map ({manifest.num_classes} classes, "
                f"classes.csv) differs from the one given ({len(class_map)} classes). Import "
                "with the dataset's classes.csv or into a new dataset."
            )
        if manifest.splits.get(split, SplitEntry()).shards:
            raise ValueError(
                f"split {split!r} of {store.url()} has waveform shards: its embeddings are "
                "computed from them (audiomill embed), shard for shard. Import into another split."
            )
        entry = manifest.embedding_split(model, split)
        _check_split_formats(entry, formats, model, split)
        committed = committed_clip_ids(store, entry)
        elsewhere = other_splits_clip_ids(store, manifest, split)
        if name_clips:
            name_clips(class_map, itertools.chain(committed, elsewhere), summary)
        if elsewhere or committed:
            scratch = ImportSummary(run_id=run_id, model=model, split=split, source=source,
                                    files=files)  # fmt: skip
            marks = CommittedMarks(store, entry, committed, len(class_map))
            input_blocks = blocks(class_map, scratch, None)
            found = scan_input(input_blocks, unit, class_map, elsewhere, marks)
            refuse_clips_elsewhere(found, elsewhere, split, store.url())
        if is_new or not store.exists(CLASSES):  # a new dataset's may be a failed run's, stale
            store.write_bytes_atomic(CLASSES, class_map.to_csv_text().encode())
        for rel in remove_uncommitted_shards(store, entry, f"embeddings/{model}/{split}"):
            log.warning("removed %s, left uncommitted by an interrupted run", store.url(rel))
        seen = dict.fromkeys(committed, b"")
        writer = _ShardWriter(
            store,
            manifest,
            entry,
            model=model,
            split=split,
            formats=formats,
            shard_clips=shard_clips,
            attrs={
                "model": model,
                "source": source,
                "class_map_sha256": class_map.sha256,
                "run_id": run_id,
            },
            run_id=run_id,
            checkpoint_seconds=checkpoint_seconds,
        )
        held: set[str] = set()
        numbers = {path: k for k, path in enumerate(files)}
        try:
            for path, records, rows in blocks(class_map, summary, progress):
                held.add(path)
                keep = np.ones(len(rows), dtype=bool)
                for i, clip_id in enumerate(rows.clip_ids):
                    mark = clip_mark(rows, i, numbers[path], int(records[i]))
                    first = seen.setdefault(clip_id, mark)
                    if first is mark:
                        continue
                    keep[i] = False
                    if not first:
                        summary.already_imported += 1
                        continue
                    if problem := other_version(first, mark, files, unit, class_map):
                        raise ImportRecordError(path, int(records[i]), problem, unit)
                    summary.duplicates += 1
                fresh = _select(rows, keep)
                summary.truncated += int(np.count_nonzero(fresh.num_frames > FRAMES))
                fresh.num_frames = np.minimum(fresh.num_frames, FRAMES).astype(np.int32)
                writer.add(fresh, path)
            writer.flush()
        except BaseException:
            if writer.committed:  # keep what was committed: a re-run skips those clips
                save_manifest(store, manifest)
            raise
        summary.imported = writer.committed_clips
        summary.shards = writer.committed
        summary.seconds = time.time() - started
        summary.split_clips = entry.num_clips
        summary.files_without_records = [path for path in files if path not in held]
        if summary.files_without_records:
            shown = summary.files_without_records[:RUN_FILES_LISTED]
            more = len(summary.files_without_records) - len(shown)
            log.warning(
                "%d of the %d input file(s) held no records: %s%s",
                len(summary.files_without_records),
                len(files),
                ", ".join(shown),
                f" (and {more} more)" if more else "",
            )
        if summary.truncated:
            log.warning(
                "%d clips had more than %d frames; kept their first %d",
                summary.truncated,
                FRAMES,
                FRAMES,
            )
        if is_new and not writer.committed:
            summary.created = False
            log.warning(
                "imported no clips into split %r, so no dataset was made at %s",
                split,
                store.url(),
            )
            raise _NothingCommitted
        if not writer.committed:  # as with ingest: nothing to record, manifest.json as it was
            return summary
        run = {"stage": STAGE, **asdict(summary), "num_files": len(files)}
        run["files"] = files[:RUN_FILES_LISTED]
        run["files_without_records"] = summary.files_without_records[:RUN_FILES_LISTED]
        del run["created"]
        record_run(manifest, run)
        save_manifest(store, manifest)
    return summary


def _class_map(
    classes: str | os.PathLike[str] | ClassMap | None,
    store: DatasetStore,
    storage_options: dict | None,
) -> ClassMap:
    if isinstance(classes, ClassMap):
        return classes
    if classes is not None:
        return ClassMap.load(classes, storage_options)
    if store.exists(CLASSES):
        return ClassMap.from_csv_text(store.read_text(CLASSES), store.url(CLASSES))
    raise ValueError(f"{store.url()} is a new dataset: give its class map (classes CSV)")


def _check_split_formats(
    entry: SplitEntry, formats: tuple[str, ...], model: str, split: str
) -> None:
    """Refuse to mix shard formats within one split, which readers could not rely on."""
    for shard in entry.shards:
        if set(shard.files) != set(formats):
            raise ValueError(
                f"embeddings/{model}/{split} already has shards in {sorted(shard.files)}; "
                f"import with the same formats (not {sorted(formats)}) or into another split"
            )


class _ShardWriter:
    """Buffer rows and commit them as shards of ``shard_clips`` rows, in arrival order."""

    def __init__(
        self,
        store: DatasetStore,
        manifest: DatasetManifest,
        entry: SplitEntry,
        *,
        model: str,
        split: str,
        formats: tuple[str, ...],
        shard_clips: int,
        attrs: dict,
        run_id: str,
        checkpoint_seconds: float,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.entry = entry
        self.model = model
        self.split = split
        self.formats = formats
        self.shard_clips = shard_clips
        self.attrs = attrs
        self.run_id = run_id
        self.checkpoint_seconds = checkpoint_seconds
        self.committed: list[int] = []
        self.committed_clips = 0
        self._pending: list[tuple[EmbeddingRows, str]] = []
        self._count = 0
        self._saved = time.monotonic()

    def add(self, rows: EmbeddingRows, source: str) -> None:
        """Queue ``rows`` (read from file ``source``); commit every full shard."""
        if len(rows):
            self._pending.append((rows, source))
            self._count += len(rows)
        while self._count >= self.shard_clips:
            self._commit(self.shard_clips)

    def flush(self) -> None:
        """Commit the rows left (a last, smaller shard)."""
        if self._count:
            self._commit(self._count)

    def _commit(self, n: int) -> None:
        parts: list[EmbeddingRows] = []
        sources: list[str] = []
        need = n
        while need:
            rows, source = self._pending[0]
            if len(rows) <= need:
                self._pending.pop(0)
                parts.append(rows)
            else:
                parts.append(_slice(rows, 0, need))
                self._pending[0] = (_slice(rows, need, len(rows)), source)
            need -= len(parts[-1])
            if source not in sources:
                sources.append(source)
        self._count -= n
        index = self.entry.next_index
        shard = commit_embedding_shard(
            self.store,
            self.model,
            self.split,
            index,
            concat_rows(parts),
            {**self.attrs, "source_files": sources},
            self.formats,
            self.run_id,
        )
        self.entry.shards.append(shard)
        self.committed.append(index)
        self.committed_clips += n
        if time.monotonic() - self._saved >= self.checkpoint_seconds:
            save_manifest(self.store, self.manifest)
            self._saved = time.monotonic()


def _slice(rows: EmbeddingRows, start: int, stop: int) -> EmbeddingRows:
    return EmbeddingRows(
        x=rows.x[start:stop],
        y=rows.y[start:stop],
        video_ids=rows.video_ids[start:stop],
        clip_ids=rows.clip_ids[start:stop],
        num_frames=rows.num_frames[start:stop],
    )


def _select(rows: EmbeddingRows, keep: np.ndarray) -> EmbeddingRows:
    if keep.all():
        return rows
    idx = np.flatnonzero(keep)
    return EmbeddingRows(
        x=rows.x[idx],
        y=rows.y[idx],
        video_ids=[rows.video_ids[i] for i in idx],
        clip_ids=[rows.clip_ids[i] for i in idx],
        num_frames=rows.num_frames[idx],
    )
