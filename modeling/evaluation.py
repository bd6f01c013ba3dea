"""Evaluate a trained run on a split of a dataset: scores, metrics, per-class table, report.

:func:`evaluate_run` scores every clip of the split with the run's weights (best by default)
through :func:`modeling.scoring.predict_rows`, computes the task's metrics with
:func:`modeling.scoring.task_metrics` (mAP over the classes with at least one positive, mean
AUC, d-prime, lwlrap; accuracy and the confusion matrix for single-label tasks), and, given an
output directory, writes ``metrics.json``, ``per_class.csv``, ``scores.npz`` and
``report.html`` there (:mod:`modeling.evaluation_report`).

The best weights are those of the run's evaluation, on its eval split, with the highest headline
metric (the earliest step on ties): scored on that same split they overstate what they score on
unseen clips, so :func:`evaluate_run` warns and records ``weights_picked_on_this_split``; the
last weights, or another split, give an unbiased figure.

Test-time augmentation (``tta=N``) averages the scores of N deterministic variants of every
clip, each a circular shift along the time axis: for waveform runs by ``round(k * T / N)``
samples (k = 0 .. N-1, T the clip length), so the variants are spread evenly over the clip; for
embedding runs by k frames (k = 0 .. N-1, at most the run's frame count). Variant 0 is the clip
itself, so ``tta`` 0 and 1 both mean no augmentation. Models that pool over time without regard
to frame order (:data:`ORDER_FREE_MODELS`: every embedding model) give the same scores for
every frame shift, so for them :func:`evaluate_run` warns and scores each clip once; TTA helps
models that see position, such as the log-mel CNNs, whose variants cross the clip's padding and
edges differently.

N may not exceed :data:`MAX_TTA`: every variant is one more forward pass over the whole split,
and one more branch of the averaged model, so each batch holds the activations of N batches at
once. The gain of more variants fades long before that: 32 shifts of a 10 s clip lie 0.31 s
apart, about the time step of the CNN14-style model's last feature map (32 hops of 10 ms). Nor,
for a model that sees frame order, may N exceed the clip's samples or frames (the shifts would
repeat); an order-free model is warned about and scored once whatever its clips' length.

The pieces that open a run and score a split (:func:`load_run`, :func:`open_split`,
:func:`score_split`) are shared with :mod:`modeling.inference`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import keras
import numpy as np

from modeling.catalog import EMBEDDING_MODELS
from modeling.embedding_provenance import check_shards
from modeling.readers import ShardReader
from modeling.runs import BEST_WEIGHTS, RunConfig, RunDir, check_out_dir, load_trained_model
from modeling.scoring import check_single_labels, headline_metric, predict_rows, task_metrics
from modeling.train_data import read_row_labels
from pipelines.dataset_state import load_manifest
from schemas.classmap import ClassMap

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` with clips scored so far."""

MAX_TTA = 32
"""Most test-time augmentation variants (see the module docstring)."""

ORDER_FREE_MODELS = EMBEDDING_MODELS
"""Models whose scores do not depend on the order of a clip's frames: they pool over them."""


def run_tta_shifts(
    config: RunConfig, length: int, tta: int, warn: Callable[[str], None]
) -> list[int]:
    """The shifts to score ``config``'s clips with: :func:`tta_shifts`, or ``[0]`` with a warning.

    A model in :data:`ORDER_FREE_MODELS` gets ``[0]`` and a warning for any ``tta`` above 1
    within :data:`MAX_TTA`, however few frames its clips have: TTA changes nothing there.

    Parameters
    ----------
    config : RunConfig
    length : int
        Clip length along time: samples (waveforms) or frames (embeddings).
    tta : int
        Variants asked for.
    warn : callable
        Called with a one-line warning when the variants are dropped.

    Raises
    ------
    ValueError
        As :func:`tta_shifts` (a negative ``tta`` or above :data:`MAX_TTA`; above ``length``
        only for a model that sees frame order).
    """
    if tta <= 1 or config.model not in ORDER_FREE_MODELS:
        return tta_shifts(config.input_kind, length, tta)
    check_tta(tta)
    warn(
        f"--tta {tta} changes nothing for model {config.model} (it pools its frames regardless "
        "of their order): scored once"
    )
    return [0]


