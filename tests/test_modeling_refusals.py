"""train and sweep refuse a learning rate that is not positive and finite before writing
anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.training_fixtures import single_label_dataset
from workflows.cli import app


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refusals") / "ds"
    single_label_dataset(root, train=16, eval_clips=6)
    return root


@pytest.mark.parametrize("lr", ["-1", "0", "nan", "inf"])
def test_train_and_sweep_refuse_a_learning_rate_that_is_not_positive(
    dataset: Path, tmp_path: Path, lr: str
) -> None:
    out = tmp_path / "out"
    common = [str(dataset), "--out", str(out), "--steps", "1", "--task", "singlelabel"]
    for args in (["train", *common, "--lr", lr], ["sweep", *common, "--lr", f"1e-3,{lr}"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert f"error: --lr must be a positive, finite learning rate, got {float(lr):g}" in (
            result.output.splitlines()
        )
        assert not out.exists()
