"""Model arguments that the model does not take, or cannot be built with, are refused in one line
before a run is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeling.models import build_model
from modeling.run_setup import plan_run
from modeling.training import train
from schemas.classmap import ClassMap
from tests.training_fixtures import embedding_config, single_label_dataset
from workflows.cli import app


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model-args") / "ds"
    single_label_dataset(root, train=16, eval_clips=6)
    return root


def _error(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_train_refuses_a_model_arg_typo_and_then_takes_the_corrected_command(
    dataset: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    args = ["train", str(dataset), "--out", str(run), "--steps", "2", "--batch-size", "8"]
    assert _error([*args, "--model-arg", "hiden=8"]) == (
        "error: --model-arg hiden: multi_level_attention takes no argument 'hiden' (it takes: "
        "hidden, dropout, num_blocks, levels, attention_normalization)"
    )
    assert not run.exists()
    assert _error([*args, "--model-arg", "hidden=8", "--model-arg", "dropout=high"]) == (
        'error: --model-arg hidden=8, dropout="high": multi_level_attention cannot be built '
        "with them: '<=' not supported between instances of 'int' and 'str'"
    )
    assert not run.exists()
    result = CliRunner().invoke(app, [*args, "--model-arg", "hidden=8"])
    assert result.exit_code == 0, result.output


def test_sweep_refuses_bad_model_args_before_any_run(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = ["sweep", str(dataset), "--out", str(out), "--steps", "2", "--lr", "1e-3,1e-2"]
    assert _error([*args, "--model-arg", "width=8"]).startswith(
        "error: --model-arg width: multi_level_attention takes no argument 'width'"
    )
    assert _error([*args, "--model-arg", "hidden=wide"]) == (
        'error: --model-arg hidden="wide": multi_level_attention cannot be built with it: '
        "Received an invalid value for `units`, expected a positive integer. Received: units=wide"
    )
    assert not out.exists()


def test_a_run_whose_model_cannot_be_built_writes_nothing(dataset: Path, tmp_path: Path) -> None:
    config = embedding_config(dataset, model_kwargs={"hidden": 8, "widht": 3})
    with pytest.raises(TypeError, match="widht"):
        train(config, tmp_path / "run", classes=ClassMap.load(dataset / "classes.csv"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model", ["small_cnn", "cnn14"])
def test_waveform_models_on_8khz_audio_stop_their_mel_bands_at_nyquist(
    dataset: Path, model: str
) -> None:
    config, _ = plan_run(str(dataset), input="waveforms", model=model, steps=1)
    assert config.model_kwargs["sample_rate"] == 8000 and config.model_kwargs["fmax"] is None
    build_model(model, "waveform", config.num_classes, config.task, **config.model_kwargs)
    given, _ = plan_run(
        str(dataset), input="waveforms", model=model, steps=1, model_args={"fmax": 3000.0}
    )
    assert given.model_kwargs["fmax"] == 3000.0
