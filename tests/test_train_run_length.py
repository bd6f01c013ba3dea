"""A run's length is checked before anything is written: ``--steps``, ``--eval-every`` and the
steps ``--epochs`` make must be positive and at most :data:`~modeling.run_setup.MAX_STEPS`
(a huge count crashed deep in tf.data and left a run that ``--resume`` crashed on again)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeling.run_setup import MAX_STEPS, plan_run
from modeling.runs import RunDir
from tests.test_train_options_model_args import _error
from tests.training_fixtures import single_label_dataset
from workflows.cli import app

HUGE = "99999999999999999999"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return single_label_dataset(tmp_path_factory.mktemp("length") / "ds", train=16).root


def _args(command: str, dataset: Path, out: Path, *more: str) -> list[str]:
    common = ["--task", "singlelabel", "--batch-size", "8", "--model-arg", "hidden=8"]
    return [command, str(dataset), "--out", str(out), *common, *more]


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("steps", [HUGE, str(MAX_STEPS + 1)])
def test_more_steps_than_a_run_may_train_are_refused(
    dataset: Path, tmp_path: Path, command: str, steps: str
) -> None:
    out = tmp_path / "out"
    assert _error(_args(command, dataset, out, "--steps", steps)) == (
        f"error: --steps {steps} is more than a run may train: at most 1,000,000,000,000 steps"
    )
    assert not out.exists()


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("epochs", ["1e30", "1e308", "1e12"])
def test_epochs_making_more_steps_than_a_run_may_train_are_refused(
    dataset: Path, tmp_path: Path, command: str, epochs: str
) -> None:
    out = tmp_path / "out"
    assert _error(_args(command, dataset, out, "--epochs", epochs)) == (
        f"error: --epochs {float(epochs):g} is more than a run may train: at most "
        "1,000,000,000,000 steps, 5e+11 epochs of 16 training clips in batches of 8"
    )
    assert not out.exists()


@pytest.mark.parametrize("option", ["--steps", "--eval-every"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_steps_and_eval_every_must_be_positive(
    dataset: Path, tmp_path: Path, option: str, value: str
) -> None:
    out = tmp_path / "out"
    line = _error(_args("train", dataset, out, option, value))
    assert line == f"error: {option} must be positive, got {value}"
    assert not out.exists()


def test_the_limit_itself_is_planned(dataset: Path) -> None:
    for options in ({"steps": MAX_STEPS}, {"epochs": MAX_STEPS * 8 / 16}):
        config, _ = plan_run(str(dataset), input="embeddings", batch_size=8, **options)
        assert config.steps == MAX_STEPS


def test_a_run_recorded_with_too_many_steps_is_refused_and_resumed_with_fewer(
    dataset: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    result = CliRunner().invoke(app, _args("train", dataset, run, "--steps", "2"))
    assert result.exit_code == 0, result.output
    config = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**config, "steps": int(HUGE)}))
    assert _error(_args("train", dataset, run, "--resume")) == (
        f"error: --steps {HUGE} is more than a run may train: at most 1,000,000,000,000 steps"
    )
    result = CliRunner().invoke(app, _args("train", dataset, run, "--resume", "--steps", "4"))
    assert result.exit_code == 0, result.output
    assert RunDir(run).load_summary()["step"] == 4
