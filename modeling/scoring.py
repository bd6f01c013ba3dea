"""Scores of a model over rows of a dataset, and the metrics of a task on them.

The models take embeddings as stored (0..255, dequantized inside the model) and waveforms
scaled to [-1, 1); :func:`model_input` is the matching conversion of a stored batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from modeling.metrics import evaluate_multilabel, evaluate_singlelabel
from modeling.readers import ShardReader, make_dataset, raw_float, read_failures_raised, to_float
from modeling.samplers import SequentialSampler
from modeling.train_data import RowLabels, SubsetSampler, describe_rows, read_row_labels


def model_input(source: str) -> Callable[[np.ndarray], np.ndarray]:
    """The conversion of stored ``x`` that the models of ``source`` take."""
    return raw_float if source == "embeddings" else to_float


def predict_rows(
    model: Any,
    reader: ShardReader,
    rows: np.ndarray | None = None,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Score rows of ``reader`` with ``model``, in the order given.

    Scores come from ``model.predict`` on the ``tf.data`` pipeline, so a model built under a
    ``MirroredStrategy`` splits each batch across its replicas; targets are read from the
    shards' labels alone (never a second read of the audio).

    Parameters
    ----------
    model : keras.Model
    reader : ShardReader
    rows : np.ndarray, optional
        Global rows; all rows by default.
    batch_size : int
    progress : callable, optional
        Called with the number of clips scored after each batch.

    Returns
    -------
    scores : np.ndarray [shape=(len(rows), C), dtype=float32]
    targets : np.ndarray [shape=(len(rows), C), dtype=bool]
    """
    rows = np.arange(reader.num_rows) if rows is None else np.asarray(rows, dtype=np.int64)
    targets = read_row_labels(reader).dense(rows, reader.num_classes)
    if not len(rows):
        return np.empty((0, reader.num_classes), dtype=np.float32), targets
    sampler = SubsetSampler(SequentialSampler(len(rows)), rows)
    data = make_dataset(reader, sampler, batch_size, transform=model_input(reader.source))
    callbacks = [_PredictProgress(progress, batch_size, len(rows))] if progress else []
    steps = math.ceil(len(rows) / batch_size)  # else Keras warns at the end of the rows
    with read_failures_raised(reader):
        scores = model.predict(
            data.map(lambda x, y: x), steps=steps, verbose=0, callbacks=callbacks
        )
    return np.asarray(scores, dtype=np.float32), targets


class _PredictProgress(keras.callbacks.Callback):
    """Report clips scored after each predicted batch."""

    def __init__(self, progress: Callable[[int], None], batch_size: int, total: int) -> None:
        super().__init__()
        self.progress, self.batch_size, self.total, self.done = progress, batch_size, total, 0

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        n = min(self.batch_size, self.total - self.done)
        self.done += n
        self.progress(n)


def single_labels(
    targets: np.ndarray, name_rows: Callable[[np.ndarray], list[str]] | None = None
) -> np.ndarray:
    """Class index of each row of one-hot ``targets``.

    Parameters
    ----------
    targets : np.ndarray [shape=(N, C), dtype=bool]
    name_rows : callable, optional
        Names of the clips at the given rows, for the message; by default ``row I``.

    Raises
    ------
    ValueError
        If a row has no label or several, naming up to five such clips and their label counts.
    """
    counts = targets.sum(axis=1)
    bad = np.flatnonzero(counts != 1)[:5]
    if len(bad):
        names = name_rows(bad) if name_rows else [f"row {i}" for i in bad]
        pairs = zip(names, bad, strict=True)
        examples = "; ".join(f"{name} has {counts[i]} labels" for name, i in pairs)
        raise ValueError(
            f"{np.count_nonzero(counts != 1)} clips do not have exactly one label, so the "
            f"single-label task cannot use them (use --task multilabel); for example {examples}"
        )
    return targets.argmax(axis=1)


def check_single_labels(reader: ShardReader, labels: RowLabels, rows: np.ndarray) -> None:
    """Refuse global ``rows`` of ``reader`` unless each has exactly one label
    (:func:`single_labels`), naming clips by id, split and shard
    (:func:`~modeling.train_data.describe_rows`)."""
    rows = np.asarray(rows, dtype=np.int64)
    single_labels(
        labels.dense(rows, reader.num_classes),
        lambda bad: describe_rows(reader, labels, rows[bad]),
    )


def task_metrics(task: str, targets: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """The metrics of :mod:`modeling.metrics` for ``task`` ("multilabel" or "singlelabel")."""
    if task == "singlelabel":
        return evaluate_singlelabel(single_labels(targets), scores, targets.shape[1])
    return evaluate_multilabel(targets, scores)


def headline_metric(task: str) -> str:
    """The metric best checkpoints are chosen by: accuracy (single-label) or mAP."""
    return "accuracy" if task == "singlelabel" else "mAP"
