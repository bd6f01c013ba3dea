"""A run being trained is never moved or deleted under its process: ``train --restart``,
``train --resume`` and :meth:`RunDir.set_aside` of a run another process holds are refused in
one line, and a lock left by a killed process blocks nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeling.runs import RunDir
from schemas.classmap import ClassMap
from tests.ingest_helpers import REPO, cli_env
from tests.test_out_dirs_runs import _fake_run, _tree
from tests.training_fixtures import embedding_config, single_label_dataset
from workflows.cli import app

IN_USE = "is in use: another process is training it"

HOLD = """
import sys, time
from modeling.runs import RunDir
lock = RunDir(sys.argv[1]).locked()
lock.__enter__()
print("held", flush=True)
time.sleep(300)
"""

SET_ASIDE = """
import sys
from modeling.runs import RunDir
try:
    RunDir(sys.argv[1]).set_aside()
except OSError as exc:
    print(exc)
    sys.exit(3)
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return single_label_dataset(tmp_path_factory.mktemp("locks") / "ds", train=16).root


@pytest.fixture
def holder() -> Iterator[Callable[[Path], subprocess.Popen]]:
    """Start a process that holds a run's lock (as a training process does) until killed."""
    procs: list[subprocess.Popen] = []

    def hold(run: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(run)],
            cwd=REPO,
            env=cli_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_set_aside_refuses_a_run_another_process_holds(tmp_path: Path, holder) -> None:
    run = _fake_run(tmp_path / "mlp")
    before = _tree(run)
    proc = holder(run)
    with pytest.raises(OSError, match=f"run {run} {IN_USE}"):
        RunDir(run).set_aside()
    assert _tree(run) == before and not RunDir(run).previous_path.exists()
    _kill(proc)
    assert RunDir(run).lock_path.exists()  # left by the killed process
    assert RunDir(run).set_aside().previous == tmp_path / "mlp.previous"
    assert _tree(tmp_path / "mlp.previous") == before
    assert not RunDir(run).lock_path.exists()


def test_set_aside_refuses_when_the_previous_run_is_held(tmp_path: Path, holder) -> None:
    run = _fake_run(tmp_path / "mlp")
    previous = _fake_run(tmp_path / "mlp.previous")
    kept = _tree(previous)
    holder(previous)
    with pytest.raises(OSError, match=f"run {previous} {IN_USE}"):
        RunDir(run).set_aside()
    assert run.is_dir() and _tree(previous) == kept


def test_lock_file_is_no_part_of_the_run(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "mlp")
    with RunDir(run).locked():
        assert RunDir(run).lock_path.parent == tmp_path
        assert RunDir(run).lock_path.name.startswith(".")
        assert RunDir(run).set_aside().previous == tmp_path / "mlp.previous"
        assert RunDir(run).lock_path.exists() and not run.exists()
    assert sorted(os.listdir(tmp_path)) == ["mlp.previous"]


def _train_args(dataset: Path, run: Path, *more: str) -> list[str]:
    args = ["train", str(dataset), "--out", str(run), "--steps", "2", "--eval-every", "2"]
    return [*args, "--batch-size", "8", "--model-arg", "hidden=8", "--task", "singlelabel", *more]


def test_train_restart_and_resume_refuse_a_run_being_trained(
    dataset: Path, tmp_path: Path, holder
) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    assert runner.invoke(app, _train_args(dataset, run)).exit_code == 0
    before = _tree(run)
    proc = holder(run)
    for flag in ("--restart", "--resume"):
        result = runner.invoke(app, _train_args(dataset, run, flag, "--steps", "4"))
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert result.exit_code == 2, result.output
        assert len(errors) == 1 and f"{run} {IN_USE}" in errors[0], result.output
        assert _tree(run) == before and not (tmp_path / "run.previous").exists()
    _kill(proc)
    result = runner.invoke(app, _train_args(dataset, run, "--restart"))
    assert result.exit_code == 0, result.output
    assert _tree(tmp_path / "run.previous") == before


def test_training_holds_its_run_against_other_processes(dataset: Path, tmp_path: Path) -> None:
    from modeling.training import train

    run = tmp_path / "run"
    tries: list[subprocess.CompletedProcess] = []

    def try_set_aside(step: int, total: int, logs: dict) -> None:
        if not tries:
            tries.append(
                subprocess.run(
                    [sys.executable, "-c", SET_ASIDE, str(run)],
                    cwd=REPO,
                    env=cli_env(),
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            )

    config = embedding_config(dataset, task="singlelabel", steps=2, eval_every=2)
    train(config, run, classes=ClassMap.load(dataset / "classes.csv"), progress=try_set_aside)
    assert tries[0].returncode == 3, tries[0].stderr
    assert f"run {run} {IN_USE}" in tries[0].stdout
    assert RunDir(run).finished and not RunDir(run).lock_path.exists()
