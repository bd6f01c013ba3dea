"""A command stage's shape is checked against its command when the file is read: too few or too
many positional ``args``, or a required option left out (train's --out, embed's --checkpoint),
is one error naming the file, the stage's line and what is wrong, before anything runs (also
with --dry-run); a missing option failed only when the stage was reached."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from workflows.cli import app
from workflows.workflow_schema import find_command, missing_options

WORKFLOW = """
state: {work}/state.json
vars:
  out: ""
stages:
  - name: first
    call: tests.workflow_helpers:count_call
    kwargs: {{counter: "{work}/c-first"}}
  - name: bad
    command: {command}
    args: {args}
    options:
      {options}
"""


def _write(tmp_path: Path, command: str, args: str, options: str) -> Path:
    text = WORKFLOW.format(work=tmp_path / "w", command=command, args=args, options=options)
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


ARGS_LINE, STAGE_LINE = 10, 8


@pytest.mark.parametrize(
    ("command", "args", "options", "line", "message"),
    [
        (
            "evaluate",
            "[/x]",
            "out: /o",
            ARGS_LINE,
            "'evaluate' takes 2 args (RUN DATASET), got 1",
        ),
        ("train", "[/a, /b]", "out: /o", ARGS_LINE, "'train' takes 1 arg (DATASET), got 2"),
        (
            "predict",
            "[/run]",
            "top_k: 3",
            ARGS_LINE,
            "'predict' takes at least 2 args (RUN INPUTS...), got 1",
        ),
        ("train", "[/ds]", "steps: 3", STAGE_LINE, "'train' needs option 'out' (--out)"),
        ("train", "[/ds]", "out: ${out}", STAGE_LINE, "'train' needs option 'out' (--out)"),
        (
            "embed",
            "[/ds]",
            "batch_size: 8",
            STAGE_LINE,
            "'embed' needs options 'checkpoint' (--checkpoint), 'pca_params' (--pca-params)",
        ),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_wrong_stage_is_refused_at_its_line_before_anything_runs(
    tmp_path: Path, command: str, args: str, options: str, line: int, message: str, dry_run: bool
) -> None:
    path = _write(tmp_path, command, args, options)
    result = CliRunner().invoke(app, ["run", str(path), *(["--dry-run"] if dry_run else [])])
    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"{path}:{line}: stage 'bad': {message}" in output
    assert not (tmp_path / "w").exists(), "nothing ran"


@pytest.mark.parametrize(
    ("command", "args", "options"),
    [("predict", "[/run, a.wav, b.wav]", "top_k: 3"), ("train", "[/ds]", "out: /o")],
)
def test_a_stage_with_its_args_and_required_options_passes(
    tmp_path: Path, command: str, args: str, options: str
) -> None:
    path = _write(tmp_path, command, args, options)
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output


def test_missing_options_lists_the_required_options_not_given() -> None:
    train = find_command(typer.main.get_command(app), ("train",))
    assert [p.name for p in missing_options(train, {"steps"})] == ["out_dir"]
    assert missing_options(train, {"out_dir"}) == []
