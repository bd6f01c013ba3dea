"""A ``--folds`` no run can be trained with is refused before anything is written: fewer than
two folds, or more folds than the training splits have clips."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.training_fixtures import single_label_dataset
from workflows.cli import app


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folds") / "ds"
    single_label_dataset(root, train=16, eval_clips=6)
    return root


def _refused(args: list[str], out: Path, line: str) -> None:
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--steps", "1"])
    assert result.exit_code == 2, result.output
    assert f"error: {line}" in result.output.splitlines(), result.output
    assert not out.exists()


@pytest.mark.parametrize("folds", ["1", "0", "-2"])
def test_fewer_than_two_folds_are_refused(dataset: Path, tmp_path: Path, folds: str) -> None:
    line = f"--folds must be at least 2, got {folds}"
    _refused(["sweep", str(dataset), "--folds", folds], tmp_path / "sweep", line)
    _refused(["train", str(dataset), "--folds", folds, "--fold", "1"], tmp_path / "run", line)


def test_more_folds_than_training_clips_are_refused(dataset: Path, tmp_path: Path) -> None:
    line = "--folds 17: 16 clips cannot make 17 folds"
    _refused(["sweep", str(dataset), "--folds", "17"], tmp_path / "sweep", line)
    _refused(["train", str(dataset), "--folds", "17", "--fold", "2"], tmp_path / "run", line)
