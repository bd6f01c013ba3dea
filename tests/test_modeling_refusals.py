"""train and sweep refuse what they cannot train or rank before writing anything: a learning
rate that is not positive and finite, a sweep whose runs evaluate nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.dataset_builders import make_dataset
from tests.training_fixtures import separable_embedding, single_label_dataset
from workflows.cli import app


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refusals") / "ds"
    single_label_dataset(root, train=16, eval_clips=6)
    return root


@pytest.mark.parametrize("lr", ["-1", "0", "nan", "inf"])
def test_train_and_sweep_refuse_a_learning_rate_that_is_not_positive(
    dataset: Path, tmp_path: Path, lr: str
) -> None:
    out = tmp_path / "out"
    common = [str(dataset), "--out", str(out), "--steps", "1", "--task", "singlelabel"]
    for args in (["train", *common, "--lr", lr], ["sweep", *common, "--lr", f"1e-3,{lr}"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert f"error: --lr must be a positive, finite learning rate, got {float(lr):g}" in (
            result.output.splitlines()
        )
        assert not out.exists()


def test_sweep_without_an_evaluated_split_refuses_before_training(
    dataset: Path, tmp_path: Path
) -> None:
    root = tmp_path / "ds"
    make_dataset(
        root,
        {"train": [[i % 3] for i in range(16)]},
        num_classes=3,
        shard_clips=16,
        embedding_formats=("hdf5",),
        embedding_of=separable_embedding,
    )
    out = tmp_path / "sweep"
    args = ["sweep", str(root), "--out", str(out), "--lr", "1e-3,3e-3", "--steps", "3"]
    result = CliRunner().invoke(app, [*args, "--task", "singlelabel"])
    assert result.exit_code == 2, result.output
    assert (
        "error: sweep has nothing to rank the settings on: its runs evaluate no split (the "
        "dataset has no eval split); pass --eval-split NAME, --folds K or --fold-split NAME "
        "(repeated)"
    ) in result.output.splitlines()
    assert not out.exists()
    none = CliRunner().invoke(app, [*args[:1], str(dataset), *args[2:], "--eval-split", "none"])
    assert none.exit_code == 2, none.output
    assert "its runs evaluate no split (--eval-split none); pass" in none.output
    assert not out.exists()


WARNING = (
    "warning: --eval-split train is also a training split (--split): the scores measured during "
    "training, and the best weights chosen by them, are on clips the model trains on, not "
    "held-out ones"
)


def test_train_and_sweep_warn_when_they_evaluate_a_training_split(
    dataset: Path, tmp_path: Path
) -> None:
    common = [str(dataset), "--steps", "1", "--task", "singlelabel", "--model-arg", "hidden=8"]
    for command in ("train", "sweep"):
        out = tmp_path / command
        args = [command, *common, "--out", str(out), "--split", "train", "--eval-split", "train"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert " ".join(result.output.split()).count(WARNING) == 1, result.output
    held_out = CliRunner().invoke(app, ["train", *common, "--out", str(tmp_path / "held")])
    assert held_out.exit_code == 0, held_out.output
    assert "warning:" not in held_out.output
