"""A Ctrl-C during a workflow names the stage and what running again does with it, and the next
run says it was interrupted; a hand-edited state file is refused in one line, naming it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workflows.cli import app

WORKFLOW = """
vars: {work: w}
state: ${work}/state.json
stages:
  - name: first
    call: tests.test_workflow_interrupts:interrupt
    kwargs: {}
"""


def interrupt() -> None:
    """A stage stopped by Ctrl-C."""
    raise KeyboardInterrupt


def _run(tmp_path: Path, *args: str) -> tuple[int, str]:
    (tmp_path / "wf.yaml").write_text(textwrap.dedent(WORKFLOW).lstrip("\n"))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "wf.yaml"), *args])
    return result.exit_code, result.output


def test_interrupt_names_the_stage_and_is_noted_next_time(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = _run(tmp_path)
    assert code == 130
    assert output.splitlines()[-1] == (
        "interrupted during stage 'first', recorded in w/state.json: run again to go on from "
        "stage 'first'"
    )
    record = json.loads(Path("w/state.json").read_text())["stages"]["first"]
    assert record["error"] == "interrupted"
    code, output = _run(tmp_path, "--dry-run")
    assert code == 0 and "would run (interrupted last time)" in output


TRAIN = """
vars: {work: w}
state: ${work}/state.json
stages:
  - name: train
    command: train
    args: [ds]
    options: {out: "${work}/run", steps: 2%s}
"""


@pytest.mark.parametrize(
    "resume, then",
    [(", resume: true", "its run resumes"), ("", "its run starts over"),
     (", resume: false", "its run starts over")],
)  # fmt: skip
def test_interrupted_train_stage_says_whether_its_run_resumes(
    tmp_path: Path, monkeypatch, resume: str, then: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("workflows.runner.invoke_command", lambda *a, **k: interrupt())
    (tmp_path / "wf.yaml").write_text(textwrap.dedent(TRAIN % resume).lstrip("\n"))
    result = CliRunner().invoke(app, ["run", "wf.yaml"])
    assert result.exit_code == 130, result.output
    assert result.output.splitlines()[-1] == (
        "interrupted during stage 'train', recorded in w/state.json: run again to go on from "
        f"stage 'train' ({then})"
    )


@pytest.mark.parametrize(
    "record, problem",
    [
        ("x", "is not a JSON object"),
        ({"status": "finished", "upstream": "x"}, "has 'upstream' that is not a JSON object"),
        ({"status": "finished", "summary": []}, "has 'summary' that is not a JSON object"),
        ({"status": "failed", "last_success": "x"}, "has 'last_success' that is not a JSON object"),
    ],
)
def test_malformed_state_file_is_refused(
    tmp_path: Path, monkeypatch, record: object, problem: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("w").mkdir()
    Path("w/state.json").write_text(json.dumps({"stages": {"first": record}}))
    code, output = _run(tmp_path, "--dry-run")
    assert code == 2
    assert output.strip() == (
        f"error: state file w/state.json is malformed: the record of stage 'first' {problem}: "
        "delete it to start over"
    )
