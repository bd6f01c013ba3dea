"""Two ``audiomill run`` of one workflow (one records file) at once, as overlapping cron jobs
start them: the second is refused at once, naming the records file, and the first completes; a
lock left by a killed run blocks nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from typer.testing import CliRunner

from tests.ingest_helpers import REPO, cli_env
from workflows.cli import app


def wait_for_release(started: str, release: str) -> dict:
    """A stage that notes its start in ``started`` and runs until ``release`` exists."""
    with open(started, "a") as f:
        f.write("started\n")
    deadline = time.monotonic() + 120
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} never appeared")
        time.sleep(0.05)
    return {"clips": 1}


def _workflow(tmp_path: Path) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(f"""
        name: locked
        state: {tmp_path / "work" / "workflow-state.json"}
        stages:
          - name: wait
            call: {__name__}:wait_for_release
            kwargs: {{started: "{tmp_path / "started"}", release: "{tmp_path / "release"}"}}
            outputs: []
        """))  # fmt: skip
    return path


def _start_run(path: Path, tmp_path: Path) -> subprocess.Popen:
    """``audiomill run`` of ``path`` in a child process, once its stage has started."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflows", "run", str(path)],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    return proc


def _starts(tmp_path: Path) -> int:
    return (tmp_path / "started").read_text().count("started")


def test_second_run_of_a_running_workflow_is_refused(tmp_path: Path) -> None:
    path = _workflow(tmp_path)
    state = tmp_path / "work" / "workflow-state.json"
    first = _start_run(path, tmp_path)
    try:
        second = CliRunner().invoke(app, ["run", str(path)])
        errors = [line for line in second.output.splitlines() if line.startswith("error:")]
        assert second.exit_code == 2, second.output
        assert errors == [
            f"error: another `audiomill run` is running this workflow (state {state})"
        ], second.output
        assert _starts(tmp_path) == 1
        (tmp_path / "release").touch()
        output, _ = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, output
    assert "wait: done" in output
    again = CliRunner().invoke(app, ["run", str(path)])
    assert again.exit_code == 0 and "skipped, up to date" in again.output, again.output
    assert _starts(tmp_path) == 1
    assert sorted(os.listdir(state.parent)) == ["workflow-state.json"]


def test_a_killed_runs_lock_blocks_nothing(tmp_path: Path) -> None:
    path = _workflow(tmp_path)
    first = _start_run(path, tmp_path)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    (tmp_path / "release").touch()
    second = CliRunner().invoke(app, ["run", str(path)])
    assert second.exit_code == 0, second.output
    assert _starts(tmp_path) == 2
