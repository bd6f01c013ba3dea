"""Metrics (``modeling.metrics``) checked against scikit-learn and from-definition loops, on random,
heavily tied and degenerate inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import (
    average_precision_score,
    label_ranking_average_precision_score,
    roc_auc_score,
)
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from modeling.metrics import (
    accuracy,
    auc_per_class,
    average_precision_per_class,
    confusion_matrix,
    d_prime,
    evaluate_multilabel,
    evaluate_singlelabel,
    lwlrap,
    lwlrap_per_class,
    mean_auc,
    mean_average_precision,
)

# (seed, N, C, positive rate): several seeds on small C, one AudioSet-sized C with small N.
CASES = [
    (seed, *size) for seed in (0, 1, 2) for size in ((50, 5, 0.3), (200, 12, 0.1), (3, 4, 0.5))
]
CASES.append((0, 30, 527, 0.02))


def make_data(
    seed: int, n: int, c: int, rate: float, decimals: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Random targets (N, C) with positive rate ``rate`` and scores, optionally rounded."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, c)) < rate
    scores = rng.random((n, c)) + 0.5 * y
    if decimals is not None:
        scores = np.round(scores, decimals)
    return y, scores


def sklearn_ap(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """scikit-learn's AP per class, NaN where a class has no positives."""
    return np.array(
        [
            average_precision_score(y[:, c], scores[:, c]) if y[:, c].any() else np.nan
            for c in range(y.shape[1])
        ]
    )


def sklearn_auc(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """scikit-learn's ROC AUC per class, NaN where a class is all one value."""
    return np.array(
        [
            roc_auc_score(y[:, c], scores[:, c]) if 0 < y[:, c].sum() < len(y) else np.nan
            for c in range(y.shape[1])
        ]
    )


def lwlrap_by_loop(y: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray]:
    """lwlrap from the definition, with pessimistic ranks; returns (lwlrap, per-class values)."""
    n, c = y.shape
    sums = np.zeros(c)
    counts = np.zeros(c)
    for i in range(n):
        for j in range(c):
            if not y[i, j]:
                continue
            at_or_above = scores[i] >= scores[i, j]
            rank = at_or_above.sum()
            hits = (at_or_above & y[i]).sum()
            sums[j] += hits / rank
            counts[j] += 1
    per_class = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return float(sums.sum() / counts.sum()), per_class


@pytest.mark.parametrize(("seed", "n", "c", "rate"), CASES)
@pytest.mark.parametrize("decimals", [None, 1])
def test_ap_and_auc_match_sklearn(
    seed: int, n: int, c: int, rate: float, decimals: int | None
) -> None:
    y, scores = make_data(seed, n, c, rate, decimals)
    np.testing.assert_allclose(
        average_precision_per_class(y, scores), sklearn_ap(y, scores), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        auc_per_class(y, scores), sklearn_auc(y, scores), rtol=1e-12, atol=1e-12
    )
    ap = sklearn_ap(y, scores)
    if np.isnan(ap).all():
        assert math.isnan(mean_average_precision(y, scores))
    else:
        assert mean_average_precision(y, scores) == pytest.approx(np.nanmean(ap), abs=1e-12)


def test_heavy_ties_sensitive_to_grouping() -> None:
    """Scores with one decimal: tie groups must count as single thresholds, as in sklearn."""
    y = np.array([[1], [0], [1], [0], [1], [0]], dtype=bool)
    scores = np.array([[0.5], [0.5], [0.5], [0.2], [0.2], [0.9]])
    expected = average_precision_score(y[:, 0], scores[:, 0])
    assert average_precision_per_class(y, scores)[0] == pytest.approx(expected)
    # Positives in the 0.5 group earn precision 2/4, the one at 0.2 earns 3/6.
    assert expected == pytest.approx((2 * 2 / 4 + 3 / 6) / 3)
    assert auc_per_class(y, scores)[0] == pytest.approx(roc_auc_score(y[:, 0], scores[:, 0]))


def test_class_without_positives_left_out_of_map() -> None:
    y = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0]], dtype=bool)
    scores = np.array([[0.9, 0.1, 0.2], [0.3, 0.8, 0.7], [0.2, 0.4, 0.1], [0.6, 0.5, 0.3]])
    ap = average_precision_per_class(y, scores)
    assert math.isnan(ap[1])
    assert mean_average_precision(y, scores) == pytest.approx((ap[0] + ap[2]) / 2)
    assert mean_average_precision(y, scores) == pytest.approx((0.75 + 1.0) / 2)
    assert math.isnan(auc_per_class(y, scores)[1])
    assert mean_auc(y, scores) == pytest.approx(np.nanmean(sklearn_auc(y, scores)))


