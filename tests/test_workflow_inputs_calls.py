"""A call stage's function and its kwargs are checked when the file is read: a missing function,
a kwarg the function has no parameter for, or a required one left out is an error naming the
file and line, in a dry run too; at run time such a call fails with that message, not with a
TypeError located in the runner."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from workflows.cli import app
from workflows.runner import CallError, call_function, execute
from workflows.workflow_resolve import resolve_workflow
from workflows.workflow_schema import WorkflowError, kwargs_problem, load_workflow

ROOT = typer.main.get_command(app)


def takes_two(a: str, b: int = 1) -> dict:
    """A step with one required and one optional argument."""
    return {"clips": b, "a": a}


def takes_any(a: str, **rest: object) -> int:
    """A step that takes any keyword arguments besides ``a``."""
    return len(rest)


def positional(a: str, /) -> str:
    """A step whose argument kwargs cannot give."""
    return a


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def _dry_run(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run", "--state",
                                      str(path.with_suffix(".json"))])  # fmt: skip
    return result.exit_code, " ".join(result.output.split())


# fmt: off
BAD = [
    ("""
     name: six
     stages:
       - name: third
         call: workflows.quickstart_steps:nosuch
     """, 4, "stage 'third': module 'workflows.quickstart_steps' has no function 'nosuch'"),
    ("""
     stages:
       - name: a
         call: tests.test_workflow_inputs_calls:takes_two
         kwargs:
           a: x
           c: 3
     """, 6, "kwargs: takes_two() takes no argument 'c' (it takes: a, b)"),
    ("""
     stages:
       - name: a
         call: tests.test_workflow_inputs_calls:takes_two
         kwargs: {b: 2}
     """, 3, "kwargs: takes_two() needs 'a' (it has no default)"),
    ("""
     stages:
       - name: a
         call: tests.test_workflow_inputs_calls:takes_two
     """, 3, "kwargs: takes_two() needs 'a'"),
    ("""
     stages:
       - name: a
         call: tests.test_workflow_inputs_calls:positional
         kwargs: {a: x}
     """, 3, "needs positional-only 'a', which kwargs cannot give"),
    ("""
     stages:
       - name: a
         call: tests.test_workflow_inputs_calls:WORKFLOW_THAT_IS_NOT_THERE
     """, 3, "has no function 'WORKFLOW_THAT_IS_NOT_THERE'"),
]
# fmt: on


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_call_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, message: str):
    path = _write(tmp_path, text)
    with pytest.raises(WorkflowError) as info:
        load_workflow(path, ROOT)
    assert info.value.line == line, str(info.value)
    assert f"wf.yaml:{line}: " in str(info.value) and message in str(info.value), str(info.value)


def test_dry_run_refuses_a_missing_function(tmp_path: Path):
    path = _write(tmp_path, BAD[0][0])
    code, output = _dry_run(path)
    assert code == 2, output
    assert "wf.yaml:4: stage 'third': module 'workflows.quickstart_steps' has no function " \
           "'nosuch'" in output  # fmt: skip
    assert "would run" not in output


GOOD = """
stages:
  - name: a
    call: tests.test_workflow_inputs_calls:takes_two
    kwargs: {a: x}
  - name: b
    call: tests.test_workflow_inputs_calls:takes_any
    kwargs: {a: x, anything: 1, more: 2}
"""


def test_good_kwargs_load_and_run(tmp_path: Path):
    path = _write(tmp_path, GOOD)
    plan = resolve_workflow(load_workflow(path, ROOT), {}, ROOT)
    assert [execute(s, ROOT)[:2] for s in plan.stages] == [(0, {"clips": 1, "a": "x"}), (0, 2)]


def test_a_module_that_fails_to_import_is_reported_at_its_line(tmp_path: Path, monkeypatch):
    (tmp_path / "broken_steps_mod.py").write_text("raise RuntimeError('half installed')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _write(tmp_path, """
        stages:
          - name: a
            call: broken_steps_mod:main
        """)  # fmt: skip
    with pytest.raises(WorkflowError, match=r"wf.yaml:3: .*importing module 'broken_steps_mod' "
                                            "failed: RuntimeError: half installed"):  # fmt: skip
        load_workflow(path, ROOT)


def test_run_time_call_error_names_the_call_not_the_runner(tmp_path: Path):
    path = _write(tmp_path, GOOD)
    stage = resolve_workflow(load_workflow(path, ROOT), {}, ROOT).stages[0]
    # the function changed after the file was read: kwargs it no longer takes
    bad = dataclasses.replace(stage, kwargs={"a": "x", "gone": 1})
    code, value, error = execute(bad, ROOT)
    assert code == 1 and value is None
    assert error == ("CallError: tests.test_workflow_inputs_calls:takes_two: kwargs: takes_two() "
                     "takes no argument 'gone' (it takes: a, b)")  # fmt: skip
    assert "runner.py" not in error
    with pytest.raises(CallError, match="has no function 'nosuch'"):
        call_function("workflows.quickstart_steps:nosuch", {})


def test_kwargs_problem_accepts_what_the_signature_takes():
    assert kwargs_problem(takes_any, ["a", "x", "y"]) is None
    assert kwargs_problem(takes_two, ["a"]) is None
