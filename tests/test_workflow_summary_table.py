"""The workflow summary table, printed to a file at 80 columns: stage names are shown whole."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

WORKFLOW = """
vars: {work: w}
state: ${work}/state.json
stages:
  - name: train-attention-on-embeddings
    call: tests.test_workflow_summary_table:report
    kwargs: {}
  - name: evaluate-attention-on-embeddings
    call: tests.test_workflow_summary_table:report
    kwargs: {}
"""


def report() -> dict:
    """A stage that reports numbers for every column of the table."""
    return {"clips": 40, "dataset_clips": 150, "failures": {"unavailable": 3, "silent": 2}}


def test_stage_names_are_whole_at_80_columns_in_a_file(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(textwrap.dedent(WORKFLOW).lstrip("\n"))
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(Path(__file__).parents[1])}
    log = tmp_path / "log"
    with log.open("w") as fh:
        command = [sys.executable, "-m", "workflows", "run", "wf.yaml"]
        done = subprocess.run(command, cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.STDOUT,
                              timeout=120)  # fmt: skip
    output = log.read_text()
    assert done.returncode == 0, output
    table = output[output.index("┏") :]
    assert max(len(line) for line in table.splitlines()) <= 80, table
    assert "│ train-attention-on-embeddings " in table, table
    assert "│ evaluate-attention-on-embeddings " in table, table
    assert "…" not in table, table