def test_no_positives_anywhere_gives_nan() -> None:
    y = np.zeros((5, 3), dtype=bool)
    scores = np.random.default_rng(0).random((5, 3))
    assert np.isnan(average_precision_per_class(y, scores)).all()
    assert math.isnan(mean_average_precision(y, scores))
    assert math.isnan(mean_auc(y, scores))
    assert math.isnan(lwlrap(y, scores))
    per_class, weights = lwlrap_per_class(y, scores)
    assert np.isnan(per_class).all()
    assert not weights.any()


def test_all_positive_class() -> None:
    y = np.ones((6, 2), dtype=bool)
    scores = np.random.default_rng(1).random((6, 2))
    np.testing.assert_allclose(average_precision_per_class(y, scores), [1.0, 1.0])
    assert np.isnan(auc_per_class(y, scores)).all()
    assert lwlrap(y, scores) == pytest.approx(1.0)


def test_constant_scores() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=bool)
    scores = np.full((4, 2), 0.3)
    np.testing.assert_allclose(average_precision_per_class(y, scores), [0.5, 0.5])
    np.testing.assert_allclose(auc_per_class(y, scores), [0.5, 0.5])
    np.testing.assert_allclose(average_precision_per_class(y, scores), sklearn_ap(y, scores))
    # All labels tie: rank = C, positives at or above = the sample's positives.
    expected, _ = lwlrap_by_loop(y, scores)
    assert lwlrap(y, scores) == pytest.approx(expected)
    assert lwlrap(y, scores) == pytest.approx((0.5 + 0.5 + 1.0 + 1.0) / 4)


def test_single_sample() -> None:
    y = np.array([[1, 0, 1]])
    scores = np.array([[0.2, 0.9, 0.5]])
    np.testing.assert_allclose(average_precision_per_class(y, scores), [1.0, np.nan, 1.0])
    assert np.isnan(auc_per_class(y, scores)).all()
    # Ranks: 0.5 -> 2 (1 hit), 0.2 -> 3 (2 hits).
    assert lwlrap(y, scores) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_perfect_and_inverted_ranking() -> None:
    y = np.array([[1], [1], [0], [0]], dtype=bool)
    scores = np.array([[4.0], [3.0], [2.0], [1.0]])
    assert auc_per_class(y, scores)[0] == 1.0
    assert auc_per_class(y, -scores)[0] == 0.0
    assert average_precision_per_class(y, scores)[0] == 1.0
    assert average_precision_per_class(y, -scores)[0] == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_d_prime_known_values() -> None:
    assert d_prime(0.5) == pytest.approx(0.0, abs=1e-12)
    assert d_prime(0.7602499389065233) == pytest.approx(1.0, abs=1e-9)  # Phi(1 / sqrt 2)
    assert d_prime(1.0) == math.inf
    assert d_prime(0.0) == -math.inf
    assert isinstance(d_prime(0.9), float)
    values = d_prime(np.array([0.5, 0.8413447460685429]))
    np.testing.assert_allclose(values, [0.0, math.sqrt(2)], atol=1e-9)
    assert d_prime(0.2) == pytest.approx(-d_prime(0.8))


