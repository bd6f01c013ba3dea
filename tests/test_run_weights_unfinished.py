"""A run without the weights asked for: where an unfinished one stopped, or has it trained."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeling.evaluation import load_run
from tests.inference_fixtures import Served, served_runs
from workflows.cli import app


@pytest.fixture
def unfinished(
    tmp_path_factory: pytest.TempPathFactory, worker_id: str, tmp_path: Path
) -> tuple[Served, Path]:
    """The served runs and a copy of their embedding run as if killed after step 30 (of 60)."""
    served = served_runs(tmp_path_factory, worker_id)
    run = tmp_path / "run"
    shutil.copytree(served.emb, run)
    (run / "last.weights.h5").unlink()
    for checkpoint in (run / "checkpoints").glob("step-*.npz"):
        if checkpoint.name != "step-00000030.npz":
            checkpoint.unlink()
    return served, run


def test_last_weights_of_an_unfinished_run_say_where_it_stopped(
    unfinished: tuple[Served, Path], tmp_path: Path
) -> None:
    served, run = unfinished
    with pytest.raises(FileNotFoundError) as caught:
        load_run(run, "last")
    assert str(caught.value) == (
        f"run {run} has no last.weights.h5: it stopped before its last step (checkpoints up "
        f"to step 30 of 60): finish it with `audiomill train {served.root} --out {run} "
        "--resume`, or use --weights best"
    )
    assert load_run(run, "best").weights.name == "best.weights.h5"
    args = ["evaluate", str(run), str(served.root), "--out", str(tmp_path / "ev")]
    cli = CliRunner().invoke(app, [*args, "--weights", "last"])
    assert cli.exit_code == 2 and "checkpoints up to step 30 of 60" in cli.output

    (run / "best.weights.h5").unlink()
    with pytest.raises(FileNotFoundError, match=r"--resume`$"):
        load_run(run, "best")


def test_weights_of_a_run_without_checkpoints_ask_whether_it_trained(
    unfinished: tuple[Served, Path],
) -> None:
    _, run = unfinished
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(FileNotFoundError, match=r"has no last.weights.h5: has it trained\?$"):
        load_run(run, "last")
