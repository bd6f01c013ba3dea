"""An import that gives a clip the split already holds other labels or other embeddings is
refused before anything is written, naming the input's record and the committed row; an exact
copy of a committed clip is skipped as already imported (the resume case)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from features.importers import ImportRecordError, import_audioset_tfrecords, import_packed_h5
from schemas.classmap import ClassMap
from schemas.dataset import SHARD_EXTENSIONS
from tests.ingest_helpers import audiomill
from tests.test_importers import frames, release_record, write_tfrecord

CLASSES = ClassMap.from_names("xyz")


def _packed(path: Path, ids: list[str], x: np.ndarray, y: np.ndarray) -> Path:
    with h5py.File(path, "w") as hf:
        hf["x"] = x
        hf["y"] = y
        hf["video_id_list"] = np.array([v.encode() for v in ids], dtype="S8")
    return path


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.stack([frames(rng, 10) for _ in range(n)])
    y = np.zeros((n, len(CLASSES)), dtype=bool)
    y[np.arange(n), np.arange(n) % len(CLASSES)] = True
    return x, y


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _committed(tmp_path: Path, fmt: str) -> tuple[Path, np.ndarray, np.ndarray]:
    """A dataset holding clips a_0, b_0, c_0 of split train, one shard each."""
    x, y = _rows(3, seed=0)
    out = tmp_path / "ds"
    import_packed_h5(_packed(tmp_path / "a.h5", ["a", "b", "c"], x, y), CLASSES, out, "train",
                     shard_clips=1, formats=(fmt,))  # fmt: skip
    return out, x, y


def test_an_exact_copy_of_committed_clips_is_already_imported(tmp_path: Path):
    out, x, y = _committed(tmp_path, "hdf5")
    new_x, new_y = _rows(1, seed=1)
    again = _packed(tmp_path / "b.h5", ["c", "d", "a"], np.stack([x[2], new_x[0], x[0]]),
                    np.stack([y[2], new_y[0], y[0]]))  # fmt: skip
    summary = import_packed_h5(again, CLASSES, out, "train")
    assert (summary.imported, summary.already_imported) == (1, 2)


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("labels", r"and the same embeddings: labels \[1 'y'\] there, \[0 'x', 2 'z'\] here"),
        ("frames", r"but other embeddings: labels \[1 'y'\] there, \[1 'y'\] here"),
    ],
)
def test_a_packed_row_changing_a_committed_clip_is_refused_before_anything_is_written(
    tmp_path: Path, fmt: str, change: str, says: str
):
    out, x, y = _committed(tmp_path, fmt)
    new_x, new_y = _rows(2, seed=1)
    x_b = np.stack([new_x[0], new_x[1], x[1], x[0]])
    y_b = np.stack([new_y[0], new_y[1], y[1], y[0]])
    if change == "labels":
        y_b[2] = ~y_b[2]
    else:
        x_b[2, 0, 0] ^= 1
    changed = _packed(tmp_path / "b.h5", ["d", "e", "b", "a"], x_b, y_b)
    before = _tree(out)
    shard = out / "embeddings" / "vggish" / "train" / f"shard-00001.{SHARD_EXTENSIONS[fmt]}"
    match = (
        rf"^{changed}: row 2 \(counting from 0\): it repeats committed clip b_0 \({shard} row 0\) "
        rf"{says}\. A dataset cannot relabel or replace a committed clip: leave it out of the "
        r"input or import into a new --out\. Nothing was written\.$"
    )
    with pytest.raises(ImportRecordError, match=match):
        import_packed_h5(changed, CLASSES, out, "train", shard_clips=1, formats=(fmt,))
    assert _tree(out) == before


def test_a_repeat_of_a_committed_clip_with_another_version_in_the_input_is_refused(
    tmp_path: Path,
):
    out, x, y = _committed(tmp_path, "hdf5")
    other = y[0].copy()
    other[2] = True
    twice = _packed(tmp_path / "b.h5", ["a", "a"], x[:1].repeat(2, axis=0), np.stack([y[0], other]))
    before = _tree(out)
    match = (
        r"b\.h5: row 1 .* repeats committed clip a_0 \(\S+shard-00000\.h5 row 0\) and the same "
        r"embeddings: labels \[0 'x'\] there, \[0 'x', 2 'z'\] here\. A dataset cannot relabel"
    )
    with pytest.raises(ImportRecordError, match=match):
        import_packed_h5(twice, CLASSES, out, "train")
    assert _tree(out) == before


@pytest.mark.parametrize(
    ("labels", "same_frames", "says"),
    [
        ([0, 137], True, r"and the same embeddings: labels \[1 'Male speech, man speaking'\] "
         r"there, \[0 'Speech', 137 'Music'\] here"),
        ([1], False, r"but other embeddings: labels \[1 'Male speech, man speaking'\] there, "
         r"\[1 'Male speech, man speaking'\] here"),
    ],
)  # fmt: skip
def test_a_release_record_changing_a_committed_clip_is_refused(
    tmp_path: Path, audioset_classes, labels: list[int], same_frames: bool, says: str
):
    rng = np.random.default_rng(4)
    fr = [frames(rng, 12), frames(rng, 7)]
    records = [
        release_record("aaaaaaaaaaa", 30.0, [1], fr[0]),
        release_record("bbbbbbbbbbb", 0.0, [2], fr[1]),
    ]
    first = write_tfrecord(tmp_path / "a.tfrecord", records)
    out = tmp_path / "ds"
    import_audioset_tfrecords(first, audioset_classes, out, "train", formats=("parquet",))
    again = import_audioset_tfrecords(first, audioset_classes, out, "train", formats=("parquet",))
    assert (again.imported, again.already_imported) == (0, 2)
    changed = fr[0] if same_frames else np.concatenate([fr[0][:3], frames(rng, 1), fr[0][4:]])
    second = write_tfrecord(tmp_path / "b.tfrecord", [
        release_record("newnewnew01", 0.0, [3], frames(rng, 10)),
        release_record("aaaaaaaaaaa", 30.0, labels, changed),
    ])  # fmt: skip
    before = _tree(out)
    shard = out / "embeddings" / "vggish" / "train" / "shard-00000.parquet"
    match = (
        rf"^{second}: record 1 \(counting from 0\): it repeats committed clip aaaaaaaaaaa_30000 "
        rf"\({shard} row 0\) {says}\. A dataset cannot relabel"
    )
    with pytest.raises(ImportRecordError, match=match):
        import_audioset_tfrecords(second, audioset_classes, out, "train", shard_clips=1,
                                  formats=("parquet",))  # fmt: skip
    assert _tree(out) == before


@pytest.mark.slow
def test_cli_refuses_a_changed_committed_clip_with_status_2(tmp_path: Path):
    classes = tmp_path / "classes.csv"
    classes.write_text(CLASSES.to_csv_text())
    x, y = _rows(2, seed=0)
    out = str(tmp_path / "ds")
    args = ("--classes", str(classes), "--out", out, "--split", "train")
    audiomill("import", "packed-h5", str(_packed(tmp_path / "a.h5", ["a", "b"], x, y)), *args)
    y[0] = ~y[0]
    changed = _packed(tmp_path / "b.h5", ["a", "b"], x, y)
    refused = audiomill("import", "packed-h5", str(changed), *args, check=False)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"error: {changed}: row 0 (counting from 0): it repeats committed clip a_0 "
        f"({out}/embeddings/vggish/train/shard-00000.h5 row 0) and the same embeddings: labels "
        "[0 'x'] there, [1 'y', 2 'z'] here. A dataset cannot relabel or replace a committed "
        "clip: leave it out of the input or import into a new --out. Nothing was written."
    ]