@pytest.mark.parametrize("seed", [0, 3, 4])
@pytest.mark.parametrize(("n", "c", "rate"), [(40, 6, 0.3), (25, 80, 0.05), (5, 3, 0.7)])
@pytest.mark.parametrize("decimals", [None, 1])
def test_lwlrap_matches_loop_and_sklearn(
    seed: int, n: int, c: int, rate: float, decimals: int | None
) -> None:
    y, scores = make_data(seed, n, c, rate, decimals)
    expected, expected_per_class = lwlrap_by_loop(y, scores)
    per_class, weights = lwlrap_per_class(y, scores)
    assert lwlrap(y, scores) == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(per_class, expected_per_class, atol=1e-12)
    np.testing.assert_allclose(weights, y.sum(axis=0) / y.sum())
    assert np.nansum(per_class * weights) == pytest.approx(expected, abs=1e-12)
    keep = y.sum(axis=1) > 0
    sk = label_ranking_average_precision_score(
        y[keep], scores[keep], sample_weight=y[keep].sum(axis=1)
    )
    assert lwlrap(y, scores) == pytest.approx(sk, abs=1e-12)


def test_lwlrap_pessimistic_ties() -> None:
    """A positive tied with a negative is ranked below it."""
    y = np.array([[1, 0, 0]])
    scores = np.array([[0.5, 0.5, 0.1]])
    assert lwlrap(y, scores) == pytest.approx(0.5)
    assert lwlrap(np.array([[0, 1, 0]]), scores) == pytest.approx(0.5)
    assert lwlrap(np.array([[1, 1, 0]]), scores) == pytest.approx(1.0)


def test_accuracy_and_confusion_hand_cases() -> None:
    labels = np.array([0, 1, 2, 2, 1])
    scores = np.array(
        [
            [0.9, 0.1, 0.0],
            [0.2, 0.7, 0.1],
            [0.1, 0.8, 0.1],
            [0.3, 0.3, 0.4],
            [0.5, 0.5, 0.0],  # tie: arg-max takes class 0
        ]
    )
    assert accuracy(labels, scores) == pytest.approx(3 / 5)
    pred = scores.argmax(axis=1)
    cm = confusion_matrix(labels, pred, 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [1, 1, 0], [0, 1, 1]])
    np.testing.assert_array_equal(cm, sk_confusion_matrix(labels, pred, labels=[0, 1, 2]))
    assert cm.dtype == np.int64
    assert confusion_matrix(np.array([1]), np.array([1]), 4).sum() == 1
    assert math.isnan(accuracy(np.zeros(0, dtype=int), np.zeros((0, 3))))


@pytest.mark.parametrize(
    ("labels", "pred", "num_classes"),
    [
        (np.array([0, 3]), np.array([0, 1]), 3),
        (np.array([0, -1]), np.array([0, 1]), 3),
        (np.array([0, 1]), np.array([0]), 3),
        (np.array([0.0, 1.0]), np.array([0, 1]), 3),
    ],
)
def test_confusion_rejects_bad_labels(
    labels: np.ndarray, pred: np.ndarray, num_classes: int
) -> None:
    with pytest.raises(ValueError):
        confusion_matrix(labels, pred, num_classes)


