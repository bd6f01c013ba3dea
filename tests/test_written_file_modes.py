"""Files that train, evaluate and export write honour the umask, as the files of a dataset do:
a serving user or a web server reads them as it reads the SavedModel and the weights."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeling.evaluation import evaluate_run
from modeling.export import export_run
from modeling.runs import write_all_atomic, write_atomic
from modeling.training import train
from schemas.classmap import ClassMap
from tests.training_fixtures import embedding_config, single_label_dataset


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _modes(root: Path) -> dict[str, str]:
    """Each file's and folder's permission bits under ``root`` (octal), by relative path."""
    return {str(p.relative_to(root)): oct(stat.S_IMODE(p.stat().st_mode)) for p in root.rglob("*")}


def _not_as_umask_022_makes(root: Path) -> dict[str, str]:
    """The files under ``root`` (TensorBoard's ``logs`` aside) not 0644 and folders not 0755."""
    wanted = {True: "0o755", False: "0o644"}
    return {
        name: mode
        for name, mode in _modes(root).items()
        if not name.startswith("logs") and mode != wanted[(root / name).is_dir()]
    }


def test_atomic_writes_honour_the_umask(tmp_path: Path, umask_022: None) -> None:
    write_atomic(tmp_path / "one.json", b"{}")
    write_all_atomic({tmp_path / "two.csv": b"a\n", tmp_path / "sub" / "three.html": b"<p>"})
    os.umask(0o077)
    write_atomic(tmp_path / "private.json", b"{}")
    assert _modes(tmp_path) == {
        "one.json": "0o644",
        "two.csv": "0o644",
        "sub": "0o755",
        "sub/three.html": "0o644",
        "private.json": "0o600",
    }


def test_run_evaluation_and_export_files_honour_the_umask(tmp_path: Path, umask_022: None) -> None:
    root = single_label_dataset(tmp_path / "ds", train=16, eval_clips=6).root
    run = tmp_path / "run"
    config = embedding_config(root, task="singlelabel", steps=2, eval_every=1)
    train(config, run, classes=ClassMap.load(root / "classes.csv"))
    evaluate_run(run, out_dir=tmp_path / "eval")
    export_run(run, tmp_path / "export")
    for folder in ("run", "eval", "export"):
        assert _not_as_umask_022_makes(tmp_path / folder) == {}, folder
