"""``train --resume`` on another dataset than the run's is refused naming both, before any check
of what that dataset holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from tests.test_train_options_model_args import _error
from tests.training_fixtures import single_label_dataset
from workflows.cli import app


def test_resume_on_another_dataset_is_refused(tmp_path: Path) -> None:
    first = single_label_dataset(tmp_path / "first", train=16, eval_clips=6).root
    other = tmp_path / "other"
    shutil.copytree(first, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["splits"].pop("eval")
    manifest["embeddings"]["vggish"].pop("eval")
    (other / "manifest.json").write_text(json.dumps(manifest))
    run = tmp_path / "run"
    args = ["--out", str(run), "--steps", "2", "--batch-size", "8"]
    result = CliRunner().invoke(app, ["train", str(first), *args])
    assert result.exit_code == 0, result.output
    before = (run / "run.json").read_text()
    assert _error(["train", str(other), "--out", str(run), "--resume", "--steps", "3"]) == (
        f"error: --resume continues run {run}, trained on dataset {first}, but the dataset "
        f"given is {other}: give the run's dataset, or start a new run (--restart)"
    )
    assert (run / "run.json").read_text() == before
    result = CliRunner().invoke(app, ["train", str(first), "--out", str(run), "--resume"])
    assert result.exit_code == 0, result.output
