"""A records (state) file that cannot be read or written, a folder in its place included, is one
error line naming the file, with exit status 2 like other usage errors, never a traceback."""

from __future__ import annotations

import errno
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workflows.cli import app

HELPERS = "tests.workflow_helpers"


def _workflow(tmp_path: Path, state: str = "") -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(f"""
        name: tiny
        {f"state: {state}" if state else ""}
        stages:
          - name: one
            call: {HELPERS}:count_call
            kwargs: {{counter: "{tmp_path / "calls"}"}}
        """))  # fmt: skip
    return path


def _run(*args: str | Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["run", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


def _error(lines: list[str]) -> str:
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, lines
    return errors[0]


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_state_option_naming_a_folder_is_a_usage_error(tmp_path: Path, dry_run: list[str]):
    folder = tmp_path / "statedir"
    folder.mkdir()
    code, lines = _run(_workflow(tmp_path), "--state", folder, *dry_run)
    assert code == 2
    assert f"state file {folder} is a folder, not a file" in _error(lines)
    assert "--state" in _error(lines)
    assert not (tmp_path / "calls").exists()


def test_state_key_naming_a_folder_is_a_usage_error(tmp_path: Path):
    folder = tmp_path / "statedir"
    folder.mkdir()
    code, lines = _run(_workflow(tmp_path, state=str(folder)))
    assert code == 2 and f"state file {folder} is a folder, not a file" in _error(lines)


def test_unreadable_state_file_is_one_error_line(tmp_path: Path, monkeypatch):
    state = tmp_path / "state.json"
    state.write_text('{"stages": {}}')
    real = Path.read_text

    def failing(self: Path, *args, **kwargs) -> str:
        if self == state:
            raise OSError(errno.EIO, "Input/output error", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", failing)
    code, lines = _run(_workflow(tmp_path), "--state", state)
    assert code == 2
    assert f"state file {state} cannot be read (Input/output error)" in _error(lines)
    assert not (tmp_path / "calls").exists()


def test_unwritable_state_file_is_one_error_line(tmp_path: Path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    state = blocker / "state.json"
    code, lines = _run(_workflow(tmp_path), "--state", state)
    assert code == 2
    message = _error(lines)
    assert f"cannot write state file {state} ({blocker} is a file, not a folder)" in message
    assert "stage 'one'" in message and "--state" in message
