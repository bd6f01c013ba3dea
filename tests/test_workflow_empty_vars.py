"""An empty variable used as a folder (``${work}/dataset``) is refused, naming the variable,
where it made paths under the filesystem root."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from workflows.cli import app
from workflows.workflow_resolve import resolve_workflow
from workflows.workflow_schema import WorkflowError, load_workflow

ROOT = typer.main.get_command(app)
WORKFLOW = """
vars:
  work: out
  sub: ${work}/sub
  tag: ""
  so: ""
stages:
  - name: info
    command: dataset info
    args: ["x${tag}-y"]
    options: {storage_options: "${so}"}
  - name: py
    call: tests.workflow_helpers:calls
    kwargs: {counter: "${sub}/c"}
"""


def _resolve(tmp_path: Path, **overrides: str) -> object:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(WORKFLOW).lstrip("\n"))
    return resolve_workflow(load_workflow(path, ROOT), overrides, ROOT)


@pytest.mark.parametrize("empty", ["", " "])
def test_empty_folder_variable_is_refused(tmp_path: Path, empty: str) -> None:
    with pytest.raises(WorkflowError) as info:
        _resolve(tmp_path, work=empty)
    assert str(info.value) == (
        f"{tmp_path / 'wf.yaml'}:3: variable 'work' is empty, but '${{work}}/sub' uses it as a "
        "folder: pass --set work=DIR (. for the current one)"
    )


def test_empty_variables_elsewhere_are_fine(tmp_path: Path) -> None:
    info, py = _resolve(tmp_path, work=".").stages
    assert info.argv == ("dataset", "info", "x-y") and py.kwargs == {"counter": "./sub/c"}


def test_recipe_with_empty_work_stops_before_running(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["run", "recipes/whale", "--set", "root=data", "--set", "work=", "--dry-run"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "variable 'work' is empty" in result.output and "/workflow-state" not in result.output
