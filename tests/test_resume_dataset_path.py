"""``train --resume`` and a sweep run again know a local dataset by its real path: the same
dataset given through ``..``, another working directory or a symbolic link is the run's, a run
records the real path, and runs that recorded a path with ``..`` still resume; a remote dataset
is known by its URL as given."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeling.run_setup import check_resume_dataset
from modeling.runs import RunDir
from modeling.training import train
from schemas.classmap import ClassMap
from tests.test_train_options_model_args import _error
from tests.training_fixtures import embedding_config, single_label_dataset
from workflows.cli import app

SMALL = ["--task", "singlelabel", "--batch-size", "8", "--model-arg", "hidden=8"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return single_label_dataset(tmp_path_factory.mktemp("where") / "ds", train=16).root


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _recorded(run: Path) -> str:
    return json.loads((run / "run.json").read_text())["dataset"]


def test_resume_takes_the_dataset_by_another_path(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    link = tmp_path / "link"
    link.symlink_to(dataset)
    monkeypatch.chdir(runs)
    up = os.path.relpath(dataset, runs)  # ../../where0/ds
    _invoke("train", up, "--out", "run", *SMALL, "--steps", "2")
    assert _recorded(runs / "run") == str(dataset.resolve())
    for given, steps in ((str(dataset), "3"), (str(link), "4"), (up, "5")):
        _invoke("train", given, "--out", "run", "--resume", "--steps", steps)
        assert RunDir(runs / "run").load_summary()["step"] == int(steps)


def test_a_run_recorded_with_dots_resumes_on_the_real_path(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _invoke("train", str(dataset), "--out", str(run), *SMALL, "--steps", "2")
    dotted = str(dataset.parent / ".." / dataset.parent.name / "ds")
    config = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**config, "dataset": dotted}))
    _invoke("train", str(dataset), "--out", str(run), "--resume", "--steps", "3")
    assert RunDir(run).load_summary()["step"] == 3
    assert _recorded(run) == str(dataset.resolve()), "the run records the path it read"


def _moved_away(run: Path, dataset: Path, tmp_path: Path) -> str:
    """Record in ``run`` the dataset through a folder since renamed: ``/x/runs/../ds``."""
    (tmp_path / "runs").mkdir()
    dotted = str(tmp_path / "runs" / ".." / os.path.relpath(dataset, tmp_path))
    config = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**config, "dataset": dotted}))
    (tmp_path / "runs").rename(tmp_path / "renamed")
    return dotted


def test_a_run_recorded_through_a_renamed_folder_reads_the_dataset_given(
    dataset: Path, tmp_path: Path
) -> None:
    """The run's record names the same dataset but no longer leads to it: the resumed run
    reads the path given (it failed with '<record> has no manifest.json')."""
    run = tmp_path / "run"
    _invoke("train", str(dataset), "--out", str(run), *SMALL, "--steps", "2")
    _moved_away(run, dataset, tmp_path)
    _invoke("train", str(dataset), "--out", str(run), "--resume", "--steps", "3")
    assert RunDir(run).load_summary()["step"] == 3
    assert _recorded(run) == str(dataset.resolve())
    _invoke("train", str(dataset), "--out", str(run), "--resume", "--steps", "4")
    assert RunDir(run).load_summary()["step"] == 4


def test_train_resumes_on_the_dataset_given_by_another_path(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    classes = ClassMap.load(dataset / "classes.csv")
    config = embedding_config(dataset, task="singlelabel", steps=2, eval_every=2)
    train(config, run, classes=classes)
    _moved_away(run, dataset, tmp_path)
    result = train(replace(config, steps=3), run, resume=True)
    assert result.step == 3 and result.resumed_from == 2
    assert RunDir(run).load_config().dataset == str(dataset)


def test_another_dataset_is_still_refused(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _invoke("train", str(dataset), "--out", str(run), *SMALL, "--steps", "2")
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    assert _error(["train", str(copy), "--out", str(run), "--resume", "--steps", "3"]) == (
        f"error: --resume continues run {run}, trained on dataset {dataset.resolve()}, but the "
        f"dataset given is {copy}: give the run's dataset, or start a new run (--restart)"
    )


def test_a_sweep_keeps_its_runs_for_the_dataset_by_another_path(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    link = tmp_path / "link"
    link.symlink_to(dataset)
    args = ["--out", str(out), *SMALL, "--steps", "2"]
    _invoke("sweep", str(link), *args)
    run = out / "lr0.001-mixup0" / "all"
    assert _recorded(run) == str(dataset.resolve())
    dotted = str(dataset.parent / ".." / dataset.parent.name / "ds")
    config = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**config, "dataset": dotted}))
    output = _invoke("sweep", str(dataset), *args)
    assert "(new)" not in output and "starting over" not in output
    output = _invoke("sweep", str(dataset), *args[:-1], "3")
    assert "all (resuming)" in output and RunDir(run).load_summary()["step"] == 3
    _moved_away(run, dataset, tmp_path)
    output = _invoke("sweep", str(dataset), *args[:-1], "4")
    assert "all (resuming)" in output and RunDir(run).load_summary()["step"] == 4
    assert _recorded(run) == str(dataset.resolve())


def test_remote_datasets_are_compared_as_given(tmp_path: Path) -> None:
    config = embedding_config(tmp_path, dataset="s3://bucket/ds")
    check_resume_dataset(config, "s3://bucket/ds/", "run")
    with pytest.raises(ValueError, match="but the dataset given is s3://bucket/other"):
        check_resume_dataset(config, "s3://bucket/other", "run")