@dataclass
class LoadedRun:
    """A run directory opened for serving: its configuration, class map and chosen weights.

    The model is built and its weights loaded on first use of :attr:`model`, so work that
    needs only the run's records (a search answered from cached scores) stays fast.

    Attributes
    ----------
    run : RunDir
    config : RunConfig
    classes : ClassMap
        The class map of the run's outputs.
    which : {"best", "last"}
        Weights asked for (``"best"`` falls back to ``"last"``).
    weights : Path
        The weights file that :attr:`model` loads.
    """

    run: RunDir
    config: RunConfig
    classes: ClassMap
    which: str
    weights: Path

    @cached_property
    def model(self) -> keras.Model:
        """The run's model with :attr:`weights` loaded (built once)."""
        return load_trained_model(self.run, self.which)

    @cached_property
    def weights_sha256(self) -> str:
        """SHA-256 of :attr:`weights`, to tell scores of other weights apart."""
        return hashlib.sha256(self.weights.read_bytes()).hexdigest()


def load_run(run: str | os.PathLike[str] | RunDir | LoadedRun, which: str = "best") -> LoadedRun:
    """Open a trained run (without building its model yet).

    Parameters
    ----------
    run : str, os.PathLike, RunDir or LoadedRun
        A run directory; a :class:`LoadedRun` is returned as is.
    which : {"best", "last"}

    Raises
    ------
    FileNotFoundError
        If ``run`` is not a run directory or has no weights yet.
    ValueError
        If ``which`` is neither ``"best"`` nor ``"last"``, or run.json is malformed.
    """
    if isinstance(run, LoadedRun):
        return run
    run = run if isinstance(run, RunDir) else RunDir(run)
    config = run.load_config()
    return LoadedRun(run, config, run.load_classes(), which, run.weights_path(which))


def picked_on(loaded: LoadedRun, split: str) -> bool:
    """Whether ``loaded``'s weights were picked on ``split``: its best weights and its eval split.

    Training keeps as best the weights of the evaluation whose headline metric is strictly above
    every earlier one's (:func:`modeling.training.train`), so ties keep the earliest step.
    Splits are compared by name, whatever the dataset: a copy of the run's dataset is as biased.
    """
    return loaded.weights.name == BEST_WEIGHTS and split == loaded.config.eval_split


def picked_on_warning(split: str, metric: str) -> str:
    """The warning that best weights scored on ``split``, where they were picked, overstate."""
    return (
        f"{BEST_WEIGHTS} were picked on split {split!r} (the step with the highest {metric} "
        "there, the earliest on ties), so their scores on it overstate what they score on "
        "unseen clips: use --weights last, or a split the run did not pick on, for an unbiased "
        "figure"
    )


def open_split(
    loaded: LoadedRun,
    dataset: str | os.PathLike[str],
    split: str,
    storage_options: dict | None = None,
) -> ShardReader:
    """A reader of ``split`` of ``dataset`` in the form the run's model takes.

    Reads the run's input (waveforms or its embedding model's shards) and checks that the
    dataset's classes and clip shape are the run's, and that its embeddings were made with the
    VGGish weights the run records (:func:`modeling.embedding_provenance.check_shards`).

    Raises
    ------
    FileNotFoundError
        If ``dataset`` has no manifest.
    ValueError
        If the split has no shards of the run's input (the message lists what the dataset
        has), the dataset's class map or clip shape differs from the run's, or its embeddings
        were made with other or mixed weights.
    """
    config = loaded.config
    reader = ShardReader(
        dataset,
        split,
        config.input,
        model=config.embedding_model,
        storage_options=storage_options,
    )
    manifest = load_manifest(reader.store)
    if manifest is not None and manifest.class_map_sha256 != loaded.classes.sha256:
        raise ValueError(
            f"{reader.store.url()} uses another class map ({manifest.num_classes} classes, "
            f"sha256 {manifest.class_map_sha256[:12]}) than run {loaded.run.path} "
            f"({len(loaded.classes)} classes, sha256 {loaded.classes.sha256[:12]})"
        )
    want = _input_shape(config)
    if want is not None and tuple(reader.x_shape) != want:
        raise ValueError(
            f"clips of split {split!r} have shape {tuple(reader.x_shape)} but run "
            f"{loaded.run.path} takes {want}"
            + (
                f" ({config.model_kwargs.get('sample_rate')} Hz)"
                if config.input == "waveforms"
                else ""
            )
        )
    if config.input == "waveforms" and manifest is not None:
        rate = config.model_kwargs.get("sample_rate")
        if rate is not None and int(rate) != manifest.sample_rate:
            raise ValueError(
                f"the dataset is sampled at {manifest.sample_rate} Hz but run "
                f"{loaded.run.path} takes {rate} Hz"
            )
    if config.input == "embeddings":
        check_shards(
            config.embedding_provenance, [reader], config.embedding_model, str(loaded.run.path)
        )
    return reader


