"""``--class-weights`` with the balanced sampler, which already draws every class (and the
clips without labels) equally often, corrects the imbalance twice: train and sweep say so in
one warning line, and train on."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.training_fixtures import single_label_dataset
from workflows.cli import app

WARNING = (
    "warning: --class-weights with --sampler balanced corrects class imbalance twice: the "
    "balanced sampler already draws every class (and the clips without labels) equally often; "
    "use --class-weights with --sampler shuffled"
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("class_weights") / "ds"
    single_label_dataset(root, train=16, eval_clips=6)
    return root


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_class_weights_with_the_balanced_sampler_warn_once(
    dataset: Path, tmp_path: Path, command: str
) -> None:
    common = [command, str(dataset), "--steps", "1", "--task", "singlelabel", "--class-weights"]
    common += ["--model-arg", "hidden=8", "--batch-size", "8"]
    balanced = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "balanced")])
    assert balanced.exit_code == 0, balanced.output
    assert " ".join(balanced.output.split()).count(WARNING) == 1, balanced.output
    shuffled = [*common, "--sampler", "shuffled", "--out", str(tmp_path / "shuffled")]
    result = CliRunner().invoke(app, shuffled)
    assert result.exit_code == 0, result.output
    assert "warning:" not in result.output
