"""Clip ids of packed rows without a ``clip_id`` dataset: ``<YTID>_<start_ms>`` from AudioSet
segment lists (``--segments``), else the dataset's one clip of the video, else ``<YTID>_0``
with a warning; a packed file's own ``clip_id`` dataset is kept."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import features.packed_clip_ids as packed_clip_ids
from features.importers import ImportRecordError, import_packed_h5
from schemas.classmap import ClassMap
from schemas.errors import InputFormatError
from tests.test_importers import frames

CLASSES = ClassMap.from_names("xyz")
SEGMENTS = """\
# Segments csv created Sun Mar  5 10:54:31 2017
# YTID, start_seconds, end_seconds, positive_labels
--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"
--ZhevVpy1s, 50.000, 60.000, "/m/012xff"
0OLpIiSBlfc, 60.000, 70.000, "/m/012xff"
"""


def _packed(
    path: Path, videos: list[str], seed: int = 0, y: np.ndarray | None = None, **extra
) -> Path:
    """A packed file of ``videos`` (x, y, video_id_list) with full rows, and ``extra``."""
    rng = np.random.default_rng(seed)
    if y is None:
        y = np.zeros((len(videos), len(CLASSES)), dtype=bool)
        y[np.arange(len(videos)), np.arange(len(videos)) % len(CLASSES)] = True
    with h5py.File(path, "w") as hf:
        hf["x"] = np.stack([frames(rng, 10) for _ in videos])
        hf["y"] = y
        hf["video_id_list"] = np.array([v.encode() for v in videos])
        for name, value in extra.items():
            hf[name] = value
    return path


def _with_clip_ids(path: Path, clip_ids: list[str], seed: int = 0) -> Path:
    """A packed file holding ``clip_ids`` (``clip_id`` dataset), their videos in video_id_list."""
    videos = [c.rpartition("_")[0] for c in clip_ids]
    return _packed(path, videos, seed, clip_id=np.array([c.encode() for c in clip_ids]))


def _clip_ids(out: Path, split: str) -> list[str]:
    ids = []
    for shard in sorted((out / "embeddings/vggish" / split).glob("shard-*.h5")):
        with h5py.File(shard, "r") as hf:
            ids += hf["clip_id"].asstr()[:].tolist()
    return ids


@pytest.fixture
def segments(tmp_path: Path) -> Path:
    path = tmp_path / "balanced_train_segments.csv"
    path.write_text(SEGMENTS)
    return path


def test_segments_give_each_row_its_clip_id(tmp_path: Path, segments: Path):
    packed = _packed(tmp_path / "p.h5", ["--ZhevVpy1s", "--PJHxphWEs"])
    summary = import_packed_h5(packed, CLASSES, tmp_path / "ds", "train", segments=[segments])
    assert (summary.imported, summary.unknown_starts) == (2, 0)
    assert _clip_ids(tmp_path / "ds", "train") == ["--ZhevVpy1s_50000", "--PJHxphWEs_30000"]


def test_a_video_the_segment_lists_do_not_hold_is_refused_before_anything_is_written(
    tmp_path: Path, segments: Path
):
    packed = _packed(tmp_path / "p.h5", ["--PJHxphWEs", "notinlists1"])
    with pytest.raises(ImportRecordError) as info:
        import_packed_h5(packed, CLASSES, tmp_path / "ds", "train", segments=[segments])
    assert str(info.value).startswith(
        f"{packed}: row 1 (counting from 0): video notinlists1 is in none of the segment lists "
        f"({segments})"
    )
    assert not (tmp_path / "ds").exists()


def test_a_video_listed_at_two_starts_is_refused_naming_both(
    tmp_path: Path, segments: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(packed_clip_ids, "SEGMENT_CHUNK_LINES", 2)  # lines counted across chunks
    other = tmp_path / "more.csv"
    other.write_text('--PJHxphWEs, 30.0, 40.0, "/m/09x0r"\n--PJHxphWEs, 90.0, 100.0, "/m/09x0r"\n')
    packed = _packed(tmp_path / "p.h5", ["--PJHxphWEs"])
    with pytest.raises(ImportRecordError) as info:
        import_packed_h5(packed, CLASSES, tmp_path / "ds", "t", segments=[segments, other])
    assert str(info.value).startswith(
        f"{packed}: row 0 (counting from 0): video --PJHxphWEs has segments at 2 start times in "
        f"the segment lists (30 s at {segments} line 3, 90 s at {other} line 2)"
    )
    assert not (tmp_path / "ds").exists()


def test_a_malformed_segment_line_is_refused_naming_it(tmp_path: Path, segments: Path):
    broken = tmp_path / "broken.csv"
    broken.write_text('--PJHxphWEs, 30.0, 40.0, "/m/09x0r"\n--ZhevVpy1s, fifty, 60.0, "/m/0"\n')
    packed = _packed(tmp_path / "p.h5", ["--PJHxphWEs"])
    with pytest.raises(InputFormatError, match=rf"^{broken}:2: not an AudioSet segment list: st"):
        import_packed_h5(packed, CLASSES, tmp_path / "ds", "t", segments=[segments, broken])
    assert not (tmp_path / "ds").exists()


def test_a_packed_file_keeps_its_own_clip_ids(tmp_path: Path, segments: Path):
    packed = _with_clip_ids(tmp_path / "p.h5", ["unlisted_0_7000"])
    import_packed_h5(packed, CLASSES, tmp_path / "ds", "train", segments=[segments])
    assert _clip_ids(tmp_path / "ds", "train") == ["unlisted_0_7000"]


def test_a_video_the_dataset_holds_once_takes_its_clip_id(tmp_path: Path):
    out = tmp_path / "ds"
    first = _with_clip_ids(tmp_path / "a.h5", ["--PJHxphWEs_30000"])
    import_packed_h5(first, CLASSES, out, "train")
    again = _packed(tmp_path / "b.h5", ["--PJHxphWEs"])
    summary = import_packed_h5(again, CLASSES, out, "train")
    assert (summary.imported, summary.already_imported, summary.split_clips) == (0, 1, 1)
    assert _clip_ids(out, "train") == ["--PJHxphWEs_30000"]

    with pytest.raises(ValueError, match=r"--PJHxphWEs_30000 \(in 'train'\).*train/eval leakage"):
        import_packed_h5(again, CLASSES, out, "eval")
    relabelled = _packed(tmp_path / "c.h5", ["--PJHxphWEs"], y=np.ones((1, 3), bool))
    with pytest.raises(ImportRecordError, match="it repeats committed clip --PJHxphWEs_30000 "):
        import_packed_h5(relabelled, CLASSES, out, "train")


def test_a_video_the_dataset_holds_as_several_clips_is_refused(tmp_path: Path):
    out = tmp_path / "ds"
    import_packed_h5(_with_clip_ids(tmp_path / "a.h5", ["0OLpIiSBlfc_60000"]), CLASSES, out, "a")
    import_packed_h5(_with_clip_ids(tmp_path / "b.h5", ["0OLpIiSBlfc_0"], 1), CLASSES, out, "b")
    packed = _packed(tmp_path / "c.h5", ["--ZhevVpy1s", "0OLpIiSBlfc"])
    before = (out / "manifest.json").read_text()
    with pytest.raises(ImportRecordError) as info:
        import_packed_h5(packed, CLASSES, out, "c")
    assert str(info.value) == (
        f"{packed}: row 1 (counting from 0): the dataset holds video 0OLpIiSBlfc as 2 clips "
        "(0OLpIiSBlfc_0, 0OLpIiSBlfc_60000) and a packed row has no start time to say which "
        "it is; pass --segments (AudioSet segment lists) to give the rows their clip ids. "
        "Nothing was written."
    )
    assert (out / "manifest.json").read_text() == before


def test_unknown_start_times_keep_ytid_0_with_one_warning(tmp_path: Path, caplog):
    packed = _packed(tmp_path / "p.h5", ["--ZhevVpy1s", "--PJHxphWEs"])
    with caplog.at_level(logging.WARNING, logger="features"):
        summary = import_packed_h5(packed, CLASSES, tmp_path / "ds", "train")
    assert (summary.imported, summary.unknown_starts) == (2, 2)
    assert _clip_ids(tmp_path / "ds", "train") == ["--ZhevVpy1s_0", "--PJHxphWEs_0"]
    assert [r.getMessage() for r in caplog.records] == [
        "2 clip(s) of the input have no known start time: imported as <YTID>_0; --segments "
        "(AudioSet segment lists) gives their clip ids <YTID>_<start_ms>"
    ]


@pytest.fixture
def classes_csv(tmp_path: Path) -> Path:
    path = tmp_path / "classes.csv"
    path.write_text(CLASSES.to_csv_text())
    return path


def test_cli_takes_segments_and_refuses_unlisted_videos_with_status_2(
    tmp_path: Path, segments: Path, classes_csv: Path
):
    from workflows.cli import app

    out = tmp_path / "ds"
    packed = _packed(tmp_path / "p.h5", ["--PJHxphWEs", "unlisted123"])
    args = ["import", "packed-h5", str(packed), "--classes", str(classes_csv), "--out", str(out),
            "--split", "train", "--segments", str(segments)]  # fmt: skip
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2, refused.output
    assert "row 1 (counting from 0): video unlisted123 is in none of the segment lists" in (
        " ".join(refused.output.split())
    )
    assert not out.exists()

    listed = tmp_path / "listed.csv"
    listed.write_text('unlisted123, 4.5, 14.5, "/m/09x0r"\n')
    result = CliRunner().invoke(app, [*args, "--segments", str(listed)])
    assert result.exit_code == 0, result.output
    assert _clip_ids(out, "train") == ["--PJHxphWEs_30000", "unlisted123_4500"]


def test_a_video_of_a_waveform_split_takes_its_clip_id_and_is_refused_as_leakage(tmp_path: Path):
    from tests.dataset_builders import make_dataset

    out = make_dataset(tmp_path / "ds", {"train": [[0], [1]]}, num_classes=3).root
    packed = _packed(tmp_path / "p.h5", ["train-clip0001"])
    with pytest.raises(ValueError, match=r"e\.g\. train-clip0001_1000 \(in 'train'\)\. A clip id"):
        import_packed_h5(packed, None, out, "eval")
