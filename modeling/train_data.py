"""What a training run reads: the rows of its splits and folds, their labels, and its samplers.

Rows are global rows of the training splits read as one (:class:`modeling.readers.ShardReader`
with several splits: each split's rows after those of the splits before it). K-fold
cross-validation assigns every row to a fold by a seeded permutation (``fold = rank % K``), so
the folds are disjoint, cover every row, and are the same in every run with that seed;
predefined folds (UrbanSound8K's ``fold1`` .. ``fold10``) are splits instead, named on the
command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from features.class_index import class_weights, read_split_labels
from modeling.readers import ShardReader
from modeling.samplers import BalancedSampler, Sampler, ShuffledSampler, WeightedSampler


@dataclass
class RowLabels:
    """The positive labels and clip ids of a reader's rows.

    Attributes
    ----------
    num_rows : int
    rows, classes : np.ndarray [shape=(P,), dtype=int64]
        Global row and class of each positive label.
    clip_ids : list of str
        Clip id of each global row.
    """

    num_rows: int
    rows: np.ndarray
    classes: np.ndarray
    clip_ids: list[str]

    def dense(self, rows: np.ndarray, num_classes: int) -> np.ndarray:
        """Multi-hot targets (len(rows), C) bool of the given global rows."""
        out = np.zeros((len(rows), num_classes), dtype=bool)
        where = np.full(self.num_rows, -1, dtype=np.int64)
        where[rows] = np.arange(len(rows))
        keep = where[self.rows] >= 0
        out[where[self.rows[keep]], self.classes[keep]] = True
        return out


def read_row_labels(reader: ShardReader) -> RowLabels:
    """Read the labels and clip ids of every row of ``reader`` (targets only, never audio)."""
    parts = read_split_labels(reader.store, reader.shards, reader.num_classes, "synchronous")
    ids = parts.clip_ids
    clip_ids = ids.to_pylist() if isinstance(ids, pa.ChunkedArray | pa.Array) else list(ids)
    return RowLabels(
        num_rows=parts.num_clips,
        rows=parts.global_row.astype(np.int64),
        classes=parts.classes.astype(np.int64),
        clip_ids=clip_ids,
    )


def describe_rows(reader: ShardReader, labels: RowLabels, rows: np.ndarray) -> list[str]:
    """Name global ``rows`` of ``reader`` for a message: clip id, split and shard file."""
    positions, _ = reader.locate(np.asarray(rows, dtype=np.int64))
    return [
        f"{labels.clip_ids[row]} (split {reader.shard_splits[pos]}, {reader.shards[pos].path})"
        for row, pos in zip(rows, positions, strict=True)
    ]


def check_fold_count(num_rows: int, folds: int) -> None:
    """Raise ValueError where ``num_rows`` clips cannot make ``folds`` folds (fewer clips)."""
    if num_rows < folds:
        raise ValueError(f"{num_rows} clips cannot make {folds} folds")


def fold_rows(num_rows: int, folds: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split rows ``0 .. num_rows - 1`` into the training rows and the rows of ``fold``.

    Parameters
    ----------
    num_rows : int
    folds : int
        K, at least 2.
    fold : int
        The held-out fold, 0-based.
    seed : int

    Returns
    -------
    train, held_out : np.ndarray [dtype=int64]
        Sorted global rows.
    """
    if folds < 2 or not 0 <= fold < folds:
        raise ValueError(f"need folds >= 2 and 0 <= fold < folds, got folds={folds}, fold={fold}")
    check_fold_count(num_rows, folds)
    rank = np.empty(num_rows, dtype=np.int64)
    rank[np.random.default_rng([seed, 7]).permutation(num_rows)] = np.arange(num_rows)
    held = rank % folds == fold
    return np.flatnonzero(~held), np.flatnonzero(held)


class SubsetSampler(Sampler):
    """Draw positions with ``inner`` and return the rows at those positions of ``rows``."""

    def __init__(self, inner: Sampler, rows: np.ndarray) -> None:
        self.inner = inner
        self.rows = np.asarray(rows, dtype=np.int64)
        self.kind = inner.kind

    def take(self, n: int) -> np.ndarray:
        return self.rows[self.inner.take(n)]

    def state(self) -> dict[str, Any]:
        return self.inner.state()

    def restore(self, state: dict[str, Any]) -> None:
        self.inner.restore(state)


def make_sampler(kind: str, rows: np.ndarray, labels: RowLabels, seed: int) -> Sampler:
    """Build the training sampler over ``rows`` (global rows of ``labels``).

    Parameters
    ----------
    kind : {"balanced", "shuffled", "weighted"}
        ``balanced``: PANNs' class round-robin over the classes with clips among ``rows``,
        clips without labels (the negatives of a detector) forming one more queue;
        ``shuffled``: a new permutation each epoch; ``weighted``: with replacement, each clip
        weighted by the sum of ``1 / count`` of its classes, clips without labels counting as
        one more class (each class and the unlabelled clips are drawn equally often).
    rows : np.ndarray
    labels : RowLabels
    seed : int
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        raise ValueError("no training clips")
    member = np.zeros(labels.num_rows, dtype=bool)
    member[rows] = True
    keep = member[labels.rows]
    row_of, cls_of = labels.rows[keep], labels.classes[keep]
    num_classes = int(labels.classes.max()) + 1 if len(labels.classes) else 0
    if kind == "balanced":
        order = np.argsort(cls_of, kind="stable")
        counts = np.bincount(cls_of, minlength=num_classes)
        per_class = np.split(row_of[order], np.cumsum(counts)[:-1]) if num_classes else []
        unlabelled = np.setdiff1d(rows, row_of)
        if len(unlabelled):
            per_class.append(unlabelled)
        return BalancedSampler(per_class, seed)
    if kind == "shuffled":
        return SubsetSampler(ShuffledSampler(len(rows), seed), rows)
    if kind == "weighted":
        position = np.full(labels.num_rows, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        weights = clip_weights(position[row_of], cls_of, len(rows), num_classes)
        return SubsetSampler(WeightedSampler(weights, seed), rows)
    raise ValueError(f"unknown sampler {kind!r}: expected balanced, shuffled or weighted")


def clip_weights(
    clips: np.ndarray, classes: np.ndarray, num_clips: int, num_classes: int
) -> np.ndarray:
    """Weights of the weighted sampler: per clip, the sum of ``1 / count`` over its classes.

    Clips without labels count as one more class: each weighs ``1 / U`` for U such clips.

    Parameters
    ----------
    clips, classes : np.ndarray [shape=(P,), dtype=int64]
        Clip (0 .. num_clips - 1) and class of each positive label.
    num_clips, num_classes : int

    Returns
    -------
    np.ndarray [shape=(num_clips,), dtype=float64]
    """
    counts = np.bincount(classes, minlength=num_classes)
    weights = np.bincount(clips, weights=class_weights(counts)[classes], minlength=num_clips)
    unlabelled = np.ones(num_clips, dtype=bool)
    unlabelled[clips] = False
    if unlabelled.any():
        weights[unlabelled] = 1.0 / np.count_nonzero(unlabelled)
    return weights


def class_counts(rows: np.ndarray, labels: RowLabels, num_classes: int) -> np.ndarray:
    """Positive clips per class among ``rows``."""
    member = np.zeros(labels.num_rows, dtype=bool)
    member[rows] = True
    return np.bincount(labels.classes[member[labels.rows]], minlength=num_classes)
