"""The VGGish weights a run's embeddings were made with: recorded by train, checked by predict,
evaluate and search."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import features.embed
import features.vggish_checkpoint
import features.vggish_postprocess
from features.vggish_checkpoint import checkpoint_sha256
from features.vggish_postprocess import pca_sha256
from modeling.embedding_provenance import check_shards
from modeling.inference import predict_files
from modeling.readers import ShardReader
from modeling.runs import RunDir
from modeling.training import train
from schemas.classmap import ClassMap
from tests import dataset_builders
from tests.inference_fixtures import Served, served_runs, vggish_files
from tests.training_fixtures import embedding_config, separable_embedding
from tests.vggish_fixtures import random_weights, write_pca, write_slim_checkpoint
from workflows.cli import app

WEIGHTS_A = {"checkpoint_sha256": "a" * 64, "pca_sha256": "p" * 64}
WEIGHTS_B = {"checkpoint_sha256": "b" * 64, "pca_sha256": "p" * 64}
COMMIT = dataset_builders.commit_embedding_shard


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Served:
    return served_runs(tmp_path_factory, worker_id)


def _dataset(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    weights: dict[str, dict | None],
    fmt: str = "hdf5",
) -> Path:
    """Single-label embeddings whose shards of each split record ``weights[split]``."""

    def with_weights(store, model, split, index, rows, attrs, *args):
        return COMMIT(store, model, split, index, rows, {**attrs, **(weights[split] or {})}, *args)

    monkeypatch.setattr(dataset_builders, "commit_embedding_shard", with_weights)
    shutil.rmtree(root, ignore_errors=True)
    dataset_builders.make_dataset(
        root,
        {"train": [[i % 3] for i in range(24)], "eval": [[i % 3] for i in range(12)]},
        num_classes=3,
        shard_clips=8,
        embedding_formats=(fmt,),
        embedding_of=separable_embedding,
    )
    return root


def _train(root: Path, run: Path, steps: int = 2, resume: bool = False):
    config = embedding_config(root, task="singlelabel", steps=steps, eval_every=2)
    return train(config, run, resume=resume, classes=ClassMap.load(root / "classes.csv"))


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_train_records_the_weights_of_its_embeddings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    root = _dataset(tmp_path / "ds", monkeypatch, {"train": WEIGHTS_A, "eval": WEIGHTS_A}, fmt)
    _train(root, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["embedding_provenance"] == {"model": "vggish", **WEIGHTS_A}
    _train(root, tmp_path / "run", steps=4, resume=True)
    assert RunDir(tmp_path / "run").load_config().embedding_provenance["checkpoint_sha256"] == (
        "a" * 64
    )
    _dataset(root, monkeypatch, {"train": WEIGHTS_B, "eval": WEIGHTS_B}, fmt)
    with pytest.raises(ValueError, match=r"--resume continues .* checkpoint sha256 aaaa.*bbbb"):
        _train(root, tmp_path / "run", steps=6, resume=True)


@pytest.mark.parametrize("eval_weights", [WEIGHTS_B, None], ids=["other", "unrecorded"])
def test_train_refuses_embeddings_of_mixed_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, eval_weights: dict | None
) -> None:
    root = _dataset(tmp_path / "ds", monkeypatch, {"train": WEIGHTS_A, "eval": eval_weights})
    with pytest.raises(ValueError, match="made with different weights") as raised:
        _train(root, tmp_path / "run")
    assert "train/shard-00000.h5" in str(raised.value)
    assert "eval/shard-00000.h5" in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_train_on_unrecorded_weights_records_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _dataset(tmp_path / "ds", monkeypatch, {"train": None, "eval": None})
    _train(root, tmp_path / "run")
    assert RunDir(tmp_path / "run").load_config().embedding_provenance is None


def _tone(path: Path, seconds: float) -> Path:
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * 16000)) / 16000), 16000)
    return path


def _recording(served: Served, run: Path, weights: dict[str, str]) -> Path:
    """A copy at ``run`` of the served embedding run, recording the VGGish ``weights``."""
    shutil.copytree(served.emb, run)
    config = json.loads((run / "run.json").read_text())
    config["embedding_provenance"] = {"model": "vggish", **weights}
    (run / "run.json").write_text(json.dumps(config))
    return run


@pytest.fixture
def recorded_run(
    served: Served, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> tuple[Path, str, str]:
    """A copy of the served embedding run recording the shared seeded VGGish files."""
    checkpoint, pca = vggish_files(tmp_path_factory, worker_id)
    weights = {"checkpoint_sha256": checkpoint_sha256(checkpoint), "pca_sha256": pca_sha256(pca)}
    return _recording(served, tmp_path / "run", weights), checkpoint, pca


def test_predict_refuses_other_vggish_files_and_hashes_once(
    recorded_run: tuple[Path, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, checkpoint, pca = recorded_run
    other_checkpoint = write_slim_checkpoint(tmp_path / "other.ckpt", random_weights(1))
    other_pca = tmp_path / "other_pca.npz"
    write_pca(other_pca, seed=1)
    audio = [_tone(tmp_path / "a.wav", 1.5), _tone(tmp_path / "b.wav", 0.5)]
    with pytest.raises(ValueError) as raised:
        predict_files(run, audio, checkpoint=other_checkpoint, pca_params=pca)
    message = str(raised.value)
    assert f"--checkpoint {other_checkpoint} (sha256 " in message
    assert "is not the checkpoint the embeddings of run" in message
    assert f"(--pca-params {pca} matches)" in message
    with pytest.raises(ValueError, match=r"--pca-params .*other_pca.npz .* is not the PCA file"):
        predict_files(run, audio, checkpoint=checkpoint, pca_params=str(other_pca))

    hashed: list[str] = []
    hash_files = features.vggish_checkpoint._sha256_files
    hash_pca = features.vggish_postprocess.pca_sha256
    monkeypatch.setattr(features.embed, "_EMBEDDERS", {})
    monkeypatch.setattr(
        features.vggish_checkpoint,
        "_sha256_files",
        lambda f: hashed.append("ckpt") or hash_files(f),
    )
    monkeypatch.setattr(
        features.vggish_postprocess, "pca_sha256", lambda p: hashed.append("pca") or hash_pca(p)
    )
    warnings: list[str] = []
    got = predict_files(run, audio, checkpoint=checkpoint, pca_params=pca, warn=warnings.append)
    assert [p.windows for p in got] == [1, 1]
    assert len(warnings) == 1 and "records no embed run" in warnings[0], "weights checked out"
    assert sorted(hashed) == ["ckpt", "pca"], "each file is hashed once per command"


def test_predict_cli_refuses_other_files_and_warns_for_older_runs(
    served: Served, recorded_run: tuple[Path, str, str], tmp_path: Path
) -> None:
    run, checkpoint, pca = recorded_run
    other_pca = tmp_path / "other_pca.npz"
    write_pca(other_pca, seed=1)
    audio = str(_tone(tmp_path / "a.wav", 1.0))
    runner = CliRunner()
    refused = runner.invoke(
        app,
        ["predict", str(run), audio, "--checkpoint", checkpoint, "--pca-params", str(other_pca)],
    )
    assert refused.exit_code == 2, refused.output
    assert "error:" in refused.output and "Traceback" not in refused.output
    assert f"--pca-params {other_pca} (sha256 " in refused.output
    assert f"(--checkpoint {checkpoint} matches)" in refused.output
    assert "rank" not in refused.stdout
    older = runner.invoke(
        app, ["predict", str(served.emb), audio, "--checkpoint", checkpoint, "--pca-params", pca]
    )
    assert older.exit_code == 0, older.output
    warning = [line for line in older.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 2 and "records no VGGish weights" in warning[1]
    assert "cannot tell which VGGish front end" in warning[0]
    assert "rank" in older.stdout


def _readers(root: Path, *splits: str) -> list[ShardReader]:
    return [ShardReader(root, split, "embeddings", model="vggish") for split in splits]


def test_check_shards_refuses_other_weights_and_passes_unrecorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_a = {"model": "vggish", **WEIGHTS_A}
    same = _readers(_dataset(tmp_path / "a", monkeypatch, {"train": WEIGHTS_A, "eval": WEIGHTS_A}))
    check_shards(run_a, same, "vggish", "runs/r")
    other = _dataset(tmp_path / "b", monkeypatch, {"train": WEIGHTS_B, "eval": WEIGHTS_B})
    with pytest.raises(ValueError) as raised:
        check_shards(run_a, _readers(other, "eval"), "vggish", "runs/r")
    message = str(raised.value)
    assert message.startswith("run runs/r was trained on vggish embeddings made with checkpoint ")
    assert f"but {other / 'embeddings/vggish/eval/shard-00000.h5'} was made with " in message
    assert "sha256 aaaaaaaaaaaa..." in message and "sha256 bbbbbbbbbbbb..." in message
    assert "re-embed the dataset with the run's checkpoint and PCA file" in message
    assert "\n" not in message
    check_shards(None, _readers(other, "eval"), "vggish", "runs/r")
    imported = _dataset(tmp_path / "n", monkeypatch, {"train": None, "eval": None})
    check_shards(run_a, _readers(imported, "train", "eval"), "vggish", "runs/r")


@pytest.mark.parametrize("recorded", [{"model": "vggish", **WEIGHTS_A}, None], ids=["a", "none"])
def test_check_shards_refuses_mixed_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: dict | None
) -> None:
    mixed = _dataset(tmp_path / "m", monkeypatch, {"train": WEIGHTS_A, "eval": None})
    with pytest.raises(ValueError, match="made with different weights") as raised:
        check_shards(recorded, _readers(mixed, "train", "eval"), "vggish", "runs/r")
    assert "eval/shard-00000.h5 with unrecorded weights" in str(raised.value)


SCORING = {
    "evaluate": lambda run, ds, out: ["evaluate", run, ds, "--out", out],
    "search": lambda run, ds, out: ["search", run, ds, "sound 0"],
    "predict --dataset": lambda run, ds, out: ["predict", run, "eval-clip0000_0", "--dataset", ds],
}


@pytest.mark.parametrize("command", list(SCORING))
def test_scoring_cli_refuses_shards_of_other_weights(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    run = str(_recording(served, tmp_path / "run", WEIGHTS_A))
    args = SCORING[command]
    runner = CliRunner()
    other = _dataset(tmp_path / "b", monkeypatch, {"train": WEIGHTS_B, "eval": WEIGHTS_B})
    refused = runner.invoke(app, args(run, str(other), str(tmp_path / "refused")))
    assert refused.exit_code == 2, refused.output
    errors = [line for line in refused.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in refused.output, refused.output
    assert f"run {run} was trained on vggish embeddings" in errors[0]
    assert "eval/shard-00000.h5 was made with checkpoint sha256 bbbbbbbbbbbb..." in errors[0]
    assert "re-embed the dataset" in errors[0]
    assert not (tmp_path / "refused").exists() and "rank" not in refused.stdout
    for name, weights in (("a", WEIGHTS_A), ("imported", None)):
        dataset = _dataset(tmp_path / name, monkeypatch, {"train": weights, "eval": weights})
        scored = runner.invoke(app, args(run, str(dataset), str(tmp_path / f"out-{name}")))
        assert scored.exit_code == 0, scored.output
