"""Model arguments are checked before a run is written: list-valued ones for their type and range,
``n_fft`` against the clip, any other failure by one forward pass on a zero batch, and those the
dataset sets (input shape, sample rate) are refused, each in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import modeling.models_logmel
from tests.training_fixtures import single_label_dataset
from workflows.cli import app


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model-arg-values") / "ds"
    single_label_dataset(root, train=16, eval_clips=6)
    return root


def _samples(dataset: Path) -> int:
    manifest = json.loads((dataset / "manifest.json").read_text())
    return round(manifest["sample_rate"] * manifest["clip_seconds"])


def _error(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "\x1b[" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def _train(dataset: Path, run: Path, *more: str) -> list[str]:
    return ["train", str(dataset), "--out", str(run), "--steps", "2", "--batch-size", "8", *more]


def test_waveform_model_args_out_of_range_are_refused_naming_the_value(
    dataset: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    args = _train(dataset, run, "--input", "waveforms", "--model", "small_cnn")
    args += ["--model-arg", "fmax=1000", "--model-arg"]
    samples = _samples(dataset)
    expected = {
        f"n_fft={samples + 1}": f"n_fft must be at most the clip's samples ({samples}), got "
        f"{samples + 1}",
        "n_mels=0": "n_mels must be a positive int, got 0",
        "hop_length=0": "hop_length must be a positive int, got 0",
        "filters=-1": "filters must be a list of 4 positive ints, got -1",
        "filters=[8,8,8,0]": "filters must be a list of 4 positive ints, got [8, 8, 8, 0]",
        "filters=[8,8]": "filters must be a list of 4 positive ints, got [8, 8]",
    }
    for arg, reason in expected.items():
        name, _, value = arg.partition("=")
        shown = json.dumps(json.loads(value))
        assert _error([*args, arg]) == (
            f"error: --model-arg fmax=1000, {name}={shown}: small_cnn cannot be built with them: "
            f"{reason}"
        )
    assert not run.exists()


def test_embedding_levels_must_be_a_non_empty_list_of_blocks(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = _train(dataset, run, "--model-arg")
    for value in ("0", "[]", "[1,4]", '"2"'):
        shown = json.dumps(json.loads(value))
        assert _error([*args, f"levels={value}"]) == (
            f"error: --model-arg levels={shown}: multi_level_attention cannot be built with it: "
            f"levels must be a non-empty list of ints in 1..3, got {json.loads(value)!r}"
        )
    assert not run.exists()


def test_a_model_that_builds_but_cannot_run_on_the_clips_is_refused_in_one_line(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the explicit n_fft check, the forward pass on a zero batch still catches it."""
    monkeypatch.setattr(modeling.models_logmel, "check_positive_int", lambda *a, **k: None)
    run = tmp_path / "run"
    samples = _samples(dataset)
    args = _train(dataset, run, "--input", "waveforms", "--model", "small_cnn")
    line = _error([*args, "--model-arg", f"n_fft={samples * 4}", "--model-arg", "fmax=1000"])
    assert line.startswith(
        f"error: --model-arg n_fft={samples * 4}, fmax=1000: small_cnn cannot run on the "
        "dataset's clips with them: "
    ), line
    assert "Exception encountered" not in line and "Arguments received" not in line
    assert len(line) < 450
    assert not run.exists()


@pytest.mark.parametrize("name", ["sample_rate", "clip_samples"])
def test_model_args_the_dataset_sets_are_refused(dataset: Path, tmp_path: Path, name: str) -> None:
    run = tmp_path / "run"
    args = _train(dataset, run, "--input", "waveforms", "--model", "small_cnn")
    line = _error([*args, "--model-arg", f"{name}=100"])
    manifest = json.loads((dataset / "manifest.json").read_text())
    value = manifest["sample_rate"] if name == "sample_rate" else _samples(dataset)
    assert line == (
        f"error: --model-arg {name}=100: set from the dataset ({name}={value}), not by "
        "--model-arg (the waveforms shards are read as they are)"
    )
    assert not run.exists()
    same = [*args, "--model-arg", f"{name}={value}", "--model-arg", "fmax=1000"]
    result = CliRunner().invoke(app, [*same, "--eval-split", "none"])
    assert result.exit_code == 0, result.output  # the dataset's own value changes nothing


def test_embedding_input_shape_args_are_refused(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    line = _error([*_train(dataset, run), "--model-arg", "num_frames=3"])
    assert line.startswith("error: --model-arg num_frames=3: set from the dataset (num_frames=")
    assert not run.exists()


def test_a_waveform_run_with_model_args_resumes(dataset: Path, tmp_path: Path) -> None:
    """The run records the dataset's input shape among its model arguments; resuming it does
    not pass them back as --model-arg values (which would be refused)."""
    run = tmp_path / "run"
    args = _train(
        dataset, run, "--input", "waveforms", "--model", "small_cnn", "--eval-split", "none"
    )
    args += ["--model-arg", "filters=[4,4,4,4]", "--model-arg", "fmax=1000"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["train", str(dataset), "--out", str(run), "--resume"])
    assert result.exit_code == 0, result.output
    assert "already trained 2 steps" in result.output
    config = json.loads((run / "run.json").read_text())
    kwargs = config.get("model_kwargs", config.get("config", {}).get("model_kwargs"))
    assert kwargs["clip_samples"] == _samples(dataset)
