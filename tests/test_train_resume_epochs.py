"""``train --resume --epochs N`` that makes fewer steps than the run has trained is refused
naming ``--epochs`` and the steps it makes (the message named ``--steps``, which was not given)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tests.training_fixtures import single_label_dataset
from workflows.cli import app


def test_resume_with_epochs_making_fewer_steps_names_epochs(tmp_path: Path) -> None:
    dataset = single_label_dataset(tmp_path / "ds", train=16).root
    run = tmp_path / "run"
    args = ["train", str(dataset), "--out", str(run), "--batch-size", "8"]
    options = ["--task", "singlelabel", "--model-arg", "hidden=8"]
    first = CliRunner().invoke(app, [*args, *options, "--steps", "3"])
    assert first.exit_code == 0, first.output
    fewer = CliRunner().invoke(app, [*args, "--resume", "--epochs", "1"])
    assert fewer.exit_code == 2, fewer.output
    assert (
        f"error: --resume continues run {run}, which has trained 3 steps, but --epochs 1 makes "
        "2 steps: give more --epochs (at least 3 steps), or leave --epochs out"
    ) in fewer.output.splitlines(), fewer.output
