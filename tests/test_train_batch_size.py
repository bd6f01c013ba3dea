"""``--batch-size`` must be positive, for train and sweep, with or without ``--steps``: refused
with one line before anything is written (without ``--steps`` it divided by zero)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_train_options_model_args import _error
from tests.training_fixtures import single_label_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return single_label_dataset(tmp_path_factory.mktemp("batch") / "ds", train=16).root


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("length", [[], ["--steps", "3"], ["--epochs", "2"]])
@pytest.mark.parametrize("size", ["0", "-4"])
def test_batch_size_must_be_positive(
    dataset: Path, tmp_path: Path, command: str, length: list[str], size: str
) -> None:
    out = tmp_path / "out"
    args = [command, str(dataset), "--out", str(out), "--task", "singlelabel", *length]
    line = _error([*args, "--batch-size", size])
    assert line == f"error: --batch-size must be positive, got {size}"
    assert not out.exists()
