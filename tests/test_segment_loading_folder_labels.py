"""A folder's file is labelled by its folder under the root: a folder that names no class of the
dataset's class map is an unknown label (the clip fails validation, as a manifest row with an
unknown label does), and a file directly in the folder has no label."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.segment_loading import class_map_from_list, scan_folder
from schemas.classmap import ClassMap
from schemas.segments import sanitize_clip_id
from tests.ingest_helpers import audiomill, hdf5_clips, ledger
from tests.media import write_media


def _labels(root: Path, class_map: ClassMap) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each file's (label mids, unknown labels) as :func:`scan_folder` reads them."""
    return {
        Path(s.source).relative_to(root).as_posix(): (s.label_mids, s.unknown_labels)
        for s in scan_folder(str(root), class_map, "train").segments
    }


def test_a_folder_that_names_no_class_is_an_unknown_label(tmp_path: Path) -> None:
    for rel in ("dog/a.wav", "cat/b.wav", "bird/c.wav", "loose.wav", "dog/puppies/d.wav"):
        write_media(tmp_path / rel, 0.2, 8000)
    assert _labels(tmp_path, ClassMap.from_names(["cat", "dog"])) == {
        "bird/c.wav": ((), ("bird",)),
        "cat/b.wav": (("cat",), ()),
        "dog/a.wav": (("dog",), ()),
        "dog/puppies/d.wav": (("dog",), ()),  # the folder under the root, however deep
        "loose.wav": ((), ()),
    }


def test_a_folder_without_sub_folders_says_why_it_has_no_labels(tmp_path: Path) -> None:
    write_media(tmp_path / "a.wav", 0.2, 8000)
    with pytest.raises(ValueError) as info:
        class_map_from_list(str(tmp_path))
    assert str(info.value) == (
        f"{tmp_path}: no labels found (its audio files are all directly in it, none in a "
        "sub-folder naming its class), so no class map can be made of them; pass --classes "
        "with a class map to ingest its clips unlabelled"
    )


def _ingest(folder: Path, out: Path, *extra: str, check: bool = True):
    return audiomill(
        "ingest", "--segments", str(folder), "--out", str(out), "--sample-rate", "8000",
        "--clip-seconds", "1", "--workers", "1", *extra, check=check,
    )  # fmt: skip


@pytest.mark.slow
def test_a_class_folder_added_to_a_dataset_fails_its_clips(tmp_path: Path) -> None:
    folder, out = tmp_path / "f2", tmp_path / "ds"
    write_media(folder / "dog" / "a.wav", 1.0, 8000)
    write_media(folder / "cat" / "b.wav", 1.0, 8000)
    _ingest(folder, out)
    write_media(folder / "bird" / "c.wav", 1.0, 8000)
    proc = _ingest(folder, out, check=False)
    bird = sanitize_clip_id("bird/c.wav")
    expected = (
        f"{folder / 'bird' / 'c.wav'}: {bird}: validation: labels not in the class map: 'bird'"
    )
    assert expected in proc.stderr, proc.stderr
    assert ledger(out)[bird]["status"] == "failed"
    assert bird not in hdf5_clips(out)


@pytest.mark.slow
def test_folders_naming_no_class_of_classes_fail_their_clips(tmp_path: Path) -> None:
    folder, out = tmp_path / "f", tmp_path / "ds"
    write_media(folder / "dog" / "a.wav", 1.0, 8000)
    write_media(folder / "cat" / "b.wav", 1.0, 8000)
    write_media(folder / "c.wav", 1.0, 8000)
    classes = tmp_path / "classes.csv"
    classes.write_text("index,mid,display_name\n0,/m/dog,Dog\n")
    proc = _ingest(folder, out, "--classes", str(classes))
    cat = sanitize_clip_id("cat/b.wav")
    assert f"{cat}: validation: labels not in the class map: 'cat'" in proc.stderr, proc.stderr
    clips = hdf5_clips(out)
    assert sorted(clips) == sorted([sanitize_clip_id("dog/a.wav"), sanitize_clip_id("c.wav")])
    assert clips[sanitize_clip_id("dog/a.wav")]["labels"] == [0]
    assert clips[sanitize_clip_id("c.wav")]["labels"] == []


@pytest.mark.slow
def test_segments_inspect_names_a_folders_file_not_line_0(tmp_path: Path) -> None:
    folder = tmp_path / "f2"
    write_media(folder / "dog" / "a.wav", 1.0, 16000)
    classes = tmp_path / "classes.csv"
    classes.write_text("index,mid,display_name\n0,/m/dog,dog\n")
    write_media(folder / "bird" / "b.wav", 1.0, 16000)
    proc = audiomill(
        "segments", "inspect", str(folder), "--classes", str(classes), check=False
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"{folder / 'bird' / 'b.wav'}: " in proc.stdout, proc.stdout
    assert ":0:" not in proc.stdout
