"""Class-weighted losses on mixed-up targets: each example's weight goes with its own share.

Mixup trains on ``lam * y_a + (1 - lam) * y_b``; a class-weighted loss must then be
``lam * w_a * CE(y_a) + (1 - lam) * w_b * CE(y_b)``, i.e. ``-sum_c w_c y_c log p_c``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from modeling.models import loss_for_task

WEIGHTS = [10.0, 1.0, 0.5]
LOGITS = np.array([[-1.0, 0.5, 0.2], [2.0, -0.3, 0.1], [0.0, 0.0, 3.0], [-8.0, 9.0, 0.4]], "f4")
CLASSES = np.array([0, 1, 2, 0])
PARTNERS = np.array([1, 0, 0, 2])
LAM = np.array([0.5, 0.8, 0.3, 0.95], "f4")


def _one_hot(classes: np.ndarray) -> np.ndarray:
    return np.eye(len(WEIGHTS), dtype="f4")[classes]


def _mixed() -> np.ndarray:
    lam = LAM[:, None]
    return lam * _one_hot(CLASSES) + (1 - lam) * _one_hot(PARTNERS)


def _per_example(y: np.ndarray, graph: bool) -> tuple[np.ndarray, np.ndarray]:
    """The weighted loss's per-example values and their gradient on the logits.

    ``graph`` traces a function, where Keras reads the logits behind the softmax.
    """
    loss = loss_for_task("singlelabel", WEIGHTS)

    def value_and_gradient(logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(logits)
            values = loss.call(tf.constant(y), tf.nn.softmax(logits))
        return values, tape.gradient(values, logits)

    step = tf.function(value_and_gradient) if graph else value_and_gradient
    values, gradient = step(tf.constant(LOGITS))
    return values.numpy(), gradient.numpy()


@pytest.mark.parametrize("graph", [False, True])
def test_one_hot_loss_is_the_class_weight_times_cross_entropy(graph: bool) -> None:
    y = _one_hot(CLASSES)

    def before(logits: tf.Tensor) -> tf.Tensor:
        p = tf.nn.softmax(logits)
        return ops.sum(y * np.float32(WEIGHTS), axis=-1) * ops.categorical_crossentropy(y, p)

    expected = (tf.function(before) if graph else before)(tf.constant(LOGITS)).numpy()
    np.testing.assert_array_equal(_per_example(y, graph)[0], expected)


@pytest.mark.parametrize("graph", [False, True])
def test_mixed_target_loss_mixes_the_weighted_losses_of_the_pair(graph: bool) -> None:
    own_loss, own_gradient = _per_example(_one_hot(CLASSES), graph)
    partner_loss, partner_gradient = _per_example(_one_hot(PARTNERS), graph)
    loss, gradient = _per_example(_mixed(), graph)
    np.testing.assert_allclose(loss, LAM * own_loss + (1 - LAM) * partner_loss, rtol=1e-6)
    lam = LAM[:, None]
    expected_gradient = lam * own_gradient + (1 - lam) * partner_gradient
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-5, atol=1e-6)


def test_rare_class_keeps_its_weight_in_a_mixed_pair() -> None:
    p = np.array([[0.2, 0.8]], "f4")
    y = np.array([[0.5, 0.5]], "f4")
    loss = float(loss_for_task("singlelabel", [10.0, 1.0]).call(y, p)[0])
    assert loss == pytest.approx(-0.5 * 10 * np.log(0.2) - 0.5 * np.log(0.8), rel=1e-6)


def test_class_without_weight_adds_nothing_to_a_mixed_pair() -> None:
    y = np.array([[0.7, 0.3, 0.0], [0.0, 0.0, 0.0]], "f4")
    p = np.array([[0.5, 0.3, 0.2]] * 2, "f4")
    values = loss_for_task("singlelabel", [2.0, 0.0, 1.0]).call(y, p).numpy()
    np.testing.assert_allclose(values, [-1.4 * np.log(0.5), 0.0], rtol=1e-6)


def test_weighted_loss_reduces_float16_outputs_in_float32() -> None:
    y, p = _mixed(), tf.nn.softmax(LOGITS).numpy()
    loss = loss_for_task("singlelabel", WEIGHTS)
    sample_weight = np.array([1.0, 0.0, 2.0, 1.0], "f4")
    reduced = loss(y, p.astype("float16"), sample_weight=sample_weight)
    per_example = loss.call(y, p.astype("float16").astype("float32")).numpy()
    assert reduced.dtype == tf.float32
    assert float(reduced) == pytest.approx(float(np.mean(per_example * sample_weight)), rel=1e-6)


@pytest.mark.parametrize("negative_weights", [None, [0.25, 2.0, 1.0]])
def test_binary_weighted_losses_are_already_linear_in_the_target(
    negative_weights: list[float] | None,
) -> None:
    loss = loss_for_task("multilabel", WEIGHTS, negative_weights)
    p = keras.activations.sigmoid(LOGITS).numpy()
    own, partner = _one_hot(CLASSES), _one_hot(PARTNERS)
    own[3, 1] = 1.0
    lam = LAM[:, None]
    mixed = loss.call(lam * own + (1 - lam) * partner, p).numpy()
    expected = LAM * loss.call(own, p).numpy() + (1 - LAM) * loss.call(partner, p).numpy()
    np.testing.assert_allclose(mixed, expected, rtol=1e-5)
