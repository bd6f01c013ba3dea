"""evaluate warns when it scores best weights on the split they were picked on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeling.evaluation import evaluate_run
from tests.inference_fixtures import Served, served_runs
from workflows.cli import app

PICKED = (
    "best.weights.h5 were picked on split 'eval' (the step with the highest accuracy there, the "
    "earliest on ties), so their scores on it overstate what they score on unseen clips: use "
    "--weights last, or a split the run did not pick on, for an unbiased figure"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Served:
    return served_runs(tmp_path_factory, worker_id)


@pytest.mark.parametrize(
    ("split", "which", "picked"),
    [("eval", "best", True), ("eval", "last", False), ("train", "best", False)],
)
def test_best_weights_scored_on_their_eval_split_are_flagged(
    served: Served, tmp_path: Path, split: str, which: str, picked: bool
) -> None:
    warnings: list[str] = []
    result = evaluate_run(
        served.emb, served.root, split, which=which, out_dir=tmp_path, warn=warnings.append
    )
    assert warnings == ([PICKED] if picked else [])
    assert result["weights_picked_on_this_split"] is picked
    assert json.loads((tmp_path / "metrics.json").read_text())["weights_picked_on_this_split"] is (
        picked
    )


def test_evaluate_cli_warns_once_about_best_weights_on_their_eval_split(
    served: Served, tmp_path: Path
) -> None:
    args = ["evaluate", str(served.wave), str(served.root), "--split", "eval"]
    best = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "best")])
    assert best.exit_code == 0, best.output
    assert " ".join(best.output.split()).count(f"warning: {PICKED}") == 1, best.output
    last = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "last"), "--weights", "last"])
    assert last.exit_code == 0 and "warning" not in last.output, last.output
