"""No ``prepare`` recipe writes over one of its own inputs: ``--out`` set to the folder of the
input CSVs (natural after ``audiomill download audioset --out csv/``), or an output file that is
the input under another name (a symbolic or hard link), is refused before anything is written."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.recipes import (
    prepare_audioset,
    prepare_folder,
    prepare_fsd2019,
    prepare_urbansound8k,
    prepare_whale,
)
from tests.media import write_media
from tests.recipe_layouts import make_fsd2019, make_urbansound8k, make_whale
from workflows.cli import app


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _csvdir(tmp_path: Path, audioset_dir: Path) -> Path:
    """The user's folder after ``download audioset``: a segment list with a malformed line."""
    csvdir = tmp_path / "csvdir"
    csvdir.mkdir()
    head = (audioset_dir / "balanced_train_segments.csv").read_text().splitlines()[:20]
    text = "\n".join([*head, 'BADLINE, x, y, "/m/09x0r"']) + "\n"
    (csvdir / "balanced_train_segments.csv").write_text(text)
    shutil.copy(audioset_dir / "class_labels_indices.csv", csvdir)
    return csvdir


def test_audioset_out_in_the_folder_of_its_csvs_is_refused_through_the_cli(
    tmp_path: Path, audioset_dir: Path
) -> None:
    csvdir = _csvdir(tmp_path, audioset_dir)
    before = _tree(csvdir)
    seg = csvdir / "balanced_train_segments.csv"
    args = ["prepare", "audioset", str(seg), "--classes", str(csvdir / "class_labels_indices.csv")]
    res = CliRunner().invoke(app, [*args, "--out", str(csvdir)])
    assert res.exit_code == 2, res.output
    assert str(seg) in res.output and "another --out" in res.output, res.output
    assert "Traceback" not in res.output
    assert _tree(csvdir) == before  # the list as it was, and nothing written beside it


@pytest.mark.parametrize("link", ["symlink", "hardlink", "folder symlink"])
def test_audioset_output_that_is_an_input_by_another_name_is_refused(
    tmp_path: Path, audioset_dir: Path, link: str
) -> None:
    csvdir = _csvdir(tmp_path, audioset_dir)
    seg = csvdir / "balanced_train_segments.csv"
    out = tmp_path / "out"
    if link == "folder symlink":
        out.symlink_to(csvdir, target_is_directory=True)
    else:
        out.mkdir()
        make = os.symlink if link == "symlink" else os.link
        make(seg, out / seg.name)
    before = _tree(csvdir)
    with pytest.raises(ValueError, match=r"balanced_train_segments\.csv") as err:
        prepare_audioset([seg], csvdir / "class_labels_indices.csv", out)
    assert str(seg) in str(err.value) and "another --out" in str(err.value)
    assert _tree(csvdir) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before if link == "folder symlink"
                                                           else [seg.name])  # fmt: skip


def test_audioset_class_map_named_classes_csv_in_out_is_refused(
    tmp_path: Path, audioset_dir: Path
) -> None:
    csvdir = _csvdir(tmp_path, audioset_dir)
    classes = csvdir / "classes.csv"
    (csvdir / "class_labels_indices.csv").rename(classes)
    before = _tree(csvdir)
    with pytest.raises(ValueError, match=r"classes\.csv"):
        prepare_audioset([csvdir / "balanced_train_segments.csv"], classes, csvdir)
    assert _tree(csvdir) == before


def _whale(root: Path) -> Path:
    make_whale(root, positives=2, negatives=3)
    return root / "train.csv"


def _urbansound8k(root: Path) -> Path:
    make_urbansound8k(root, folds=1, per_fold=2)
    return root / "metadata" / "UrbanSound8K.csv"


def _fsd2019(root: Path) -> Path:
    make_fsd2019(root)
    return root / "sample_submission.csv"


def _folder(root: Path) -> Path:
    write_media(root / "dog" / "a.wav", 0.2, 8000)
    (root / "labels.csv").write_text("path,labels\ndog/a.wav,dog\n")
    return root / "labels.csv"


def _prepare_folder(root: Path, out: Path) -> object:
    return prepare_folder(root, out, labels_csv=root / "labels.csv")


RECIPES: dict[str, tuple[Callable[[Path], Path], Callable[[Path, Path], object]]] = {
    "whale": (_whale, prepare_whale),
    "urbansound8k": (_urbansound8k, prepare_urbansound8k),
    "fsd2019": (_fsd2019, prepare_fsd2019),
    "folder": (_folder, _prepare_folder),
}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("name", ["manifest.csv", "classes.csv", "recipe.json"])
def test_a_manifest_recipe_never_writes_over_its_input(tmp_path: Path, recipe: str, name: str):
    make, prepare = RECIPES[recipe]
    root = tmp_path / "root"
    source = make(root)
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(source)
    before = source.read_bytes()
    with pytest.raises(ValueError, match=re.escape(f"{out / name} is the input {source}")):
        prepare(root, out)
    assert source.read_bytes() == before
    assert [p.name for p in out.iterdir()] == [name]
