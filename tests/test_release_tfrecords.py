"""Reading AudioSet's released TFRecords: batches of records and their parsing into rows."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from features import release_tfrecords
from features.import_records import ImportRecordError
from features.release_tfrecords import parse_release_batch, tfrecord_batches
from schemas.segments import audioset_clip_id
from tests.test_importers import frames, release_record, write_tfrecord

NUM_CLASSES = 8


def _records(n: int) -> list[bytes]:
    rng = np.random.default_rng(3)
    return [
        release_record(f"video{k:06d}", 10.0 * k, [k % NUM_CLASSES], frames(rng, 2))
        for k in range(n)
    ]


def test_tfrecord_batches_yield_each_batch_with_its_first_record_number(tmp_path, monkeypatch):
    monkeypatch.setattr(release_tfrecords, "TFRECORD_BATCH", 2)
    records = _records(5)
    path = write_tfrecord(tmp_path / "a.tfrecord", records)
    batches = list(tfrecord_batches(tf, str(path)))
    assert batches == [(0, records[0:2]), (2, records[2:4]), (4, records[4:5])]


def test_tfrecord_batches_name_the_record_a_truncated_file_ends_in(tmp_path):
    records = _records(2)
    whole = write_tfrecord(tmp_path / "whole.tfrecord", records).read_bytes()
    path = tmp_path / "cut.tfrecord"
    path.write_bytes(whole[: len(records[0]) + 16 + 5])  # 5 bytes into record 1's header
    with pytest.raises(ImportRecordError) as info:
        list(tfrecord_batches(tf, str(path)))
    assert info.value.index == 1
    assert "truncated: the file ends 5 bytes into this record's header" in str(info.value)


def test_tfrecord_batches_name_the_first_unreadable_record(tmp_path):
    records = _records(3)
    data = bytearray(write_tfrecord(tmp_path / "a.tfrecord", records).read_bytes())
    data[len(records[0]) + 16 + 12 + 4] ^= 0xFF  # a byte of record 1's data: its CRC fails
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(bytes(data))
    with pytest.raises(ImportRecordError) as info:
        list(tfrecord_batches(tf, str(path)))
    assert info.value.index == 1
    assert "unreadable TFRecord data" in str(info.value)


def test_parse_release_batch_pads_rows_and_leaves_out_records_without_frames():
    rng = np.random.default_rng(4)
    long, short = frames(rng, 12), frames(rng, 3)
    raws = [
        release_record("longclip000", 30.0, [1, 7], long),
        release_record("emptyclip00", 0.0, [2], frames(rng, 0)),
        release_record("shortclip00", 2.5, [], short),
    ]
    records, rows = parse_release_batch(tf, raws, "a.tfrecord", 10, NUM_CLASSES)
    assert records.tolist() == [10, 12]
    assert rows.video_ids == ["longclip000", "shortclip00"]
    assert rows.clip_ids == [
        audioset_clip_id("longclip000", 30.0),
        audioset_clip_id("shortclip00", 2.5),
    ]
    assert rows.num_frames.tolist() == [12, 3]
    np.testing.assert_array_equal(rows.x[0], long[:10])
    np.testing.assert_array_equal(rows.x[1, :3], short)
    assert not rows.x[1, 3:].any()
    assert [np.flatnonzero(y).tolist() for y in rows.y] == [[1, 7], []]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xff not a record", "not a SequenceExample"),
        (
            release_record("outsideclip", 0.0, [NUM_CLASSES], np.ones((1, 128))),
            "outside the class map",
        ),
    ],
)
def test_parse_release_batch_names_the_bad_record(raw, reason):
    good = release_record("goodclip000", 0.0, [0], np.ones((1, 128)))
    with pytest.raises(ImportRecordError) as info:
        parse_release_batch(tf, [good, raw], "a.tfrecord", 4, NUM_CLASSES)
    assert info.value.index == 5
    assert str(info.value).startswith("a.tfrecord: record 5 (counting from 0): ")
    assert reason in str(info.value)


def _with_time(raw: bytes, key: str, kind: str | None, values: list[float]) -> bytes:
    """``raw`` with context feature ``key`` replaced: ``values`` in list ``kind``, or left out."""
    record = tf.train.SequenceExample.FromString(raw)
    context = record.context.feature
    del context[key]
    if kind is not None:
        getattr(context[key], kind).value.extend(values)
    return record.SerializeToString()


@pytest.mark.parametrize(
    ("key", "kind", "values", "reason"),
    [
        ("end_time_seconds", None, [], "context feature 'end_time_seconds' is missing"),
        ("end_time_seconds", "float_list", [5.0], "end_time_seconds 5.0 is not after "
         "start_time_seconds 10.0"),
        ("end_time_seconds", "float_list", [10.0], "end_time_seconds 10.0 is not after "
         "start_time_seconds 10.0"),
        ("end_time_seconds", "float_list", [float("nan")], "end_time_seconds [nan] is not one "
         "finite time >= 0"),
        ("end_time_seconds", "float_list", [20.0, 30.0], "end_time_seconds [20.0, 30.0] is not "
         "one finite time >= 0"),
        ("end_time_seconds", "int64_list", [20], "context feature 'end_time_seconds' must be a "
         "float list; it is an int64_list"),
        ("start_time_seconds", "int64_list", [10], "context feature 'start_time_seconds' must "
         "be a float list; it is an int64_list"),
    ],
)  # fmt: skip
def test_parse_release_batch_names_a_bad_clip_time(key, kind, values, reason):
    rng = np.random.default_rng(5)
    good = release_record("goodclip000", 10.0, [0], frames(rng, 10))
    bad = _with_time(good, key, kind, values)
    with pytest.raises(ImportRecordError) as info:
        parse_release_batch(tf, [good, bad], "a.tfrecord", 0, NUM_CLASSES)
    assert str(info.value) == f"a.tfrecord: record 1 (counting from 0): {reason}"


def test_parse_release_batch_takes_a_clip_shorter_than_its_frames_say():
    rng = np.random.default_rng(6)
    raws = [release_record("shortclip00", 30.0, [1], frames(rng, 10), end=34.5)]
    records, rows = parse_release_batch(tf, raws, "a.tfrecord", 0, NUM_CLASSES)
    assert records.tolist() == [0]
    assert rows.num_frames.tolist() == [10]
