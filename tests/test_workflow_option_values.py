"""Option values of command stages are checked against the command's parameter types when the
file is read, so --dry-run refuses ``batch_size: sixteen`` at its line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from workflows.cli import app
from workflows.workflow_resolve import resolve_workflow
from workflows.workflow_schema import (
    WorkflowError,
    load_workflow,
    option_param,
    value_problem,
)

ROOT = typer.main.get_command(app)
WORKFLOW = """
vars: {{bs: 16}}
stages:
  - name: train
    command: train
    args: [ds]
    options:
      out: runs/a
      {option}
      model_arg: ["hidden=8"]
"""


def _write(tmp_path: Path, option: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(WORKFLOW.format(option=option)).lstrip("\n"))
    return path


def test_dry_run_refuses_a_value_of_the_wrong_type_at_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "batch_size: sixteen")
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert (
        "wf.yaml:8: stage 'train': option 'batch_size' expects <int>, got 'sixteen': "
        "Input should be a valid integer" in message
    ), message
    assert "would run" not in message


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("lr: fast", "option 'lr' expects <float>, got 'fast'"),
        ("steps: 2.5", "option 'steps' expects <int>, got '2.5'"),
    ],
)
def test_numbers_are_checked(tmp_path: Path, option: str, message: str) -> None:
    with pytest.raises(WorkflowError, match=message) as info:
        resolve_workflow(load_workflow(_write(tmp_path, option), ROOT), {}, ROOT)
    assert info.value.line == 8


def test_a_variable_with_a_bad_value_is_reported_where_the_option_uses_it(tmp_path: Path):
    path = _write(tmp_path, "batch_size: ${bs}")
    path.write_text(path.read_text().replace("bs: 16", "bs: many"))
    with pytest.raises(WorkflowError) as info:
        resolve_workflow(load_workflow(path, ROOT), {}, ROOT)
    assert info.value.line == 8
    assert "option 'batch_size' expects <int>, got 'many'" in str(info.value)


@pytest.mark.parametrize("option", ["batch_size: 8", "lr: 1e-3", "epochs: 0.5", "steps: ${bs}"])
def test_values_of_the_right_type_pass(tmp_path: Path, option: str) -> None:
    plan = resolve_workflow(load_workflow(_write(tmp_path, option), ROOT), {}, ROOT)
    assert plan.stages[0].argv[:3] == ("train", "--out", "runs/a")


def test_click_options_are_converted_by_their_type_and_paths_left_alone() -> None:
    @click.command()
    @click.option("--count", type=int)
    @click.option("--kind", type=click.Choice(["a", "b"]))
    @click.option("--seed", type=int, multiple=True)
    @click.option("--src", type=click.Path(exists=True))
    def command(count: int, kind: str, seed: tuple[int, ...], src: str) -> None:
        """A click command."""

    def problem(key: str, text: str) -> str | None:
        return value_problem(option_param(command, key), text)

    assert problem("count", "3") is None and problem("seed", "4") is None
    assert problem("count", "x") == "expects integer, got 'x': 'x' is not a valid integer."
    assert problem("kind", "c") is not None and problem("kind", "a") is None
    assert problem("seed", "y") is not None
    assert problem("src", "made/by/an/earlier/stage") is None
