"""sweep scores each fold by its run's final evaluation, not its best checkpoint on that fold."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from modeling.runs import RunDir
from tests.training_fixtures import single_label_dataset
from workflows.cli import app

SETTING = "lr3-mixup0"  # diverges: its best evaluations are not its last
FOLDS = ("train", "eval")


def _sweep(dataset: Path, out: Path) -> str:
    args = ["sweep", str(dataset), "--out", str(out), "--lr", "3", "--steps", "8"]
    args += ["--fold-split", "train", "--fold-split", "eval", "--batch-size", "8"]
    args += ["--task", "singlelabel", "--model-arg", "hidden=8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_sweep_fold_values_are_final_evaluations(tmp_path: Path) -> None:
    dataset = tmp_path / "ds"
    single_label_dataset(dataset)
    out = tmp_path / "sweep"
    output = _sweep(dataset, out)
    histories = [RunDir(out / SETTING / fold).history() for fold in FOLDS]
    final = [history[-1]["accuracy"] for history in histories]
    best = [max(h["accuracy"] for h in history) for history in histories]
    assert final != best, "a fold whose best evaluation is not its last"
    [row] = json.loads((out / "sweep.json").read_text())
    assert row["values"] == final
    assert row["score"] == "final"
    assert "sweep: final accuracy per setting, over 2 fold(s)" in output
    assert _sweep(dataset, out).split("sweep:")[1] == output.split("sweep:")[1]
    assert json.loads((out / "sweep.json").read_text()) == [row]
