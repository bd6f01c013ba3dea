"""Importers of AudioSet's released embeddings (TFRecords) and of packed HDF5 files.

The TFRecords are written here in the release's exact format: ``tf.train.SequenceExample`` with
context ``video_id``, ``start_time_seconds``, ``end_time_seconds``, ``labels`` and the feature
list ``audio_embedding`` of one 128-byte string per second.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf

import features.importers as importers
from features.import_records import concat_rows
from features.importers import (
    ImportRecordError,
    import_audioset_tfrecords,
    import_packed_h5,
)
from pipelines.dataset_state import load_manifest, save_manifest
from pipelines.storage import DatasetStore, temporary_name
from schemas.classmap import ClassMap
from schemas.dataset import CLASSES, ShardEntry
from schemas.embeddings import EmbeddingRows, read_embedding_hdf5, read_embedding_parquet
from schemas.errors import InputFormatError

NUM_CLASSES = 527


def release_record(
    video_id: str, start: float, labels: list[int], frames: np.ndarray, end: float | None = None
) -> bytes:
    """Serialize one record the way AudioSet's release did."""
    ex = tf.train.SequenceExample()
    ctx = ex.context.feature
    ctx["video_id"].bytes_list.value.append(video_id.encode())
    ctx["start_time_seconds"].float_list.value.append(start)
    ctx["end_time_seconds"].float_list.value.append(start + 10.0 if end is None else end)
    ctx["labels"].int64_list.value.extend(labels)
    frame_list = ex.feature_lists.feature_list["audio_embedding"]
    for frame in frames:
        frame_list.feature.add().bytes_list.value.append(frame.astype(np.uint8).tobytes())
    return ex.SerializeToString()


def write_tfrecord(path: Path, records: list[bytes]) -> Path:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for rec in records:
            writer.write(rec)
    return path


