"""Workflow train stages that run again: started over, or resumed only when left unfinished."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeling.runs import RunDir
from tests.training_fixtures import single_label_dataset
from workflows.cli import app

WORKFLOW = """
vars: {{work: {work}, bs: 8, steps: 2}}
state: ${{work}}/state.json
stages:
  - name: train
    command: train
    args: ["{dataset}"]
    options:
      out: ${{work}}/run
      task: singlelabel
      steps: ${{steps}}
      batch_size: ${{bs}}
      model_arg: ["hidden=8"]
      {resume}
    outputs: ["${{work}}/run/best.weights.h5"]
  - name: evaluate
    command: evaluate
    args: ["${{work}}/run", "{dataset}"]
    options: {{split: eval, out: "${{work}}/eval"}}
    outputs: ["${{work}}/eval/metrics.json"]
    needs: [train]
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wf-train") / "ds"
    single_label_dataset(root, train=16, eval_clips=6)
    return root


def _workflow(tmp_path: Path, dataset: Path, resume: bool) -> tuple[Path, Path]:
    work = tmp_path / "w"
    text = WORKFLOW.format(work=work, dataset=dataset, resume="resume: true" if resume else "")
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path, work


def _run(path: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["run", str(path), *args])
    assert result.exit_code == 0, result.output
    return result.output


def _batch_size(run: Path) -> int:
    return RunDir(run).load_config().batch_size


@pytest.mark.parametrize("resume", [True, False])
def test_changed_train_stage_starts_over_and_keeps_the_old_run(
    dataset: Path, tmp_path: Path, resume: bool
) -> None:
    path, work = _workflow(tmp_path, dataset, resume)
    _run(path)
    output = _run(path, "--set", "bs=12")
    assert "parameters changed" in output
    assert _batch_size(work / "run") == 12 and _batch_size(work / "run.previous") == 8
    assert (work / "eval" / "metrics.json").is_file()
    output = _run(path, "--set", "bs=12", "--set", "steps=3")
    assert RunDir(work / "run").load_summary()["step"] == 3
    assert RunDir(work / "run.previous").load_summary()["step"] == 2
    assert _batch_size(work / "run.previous") == 12
    assert not list(work.glob(".run.previous*")), "the older kept run is deleted"


def test_unfinished_train_stage_resumes_with_the_same_parameters(
    dataset: Path, tmp_path: Path
) -> None:
    path, work = _workflow(tmp_path, dataset, resume=True)
    _run(path)
    state = json.loads((work / "state.json").read_text())
    state["stages"]["train"]["status"] = "failed"
    (work / "state.json").write_text(json.dumps(state))
    output = _run(path)
    assert (
        "already trained 2 steps; nothing to do" in output and not (work / "run.previous").exists()
    )


def test_run_again_after_ctrl_c_keeps_the_finished_run_not_the_interrupted_one(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modeling.training

    path, work = _workflow(tmp_path, dataset, resume=False)
    _run(path)  # a finished 2-step run
    save_weights = modeling.training._save_weights

    def ctrl_c_at_the_end(model: object, target: Path) -> None:
        if target.name == "last.weights.h5":
            raise KeyboardInterrupt
        save_weights(model, target)

    monkeypatch.setattr(modeling.training, "_save_weights", ctrl_c_at_the_end)
    result = CliRunner().invoke(app, ["run", str(path), "--set", "steps=4"])
    assert result.exit_code == 130, result.output
    finished = work / "run.previous"
    assert RunDir(finished).load_summary()["step"] == 2
    assert not RunDir(work / "run").finished, "interrupted after its last checkpoint"
    files = {p.name: p.read_bytes() for p in finished.rglob("*") if p.is_file()}
    monkeypatch.undo()
    output = _run(path, "--set", "steps=4")
    assert "unfinished: deleted" in " ".join(output.split())
    assert {p.name: p.read_bytes() for p in finished.rglob("*") if p.is_file()} == files
    assert RunDir(work / "run").load_summary()["step"] == 4
    assert not list(work.glob(".run*")), "nothing half-deleted is left"