def _input_shape(config: RunConfig) -> tuple[int, ...] | None:
    """The per-clip input shape fixed by the run's model arguments, when they fix one."""
    kwargs = config.model_kwargs
    if config.input == "waveforms":
        samples = kwargs.get("clip_samples")
        return None if samples is None else (int(samples),)
    if "num_frames" in kwargs:
        return (int(kwargs["num_frames"]), int(kwargs.get("embedding_dim", 128)))
    return None


def check_tta(n: int) -> None:
    """Refuse ``n`` test-time augmentation variants below 0 or above :data:`MAX_TTA`."""
    if n < 0:
        raise ValueError(f"--tta must be >= 0, got {n}")
    if n > MAX_TTA:
        raise ValueError(
            f"--tta {n}: at most {MAX_TTA} variants (each one scores the whole split once "
            "more, and a batch holds the activations of every variant at once)"
        )


def tta_shifts(input_kind: str, length: int, n: int) -> list[int]:
    """Circular shifts along the time axis of the ``n`` test-time augmentation variants.

    Parameters
    ----------
    input_kind : {"waveform", "embedding"}
    length : int
        Clip length along time: samples (waveforms) or frames (embeddings).
    n : int
        Variants; 0 or 1 means none (the clip alone).

    Returns
    -------
    list of int
        ``round(k * length / n)`` samples for waveforms, ``k`` frames for embeddings,
        k = 0 .. n-1, all distinct; ``[0]`` without augmentation.

    Raises
    ------
    ValueError
        If ``n`` is negative, above :data:`MAX_TTA`, or above ``length`` (shifts would repeat).
    """
    check_tta(n)
    if n <= 1:
        return [0]
    if n > length:
        unit = "frame" if input_kind == "embedding" else "sample"
        raise ValueError(
            f"--tta {n} needs {n} distinct shifts but clips have {length} "
            f"{unit}{'s' if length != 1 else ''}"
        )
    if input_kind == "embedding":
        return list(range(n))
    return [round(k * length / n) for k in range(n)]


def with_tta(model: keras.Model, shifts: list[int]) -> keras.Model:
    """``model`` averaged over circular shifts of its input along axis 1.

    Parameters
    ----------
    model : keras.Model
        Input (batch, time, ...), output (batch, C).
    shifts : list of int
        From :func:`tta_shifts`; ``[0]`` returns ``model`` itself.

    Returns
    -------
    keras.Model
        Same input and output shapes; output the mean of ``model`` over the shifted inputs.
    """
    if list(shifts) == [0]:
        return model
    inputs = keras.Input(model.input_shape[1:], dtype=model.inputs[0].dtype, name="tta_input")
    outputs = [model(keras.ops.roll(inputs, int(s), axis=1) if s else inputs) for s in shifts]
    return keras.Model(inputs, keras.layers.Average(name="tta_mean")(outputs), name="tta")


@dataclass
class SplitScores:
    """Scores of every clip of a split, in global row order.

    Attributes
    ----------
    clip_ids : list of str
    scores : np.ndarray [shape=(N, C), dtype=float32]
    targets : np.ndarray [shape=(N, C), dtype=bool]
    """

    clip_ids: list[str]
    scores: np.ndarray
    targets: np.ndarray


def score_split(
    model: keras.Model,
    reader: ShardReader,
    batch_size: int = 64,
    shifts: list[int] | None = None,
    progress: Progress | None = None,
) -> SplitScores:
    """Score every clip of ``reader`` with ``model``, averaged over TTA ``shifts``.

    Parameters
    ----------
    model : keras.Model
    reader : ShardReader
    batch_size : int
    shifts : list of int, optional
        From :func:`tta_shifts`; none by default.
    progress : callable, optional
        ``progress(done, total)`` after each batch.

    Returns
    -------
    SplitScores
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    total, done = reader.num_rows, 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    scores, targets = predict_rows(
        with_tta(model, shifts or [0]), reader, batch_size=batch_size, progress=advance
    )
    return SplitScores(read_row_labels(reader).clip_ids, scores, targets)


def per_class_rows(
    classes: ClassMap, targets: np.ndarray, metrics: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per class: index, mid, display name, positives, AP and AUC (None: undefined)."""
    positives = targets.sum(axis=0)
    return [
        {
            "index": c.index,
            "mid": c.mid,
            "display_name": c.display_name,
            "positives": int(positives[c.index]),
            "ap": metrics["ap_per_class"][c.index],
            "auc": metrics["auc_per_class"][c.index],
        }
        for c in classes
    ]