def frames(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` quantized frames; never all zero (as real quantized embeddings)."""
    return rng.integers(1, 256, size=(n, 128), dtype=np.uint8)


def expected_row(fr: np.ndarray) -> np.ndarray:
    x = np.zeros((10, 128), dtype=np.uint8)
    x[: min(len(fr), 10)] = fr[:10]
    return x


CLIPS = [
    # video_id, start, labels, number of frames
    ("-0RWZT-miFs", 420.0, [0, 137, 526], 10),
    ("--_Oc3z2b_0", 30.0, [72], 7),
    ("a_b-c_d_e_f", 12.345, [1, 2], 10),
    ("zzzzzzzzzzz", 0.0, [5, 300, 301, 302], 12),
    ("_underscore", 7.5, [400], 3),
]


@pytest.fixture
def release(tmp_path: Path) -> tuple[str, dict]:
    """Two release files (a glob) and the rows we expect, keyed by clip id."""
    rng = np.random.default_rng(0)
    expected = {}
    records = []
    for vid, start, labels, n in CLIPS:
        fr = frames(rng, n)
        records.append(release_record(vid, start, labels, fr))
        y = np.zeros(NUM_CLASSES, dtype=bool)
        y[labels] = True
        clip_id = f"{vid}_{round(start * 1000)}"
        expected[clip_id] = (vid, expected_row(fr), y, min(n, 10))
    src = tmp_path / "release"
    src.mkdir()
    write_tfrecord(src / "bal_train00.tfrecord", records[:3])
    write_tfrecord(src / "bal_train01.tfrecord", records[3:])
    return str(src / "bal_train*.tfrecord"), expected


def read_split(out: Path, split: str, fmt: str, model: str = "vggish") -> EmbeddingRows:
    """Read back every shard of a split, in shard order, through the schema readers."""
    manifest = load_manifest(DatasetStore(out))
    parts = []
    for shard in manifest.embeddings[model][split].shards:
        path = out / shard.files[fmt].path
        if fmt == "hdf5":
            parts.append(read_embedding_hdf5(path)[0])
        else:
            parts.extend(read_embedding_parquet(path, manifest.num_classes))
    return concat_rows(parts)


def assert_rows(rows: EmbeddingRows, expected: dict) -> None:
    assert rows.x.dtype == np.uint8 and rows.x.shape == (len(expected), 10, 128)
    assert rows.y.dtype == np.bool_ and rows.y.shape == (len(expected), NUM_CLASSES)
    assert sorted(rows.clip_ids) == sorted(expected)
    for i, clip_id in enumerate(rows.clip_ids):
        vid, x, y, n = expected[clip_id]
        assert rows.video_ids[i] == vid
        np.testing.assert_array_equal(rows.x[i], x)
        np.testing.assert_array_equal(rows.y[i], y)
        assert rows.num_frames[i] == n


@pytest.mark.parametrize("formats", [("hdf5",), ("parquet",), ("hdf5", "parquet")])
def test_release_round_trip(tmp_path, audioset_dir, release, formats):
    pattern, expected = release
    out = tmp_path / "ds"
    seen = []
    summary = import_audioset_tfrecords(
        pattern,
        audioset_dir / "class_labels_indices.csv",
        out,
        "balanced_train",
        shard_clips=2,
        formats=formats,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert summary.read == summary.imported == 5
    assert summary.skipped == 0 and summary.truncated == 1
    assert summary.shards == [0, 1, 2] and summary.split_clips == 5
    assert [Path(f).name for f in summary.files] == ["bal_train00.tfrecord", "bal_train01.tfrecord"]
    assert seen[-1] == (5, None)
    for fmt in formats:
        rows = read_split(out, "balanced_train", fmt)
        assert_rows(rows, expected)
        # file order, then record order: the shards keep the input's order
        assert rows.clip_ids == list(expected)

    store = DatasetStore(out)
    manifest = load_manifest(store)
    assert (manifest.sample_rate, manifest.clip_seconds, manifest.num_classes) == (16000, 10.0, 527)
    assert manifest.formats == list(formats)
    cmap = ClassMap.from_csv_text(store.read_text(CLASSES))
    assert cmap.sha256 == manifest.class_map_sha256
    assert manifest.runs[-1]["stage"] == "import-embeddings"
    assert manifest.runs[-1]["imported"] == 5
    shards = manifest.embeddings["vggish"]["balanced_train"].shards
    assert [s.num_clips for s in shards] == [2, 2, 1]
    assert not list(out.glob("**/*.tmp-*"))
    if "hdf5" in formats:
        _, attrs = read_embedding_hdf5(out / shards[1].files["hdf5"].path)
        assert attrs["model"] == "vggish" and attrs["source"] == "audioset-release"
        assert attrs["class_map_sha256"] == manifest.class_map_sha256
        # shard 1 holds the last record of the first file and the first of the second
        assert [Path(p).name for p in attrs["source_files"]] == [
            "bal_train00.tfrecord",
            "bal_train01.tfrecord",
        ]


def test_reimport_is_idempotent_and_extends(tmp_path, audioset_classes, release):
    pattern, expected = release
    out = tmp_path / "ds"
    first = import_audioset_tfrecords(pattern, audioset_classes, out, "eval", shard_clips=4)
    manifest_before = load_manifest(DatasetStore(out))
    files_before = sorted(p.name for p in (out / "embeddings/vggish/eval").iterdir())

    again = import_audioset_tfrecords(pattern, audioset_classes, out, "eval", shard_clips=4)
    assert again.imported == 0 and again.already_imported == 5 and again.shards == []
    manifest = load_manifest(DatasetStore(out))
    assert manifest.embeddings == manifest_before.embeddings
    assert sorted(p.name for p in (out / "embeddings/vggish/eval").iterdir()) == files_before

    # a new file (repeating one clip of the first exactly, and one of its own) adds only its new
    # clips, in a new shard
    rng = np.random.default_rng(1)
    repeated = release_record("newclip0001", 10.0, [4, 9], frames(rng, 2))
    committed = release_record(
        "-0RWZT-miFs", 420.0, [0, 137, 526], expected["-0RWZT-miFs_420000"][1]
    )
    new = [committed, repeated, repeated]
    write_tfrecord(Path(pattern).parent / "bal_train02.tfrecord", new)
    third = import_audioset_tfrecords(pattern, None, out, "eval", shard_clips=4)
    assert (third.read, third.imported, third.already_imported, third.duplicates) == (8, 1, 6, 1)
    assert third.shards == [first.shards[-1] + 1]
    rows = read_split(out, "eval", "hdf5")
    assert len(set(rows.clip_ids)) == len(rows.clip_ids) == 6
    assert rows.clip_ids[-1] == "newclip0001_10000" and rows.num_frames[-1] == 2


def test_other_splits_and_models_are_separate(tmp_path, audioset_classes, release):
    pattern, _ = release
    out = tmp_path / "ds"
    import_audioset_tfrecords(pattern, audioset_classes, out, "train")
    rng = np.random.default_rng(7)
    other = write_tfrecord(
        tmp_path / "eval.tfrecord", [release_record("evalclip001", 0.0, [2], frames(rng, 10))]
    )
    other = import_audioset_tfrecords(other, audioset_classes, out, "eval")
    copy = import_audioset_tfrecords(pattern, audioset_classes, out, "train", model="release2")
    assert (other.imported, copy.imported) == (1, 5)
    manifest = load_manifest(DatasetStore(out))
    assert {m: sorted(s) for m, s in manifest.embeddings.items()} == {
        "release2": ["train"],
        "vggish": ["eval", "train"],
    }


def test_directory_and_list_of_patterns(tmp_path, audioset_classes, release):
    pattern, expected = release
    src = Path(pattern).parent
    by_dir = import_audioset_tfrecords(src, audioset_classes, tmp_path / "a", "train")
    assert by_dir.imported == 5
    listed = [str(src / "bal_train01.tfrecord"), str(src / "bal_train00.tfrecord")]
    by_list = import_audioset_tfrecords(listed, audioset_classes, tmp_path / "b", "train")
    assert by_list.files == sorted(listed)
    assert_rows(read_split(tmp_path / "b", "train", "hdf5"), expected)
    with pytest.raises(FileNotFoundError, match="no TFRecord file matches"):
        import_audioset_tfrecords(str(src / "nope*.tfrecord"), audioset_classes, tmp_path, "t")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=rf"matches {empty}/\*\.tfrecord$"):
        import_audioset_tfrecords(empty, audioset_classes, tmp_path / "c", "t")
    (src / "eval").mkdir()
    with pytest.raises(InputFormatError, match=rf"{src}/eval: a directory, not a TFRecord file"):
        import_audioset_tfrecords(f"{src}/*", audioset_classes, tmp_path / "c", "t")


def test_label_outside_class_map_names_file_and_record(tmp_path, audioset_classes):
    rng = np.random.default_rng(2)
    path = write_tfrecord(
        tmp_path / "bad.tfrecord",
        [
            release_record("aaaaaaaaaaa", 0.0, [1], frames(rng, 10)),
            release_record("bbbbbbbbbbb", 0.0, [2], frames(rng, 10)),
            release_record("ccccccccccc", 0.0, [3, 527], frames(rng, 10)),
        ],
    )
    out = tmp_path / "ds"
    with pytest.raises(ImportRecordError, match=r"bad\.tfrecord: record 2 .*labels \[527\]") as e:
        import_audioset_tfrecords(path, audioset_classes, out, "train")
    assert e.value.index == 2 and e.value.path == str(path)
    assert load_manifest(DatasetStore(out)) is None
    assert not (out / ".lock").exists()
    small = ClassMap.from_names(["a", "b", "c"])
    with pytest.raises(ImportRecordError, match=r"record 2 .*labels \[3, 527\]"):
        import_audioset_tfrecords(path, small, tmp_path / "other", "train")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (b"\x0a\xff\xff\xff", "not a SequenceExample"),
        ("short_frame", "frame 4 must be one 128-byte string; got sizes \\[127\\]"),
        ("two_values", "frame 0 must be one 128-byte string; got sizes \\[128, 128\\]"),
        ("no_video_id", "'video_id' must hold one bytes value"),
        ("nan_start", "start_time_seconds \\[nan\\]"),
        ("no_frames_list", "'audio_embedding' is missing"),
        ("mid_labels", "'labels' must be an int64 list; it is a bytes_list"),
    ],
)
def test_malformed_record_names_file_and_record(tmp_path, audioset_classes, record, reason):
    rng = np.random.default_rng(3)
    good = release_record("goodgoodgoo", 0.0, [0], frames(rng, 10))
    if record == "short_frame":
        fr = [f.tobytes() for f in frames(rng, 10)]
        fr[4] = fr[4][:127]
        ex = tf.train.SequenceExample.FromString(good)
        feats = ex.feature_lists.feature_list["audio_embedding"].feature
        for feat, raw in zip(feats, fr, strict=True):
            feat.bytes_list.value[0] = raw
        record = ex.SerializeToString()
    elif record == "two_values":
        ex = tf.train.SequenceExample.FromString(good)
        ex.feature_lists.feature_list["audio_embedding"].feature[0].bytes_list.value.append(
            bytes(128)
        )
        record = ex.SerializeToString()
    elif record == "no_video_id":
        ex = tf.train.SequenceExample.FromString(good)
        del ex.context.feature["video_id"]
        record = ex.SerializeToString()
    elif record == "nan_start":
        record = release_record("nannannanna", float("nan"), [0], frames(rng, 10))
    elif record == "no_frames_list":
        ex = tf.train.SequenceExample.FromString(good)
        del ex.feature_lists.feature_list["audio_embedding"]
        record = ex.SerializeToString()
    elif record == "mid_labels":  # labels as MIDs: reading them as int64 would drop them
        ex = tf.train.SequenceExample.FromString(good)
        ex.context.feature["labels"].bytes_list.value.append(b"/m/09x0r")
        record = ex.SerializeToString()
    path = write_tfrecord(tmp_path / "corrupt.tfrecord", [good, good, record, good])
    with pytest.raises(ImportRecordError, match=rf"corrupt\.tfrecord: record 2 .*{reason}"):
        import_audioset_tfrecords(path, audioset_classes, tmp_path / "ds", "train")


def test_damaged_tfrecord_file_names_file_and_record(tmp_path, audioset_classes):
    rng = np.random.default_rng(4)
    records = [release_record(f"vid{i:08d}", 0.0, [i], frames(rng, 10)) for i in range(6)]
    path = write_tfrecord(tmp_path / "damaged.tfrecord", records)
    data = bytearray(path.read_bytes())
    offset = sum(len(r) + 16 for r in records[:3]) + 100  # inside record 3's data
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ImportRecordError, match=r"damaged\.tfrecord: record 3 .*corrupted record"):
        import_audioset_tfrecords(path, audioset_classes, tmp_path / "ds", "train")
    truncated = tmp_path / "truncated.tfrecord"
    truncated.write_bytes(bytes(data[: offset - 50]))
    with pytest.raises(ImportRecordError, match=r"truncated\.tfrecord: record 3 .*truncated"):
        import_audioset_tfrecords(truncated, audioset_classes, tmp_path / "ds", "train")


@pytest.mark.parametrize("cut", [1, 5, 11])
def test_file_ending_inside_a_record_header_is_truncated(tmp_path, audioset_classes, cut):
    """TensorFlow reads such a file as complete; the importer must not drop its tail silently."""
    rng = np.random.default_rng(4)
    records = [release_record(f"vid{i:08d}", 0.0, [i], frames(rng, 10)) for i in range(4)]
    path = write_tfrecord(tmp_path / "cut.tfrecord", records)
    whole = sum(len(r) + 16 for r in records[:3])
    path.write_bytes(path.read_bytes()[: whole + cut])
    with pytest.raises(ImportRecordError, match=rf"cut\.tfrecord: record 3 .*truncated.* {cut} "):
        import_audioset_tfrecords(path, audioset_classes, tmp_path / "ds", "train")


def test_records_without_frames_are_skipped_and_counted(tmp_path, audioset_classes):
    rng = np.random.default_rng(5)
    path = write_tfrecord(
        tmp_path / "e.tfrecord",
        [
            release_record("emptyemptye", 0.0, [1], np.zeros((0, 128), np.uint8)),
            release_record("onlyoneonly", 0.0, [1], frames(rng, 1)),
        ],
    )
    summary = import_audioset_tfrecords(path, audioset_classes, tmp_path / "ds", "train")
    assert (summary.read, summary.imported, summary.empty, summary.skipped) == (2, 1, 1, 1)
    rows = read_split(tmp_path / "ds", "train", "hdf5")
    assert rows.clip_ids == ["onlyoneonly_0"] and rows.num_frames.tolist() == [1]


def test_interrupted_import_resumes_without_duplicates(
    tmp_path, audioset_classes, release, monkeypatch
):
    pattern, expected = release
    out = tmp_path / "ds"
    real_commit = importers.commit_embedding_shard
    calls = []

    def crash_on_third(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 3:
            raise OSError("disk full")
        return real_commit(*args, **kwargs)

    monkeypatch.setattr(importers, "commit_embedding_shard", crash_on_third)
    with pytest.raises(OSError, match="disk full"):
        import_audioset_tfrecords(
            pattern, audioset_classes, out, "train", shard_clips=2, checkpoint_seconds=0
        )
    monkeypatch.undo()
    entry = load_manifest(DatasetStore(out)).embeddings["vggish"]["train"]
    assert [s.index for s in entry.shards] == [0, 1]
    # a shard committed after the last manifest save, and a temporary: both left by a crash
    shard_dir = out / "embeddings/vggish/train"
    (shard_dir / "shard-00002.h5").write_bytes(b"half a run")
    (shard_dir / "shard-00007.parquet").write_bytes(b"orphan")
    (shard_dir / temporary_name("shard-00003.h5")).write_bytes(b"temporary")
    # the user's own files there are no shards or shard temporaries: kept, as ingest keeps them
    mine = ["shard-notes.txt", "shard-00001.h5.bak", "shard-00001.h5.tmp-backup"]
    mine += ["notes.txt.tmp-old", temporary_name("notes.txt")]
    for name in mine:
        (shard_dir / name).write_text("mine")

    summary = import_audioset_tfrecords(pattern, audioset_classes, out, "train", shard_clips=2)
    assert (summary.imported, summary.already_imported, summary.shards) == (1, 4, [2])
    shards = ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    assert sorted(p.name for p in shard_dir.iterdir()) == sorted(shards + mine)
    assert_rows(read_split(out, "train", "hdf5"), expected)


def test_damaged_committed_shard_is_named_on_reimport(tmp_path, audioset_classes, release):
    pattern, _ = release
    out = tmp_path / "ds"
    import_audioset_tfrecords(pattern, audioset_classes, out, "train", shard_clips=2)
    shard = out / "embeddings/vggish/train/shard-00001.h5"
    shard.write_bytes(b"garbage" + shard.read_bytes()[7:])
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(ValueError, match=rf"{shard}, a committed shard .* cannot be read"):
        import_audioset_tfrecords(pattern, audioset_classes, out, "train")
    assert (out / "manifest.json").read_bytes() == before


def test_existing_dataset_must_match(tmp_path, audioset_classes, release):
    pattern, _ = release
    out = tmp_path / "ds"
    import_audioset_tfrecords(pattern, audioset_classes, out, "train")
    with pytest.raises(ValueError, match=r"class map .* differs"):
        import_audioset_tfrecords(pattern, ClassMap.from_names("abc"), out, "train")
    with pytest.raises(ValueError, match=r"already has shards in \['hdf5'\]"):
        import_audioset_tfrecords(pattern, audioset_classes, out, "train", formats=("parquet",))
    manifest = load_manifest(DatasetStore(out))
    manifest.split("waves").shards.append(
        ShardEntry(index=0, num_clips=1, files={}, run_id="r", clip_ids_sha256="0")
    )
    save_manifest(DatasetStore(out), manifest)
    with pytest.raises(ValueError, match=r"split 'waves' .* has waveform shards"):
        import_audioset_tfrecords(pattern, audioset_classes, out, "waves")
    with pytest.raises(ValueError, match="new dataset: give its class map"):
        import_audioset_tfrecords(pattern, None, tmp_path / "new", "train")
    with pytest.raises(ValueError, match="formats must be among"):
        import_audioset_tfrecords(pattern, audioset_classes, out, "x", formats=("npz",))
    with pytest.raises(ValueError, match=r"split '\.\./x'"):
        import_audioset_tfrecords(pattern, audioset_classes, out, "../x")


# --- packed HDF5 ---------------------------------------------------------------------------


def write_packed(path: Path, n: int, *, y_dtype=np.bool_, width: int = NUM_CLASSES, **extra):
    """A packed file like the embedding-classifier seed's, with row i holding 10 - i % 4 frames."""
    rng = np.random.default_rng(6)
    x = np.zeros((n, 10, 128), dtype=np.uint8)
    counts = [10 - i % 4 for i in range(n)]
    for i, k in enumerate(counts):
        x[i, :k] = frames(rng, k)
    y = rng.random((n, width)) < 0.01
    y[:, 0] = True
    vids = [f"{'-' if i % 2 else '_'}vid_{i:06d}" for i in range(n)]
    with h5py.File(path, "w") as hf:
        hf["x"] = x
        hf["y"] = y.astype(y_dtype)
        hf["video_id_list"] = np.array([v.encode() for v in vids], dtype="S11")
        for name, value in extra.items():
            hf[name] = value
    return x, y, vids, np.array(counts)


@pytest.mark.parametrize(
    ("formats", "y_dtype"), [(("hdf5",), np.bool_), (("parquet",), np.uint8), (("hdf5",), np.int64)]
)
def test_packed_round_trip(tmp_path, audioset_classes, formats, y_dtype, monkeypatch):
    monkeypatch.setattr(importers, "H5_READ_ROWS", 7)  # several read blocks
    path = tmp_path / "bal_train.h5"
    x, y, vids, counts = write_packed(path, 23, y_dtype=y_dtype)
    out = tmp_path / "ds"
    progress = []
    summary = import_packed_h5(
        path,
        audioset_classes,
        out,
        "bal",
        shard_clips=10,
        formats=formats,
        progress=lambda d, t: progress.append((d, t)),
    )
    assert (summary.read, summary.imported, summary.shards) == (23, 23, [0, 1, 2])
    assert summary.source == "packed-hdf5" and progress == [(7, 23), (14, 23), (21, 23), (23, 23)]
    expected = {f"{v}_0": (v, x[i], y[i], counts[i]) for i, v in enumerate(vids)}
    rows = read_split(out, "bal", formats[0])
    assert_rows(rows, expected)
    assert rows.clip_ids == [f"{v}_0" for v in vids]

    again = import_packed_h5(path, audioset_classes, out, "bal", formats=formats)
    assert again.imported == 0 and again.already_imported == 23


def test_packed_with_clip_ids_num_frames_and_empty_rows(tmp_path, audioset_classes):
    path = tmp_path / "p.h5"
    clip_ids = [f"clip/{i}" for i in range(6)]
    x, y, vids, _ = write_packed(
        path,
        6,
        clip_id=np.array(clip_ids, dtype=h5py.string_dtype()),
        num_frames=np.array([10, 9, 8, 0, 10, 9], dtype=np.int16),
    )
    summary = import_packed_h5(path, audioset_classes, tmp_path / "ds", "t")
    assert (summary.imported, summary.empty) == (5, 1)
    rows = read_split(tmp_path / "ds", "t", "hdf5")
    assert rows.clip_ids == [c for i, c in enumerate(clip_ids) if i != 3]
    assert rows.num_frames.tolist() == [10, 9, 8, 10, 9]
    assert rows.video_ids == [v for i, v in enumerate(vids) if i != 3]
    kept = [0, 1, 2, 4, 5]
    np.testing.assert_array_equal(rows.x, x[kept])
    np.testing.assert_array_equal(rows.y, y[kept])


def test_our_shards_import_as_packed_files(tmp_path, audioset_classes, release):
    pattern, expected = release
    import_audioset_tfrecords(pattern, audioset_classes, tmp_path / "a", "train")
    shard = tmp_path / "a/embeddings/vggish/train/shard-00000.h5"
    summary = import_packed_h5(shard, audioset_classes, tmp_path / "b", "train")
    assert summary.imported == 5
    assert_rows(read_split(tmp_path / "b", "train", "hdf5"), expected)


def test_packed_errors(tmp_path, audioset_classes):
    wide = tmp_path / "wide.h5"
    write_packed(wide, 3, width=528)
    with pytest.raises(InputFormatError, match=r"wide\.h5: y has 528 columns .* 527 classes"):
        import_packed_h5(wide, audioset_classes, tmp_path / "ds", "t")

    bad_y = tmp_path / "bad_y.h5"
    write_packed(bad_y, 5, y_dtype=np.uint8)
    with h5py.File(bad_y, "r+") as hf:
        hf["y"][3, 7] = 2
    with pytest.raises(ImportRecordError, match=r"bad_y.h5: row 3 .*y holds \[2\]"):
        import_packed_h5(bad_y, audioset_classes, tmp_path / "ds", "t")

    missing = tmp_path / "missing.h5"
    with h5py.File(missing, "w") as hf:
        hf["x"] = np.zeros((2, 10, 128), np.uint8)
    with pytest.raises(InputFormatError, match=r"missing \['y', 'video_id_list'\]"):
        import_packed_h5(missing, audioset_classes, tmp_path / "ds", "t")

    floats = tmp_path / "floats.h5"
    with h5py.File(floats, "w") as hf:
        hf["x"] = np.zeros((2, 10, 128), np.float32)
        hf["y"] = np.zeros((2, 527), bool)
        hf["video_id_list"] = np.array([b"a", b"b"])
    with pytest.raises(InputFormatError, match=r"x must be uint8 \(N, 10, 128\); it is float32"):
        import_packed_h5(floats, audioset_classes, tmp_path / "ds", "t")

    bad_frames = tmp_path / "bad_frames.h5"
    write_packed(bad_frames, 4, num_frames=np.array([10, 11, 3, 3]))
    with pytest.raises(ImportRecordError, match=r"row 1 .*num_frames 11 is not in 0..10"):
        import_packed_h5(bad_frames, audioset_classes, tmp_path / "ds", "t")

    spaced = tmp_path / "spaced.h5"
    write_packed(spaced, 3, clip_id=np.array([b"a_0", b"b\n_0", b"c_0"]))
    with pytest.raises(ImportRecordError, match=r"row 1 .*clip_id 'b\\n_0' is empty or has spa"):
        import_packed_h5(spaced, audioset_classes, tmp_path / "ds", "t")
    with h5py.File(spaced, "r+") as hf:
        hf["video_id_list"][2] = b"c c"
    with pytest.raises(ImportRecordError, match=r"row 2 .*video_id_list 'c c' is empty or has"):
        import_packed_h5(spaced, audioset_classes, tmp_path / "ds", "t")

    group = tmp_path / "group.h5"
    with h5py.File(group, "w") as hf:
        hf.create_group("x")
        hf["y"] = np.zeros((2, 527), bool)
        hf.create_group("num_frames")
        hf["video_id_list"] = np.array([b"a", b"b"])
    with pytest.raises(InputFormatError, match=r"\['x', 'num_frames'\] must be datasets"):
        import_packed_h5(group, audioset_classes, tmp_path / "ds", "t")

    rows = tmp_path / "rows.h5"
    write_packed(rows, 3)
    with h5py.File(rows, "r+") as hf:
        del hf["y"]
        hf["y"] = np.zeros((4, 527), bool)
    with pytest.raises(InputFormatError, match=r"rows\.h5: y has 4 rows; x has 3"):
        import_packed_h5(rows, audioset_classes, tmp_path / "ds", "t")

    text = tmp_path / "text.h5"
    text.write_text("x,y\n1,2\n")
    with pytest.raises(InputFormatError, match=r"text\.h5: not an HDF5 file"):
        import_packed_h5(text, audioset_classes, tmp_path / "ds", "t")

    # nothing was committed: the dataset directory these imports made is gone again
    assert not (tmp_path / "ds").exists()
    kept = tmp_path / "kept" / "ds"
    kept.mkdir(parents=True)
    with pytest.raises(InputFormatError, match="not an HDF5 file"):
        import_packed_h5(text, audioset_classes, kept / "new" / "deeper", "t")
    assert sorted(p.name for p in kept.iterdir()) == []  # not the directories that were there
    with pytest.raises(InputFormatError, match="not an HDF5 file"):
        import_packed_h5(text, audioset_classes, kept, "t")
    assert sorted(p.name for p in kept.iterdir()) == []  # refused before classes.csv is written
