"""A sweep's grid is checked, and every run planned, before the first run trains: a refusal is
one line naming the option, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_train_options_model_args import _error
from tests.training_fixtures import single_label_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return single_label_dataset(tmp_path_factory.mktemp("grid") / "ds", train=16).root


def _sweep(dataset: Path, out: Path, *grid: str) -> str:
    args = ["sweep", str(dataset), "--out", str(out), "--task", "singlelabel", "--steps", "2"]
    return _error([*args, "--batch-size", "8", "--model-arg", "hidden=8", *grid])


@pytest.mark.parametrize(
    ("option", "text"), [("--lr", ",,"), ("--lr", ""), ("--mixup", ","), ("--mixup", " , ")]
)
def test_a_grid_of_no_values_is_refused(
    dataset: Path, tmp_path: Path, option: str, text: str
) -> None:
    out = tmp_path / "sweep"
    assert _sweep(dataset, out, option, text) == f"error: {option} lists no values"
    assert not out.exists()


def test_a_grid_item_that_is_not_a_number_is_refused(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    assert _sweep(dataset, out, "--mixup", "0,x") == (
        "error: --mixup is not a comma-separated list of numbers: '0,x'"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "text", "expected"),
    [
        ("--lr", "1e-3,3e-4,0.001", "--lr lists 0.001 twice (1e-3, 0.001): give each value once"),
        ("--mixup", "0,0.2,-0", "--mixup lists 0 twice (0, -0): give each value once"),
        (
            "--lr",
            "0.0010000001,0.001",
            "--lr values 0.0010000001 and 0.001 name the same runs (lr0.001: 6 significant "
            "digits): give values that differ there",
        ),
    ],
)
def test_a_grid_value_given_twice_is_refused(
    dataset: Path, tmp_path: Path, option: str, text: str, expected: str
) -> None:
    out = tmp_path / "sweep"
    assert _sweep(dataset, out, option, text) == f"error: {expected}"
    assert not out.exists()


def test_a_setting_refused_after_the_first_trains_nothing(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    line = _sweep(dataset, out, "--mixup", "0,-1")
    assert line == "error: --mixup must be a finite alpha >= 0, got -1"
    assert not out.exists()
