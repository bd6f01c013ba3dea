"""Command stages read the datasets and runs they are given: a train or evaluate stage on a
dataset the workflow did not make runs again when that dataset grows (its manifest changes), and
is skipped while it stays as it was."""

from __future__ import annotations

import textwrap
from pathlib import Path

import typer
from typer.testing import CliRunner

from tests.training_fixtures import single_label_dataset
from workflows.cli import app
from workflows.workflow_resolve import resolve_workflow
from workflows.workflow_schema import load_workflow

ROOT = typer.main.get_command(app)
WORKFLOW = """
state: {work}/state.json
stages:
  - name: train
    command: train
    args: ["{dataset}"]
    options: {{out: "{work}/run", task: singlelabel, steps: 2, batch_size: 8,
               model_arg: ["hidden=8"]}}
    outputs: ["{work}/run/best.weights.h5"]
  - name: evaluate
    command: evaluate
    args: ["{work}/run", "{dataset}"]
    options: {{split: eval, out: "{work}/eval"}}
    outputs: ["{work}/eval/metrics.json"]
"""


def _workflow(tmp_path: Path) -> tuple[Path, Path, Path]:
    dataset, work = tmp_path / "ds", tmp_path / "w"
    single_label_dataset(dataset, train=16, eval_clips=6)
    path = tmp_path / "ext.yaml"
    path.write_text(textwrap.dedent(WORKFLOW.format(work=work, dataset=dataset)).lstrip("\n"))
    return path, dataset, work


def _run(path: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["run", str(path), *args])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def _plan_inputs(path: Path) -> list[tuple[str, ...]]:
    return [s.inputs for s in resolve_workflow(load_workflow(path, ROOT), {}, ROOT).stages]


def test_train_and_evaluate_read_the_dataset_manifest_and_a_run_made_elsewhere(
    tmp_path: Path,
) -> None:
    path, dataset, work = _workflow(tmp_path)
    manifest = f"{dataset}/manifest.json"
    assert _plan_inputs(path) == [(manifest,), (manifest,)], "train makes the run evaluate reads"
    text = path.read_text()
    without_train = text[: text.index("  - name: train")] + text[text.index("  - name: evaluate") :]
    path.write_text(without_train)
    run = f"{work}/run"
    files = (f"{run}/run.json", f"{run}/best.weights.h5", f"{run}/last.weights.h5")
    assert _plan_inputs(path) == [(*files, manifest)]


def test_a_grown_dataset_runs_train_and_evaluate_again(tmp_path: Path) -> None:
    path, dataset, work = _workflow(tmp_path)
    _run(path)
    output = _run(path)
    assert "[1/2] train: skipped" in output and "[2/2] evaluate: skipped" in output
    single_label_dataset(dataset, train=32, eval_clips=9)
    output = _run(path, "--dry-run")
    assert f"train: would run (inputs changed: {dataset}/manifest.json)" in output
    output = _run(path)
    assert "train: skipped" not in output and "evaluate: skipped" not in output
    assert (work / "run.previous").is_dir(), "the run on the smaller dataset is kept"
    output = _run(path)
    assert "[1/2] train: skipped" in output and "[2/2] evaluate: skipped" in output


def test_a_dataset_the_workflow_makes_is_followed_through_the_stage_that_makes_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(f"""
        stages:
          - name: make
            call: tests.workflow_helpers:small_dataset
            kwargs: {{root: "{tmp_path}/ds", counter: "{tmp_path}/c"}}
            outputs: ["{tmp_path}/ds/manifest.json"]
          - name: verify
            command: dataset verify
            args: ["{tmp_path}/ds/"]
          - name: train
            command: train
            args: ["{tmp_path}/other"]
            options: {{out: "{tmp_path}/run"}}
        """))  # fmt: skip
    _, verify, train = resolve_workflow(load_workflow(path, ROOT), {}, ROOT).stages
    assert verify.inputs == () and train.inputs == (f"{tmp_path}/other/manifest.json",)
