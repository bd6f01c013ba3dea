"""``audiomill import`` given several inputs (a shell-expanded glob, overlapping patterns)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.ingest_helpers import audiomill
from tests.test_importers import (
    CLIPS,
    NUM_CLASSES,
    assert_rows,
    expected_row,
    frames,
    read_split,
    release_record,
    write_packed,
    write_tfrecord,
)


@pytest.fixture
def release_files(tmp_path: Path) -> tuple[list[Path], dict]:
    """Three release files holding CLIPS, and the rows expected of them."""
    rng = np.random.default_rng(3)
    expected, records = {}, []
    for vid, start, labels, n in CLIPS:
        fr = frames(rng, n)
        records.append(release_record(vid, start, labels, fr))
        y = np.zeros(NUM_CLASSES, dtype=bool)
        y[labels] = True
        expected[f"{vid}_{round(start * 1000)}"] = (vid, expected_row(fr), y, min(n, 10))
    src = tmp_path / "bal_train"
    src.mkdir()
    files = [write_tfrecord(src / f"bal{k:02d}.tfrecord", records[k * 2 : k * 2 + 2])
             for k in range(3)]  # fmt: skip
    return files, expected


def import_args(kind: str, inputs: list[str], classes: str, out: Path) -> list[str]:
    return ["import", kind, *inputs, "--classes", classes, "--out", str(out), "--split", "train"]


def summary_row(stderr: str, name: str) -> int:
    return int(re.search(rf"{name}\W+(\d+)", stderr).group(1))


def test_tfrecord_files_as_arguments_import_as_one_pattern(tmp_path, audioset_dir, release_files):
    files, expected = release_files
    classes = str(audioset_dir / "class_labels_indices.csv")
    args = import_args("audioset-tfrecord", [str(f) for f in reversed(files)], classes,
                       tmp_path / "listed")  # fmt: skip
    listed = audiomill(*args)
    assert summary_row(listed.stderr, "files") == 3
    assert summary_row(listed.stderr, "imported") == 5
    by_pattern = tmp_path / "pattern"
    audiomill(*import_args("audioset-tfrecord", [str(files[0].parent / "bal*.tfrecord")],
                           classes, by_pattern))  # fmt: skip
    assert_rows(read_split(tmp_path / "listed", "train", "hdf5"), expected)
    shards = [json.loads((out / "manifest.json").read_text())["embeddings"]["vggish"]["train"]
              for out in (tmp_path / "listed", by_pattern)]  # fmt: skip
    assert [s["num_clips"] for s in shards[0]["shards"]] == [
        s["num_clips"] for s in shards[1]["shards"]
    ]
    assert_rows(read_split(by_pattern, "train", "hdf5"), expected)


def test_overlapping_patterns_count_a_file_once(tmp_path, audioset_dir, release_files):
    files, expected = release_files
    src = files[0].parent
    inputs = [str(src / "bal0*.tfrecord"), "bal_train/bal01.tfrecord", str(files[2])]
    proc = audiomill(*import_args("audioset-tfrecord", inputs,
                                  str(audioset_dir / "class_labels_indices.csv"),
                                  tmp_path / "out"), cwd=tmp_path)  # fmt: skip
    assert summary_row(proc.stderr, "files") == 3
    assert summary_row(proc.stderr, "records read") == 5
    assert summary_row(proc.stderr, "duplicates skipped") == 0
    assert_rows(read_split(tmp_path / "out", "train", "hdf5"), expected)


def test_input_matching_nothing_is_refused(tmp_path, audioset_dir, release_files):
    files, _ = release_files
    missing = str(files[0].parent / "eval*.tfrecord")
    classes = str(audioset_dir / "class_labels_indices.csv")
    out = tmp_path / "out"
    bad = audiomill(*import_args("audioset-tfrecord", [str(files[0]), missing], classes, out),
                    check=False)  # fmt: skip
    assert bad.returncode == 2
    assert f"error: no TFRecord file matches {missing}" in bad.stderr
    assert str(files[0]) not in bad.stderr and not out.exists()


def test_packed_files_as_arguments(tmp_path, audioset_dir):
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    write_packed(first, 3)
    write_packed(second, 4, clip_id=[f"b{i}_0" for i in range(4)])
    classes = str(audioset_dir / "class_labels_indices.csv")
    out = tmp_path / "ds"
    proc = audiomill(*import_args("packed-h5", [str(second), str(first), str(first)], classes,
                                  out))  # fmt: skip
    assert summary_row(proc.stderr, "files") == 2
    assert summary_row(proc.stderr, "imported") == 7
    missing = tmp_path / "nope.h5"
    bad = audiomill(*import_args("packed-h5", [str(first), str(missing)], classes,
                                 tmp_path / "ds2"), check=False)  # fmt: skip
    assert bad.returncode == 2
    assert f"error: [Errno 2] No such file or directory: '{missing}'" in bad.stderr
    assert not (tmp_path / "ds2").exists()
