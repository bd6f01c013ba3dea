"""Ctrl-C during ``audiomill run`` says once how to go on: the stage's line, without the
general hint every other command ends with."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.ingest_helpers import cli_env
from tests.test_workflow_interrupts import WORKFLOW

SCRIPT = """
import sys

import workflows.cli as cli

sys.argv = ["audiomill", "run", "wf.yaml"]
cli.main()
"""


def test_interrupted_run_says_how_to_go_on_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(textwrap.dedent(WORKFLOW).lstrip("\n"))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 130, proc.stderr
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert lines[-1] == (
        "interrupted during stage 'first', recorded in w/state.json: run again to go on from "
        "stage 'first'"
    )
    assert not any(line.startswith("interrupted: ") for line in lines)
