"""A sweep run again: runs with other settings start over, runs with more steps continue, a
workflow's stale stage starts every run over, identical finished runs are kept."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeling.runs import RunDir
from tests.training_fixtures import single_label_dataset
from workflows.cli import app

WORKFLOW = """
vars: {{work: {work}, sampler: balanced}}
state: ${{work}}/state.json
stages:
  - name: sweep
    command: sweep
    args: ["{dataset}"]
    options:
      out: ${{work}}/sweep
      task: singlelabel
      sampler: ${{sampler}}
      steps: 2
      batch_size: 8
      model_arg: ["hidden=8"]
    outputs: ["${{work}}/sweep/sweep.json"]
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep-reruns") / "ds"
    single_label_dataset(root, train=16, eval_clips=6)
    return root


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _sampler(run: Path) -> str:
    return RunDir(run).load_config().sampler


def test_sweep_starts_runs_with_other_settings_over(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = ["sweep", str(dataset), "--out", str(out), "--task", "singlelabel", "--steps", "2"]
    args += ["--batch-size", "8", "--model-arg", "hidden=8"]
    _invoke(*args)
    assert "(new)" not in _invoke(*args), "an identical finished run is kept"
    output = _invoke(*args, "--sampler", "shuffled")
    assert "starting over: sampler changed" in output
    run = out / "lr0.001-mixup0" / "all"
    assert _sampler(run) == "shuffled" and _sampler(run.with_name("all.previous")) == "balanced"
    output = _invoke(*[a if a != "2" else "3" for a in args], "--sampler", "shuffled")
    assert "resuming" in output and RunDir(run).load_summary()["step"] == 3


def test_sweep_with_more_steps_continues_its_runs(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = ["sweep", str(dataset), "--out", str(out), "--task", "singlelabel", "--batch-size", "8"]
    args += ["--model-arg", "hidden=8"]
    _invoke(*args, "--steps", "8")
    output = _invoke(*args, "--steps", "12")
    assert "all (resuming)" in output and "starting over" not in output
    run = RunDir(out / "lr0.001-mixup0" / "all")
    assert run.load_summary()["step"] == 12 and run.load_config().eval_every == 1
    assert not run.previous_path.exists()


def test_workflow_sweep_stage_run_again_starts_its_runs_over(dataset: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(WORKFLOW.format(work=work, dataset=dataset)).lstrip("\n"))
    run = work / "sweep" / "lr0.001-mixup0" / "all"
    _invoke("run", str(path))
    output = _invoke("run", str(path), "--set", "sampler=shuffled")
    assert "parameters changed" in output and "starting over" in output
    assert _sampler(run) == "shuffled" and _sampler(run.with_name("all.previous")) == "balanced"
    output = _invoke("run", str(path), "--set", "sampler=shuffled", "--from", "sweep")
    assert "starting over: the workflow re-runs this stage" in output
    assert _sampler(run.with_name("all.previous")) == "shuffled"


def test_sweep_with_fewer_steps_than_an_interrupted_run_trained_starts_it_over(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    args = ["sweep", str(dataset), "--out", str(out), "--task", "singlelabel", "--batch-size", "8"]
    args += ["--model-arg", "hidden=8"]
    _invoke(*args, "--steps", "4")
    run = RunDir(out / "lr0.001-mixup0" / "all")
    run.file("summary.json").unlink()  # as if stopped after its last checkpoint
    output = _invoke(*args, "--steps", "2")
    assert "all (starting over: trained 4 steps, not 2)" in output
    assert run.load_summary()["step"] == 2 and run.trained_steps() == 2
