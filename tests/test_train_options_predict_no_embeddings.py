"""``predict --dataset`` on a dataset without the run's embeddings says so (embed it), instead of
calling the clip ids unknown in an empty list of splits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeling.inference import predict_clips
from tests.inference_fixtures import Served, served_runs
from workflows.cli import app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Served:
    return served_runs(tmp_path_factory, worker_id)


def _without_embeddings(served: Served, tmp_path: Path) -> Path:
    copy = tmp_path / "noemb"
    shutil.copytree(served.root, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["embeddings"] = {}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_predict_names_a_dataset_without_embeddings(served: Served, tmp_path: Path) -> None:
    dataset = _without_embeddings(served, tmp_path)
    result = CliRunner().invoke(
        app, ["predict", str(served.emb), "eval-clip0004_4000", "--dataset", str(dataset)]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: not an audio file, and {dataset} has no vggish embeddings (the run's input) to "
        "look clip ids up in; compute them with `audiomill embed`: eval-clip0004_4000"
    ], result.output


def test_predict_clips_names_a_dataset_without_waveforms(served: Served, tmp_path: Path) -> None:
    dataset = _without_embeddings(served, tmp_path)
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["splits"] = {}
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"has no waveform shards \(the run's input\) to look"):
        predict_clips(served.wave, dataset, ["eval-clip0004_4000"])
