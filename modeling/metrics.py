"""Evaluation metrics for multi-label tagging and single-label classification.

All functions are pure NumPy (plus ``scipy.stats.norm`` for d-prime) and vectorised over classes.
Conventions shared by the multi-label metrics:

* ``y_true`` is an ``(N, C)`` array of bools or 0/1 numbers, ``scores`` an ``(N, C)`` array of
  finite floats (higher means "more likely present").
* Per-class values are NaN where a metric is undefined for a class (no positives, or for ROC AUC
  also no negatives); the means leave those classes out rather than counting them as 0.
* Tied scores are handled exactly as scikit-learn does, so per-class AP equals
  ``sklearn.metrics.average_precision_score`` and per-class AUC equals
  ``sklearn.metrics.roc_auc_score`` on every input, tied or not (up to float rounding).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import norm

__all__ = [
    "accuracy",
    "auc_per_class",
    "average_precision_per_class",
    "confusion_matrix",
    "d_prime",
    "evaluate_multilabel",
    "evaluate_singlelabel",
    "lwlrap",
    "lwlrap_per_class",
    "mean_auc",
    "mean_average_precision",
]


def _check_multilabel(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert multi-label inputs.

    Parameters
    ----------
    y_true : np.ndarray, shape (N, C)
        Bool or 0/1 targets.
    scores : np.ndarray, shape (N, C)
        Finite scores.

    Returns
    -------
    y : np.ndarray of bool, shape (N, C)
    s : np.ndarray of float64, shape (N, C)

    Raises
    ------
    ValueError
        On shape mismatch, non-2-D input, targets other than 0/1, or non-finite scores.
    """
    y_arr = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y_arr.ndim != 2 or s.ndim != 2:
        raise ValueError(f"y_true and scores must be 2-D, got {y_arr.shape} and {s.shape}")
    if y_arr.shape != s.shape:
        raise ValueError(f"y_true {y_arr.shape} and scores {s.shape} differ in shape")
    if y_arr.dtype != np.bool_ and not np.isin(y_arr, (0, 1)).all():
        raise ValueError("y_true must hold only 0/1 or booleans")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y_arr.astype(bool), s


