"""The number of positional ``args`` of a command stage is checked against the command's
arguments when the file is read: too few or too many are one error naming the file, the line and
the arguments, before anything runs (also with --dry-run)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workflows.cli import app

WORKFLOW = """
state: {work}/state.json
stages:
  - name: first
    call: tests.workflow_helpers:count_call
    kwargs: {{counter: "{work}/c-first"}}
  - name: bad
    command: {command}
    args: {args}
"""


def _write(tmp_path: Path, command: str, args: str) -> Path:
    text = WORKFLOW.format(work=tmp_path / "w", command=command, args=args)
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("evaluate", "[/tmp/x]", "'evaluate' takes 2 args (RUN DATASET), got 1"),
        ("train", "[/tmp/a, /tmp/b]", "'train' takes 1 arg (DATASET), got 2"),
        ("predict", "[/tmp/run]", "'predict' takes at least 2 args (RUN INPUTS...), got 1"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False])
def test_wrong_number_of_args_is_refused_at_the_stage_line_before_anything_runs(
    tmp_path: Path, command: str, args: str, message: str, dry_run: bool
) -> None:
    path = _write(tmp_path, command, args)
    result = CliRunner().invoke(app, ["run", str(path), *(["--dry-run"] if dry_run else [])])
    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"{path}:8: stage 'bad': {message}" in output
    assert not (tmp_path / "w").exists(), "nothing ran"


def test_the_right_number_of_args_passes(tmp_path: Path) -> None:
    path = _write(tmp_path, "predict", "[/tmp/run, a.wav, b.wav]")
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
