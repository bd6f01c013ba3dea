"""``--epochs`` must be positive and finite, for train and sweep, and a split the dataset does not
have at all is named as such, not as one without embeddings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_train_options_model_args import _error
from tests.training_fixtures import single_label_dataset
from workflows.cli import app


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Embeddings and waveforms of splits train and eval."""
    return single_label_dataset(tmp_path_factory.mktemp("epochs") / "ds", train=16).root


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("epochs", ["0", "-1", "nan", "inf"])
def test_epochs_must_be_positive(dataset: Path, tmp_path: Path, command: str, epochs: str) -> None:
    out = tmp_path / "out"
    line = _error([command, str(dataset), "--out", str(out), f"--epochs={epochs}"])
    assert line == f"error: --epochs must be positive and finite, got {float(epochs):g}"
    assert not out.exists()


def test_fractional_epochs_still_train(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["train", str(dataset), "--out", str(out), "--epochs", "0.5", "--batch-size", "8"]
    result = CliRunner().invoke(app, [*args, "--eval-split", "none"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("input", ["embeddings", "waveforms"])
def test_a_split_the_dataset_does_not_have_is_named(
    dataset: Path, tmp_path: Path, input: str
) -> None:
    out = tmp_path / "out"
    args = ["train", str(dataset), "--out", str(out), "--input", input, "--steps", "2"]
    assert _error([*args, "--split", "nope"]) == (
        "error: the dataset has no split 'nope' (it has eval, train)"
    )
    assert _error([*args, "--eval-split", "nope"]) == (
        "error: the dataset has no split 'nope' (it has eval, train)"
    )
    assert not out.exists()


def test_a_split_without_embeddings_still_says_to_embed(dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    data = json.loads((copy / "manifest.json").read_text())
    del data["embeddings"]["vggish"]["eval"]
    (copy / "manifest.json").write_text(json.dumps(data))
    out = tmp_path / "out"
    line = _error(["train", str(copy), "--out", str(out), "--steps", "2", "--split", "eval"])
    assert line == (
        "error: the dataset has no vggish embeddings of split(s) eval; it has [train]; compute "
        "embeddings with `audiomill embed`"
    )
