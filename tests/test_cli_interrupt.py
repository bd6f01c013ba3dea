"""Ctrl-C in any command: one line saying how to go on, and exit status 130."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys

import typer

import workflows.cli as cli


@cli.app.command({name!r})
def stopped(resume: bool = typer.Option(False, "--resume")) -> None:
    raise KeyboardInterrupt


sys.argv = ["audiomill", *{args!r}]
cli.main()
"""


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["stopped"], "re-run the same command to resume"),
        (["train"], "re-run the same command with --resume to continue the run"),
        (["train", "--resume"], "re-run the same command to resume"),
    ],
)
def test_ctrl_c_in_a_command_says_how_to_resume(tmp_path: Path, args: list[str], hint: str):
    script = tmp_path / "stopped.py"
    script.write_text(SCRIPT.format(name=args[0], args=args))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert proc.returncode == 130
    assert proc.stderr.strip().splitlines()[-1] == f"interrupted: {hint}"
    assert "Traceback" not in proc.stderr
