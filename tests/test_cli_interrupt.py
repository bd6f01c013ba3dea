"""Ctrl-C in any command: one line saying how to go on, and exit status 130."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys

import workflows.cli as cli


@cli.app.command("stopped")
def stopped() -> None:
    raise KeyboardInterrupt


sys.argv = ["audiomill", "stopped"]
cli.main()
"""


def test_ctrl_c_in_a_command_says_how_to_resume(tmp_path: Path):
    script = tmp_path / "stopped.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert proc.returncode == 130
    assert proc.stderr.strip().splitlines()[-1] == "interrupted: re-run the same command to resume"
    assert "Traceback" not in proc.stderr
