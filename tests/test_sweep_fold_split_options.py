"""``sweep --fold-split`` refuses, before anything is written, a split named twice and the
``--split`` and ``--eval-split`` its fold splits replace."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.training_fixtures import single_label_dataset
from workflows.cli import app


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fold_splits") / "ds"
    single_label_dataset(root, train=16, eval_clips=6)
    return root


def _refused(dataset: Path, out: Path, args: list[str], line: str) -> None:
    result = CliRunner().invoke(app, ["sweep", str(dataset), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert f"error: {line}" in result.output.splitlines(), result.output
    assert not out.exists()


def test_a_fold_split_given_twice_is_refused(dataset: Path, tmp_path: Path) -> None:
    args = ["--fold-split", "eval", "--fold-split", "train", "--fold-split", "eval"]
    line = "--fold-split eval is given twice: give each split once"
    _refused(dataset, tmp_path / "sweep", [*args, "--steps", "1"], line)


@pytest.mark.parametrize("option", [["--split", "train"], ["--eval-split", "nosuch"]])
def test_split_options_do_not_go_with_fold_splits(
    dataset: Path, tmp_path: Path, option: list[str]
) -> None:
    args = ["--fold-split", "eval", "--fold-split", "train", *option, "--steps", "1"]
    line = (
        "--split and --eval-split do not go with --fold-split: the fold splits are both the "
        "training and the evaluation splits"
    )
    _refused(dataset, tmp_path / "sweep", args, line)
