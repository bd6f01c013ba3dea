"""A single-label run refuses clips without exactly one label before writing anything, naming
each by clip id, split and shard, with its label count: ``row 61`` matched nothing a user could
look up."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.dataset_builders import make_dataset
from tests.training_fixtures import separable_embedding
from workflows.cli import app

SHARD = "embeddings/vggish/{split}/shard-00001.h5"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train and eval: one label a clip; mixed: its last two clips have two labels and none."""
    root = tmp_path_factory.mktemp("single") / "ds"
    one_each = [[i % 3] for i in range(6)]
    make_dataset(
        root,
        {"train": one_each, "eval": one_each, "mixed": [*one_each, [0, 1], []]},
        num_classes=3,
        shard_clips=4,
        embedding_formats=("hdf5",),
        embedding_of=separable_embedding,
    )
    return root


def _refusal(split: str) -> str:
    shard = SHARD.format(split=split)
    return (
        "error: 2 clips do not have exactly one label, so the single-label task cannot use "
        f"them (use --task multilabel); for example {split}-clip0006_6000 (split {split}, "
        f"{shard}) has 2 labels; {split}-clip0007_7000 (split {split}, {shard}) has 0 labels"
    )


@pytest.mark.parametrize("splits", [["--split", "mixed"], ["--eval-split", "mixed"]])
def test_train_names_the_clips_of_training_or_evaluation_splits(
    dataset: Path, tmp_path: Path, splits: list[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", str(dataset), "--out", str(out), "--task", "singlelabel", "--steps", "1"]
    result = CliRunner().invoke(app, [*args, "--model-arg", "hidden=8", *splits])
    assert result.exit_code == 2, result.output
    assert " ".join(result.output.split()) == _refusal("mixed")
    assert not out.exists()


def test_evaluate_names_the_clips_before_scoring(dataset: Path, tmp_path: Path) -> None:
    run, out = tmp_path / "run", tmp_path / "eval"
    args = ["train", str(dataset), "--out", str(run), "--task", "singlelabel", "--steps", "1"]
    trained = CliRunner().invoke(app, [*args, "--model-arg", "hidden=8"])
    assert trained.exit_code == 0, trained.output
    result = CliRunner().invoke(
        app, ["evaluate", str(run), str(dataset), "--split", "mixed", "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert " ".join(result.output.split()) == _refusal("mixed")
    assert not out.exists()
