"""``prepare folder --dataset DS`` against an existing dataset: a dataset's class map is fixed
when its first clips are committed (shards store one target column per class), so a class folder
(or CSV label) the dataset does not have is refused before anything is written, naming it and
the dataset's classes; files added to its class folders are prepared with its class map as
before, and a class folder emptied keeps its class, so ``recipes/folder`` can always re-run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.recipes import prepare_folder
from tests.media import write_media
from workflows.cli import app

INGEST = ["--source", "local", "--sample-rate", "8000", "--clip-seconds", "0.5", "--workers", "1"]


def _invoke(*args: str | Path, code: int = 0) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def _audio(root: Path, *names: str) -> None:
    for n, name in enumerate(names):
        write_media(root / name, 0.3, 8000, freq=200 + 50 * n)


def _prepare_and_ingest(root: Path, prepared: Path, dataset: Path) -> str:
    output = _invoke("prepare", "folder", root, "--out", prepared, "--dataset", dataset)
    _invoke(
        "ingest", "--segments", prepared / "manifest.csv", "--classes", prepared / "classes.csv",
        "--audio-root", root, *INGEST, "--out", dataset,
    )  # fmt: skip
    return output


@pytest.fixture
def made(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A folder of cat and dog audio, prepared and ingested into a dataset."""
    root, prepared, dataset = tmp_path / "audio", tmp_path / "prepared", tmp_path / "dataset"
    _audio(root, "cat/a.wav", "cat/b.wav", "dog/c.wav")
    _prepare_and_ingest(root, prepared, dataset)
    return root, prepared, dataset


def test_a_new_class_folder_is_refused_before_anything_is_written(made):
    root, prepared, dataset = made
    _audio(root, "bird/d.wav", "fish/e.wav")
    before = {p.name: p.read_bytes() for p in prepared.iterdir()}
    output = _invoke("prepare", "folder", root, "--out", prepared, "--dataset", dataset, code=2)
    message = " ".join(output.split())
    assert f"{root} has class folder(s) bird, fish that the dataset {dataset}" in message
    assert "(its classes: cat, dog)" in message and "--set work=" in message, message
    assert {p.name: p.read_bytes() for p in prepared.iterdir()} == before


def test_a_new_label_in_the_labels_csv_is_refused(made):
    root, prepared, dataset = made
    labels = root.parent / "labels.csv"
    labels.write_text("path,labels\ncat/a.wav,cat\ndog/c.wav,dog;bird\n")
    with pytest.raises(ValueError, match=f"{labels} gives label\\(s\\) bird that the dataset"):
        prepare_folder(root, prepared, labels_csv=labels, dataset=dataset)


def test_files_added_to_class_folders_and_an_emptied_class_keep_the_class_map(made):
    root, prepared, dataset = made
    classes = (prepared / "classes.csv").read_bytes()
    _audio(root, "cat/new.wav")
    shutil.rmtree(root / "dog")  # its class stays: the dataset's shards have its column
    _prepare_and_ingest(root, prepared, dataset)
    assert (prepared / "classes.csv").read_bytes() == classes
    assert "cat/new.wav" in (prepared / "manifest.csv").read_text()


def test_a_dataset_holding_no_clips_yet_takes_new_classes(tmp_path: Path):
    root, prepared, dataset = tmp_path / "audio", tmp_path / "prepared", tmp_path / "dataset"
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "a.wav").write_bytes(b"not audio")
    _invoke("prepare", "folder", root, "--out", prepared)
    CliRunner().invoke(app, [
        "ingest", "--segments", str(prepared / "manifest.csv"), "--classes",
        str(prepared / "classes.csv"), "--audio-root", str(root), *INGEST, "--out", str(dataset),
    ])  # fmt: skip
    assert (dataset / "manifest.json").is_file()  # a dataset whose only clip failed
    _audio(root, "bird/b.wav")
    result = prepare_folder(root, prepared, dataset=dataset)
    assert result.class_map.display_names == ["bird", "cat"]


def test_recipes_folder_refuses_a_new_class_folder_at_its_prepare_stage(tmp_path: Path):
    root, work = tmp_path / "audio", tmp_path / "out"
    _audio(root, "cat/a.wav", "dog/b.wav")
    sets = [f"root={root}", f"work={work}", "sample_rate=8000", "clip_seconds=0.5", "workers=1"]
    args = ["run", "recipes/folder", *(x for s in sets for x in ("--set", s))]
    for stage in ("prepare", "ingest"):
        _invoke(*args, "--only", stage)
    _audio(root, "cat/c.wav")
    _invoke(*args, "--only", "prepare")
    _invoke(*args, "--only", "ingest")
    _audio(root, "bird/d.wav")
    output = " ".join(_invoke(*args, "--only", "prepare", code=1).split())
    assert f"has class folder(s) bird that the dataset {work}/dataset does not have" in output
    assert "(its classes: cat, dog)" in output and "--set work=NEW_FOLDER" in output
