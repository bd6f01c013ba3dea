"""Read AudioSet's released embedding TFRecords: batches of records, parsed into embedding rows.

The release's files hold ``tf.train.SequenceExample`` records: context ``video_id`` (bytes),
``start_time_seconds``, ``end_time_seconds`` (float) and ``labels`` (int64 indices into
``class_labels_indices.csv``), feature list ``audio_embedding`` with one 128-byte uint8 string
per second. TensorFlow is passed in (``tf``) by the caller, which imports it when it is needed.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterator

import numpy as np
from google.protobuf.message import DecodeError

from features.import_records import FRAMES, ImportRecordError, id_problem
from schemas.embeddings import EMBEDDING_DIM, EmbeddingRows
from schemas.errors import InputFormatError
from schemas.segments import audioset_clip_id

TFRECORD_BATCH = 512
TFRECORD_FRAMING = 16  # length (8 bytes) and two masked CRC-32Cs (4 each) around the data
TF_READ_ABORT_LINE = re.compile(
    rb"[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ local_rendezvous\.cc:\d+\] "
    rb"Local rendezvous is aborting with status: "
)
"""TensorFlow's native log line when a read of a TFRecord file fails (``W0000 00:00:17.4 11425
local_rendezvous.cc:412] Local rendezvous is aborting with status: DATA_LOSS: corrupted record
at 0``), once for each read of it."""
OTHER_LIST_KINDS = {"bytes_list": "a bytes_list", "int64_list": "an int64_list"}
"""The kinds of ``tf.train.Feature`` other than a float list, as an error names them."""


def tfrecord_batches(tf, path: str) -> Iterator[tuple[int, list[bytes]]]:
    """Yield (index of the first record, serialized records) of a TFRecord file in batches.

    Batches keep TensorFlow's per-element overhead low. When the file turns out unreadable (bad
    framing or checksum, truncation) it is read again one record at a time to name the record.
    TensorFlow takes a file that ends inside a record's 12-byte header for a complete one, so
    the bytes the records frame (each 16 more than its data) are checked against the file's size.
    TensorFlow's native log lines about a failed read are dropped: the error says what they say.
    """
    start = 0
    framed = 0
    try:
        dataset = tf.data.TFRecordDataset(path, buffer_size=1 << 22).batch(TFRECORD_BATCH)
        batches = dataset.as_numpy_iterator()
        while (batch := _next_batch(batches)) is not None:
            yield start, list(batch)
            start += len(batch)
            framed += sum(len(raw) for raw in batch) + TFRECORD_FRAMING * len(batch)
    except tf.errors.OpError as exc:
        if tf.io.gfile.isdir(path):
            raise InputFormatError(path, "a directory, not a TFRecord file") from exc
        bad = 0
        with contextlib.suppress(tf.errors.OpError), _read_abort_lines_dropped():
            for _ in tf.data.TFRecordDataset(path).as_numpy_iterator():
                bad += 1
        message = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*$", "", exc.message, flags=re.S).strip()
        raise ImportRecordError(
            path, bad, f"unreadable TFRecord data ({message}); is the file complete?"
        ) from exc
    size = tf.io.gfile.stat(path).length
    if size != framed:
        raise ImportRecordError(
            path,
            start,
            f"truncated: the file ends {size - framed} bytes into this record's header; "
            "is the file complete?",
        )


def _next_batch(batches: Iterator[np.ndarray]) -> np.ndarray | None:
    """The next batch of a TFRecord file, or None at its end; the lines TensorFlow logs when the
    read fails are dropped (:func:`_read_abort_lines_dropped`)."""
    with _read_abort_lines_dropped():
        return next(batches, None)


@contextlib.contextmanager
def _read_abort_lines_dropped() -> Iterator[None]:
    """Within the block, file descriptor 2 goes to a temporary file; after it, what was written
    there reaches stderr, less TensorFlow's native lines saying that a read ended with an error
    (:data:`TF_READ_ABORT_LINE`): the import's own error says what they say, naming the record.

    TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` once, so its native logging cannot be turned down
    for one read; its lines are held back instead, and lines others write in the block arrive
    after it.
    """
    with tempfile.TemporaryFile() as held:
        saved = _point_stderr_at(held.fileno())
        try:
            yield
        finally:
            _point_stderr_at(saved)
            os.close(saved)
            held.seek(0)
            kept = b"".join(line for line in held if not TF_READ_ABORT_LINE.match(line))
            if kept:
                os.write(2, kept)


def _point_stderr_at(fd: int) -> int:
    """Point file descriptor 2 at ``fd``, ``sys.stderr`` flushed first; return a new descriptor
    of what 2 was."""
    with contextlib.suppress(AttributeError, OSError, ValueError):  # None, or closed
        sys.stderr.flush()
    previous = os.dup(2)
    os.dup2(fd, 2)
    return previous


def parse_release_batch(
    tf, raws: list[bytes], path: str, first: int, num_classes: int
) -> tuple[np.ndarray, EmbeddingRows]:
    """Parse serialized release records into rows; records without frames are left out.

    Returns
    -------
    records : np.ndarray
        The record number of each row in the file.
    rows : EmbeddingRows
    """
    x = np.zeros((len(raws), FRAMES, EMBEDDING_DIM), dtype=np.uint8)
    y = np.zeros((len(raws), num_classes), dtype=bool)
    video_ids: list[str] = []
    clip_ids: list[str] = []
    num_frames: list[int] = []
    records: list[int] = []
    for k, raw in enumerate(raws):
        index = first + k
        try:
            record = tf.train.SequenceExample.FromString(raw)
        except DecodeError as exc:
            raise ImportRecordError(path, index, f"not a SequenceExample ({exc})") from exc
        try:
            video_id, start_s, labels, frames = _release_fields(record, num_classes)
        except ValueError as exc:
            raise ImportRecordError(path, index, str(exc)) from exc
        if not frames:
            continue
        row = len(clip_ids)
        kept = frames[:FRAMES]
        kept_x = np.frombuffer(b"".join(kept), dtype=np.uint8)
        x[row, : len(kept)] = kept_x.reshape(-1, EMBEDDING_DIM)
        y[row, labels] = True
        video_ids.append(video_id)
        clip_ids.append(audioset_clip_id(video_id, start_s))
        num_frames.append(len(frames))
        records.append(index)
    n = len(clip_ids)
    return np.array(records, dtype=np.int64), EmbeddingRows(
        x=x[:n],
        y=y[:n],
        video_ids=video_ids,
        clip_ids=clip_ids,
        num_frames=np.array(num_frames, dtype=np.int32),
    )


def _release_fields(record, num_classes: int) -> tuple[str, float, list[int], list[bytes]]:
    """Return (video_id, start seconds, labels, frames) of a release record.

    Raises
    ------
    ValueError
        Naming the field that is missing or malformed.
    """
    context = record.context.feature
    if "video_id" not in context or len(context["video_id"].bytes_list.value) != 1:
        raise ValueError("context feature 'video_id' must hold one bytes value")
    try:
        video_id = context["video_id"].bytes_list.value[0].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"video_id is not UTF-8 ({exc})") from exc
    if problem := id_problem(video_id):
        raise ValueError(f"video_id {problem}")
    start = _context_time(context, "start_time_seconds")
    end = _context_time(context, "end_time_seconds")
    if end <= start:
        raise ValueError(f"end_time_seconds {end} is not after start_time_seconds {start}")
    labels = []
    if "labels" in context:
        kind = context["labels"].WhichOneof("kind")
        if kind not in (None, "int64_list"):
            raise ValueError(f"context feature 'labels' must be an int64 list; it is a {kind}")
        labels = list(context["labels"].int64_list.value)
    outside = [label for label in labels if not 0 <= label < num_classes]
    if outside:
        raise ValueError(
            f"labels {outside} are outside the class map (indices 0..{num_classes - 1}); "
            "import with the class map the records were made with"
        )
    lists = record.feature_lists.feature_list
    if "audio_embedding" not in lists:
        raise ValueError("feature list 'audio_embedding' is missing")
    frames = []
    for j, feature in enumerate(lists["audio_embedding"].feature):
        values = feature.bytes_list.value
        if len(values) != 1 or len(values[0]) != EMBEDDING_DIM:
            sizes = [len(v) for v in values]
            raise ValueError(
                f"audio_embedding frame {j} must be one {EMBEDDING_DIM}-byte string; "
                f"got sizes {sizes}"
            )
        frames.append(values[0])
    return video_id, start, labels, frames


def _context_time(context, key: str) -> float:
    """The one finite time >= 0, in seconds, that context feature ``key`` holds.

    Raises
    ------
    ValueError
        When the feature is missing, not a float list, or not one finite time >= 0.
    """
    if key not in context:
        raise ValueError(f"context feature '{key}' is missing")
    kind = context[key].WhichOneof("kind")
    if kind in OTHER_LIST_KINDS:
        raise ValueError(
            f"context feature '{key}' must be a float list; it is {OTHER_LIST_KINDS[kind]}"
        )
    times = context[key].float_list.value
    if len(times) != 1 or not math.isfinite(times[0]) or times[0] < 0:
        raise ValueError(f"{key} {list(times)} is not one finite time >= 0")
    return times[0]
