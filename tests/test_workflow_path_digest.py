"""A path written another way (relative to the directory ``audiomill run`` starts in, absolute,
with a trailing slash) is the same parameter: the stages that ran are skipped, and a finished
train run is kept, not set aside and trained again."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.training_fixtures import single_label_dataset
from workflows.cli import app
from workflows.workflow_resolve import resolve_workflow
from workflows.workflow_schema import load_workflow

ROOT = typer.main.get_command(app)
WORKFLOW = """
vars: {work: out}
state: ${work}/state.json
stages:
  - name: verify
    command: dataset verify
    args: ["${work}/ds"]
    outputs: []
  - name: train
    command: train
    args: ["${work}/ds"]
    options: {out: "${work}/run", task: singlelabel, steps: 2, batch_size: 8,
              model_arg: ["hidden=8"]}
    outputs: ["${work}/run/best.weights.h5"]
"""


@pytest.fixture
def workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The workflow, with its dataset in ``out/ds``, run from ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    single_label_dataset(tmp_path / "out" / "ds", train=16, eval_clips=6)
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(WORKFLOW).lstrip("\n"))
    return path


def _digests(path: Path, work: str) -> list[str]:
    plan = resolve_workflow(load_workflow(path, ROOT), {"work": work}, ROOT)
    return [s.digest for s in plan.stages]


def test_the_same_folder_written_three_ways_has_one_digest(workflow: Path) -> None:
    out = workflow.parent / "out"
    assert (
        _digests(workflow, "out") == _digests(workflow, str(out)) == _digests(workflow, f"{out}/")
    )
    assert _digests(workflow, "out") != _digests(workflow, "other")


def test_absolute_paths_keep_the_digest_recorded_before(workflow: Path) -> None:
    out = str(workflow.parent / "out")
    plan = resolve_workflow(load_workflow(workflow, ROOT), {"work": out}, ROOT)
    for stage in plan.stages:
        text = json.dumps({"command": list(stage.argv)}, sort_keys=True, default=str)
        assert stage.digest == hashlib.sha256(text.encode()).hexdigest()


def test_a_relative_work_folder_given_absolute_or_with_a_slash_skips_every_stage(
    workflow: Path,
) -> None:
    out = workflow.parent / "out"
    for work in ("out", str(out), f"{out}/"):
        result = CliRunner().invoke(app, ["run", str(workflow), "--set", f"work={work}"])
        assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "verify: skipped" in output and "train: skipped" in output
    assert not (out / "run.previous").exists(), "the finished run was kept"
