"""What an import refuses: clips committed in another split of the dataset, two versions of one
clip in its input; the command's exit status when it imported nothing, and its stderr when a file
is damaged."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf

from features.importers import (
    ImportRecordError,
    import_audioset_tfrecords,
    import_packed_h5,
)
from features.release_tfrecords import _read_abort_lines_dropped
from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetStore
from schemas.classmap import ClassMap
from tests.dataset_builders import make_dataset
from tests.ingest_helpers import audiomill, cli_env
from tests.test_importers import frames, release_record, write_tfrecord


def _release(path: Path, video_ids: list[str], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    return write_tfrecord(path, [release_record(v, 0.0, [1], frames(rng, 10)) for v in video_ids])


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_clips_committed_in_another_split_are_refused_before_anything_is_written(
    tmp_path: Path, audioset_classes
):
    ids = [f"clip{i:07d}" for i in range(5)]
    path = _release(tmp_path / "ev.tfrecord", ids)
    out = tmp_path / "ds"
    import_audioset_tfrecords(path, audioset_classes, out, "eval")
    before = _tree(out)
    more = _release(tmp_path / "more.tfrecord", ["newnewnew01"], seed=1)
    for model in ("vggish", "release2"):
        with pytest.raises(ValueError) as refused:
            import_audioset_tfrecords([path, more], audioset_classes, out, "train2", model=model)
        message = str(refused.value)
        assert f"cannot import into split 'train2' of {out}: 5 clip(s) of the input" in message
        assert "clip0000000_0 (in 'eval'), clip0000001_0 (in 'eval'), clip0000002_0 (in" in message
        assert "import these files into the split that holds them" in message
        assert _tree(out) == before
    again = import_audioset_tfrecords(path, audioset_classes, out, "eval")
    assert (again.imported, again.already_imported) == (0, 5)
    other = import_audioset_tfrecords(more, audioset_classes, out, "train2")
    assert other.imported == 1


def test_clips_of_a_waveform_split_are_refused(tmp_path: Path):
    out = tmp_path / "ds"
    built = make_dataset(out, {"train": [[0], [1], [2]]}, num_classes=3)
    committed = [c.clip_id for c in built.clips["train"]]
    packed = tmp_path / "p.h5"
    with h5py.File(packed, "w") as hf:
        hf["x"] = np.full((2, 10, 128), 7, dtype=np.uint8)
        hf["y"] = np.eye(3, dtype=bool)[:2]
        hf["video_id_list"] = np.array([b"a", b"b"])
        hf["clip_id"] = np.array([committed[1].encode(), b"b_0"])
    manifest = load_manifest(DatasetStore(out))
    with pytest.raises(ValueError, match=rf"1 clip\(s\) .* e\.g\. {committed[1]} \(in 'train'\)"):
        import_packed_h5(packed, None, out, "eval")
    assert load_manifest(DatasetStore(out)) == manifest


@pytest.mark.parametrize(
    ("labels", "same_frames", "says"),
    [
        ([2, 3], True, "and the same embeddings: labels \\[1 'Male speech, man speaking'\\] there, "
         "\\[2 'Female speech, woman speaking', 3 'Child speech, kid speaking'\\] here"),
        ([1], False, "but other embeddings: labels \\[1 'Male speech, man speaking'\\] there, "
         "\\[1 'Male speech, man speaking'\\] here"),
    ],
)  # fmt: skip
def test_another_version_of_a_clip_in_the_input_is_named(
    tmp_path: Path, audioset_classes, labels: list[int], same_frames: bool, says: str
):
    rng = np.random.default_rng(2)
    fr = frames(rng, 10)
    first = release_record("dupdupdupdu", 0.0, [1], fr)
    other = release_record("dupdupdupdu", 0.0, labels, fr if same_frames else frames(rng, 10))
    a = write_tfrecord(
        tmp_path / "a.tfrecord", [release_record("okokokokoko", 0.0, [0], fr), first]
    )
    b = write_tfrecord(tmp_path / "b.tfrecord", [first, other])
    match = rf"b\.tfrecord: record 1 .*repeats the clip id of {a} record 1 {says}\. The input"
    with pytest.raises(ImportRecordError, match=match + " holds two versions of one clip"):
        import_audioset_tfrecords([a, b], audioset_classes, tmp_path / "ds", "s", shard_clips=1)


def test_an_exact_repeat_is_a_counted_skip(tmp_path: Path, audioset_classes):
    record = release_record("dupdupdupdu", 0.0, [1, 2], frames(np.random.default_rng(3), 4))
    path = write_tfrecord(tmp_path / "a.tfrecord", [record, record])
    summary = import_audioset_tfrecords(path, audioset_classes, tmp_path / "ds", "s")
    assert (summary.imported, summary.duplicates) == (1, 1)


def test_a_packed_row_repeating_a_clip_with_other_labels_is_named(tmp_path: Path):
    packed = tmp_path / "p.h5"
    with h5py.File(packed, "w") as hf:
        hf["x"] = np.full((3, 10, 128), 7, dtype=np.uint8)
        hf["y"] = np.eye(3, dtype=bool)
        hf["video_id_list"] = np.array([b"a", b"b", b"a"])
    with pytest.raises(ImportRecordError, match=r"p\.h5: row 2 .* of \S+p\.h5 row 0 and the same "
                       r"embeddings: labels \[0 'x'\] there, \[2 'z'\] here"):  # fmt: skip
        import_packed_h5(packed, ClassMap.from_names("xyz"), tmp_path / "ds", "s")


@pytest.mark.slow
def test_cli_refuses_clips_of_another_split_with_status_2(tmp_path: Path, audioset_dir: Path):
    path = _release(tmp_path / "ev.tfrecord", [f"clip{i:07d}" for i in range(4)])
    classes = str(audioset_dir / "class_labels_indices.csv")
    out = str(tmp_path / "ds")
    audiomill("import", "audioset-tfrecord", str(path), "--classes", classes, "--out", out,
              "--split", "eval")  # fmt: skip
    moved = audiomill("import", "audioset-tfrecord", str(path), "--classes", classes, "--out",
                      out, "--split", "train2", check=False)  # fmt: skip
    assert moved.returncode == 2
    assert "4 clip(s) of the input are committed in another split" in moved.stderr
    assert "train2" not in load_manifest(DatasetStore(out)).embeddings["vggish"]


@pytest.mark.slow
def test_cli_import_of_nothing_without_a_dataset_fails(tmp_path: Path, audioset_classes):
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    classes = str(tmp_path / "classes.csv")
    Path(classes).write_text(audioset_classes.to_csv_text())
    nothing = audiomill("import", "audioset-tfrecord", str(empty), "--classes", classes, "--out",
                        str(tmp_path / "new"), "--split", "s", check=False)  # fmt: skip
    assert nothing.returncode == 1
    assert f"error: nothing was imported, so there is no dataset at {tmp_path / 'new'}" in (
        nothing.stderr
    )
    assert not (tmp_path / "new").exists()
    path = _release(tmp_path / "a.tfrecord", ["clip0000001"])
    import_audioset_tfrecords(path, audioset_classes, tmp_path / "ds", "s")
    again = audiomill("import", "audioset-tfrecord", str(path), "--classes", classes, "--out",
                      str(tmp_path / "ds"), "--split", "s")  # fmt: skip
    assert "error" not in again.stderr


@pytest.mark.slow
def test_cli_error_on_a_damaged_tfrecord_is_the_only_stderr_line(
    tmp_path: Path, audioset_dir: Path
):
    path = _release(tmp_path / "damaged.tfrecord", [f"clip{i:07d}" for i in range(3)])
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF  # inside record 0's data
    path.write_bytes(bytes(data))
    env = cli_env()
    del env["TF_CPP_MIN_LOG_LEVEL"]  # TensorFlow's native warnings shown, as for a user
    bad = audiomill("import", "audioset-tfrecord", str(path), "--classes",
                    str(audioset_dir / "class_labels_indices.csv"), "--out",
                    str(tmp_path / "ds"), "--split", "s", check=False, env=env)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        f"error: {path}: record 0 (counting from 0): unreadable TFRecord data (corrupted record "
        "at 12); is the file complete?"
    ]


def test_only_tensorflows_read_abort_lines_are_dropped(capfd: pytest.CaptureFixture[str]):
    aborting = b"Local rendezvous is aborting with status: DATA_LOSS: corrupted record at 12"
    with _read_abort_lines_dropped():
        os.write(2, b"W0000 00:00:1796425942.673825    2847 local_rendezvous.cc:412] " + aborting)
        os.write(2, b"\nW0000 00:00:1.5  2847 gcs_file_system.cc:9] a warning of another kind\n")
    assert capfd.readouterr().err == (
        "W0000 00:00:1.5  2847 gcs_file_system.cc:9] a warning of another kind\n"
    )


def _without_end_time(raw: bytes) -> bytes:
    record = tf.train.SequenceExample.FromString(raw)
    del record.context.feature["end_time_seconds"]
    return record.SerializeToString()


def test_a_record_ending_before_it_starts_is_refused_and_nothing_is_committed(
    tmp_path: Path, audioset_classes
):
    out = tmp_path / "ds"
    import_audioset_tfrecords(_release(tmp_path / "a.tfrecord", ["clip0000000"]), audioset_classes,
                              out, "s")  # fmt: skip
    before = _tree(out)
    rng = np.random.default_rng(7)
    good = release_record("clip0000001", 0.0, [1], frames(rng, 10))
    cases = {
        "context feature 'end_time_seconds' is missing": _without_end_time(good),
        "end_time_seconds 5.0 is not after start_time_seconds 10.0": release_record(
            "clip0000002", 10.0, [1], frames(rng, 10), end=5.0
        ),
    }
    for reason, bad in cases.items():
        path = write_tfrecord(tmp_path / "bad.tfrecord", [good, bad])
        with pytest.raises(ImportRecordError) as refused:
            import_audioset_tfrecords(path, audioset_classes, out, "s")
        assert str(refused.value) == f"{path}: record 1 (counting from 0): {reason}"
        assert _tree(out) == before


@pytest.mark.slow
def test_cli_refuses_a_record_without_end_time_with_status_2(tmp_path: Path, audioset_dir: Path):
    record = release_record("clip0000001", 0.0, [1], frames(np.random.default_rng(8), 10))
    path = write_tfrecord(tmp_path / "bad.tfrecord", [_without_end_time(record)])
    bad = audiomill("import", "audioset-tfrecord", str(path), "--classes",
                    str(audioset_dir / "class_labels_indices.csv"), "--out",
                    str(tmp_path / "ds"), "--split", "s", check=False)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        f"error: {path}: record 0 (counting from 0): context feature 'end_time_seconds' is missing"
    ]
    assert not (tmp_path / "ds").exists()