def test_input_validation() -> None:
    y = np.zeros((3, 2), dtype=bool)
    with pytest.raises(ValueError, match="shape"):
        average_precision_per_class(y, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="0/1"):
        auc_per_class(np.full((3, 2), 2), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="finite"):
        lwlrap(y, np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        mean_auc(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="labels"):
        accuracy(np.array([0, 1]), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="labels"):
        evaluate_singlelabel(np.array([0, 1]), np.zeros((3, 2)), 2)


def test_evaluate_multilabel_json() -> None:
    y, scores = make_data(5, 30, 6, 0.2)
    y[:, 2] = False
    y[:, 4] = True
    result = json.loads(json.dumps(evaluate_multilabel(y, scores), allow_nan=False))
    assert result["num_samples"] == 30
    assert result["num_classes"] == 6
    assert result["num_classes_ap"] == 5
    assert result["num_classes_auc"] == 4
    assert result["ap_per_class"][2] is None
    assert result["auc_per_class"][2] is None
    assert result["auc_per_class"][4] is None
    assert result["mAP"] == pytest.approx(mean_average_precision(y, scores))
    assert result["mean_auc"] == pytest.approx(mean_auc(y, scores))
    assert result["d_prime"] == pytest.approx(d_prime(mean_auc(y, scores)))
    assert result["lwlrap"] == pytest.approx(lwlrap(y, scores))
    np.testing.assert_allclose(
        [np.nan if v is None else v for v in result["ap_per_class"]], sklearn_ap(y, scores)
    )


def test_evaluate_multilabel_perfect_has_null_d_prime() -> None:
    y = np.array([[1, 0], [0, 1]], dtype=bool)
    result = evaluate_multilabel(y, y.astype(float))
    assert result["mean_auc"] == 1.0
    assert result["d_prime"] is None
    assert result["mAP"] == 1.0
    json.dumps(result, allow_nan=False)


def test_evaluate_singlelabel() -> None:
    labels = np.array([0, 1, 1, 2])
    scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    result = json.loads(json.dumps(evaluate_singlelabel(labels, scores, 3), allow_nan=False))
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    one_hot = np.eye(3, dtype=bool)[labels]
    assert result["mAP"] == pytest.approx(mean_average_precision(one_hot, scores))
    assert result["lwlrap"] == pytest.approx(lwlrap(one_hot, scores))
    assert result["num_classes_ap"] == 3


def multilabel_data(max_n: int = 12, max_c: int = 6) -> st.SearchStrategy:
    """Pairs (y (N, C) bool, scores (N, C) with few distinct values, hence many ties)."""
    shapes = st.tuples(st.integers(1, max_n), st.integers(1, max_c))
    return shapes.flatmap(
        lambda shape: st.tuples(
            arrays(np.bool_, shape),
            arrays(np.float64, shape, elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])),
        )
    )


@settings(max_examples=150, deadline=None)
@given(multilabel_data(), st.randoms(use_true_random=False))
def test_properties(data: tuple[np.ndarray, np.ndarray], random) -> None:
    y, scores = data
    ap = average_precision_per_class(y, scores)
    auc = auc_per_class(y, scores)
    defined = ~np.isnan(ap)
    np.testing.assert_array_equal(defined, y.any(axis=0))
    assert ((ap[defined] > 0) & (ap[defined] <= 1 + 1e-12)).all()
    auc_defined = auc[~np.isnan(auc)]
    assert ((auc_defined >= 0) & (auc_defined <= 1)).all()
    np.testing.assert_allclose(ap, sklearn_ap(y, scores), atol=1e-12)
    np.testing.assert_allclose(auc, sklearn_auc(y, scores), atol=1e-12)

    perm = np.array(random.sample(range(len(y)), len(y)))
    np.testing.assert_allclose(average_precision_per_class(y[perm], scores[perm]), ap, atol=1e-12)
    np.testing.assert_allclose(auc_per_class(y[perm], scores[perm]), auc, atol=1e-12)

    value = lwlrap(y, scores)
    if y.any():
        assert 0 < value <= 1 + 1e-12
        assert value == pytest.approx(lwlrap_by_loop(y, scores)[0], abs=1e-12)
        assert lwlrap(y[perm], scores[perm]) == pytest.approx(value, abs=1e-12)
        cols = np.array(random.sample(range(y.shape[1]), y.shape[1]))
        assert lwlrap(y[:, cols], scores[:, cols]) == pytest.approx(value, abs=1e-12)
    else:
        assert math.isnan(value)
