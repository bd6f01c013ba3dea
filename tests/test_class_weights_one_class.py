"""--class-weights on a one-class detector weights positives against negatives; multi-class
runs keep their per-class weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modeling.models import balanced_binary_weights, balanced_class_weights, loss_for_task
from modeling.runs import RunConfig, RunDir
from modeling.training import _build, open_train_data, train
from schemas.classmap import ClassMap
from tests.dataset_builders import make_dataset
from tests.training_fixtures import embedding_config, separable_embedding

TRAIN_LABELS = [[0] if i % 4 == 0 else [] for i in range(16)]  # 4 calls in 16 clips


def _detector_dataset(root: Path, train_labels: list[list[int]]) -> Path:
    make_dataset(
        root,
        {"train": train_labels, "eval": [[0], [], [], []]},
        num_classes=1,
        shard_clips=8,
        embedding_formats=("hdf5",),
        embedding_of=separable_embedding,
    )
    return root


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _detector_dataset(tmp_path_factory.mktemp("detector") / "ds", TRAIN_LABELS)


def _bce_terms(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return -y * np.log(p), -(1 - y) * np.log(1 - p)


def test_balanced_binary_weights_are_n_over_twice_each_side() -> None:
    labels = np.array([[1], [0], [0], [0]], bool)
    assert balanced_binary_weights(labels) == pytest.approx((4 / 2, 4 / 6))
    with pytest.raises(ValueError, match="4 of 4"):
        balanced_binary_weights(np.ones((4, 1), bool))
    with pytest.raises(ValueError, match="0 of 4"):
        balanced_binary_weights(np.zeros((4, 1), bool))


def test_binary_weighted_loss_weights_the_positive_and_negative_terms() -> None:
    y = np.array([[1.0], [0.0], [0.0], [0.7]], np.float32)  # the last one mixed up
    p = np.array([[0.6], [0.3], [0.1], [0.8]], np.float32)
    positive, negative = _bce_terms(y, p)
    expected = np.mean(2.0 * positive + (2 / 3) * negative)
    loss = loss_for_task("multilabel", [2.0], negative_weights=[2 / 3])(y, p)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_multiclass_weighted_loss_is_unchanged() -> None:
    y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    p = np.array([[0.6, 0.3], [0.2, 0.9], [0.7, 0.4]], np.float32)
    weights = balanced_class_weights(y)
    np.testing.assert_array_equal(weights, np.array([1.0, 1.0], np.float32))
    weights = np.array([2 / 3, 2.0], np.float32)
    positive, negative = _bce_terms(y, p)
    expected = np.mean((positive + negative) * weights)
    loss = loss_for_task("multilabel", weights.tolist())(y, p)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert loss_for_task("multilabel", weights.tolist()).get_config()["negative_weights"] is None


def test_one_class_run_compiles_the_balanced_binary_loss(detector: Path) -> None:
    config = embedding_config(detector, num_classes=1, sampler="shuffled", class_weights=True)
    model, _ = _build(config, open_train_data(config), None)
    loss = model.loss.get_config()
    assert loss["class_weights"] == pytest.approx([16 / (2 * 4)])
    assert loss["negative_weights"] == pytest.approx([16 / (2 * 12)])


def _detector_config(root: Path, steps: int, weighted: bool) -> RunConfig:
    return embedding_config(
        root, num_classes=1, sampler="shuffled", steps=steps, eval_every=2, class_weights=weighted
    )


def _trained(run: Path, step: int) -> dict[str, np.ndarray]:
    with np.load(RunDir(run).checkpoint_path(step)) as data:
        return {k: data[k] for k in data.files if k != "meta"}


def test_one_class_run_trains_differently_with_class_weights_and_resumes_with_them(
    detector: Path, tmp_path: Path
) -> None:
    classes = ClassMap.load(detector / "classes.csv")
    train(_detector_config(detector, 2, False), tmp_path / "plain", classes=classes)
    train(_detector_config(detector, 2, True), tmp_path / "weighted", classes=classes)
    plain, weighted = _trained(tmp_path / "plain", 2), _trained(tmp_path / "weighted", 2)
    assert plain.keys() == weighted.keys()
    assert any(not np.array_equal(plain[k], weighted[k]) for k in plain)
    assert RunDir(tmp_path / "weighted").load_config().class_weights is True
    resumed = train(_detector_config(detector, 4, True), tmp_path / "weighted", resume=True)
    assert resumed.resumed_from == 2
    train(_detector_config(detector, 4, True), tmp_path / "whole", classes=classes)
    whole, continued = _trained(tmp_path / "whole", 4), _trained(tmp_path / "weighted", 4)
    for key in whole:
        np.testing.assert_allclose(whole[key], continued[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_one_class_run_without_negatives_is_refused(tmp_path: Path) -> None:
    root = _detector_dataset(tmp_path / "ds", [[0]] * 8)
    with pytest.raises(ValueError, match="split train") as refused:
        train(
            _detector_config(root, 2, True),
            tmp_path / "run",
            classes=ClassMap.load(root / "classes.csv"),
        )
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "run").exists()