def evaluate_run(
    run: str | os.PathLike[str] | RunDir | LoadedRun,
    dataset: str | os.PathLike[str] | None = None,
    split: str = "eval",
    *,
    tta: int = 0,
    batch_size: int = 64,
    which: str = "best",
    out_dir: str | os.PathLike[str] | None = None,
    storage_options: dict | None = None,
    progress: Progress | None = None,
    warn: Callable[[str], None] = log.warning,
) -> dict[str, Any]:
    """Score ``split`` of ``dataset`` with a trained run and compute the task's metrics.

    Parameters
    ----------
    run : str, os.PathLike, RunDir or LoadedRun
    dataset : str or os.PathLike, optional
        Dataset directory or fsspec URL; the run's own dataset by default.
    split : str
    tta : int
        Test-time augmentation variants (see the module docstring); 0: none. Ignored, with a
        warning, for a model in :data:`ORDER_FREE_MODELS`.
    batch_size : int
    which : {"best", "last"}
        Weights to score with.
    out_dir : str or os.PathLike, optional
        Write ``metrics.json``, ``per_class.csv``, ``scores.npz`` and ``report.html`` here
        (replacing those files); not a dataset nor a run's own folder.
    storage_options : dict, optional
        fsspec options of the dataset.
    progress : callable, optional
        ``progress(done, total)`` while scoring.
    warn : callable
        Called with a one-line warning when ``tta`` is ignored, and when the weights are the
        best ones and ``split`` the one they were picked on (:func:`picked_on`).

    Returns
    -------
    dict
        What ``metrics.json`` holds: ``run``, ``dataset``, ``split``, ``model``, ``input``,
        ``task``, ``weights``, ``weights_picked_on_this_split`` (:func:`picked_on`), ``tta``,
        ``headline`` (metric name), ``num_clips`` and ``metrics`` (exactly
        :func:`modeling.scoring.task_metrics` of the scores); plus
        ``per_class`` (:func:`per_class_rows`) and, with ``out_dir``, ``files`` (name -> path).

    Raises
    ------
    FileNotFoundError
        If the run or dataset does not exist.
    FileExistsError
        If ``out_dir`` is a dataset or a run's folder (:func:`modeling.runs.check_out_dir`),
        before anything is scored or written.
    ValueError
        On an unknown split, a mismatched dataset, a bad ``tta`` or a single-label task whose
        clips do not have one label each.
    """
    from modeling.evaluation_report import write_evaluation

    if out_dir is not None:
        check_out_dir(out_dir, "evaluate", "output")
    loaded = load_run(run, which)
    config = loaded.config
    dataset = str(dataset if dataset is not None else config.dataset)
    reader = open_split(loaded, dataset, split, storage_options)
    shifts = run_tta_shifts(config, reader.x_shape[0], tta, warn)
    picked = picked_on(loaded, split)
    if picked:
        warn(picked_on_warning(split, headline_metric(config.task)))
    if config.task == "singlelabel":
        check_single_labels(reader, read_row_labels(reader), np.arange(reader.num_rows))
    scored = score_split(loaded.model, reader, batch_size, shifts, progress)
    metrics = task_metrics(config.task, scored.targets, scored.scores)
    result: dict[str, Any] = {
        "run": str(loaded.run.path),
        "dataset": reader.store.url(),
        "split": split,
        "model": config.model,
        "input": config.input,
        "task": config.task,
        "weights": loaded.weights.name,
        "weights_picked_on_this_split": picked,
        "tta": len(shifts) if len(shifts) > 1 else 0,
        "tta_shifts": shifts,
        "headline": headline_metric(config.task),
        "num_clips": len(scored.clip_ids),
        "metrics": metrics,
    }
    result["per_class"] = per_class_rows(loaded.classes, scored.targets, metrics)
    if out_dir is not None:
        result["files"] = write_evaluation(
            out_dir, result, scored, loaded.classes, loaded.run.history()
        )
    return result
