"""The ingest command a ``prepare`` recipe prints names every path absolute, ``--out`` included,
so pasted in another folder it reads and writes the same files."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.media import write_media
from tests.recipe_layouts import make_fsd2019, make_urbansound8k, make_whale
from workflows.cli import app

PATH_OPTIONS = ("--segments", "--classes", "--audio-root", "--out")


def _audioset(root: Path, audioset_dir: Path) -> list[str]:
    root.mkdir()
    for name in ("balanced_train_segments.csv", "class_labels_indices.csv"):
        shutil.copy(audioset_dir / name, root)
    return ["audioset", "in/balanced_train_segments.csv", "--classes",
            "in/class_labels_indices.csv", "--audio-root", "in"]  # fmt: skip


def _folder(root: Path, _: Path) -> list[str]:
    write_media(root / "dog" / "a.wav", 0.2, 8000)
    return ["folder", "in"]


LAYOUTS = {
    "audioset": _audioset,
    "folder": _folder,
    "whale": lambda root, _: [make_whale(root, 1, 2) and "whale", "in"],
    "urbansound8k": lambda root, _: [make_urbansound8k(root, 1, 1) and "urbansound8k", "in"],
    "fsd2019": lambda root, _: [make_fsd2019(root) and "fsd2019", "in"],
}


@pytest.mark.parametrize("dataset", [["--dataset", "out1/ds"], []])
@pytest.mark.parametrize("recipe", sorted(LAYOUTS))
def test_printed_ingest_command_paths_are_absolute(
    tmp_path: Path, monkeypatch, audioset_dir: Path, recipe: str, dataset: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = LAYOUTS[recipe](tmp_path / "in", audioset_dir)
    result = CliRunner().invoke(app, ["prepare", *args, "--out", "prep", *dataset])
    assert result.exit_code == 0, result.output
    commands = [shlex.split(line) for line in result.output.splitlines()
                if line.startswith("audiomill ingest")]  # fmt: skip
    assert commands, result.output
    for command in commands:
        paths = [command[i + 1] for i, arg in enumerate(command) if arg in PATH_OPTIONS]
        assert len(paths) == (4 if "--audio-root" in command else 3), command
        assert all(os.path.isabs(p) for p in paths), command
        target = tmp_path / ("out1/ds" if dataset else "prep/dataset")
        assert command[-2:] == ["--out", str(target)]


def test_download_commands_print_absolute_paths(tmp_path: Path, monkeypatch, audioset_dir: Path):
    monkeypatch.chdir(tmp_path)
    make_urbansound8k(tmp_path / "data" / "UrbanSound8K", folds=1, per_fold=1)
    shutil.copytree(audioset_dir, tmp_path / "csv")
    for name in ("eval_segments.csv", "unbalanced_train_segments.csv"):  # present: not fetched
        shutil.copy(audioset_dir / "balanced_train_segments.csv", tmp_path / "csv" / name)
    runs = [
        ["urbansound8k", "--out", "data", "--url", "http://127.0.0.1:9/UrbanSound8K.tar.gz"],
        ["audioset", "--out", "csv", "--url-base", "http://127.0.0.1:9"],
    ]
    for args in runs:
        result = CliRunner().invoke(app, ["download", *args])
        assert result.exit_code == 0, result.output
        [line] = [x for x in result.output.splitlines() if x.startswith("audiomill ")]
        paths = [a.split("=", 1)[-1] for a in shlex.split(line)[3:] if not a.startswith("-")]
        assert paths and all(os.path.isabs(p) for p in paths), line
