"""Closed-set options of train and sweep declare their values, so a workflow's --dry-run refuses
``input: wavforms`` at its line, before any stage runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workflows.cli import app

WORKFLOW = """
stages:
  - name: fit
    command: {command}
    args: [ds]
    options:
      out: runs/a
      {option}
"""


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("input: wavforms", "option 'input' expects <embeddings|waveforms>, got 'wavforms'"),
        ("sampler: balance", "option 'sampler' expects <balanced|shuffled|weighted>"),
        ("task: multi-label", "option 'task' expects <multilabel|singlelabel>"),
        ("model: cnn_14", "option 'model' expects <str>, got 'cnn_14': --model must be one of"),
    ],
)
def test_dry_run_refuses_a_value_outside_the_options_set_at_its_line(
    tmp_path: Path, command: str, option: str, expected: str
) -> None:
    path = tmp_path / "wf.yaml"
    text = WORKFLOW.format(command=command, option=option)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    message = " ".join(result.output.split())
    assert result.exit_code == 2, message
    assert f"wf.yaml:7: stage 'fit': {expected}" in message
    assert "would run" not in message


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_the_command_line_names_the_option_and_its_values(tmp_path: Path, command: str) -> None:
    args = [command, str(tmp_path / "ds"), "--out", str(tmp_path / "r"), "--sampler", "x"]
    result = CliRunner().invoke(app, args)
    message = " ".join(result.output.replace("│", " ").split())  # the error panel's borders
    assert result.exit_code == 2, message
    assert "--sampler must be one of balanced, shuffled, weighted, got 'x'" in message
