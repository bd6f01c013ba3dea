"""``--mixup`` must be a finite alpha >= 0, for train and for every value of a sweep's grid:
refused with one line naming the option before anything is written (NaN trained without mixup
and recorded ``NaN`` in run.json, inf trained to a NaN loss)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_train_options_model_args import _error
from tests.training_fixtures import single_label_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return single_label_dataset(tmp_path_factory.mktemp("mixup") / "ds", train=16).root


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("alpha", ["-1", "nan", "inf"])
def test_mixup_must_be_a_finite_alpha(
    dataset: Path, tmp_path: Path, command: str, alpha: str
) -> None:
    out = tmp_path / "out"
    args = [command, str(dataset), "--out", str(out), "--task", "singlelabel", "--steps", "2"]
    line = _error([*args, "--batch-size", "8", "--mixup", alpha])
    assert line == f"error: --mixup must be a finite alpha >= 0, got {float(alpha):g}"
    assert not out.exists()