def _descending_ranks(
    y: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sort every column by descending score and describe the tie groups.

    Parameters
    ----------
    y : np.ndarray of bool, shape (N, C)
        Targets.
    scores : np.ndarray of float, shape (N, C)
        Scores.

    Returns
    -------
    order : np.ndarray of int, shape (N, C)
        Row indices sorting each column by descending score (stable).
    y_sorted : np.ndarray of bool, shape (N, C)
        ``y`` in that order.
    start, end : np.ndarray of int, shape (N, C)
        0-based first and last sorted position of the group of equal scores each sorted item is in.
    hits_at_end : np.ndarray of int, shape (N, C)
        Positives at sorted positions ``0 .. end`` (every item scoring at least as high).
    """
    n, c = scores.shape
    order = np.argsort(-scores, axis=0, kind="stable")
    s_sorted = np.take_along_axis(scores, order, axis=0)
    y_sorted = np.take_along_axis(y, order, axis=0)
    rows = np.broadcast_to(np.arange(n)[:, None], (n, c))
    boundary = s_sorted[1:] != s_sorted[:-1]
    edge = np.ones((1, c), dtype=bool)
    is_start = np.vstack([edge, boundary])
    is_end = np.vstack([boundary, edge])
    start = np.maximum.accumulate(np.where(is_start, rows, 0), axis=0)
    end = np.minimum.accumulate(np.where(is_end, rows, n)[::-1], axis=0)[::-1]
    hits_at_end = np.take_along_axis(np.cumsum(y_sorted, axis=0), end, axis=0)
    return order, y_sorted, start, end, hits_at_end


def _nanmean(values: np.ndarray) -> float:
    """Mean of the non-NaN entries of ``values`` (shape (C,)); NaN, without a warning, if none."""
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")


def average_precision_per_class(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Average precision of every class, as ``sklearn.metrics.average_precision_score``.

    AP is the step-wise sum ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds in
    descending order, where ``P_k`` and ``R_k`` are precision and recall when every item scoring at
    least the k-th threshold is retrieved. A group of tied scores is thus one threshold: each of its
    positives earns the precision measured after the whole group.

    Parameters
    ----------
    y_true : np.ndarray, shape (N, C)
        Bool or 0/1 targets.
    scores : np.ndarray, shape (N, C)
        Finite scores.

    Returns
    -------
    np.ndarray of float64, shape (C,)
        AP per class; NaN for classes with no positive.
    """
    y, s = _check_multilabel(y_true, scores)
    _, y_sorted, _, end, hits_at_end = _descending_ranks(y, s)
    precision_at_group = hits_at_end / (end + 1)
    positives = y.sum(axis=0)
    total = np.where(y_sorted, precision_at_group, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(positives > 0, total / positives, np.nan)


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mean AP over the classes with at least one positive.

    Classes without positives are left out (not counted as 0).

    Parameters
    ----------
    y_true : np.ndarray, shape (N, C)
        Bool or 0/1 targets.
    scores : np.ndarray, shape (N, C)
        Finite scores.

    Returns
    -------
    float
        mAP; NaN if no class has a positive.
    """
    return _nanmean(average_precision_per_class(y_true, scores))


def auc_per_class(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of every class, as ``sklearn.metrics.roc_auc_score``.

    Computed as the Mann-Whitney statistic with mid-ranks, so a positive tied with a negative gets
    half credit.

    Parameters
    ----------
    y_true : np.ndarray, shape (N, C)
        Bool or 0/1 targets.
    scores : np.ndarray, shape (N, C)
        Finite scores.

    Returns
    -------
    np.ndarray of float64, shape (C,)
        AUC per class; NaN for classes with no positive or no negative.
    """
    y, s = _check_multilabel(y_true, scores)
    n = s.shape[0]
    _, y_sorted, start, end, _ = _descending_ranks(y, s)
    ascending_midrank = n - (start + end) / 2.0
    positives = y.sum(axis=0).astype(np.float64)
    negatives = n - positives
    rank_sum = np.where(y_sorted, ascending_midrank, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), auc, np.nan)


def mean_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mean ROC AUC over the classes where it is defined.

    Parameters
    ----------
    y_true : np.ndarray, shape (N, C)
        Bool or 0/1 targets.
    scores : np.ndarray, shape (N, C)
        Finite scores.

    Returns
    -------
    float
        Mean AUC over classes with both positives and negatives; NaN if there are none.
    """
    return _nanmean(auc_per_class(y_true, scores))


def d_prime(auc: float | np.ndarray) -> float | np.ndarray:
    """Sensitivity index ``d' = sqrt(2) * Phi^-1(auc)`` of an equal-variance Gaussian model.

    Parameters
    ----------
    auc : float or np.ndarray, any shape
        ROC AUC value(s) in [0, 1].

    Returns
    -------
    float or np.ndarray of float64, same shape as ``auc``
        d-prime; 0 at AUC 0.5, +inf at 1, -inf at 0, NaN for NaN.
    """
    value = np.sqrt(2.0) * norm.ppf(np.asarray(auc, dtype=np.float64))
    return float(value) if np.ndim(value) == 0 else value


def lwlrap_per_class(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class label-ranking average precision and class weights (DCASE 2019 task 2).

    For each sample and each of its positive labels, the precision at that label is
    ``(positive labels ranked at or above it) / (its rank)`` among the sample's C scores. Ties use
    the pessimistic convention: a label's rank is the number of labels scoring at least as high as
    it (itself included), and the positives counted are those scoring at least as high. This is the
    convention of ``sklearn.metrics.label_ranking_average_precision_score``, on which the DCASE
    reference's ``calculate_overall_lwlrap_sklearn`` is built; it makes the result independent of
    the order of tied labels (the reference's argsort-based loop instead breaks ties by position).

    Parameters
    ----------
    y_true : np.ndarray, shape (N, C)
        Bool or 0/1 targets.
    scores : np.ndarray, shape (N, C)
        Finite scores.

    Returns
    -------
    per_class : np.ndarray of float64, shape (C,)
        Mean precision over the positive labels of each class; NaN for classes with no positive.
    weights : np.ndarray of float64, shape (C,)
        Each class's share of all positive labels (sums to 1, or all 0 if there are no positives).
    """
    y, s = _check_multilabel(y_true, scores)
    order, y_sorted, _, end, hits_at_end = _descending_ranks(y.T, s.T)
    precision_sorted = np.where(y_sorted, hits_at_end / (end + 1), 0.0)
    precision = np.empty_like(precision_sorted)
    np.put_along_axis(precision, order, precision_sorted, axis=0)
    positives = y.sum(axis=0)
    total_positives = positives.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(positives > 0, precision.sum(axis=1) / positives, np.nan)
    weights = positives / total_positives if total_positives else np.zeros(y.shape[1])
    return per_class, weights.astype(np.float64)


def lwlrap(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Label-weighted label-ranking average precision (DCASE 2019 task 2).

    The mean of the per-label precisions of :func:`lwlrap_per_class` over all positive labels,
    i.e. the per-class values weighted by each class's share of positive labels. It equals
    ``label_ranking_average_precision_score`` with ``sample_weight`` = number of positive labels
    per sample. Samples without positives do not contribute.

    Parameters
    ----------
    y_true : np.ndarray, shape (N, C)
        Bool or 0/1 targets.
    scores : np.ndarray, shape (N, C)
        Finite scores.

    Returns
    -------
    float
        lwlrap in (0, 1]; NaN if there is no positive label.
    """
    per_class, weights = lwlrap_per_class(y_true, scores)
    if not weights.any():
        return float("nan")
    return float(np.sum(np.where(weights > 0, per_class * weights, 0.0)))


def _check_labels(labels: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    """Check class indices, shape (N,), lie in [0, num_classes); return them as int64."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), got [{arr.min()}, {arr.max()}]")
    return arr


def accuracy(labels_true: np.ndarray, scores: np.ndarray) -> float:
    """Top-1 accuracy of single-label predictions.

    Parameters
    ----------
    labels_true : np.ndarray of int, shape (N,)
        True class indices.
    scores : np.ndarray of float, shape (N, C)
        Scores; the prediction is the arg-max (the lowest index among tied maxima).

    Returns
    -------
    float
        Fraction of samples whose arg-max is the true class; NaN for N = 0.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D, got shape {s.shape}")
    labels = _check_labels(labels_true, s.shape[1], "labels_true")
    if labels.shape[0] != s.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {s.shape[0]} score rows")
    if not labels.size:
        return float("nan")
    return float(np.mean(s.argmax(axis=1) == labels))


def confusion_matrix(
    labels_true: np.ndarray, labels_pred: np.ndarray, num_classes: int
) -> np.ndarray:
    """Count matrix of true against predicted classes.

    Parameters
    ----------
    labels_true : np.ndarray of int, shape (N,)
        True class indices in [0, num_classes).
    labels_pred : np.ndarray of int, shape (N,)
        Predicted class indices in [0, num_classes).
    num_classes : int
        C.

    Returns
    -------
    np.ndarray of int64, shape (C, C)
        Entry ``[i, j]`` counts samples of true class i predicted as j (rows: truth, as sklearn).
    """
    true = _check_labels(labels_true, num_classes, "labels_true")
    pred = _check_labels(labels_pred, num_classes, "labels_pred")
    if true.shape != pred.shape:
        raise ValueError(f"labels_true {true.shape} and labels_pred {pred.shape} differ in shape")
    flat = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def _json_float(value: float) -> float | None:
    """``value`` as a Python float, or None where it is NaN or infinite (not valid JSON)."""
    return float(value) if np.isfinite(value) else None


def evaluate_multilabel(y_true: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """All multi-label metrics in one JSON-serialisable dict.

    Parameters
    ----------
    y_true : np.ndarray, shape (N, C)
        Bool or 0/1 targets.
    scores : np.ndarray, shape (N, C)
        Finite scores.

    Returns
    -------
    dict
        ``num_samples``, ``num_classes``; ``mAP``, ``mean_auc``, ``d_prime`` (of the mean AUC),
        ``lwlrap``; ``ap_per_class`` and ``auc_per_class`` (lists of length C);
        ``num_classes_ap`` / ``num_classes_auc``: classes where AP / AUC is defined. Undefined or
        infinite values (e.g. d-prime at AUC 1) are None.
    """
    y, s = _check_multilabel(y_true, scores)
    ap = average_precision_per_class(y, s)
    auc = auc_per_class(y, s)
    mean_auc_value = _nanmean(auc)
    return {
        "num_samples": int(y.shape[0]),
        "num_classes": int(y.shape[1]),
        "mAP": _json_float(_nanmean(ap)),
        "mean_auc": _json_float(mean_auc_value),
        "d_prime": _json_float(d_prime(mean_auc_value)),
        "lwlrap": _json_float(lwlrap(y, s)),
        "num_classes_ap": int(np.count_nonzero(~np.isnan(ap))),
        "num_classes_auc": int(np.count_nonzero(~np.isnan(auc))),
        "ap_per_class": [_json_float(v) for v in ap],
        "auc_per_class": [_json_float(v) for v in auc],
    }


def evaluate_singlelabel(
    labels: np.ndarray, scores: np.ndarray, num_classes: int
) -> dict[str, Any]:
    """Single-label metrics plus the multi-label ones on one-hot targets, JSON-serialisable.

    Parameters
    ----------
    labels : np.ndarray of int, shape (N,)
        True class indices in [0, num_classes).
    scores : np.ndarray of float, shape (N, num_classes)
        Scores; predictions are their arg-max.
    num_classes : int
        C.

    Returns
    -------
    dict
        ``accuracy`` (None for N = 0), ``confusion_matrix`` (C lists of C ints, rows: truth) and
        every key of :func:`evaluate_multilabel`.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != num_classes:
        raise ValueError(f"scores must have shape (N, {num_classes}), got {s.shape}")
    true = _check_labels(labels, num_classes, "labels")
    if true.shape[0] != s.shape[0]:
        raise ValueError(f"{true.shape[0]} labels for {s.shape[0]} score rows")
    one_hot = np.zeros(s.shape, dtype=bool)
    one_hot[np.arange(true.shape[0]), true] = True
    result = {
        "accuracy": _json_float(accuracy(true, s)),
        "confusion_matrix": confusion_matrix(true, s.argmax(axis=1), num_classes).tolist(),
    }
    result.update(evaluate_multilabel(one_hot, s))
    return result
