"""Train a classifier from a dataset's shards, with checkpoints that resume exactly.

The loop draws batches of rows with a sampler (:mod:`modeling.train_data`), reads them through
``tf.data`` (parallel reads, prefetch), mixes them up (seeded by the step), and trains with
Keras' ``fit`` on chunks of exactly ``eval_every`` batches, under the strategy and precision
policy of :func:`modeling.models.strategy_and_policy` (``fit`` splits each batch across the
replicas of a ``MirroredStrategy``; ``train_on_batch`` would give every replica the whole
batch). Every ``eval_every`` steps it scores the evaluation
rows, appends the metrics to the history and TensorBoard, keeps the best weights by the task's
headline metric, and writes a checkpoint: model weights, optimizer variables, the state of
every random generator of the model (dropout, SpecAugment), and the sampler's position after
the last batch trained on. Since every random draw is a function of the seed and those states,
a run resumed from a checkpoint trains on the same batches and reaches the same weights as a
run that was never stopped.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from modeling.augment import mixup
from modeling.embedding_provenance import describe, shard_provenance
from modeling.models import (
    balanced_binary_weights,
    balanced_class_weights,
    build_model,
    compile_model,
    describe_strategy,
    strategy_and_policy,
)
from modeling.readers import ShardReader, make_dataset, read_failures_raised
from modeling.run_setup import same_dataset
from modeling.runs import (
    BEST_WEIGHTS,
    LAST_WEIGHTS,
    LOGS,
    SUMMARY,
    RunConfig,
    RunDir,
    weights_temporary,
    write_atomic,
    write_json,
)
from modeling.scoring import (
    check_single_labels,
    headline_metric,
    model_input,
    predict_rows,
    task_metrics,
)
from modeling.train_data import RowLabels, fold_rows, make_sampler, read_row_labels

KEEP_CHECKPOINTS = 2
_MIXUP_STREAM = 11


@dataclass
class TrainData:
    """The readers and rows of a run.

    Attributes
    ----------
    reader : ShardReader
        The training splits.
    labels : RowLabels
        Labels and clip ids of ``reader``'s rows.
    train_rows : np.ndarray
    eval_reader : ShardReader or None
    eval_rows : np.ndarray or None
    """

    reader: ShardReader
    labels: RowLabels
    train_rows: np.ndarray
    eval_reader: ShardReader | None
    eval_rows: np.ndarray | None


def open_train_data(config: RunConfig, storage_options: dict | None = None) -> TrainData:
    """Open the training and evaluation rows of ``config`` (folds, or an evaluation split)."""
    reader = ShardReader(
        config.dataset,
        config.splits,
        config.input,
        model=config.embedding_model,
        storage_options=storage_options,
    )
    labels = read_row_labels(reader)
    if config.folds is not None:
        train_rows, eval_rows = fold_rows(
            reader.num_rows, config.folds, int(config.fold), config.seed
        )
        return TrainData(reader, labels, train_rows, reader, eval_rows)
    train_rows = np.arange(reader.num_rows, dtype=np.int64)
    if config.eval_split is None:
        return TrainData(reader, labels, train_rows, None, None)
    eval_reader = ShardReader(
        config.dataset,
        config.eval_split,
        config.input,
        model=config.embedding_model,
        storage_options=storage_options,
    )
    return TrainData(reader, labels, train_rows, eval_reader, np.arange(eval_reader.num_rows))


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    run : Path
    step : int
        Steps trained in all (including those of earlier, resumed sessions).
    resumed_from : int
        Step the run continued from (0 for a fresh run).
    metric : str
        Headline metric name.
    best_step : int or None
    best_value : float or None
    last_metrics : dict
    history : list of dict
    clips : int
        Training clips available.
    seconds : float
        Wall time of this session.
    clips_per_second : float
        Training clips per second in this session (steps x batch / time in training steps).
    devices : str
        Where and in what precision it trained (:func:`modeling.models.describe_strategy`).
    previous : Path or None
        ``RUN.previous`` when the run was started over (``restart``): where the run this one
        replaced was kept, or, with ``replaced_deleted``, where a finished run stays.
    replaced_deleted : bool
        The replaced run was unfinished and ``RUN.previous`` a finished run: the unfinished run
        was deleted (:meth:`RunDir.set_aside`).
    already_trained : bool
        The resumed run had already trained its steps: nothing was trained or written, and the
        result is the run's summary (``seconds`` is 0).
    """

    run: Path
    step: int
    resumed_from: int
    metric: str
    best_step: int | None
    best_value: float | None
    last_metrics: dict[str, Any]
    history: list[dict[str, Any]]
    clips: int
    seconds: float
    clips_per_second: float
    devices: str
    warnings: list[str] = field(default_factory=list)
    previous: Path | None = None
    replaced_deleted: bool = False
    already_trained: bool = False


# --------------------------------------------------------------------------- model state


def _seed_generators(model: keras.Model) -> list[Any]:
    """The SeedGenerators of ``model``'s layers (dropout, SpecAugment), in a stable order."""
    found = []
    for layer in model._flatten_layers(include_self=False):
        for name in sorted(vars(layer)):
            value = getattr(layer, name, None)
            if isinstance(value, keras.random.SeedGenerator):
                found.append(value)
    return found


def _save_checkpoint(
    run: RunDir, step: int, model: keras.Model, meta: dict[str, Any], keep: int = KEEP_CHECKPOINTS
) -> Path:
    """Write model, optimizer and RNG state plus ``meta`` (JSON) as ``step-XXXXXXXX.npz``."""
    arrays: dict[str, np.ndarray] = {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    for i, v in enumerate(model.weights):
        arrays[f"w{i}"] = np.asarray(v.numpy())
    for i, v in enumerate(model.optimizer.variables):
        arrays[f"o{i}"] = np.asarray(v.numpy())
    for i, g in enumerate(_seed_generators(model)):
        arrays[f"g{i}"] = np.asarray(g.state.numpy())
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = run.checkpoint_path(step)
    write_atomic(path, buf.getvalue())
    for old in run.checkpoints()[:-keep]:
        old.unlink(missing_ok=True)
    return path


def _load_checkpoint(path: Path, model: keras.Model) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`_save_checkpoint`; return its ``meta``."""
    with np.load(path) as data:
        meta = json.loads(data["meta"].tobytes().decode())
        counts = {p: sum(1 for k in data.files if k[0] == p and k[1:].isdigit()) for p in "wog"}
        generators = _seed_generators(model)
        model.optimizer.build(model.trainable_variables)
        expected = {
            "w": len(model.weights),
            "o": len(model.optimizer.variables),
            "g": len(generators),
        }
        if counts != expected:
            raise ValueError(
                f"checkpoint {path} does not fit this model ({counts} arrays of weights, optimizer "
                f"and RNG state; the model has {expected}): was the run's model changed?"
            )
        for i, v in enumerate(model.weights):
            v.assign(data[f"w{i}"])
        for i, v in enumerate(model.optimizer.variables):
            v.assign(data[f"o{i}"])
        for i, g in enumerate(generators):
            g.state.assign(data[f"g{i}"])
    return meta


def _save_weights(model: keras.Model, path: Path) -> None:
    """``model.save_weights`` to a temporary ``.weights.h5`` name, then rename onto ``path``."""
    tmp = weights_temporary(path)
    model.save_weights(tmp)
    tmp.replace(path)


# --------------------------------------------------------------------------- training


class _StepProgress(keras.callbacks.Callback):
    """Report ``(step, total, logs)`` after every training batch of a chunk."""

    def __init__(
        self, progress: Callable[[int, int, dict[str, Any]], None], start: int, total: int
    ):
        super().__init__()
        self.progress, self.start, self.total = progress, start, total

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.progress(self.start + batch + 1, self.total, dict(logs or {}))


def _check_resume(run: RunDir, config: RunConfig, storage_options: dict | None) -> RunConfig:
    """Return the run's config with ``config.steps`` and ``config.dataset``, refusing other
    changed settings and fewer steps than the run has trained.

    ``config.dataset`` may name the run's dataset by another path (:func:`same_dataset`): the
    resumed run reads it there, and records it, since the path the run recorded may no longer
    lead to it (``/x/runs/../ds`` once ``/x/runs`` is gone or renamed)."""
    saved = run.load_config()
    if same_dataset(saved.dataset, config.dataset, storage_options):
        saved.dataset = config.dataset
    old, new = saved.training_identity(), config.training_identity()
    changed = sorted(k for k in old if old[k] != new.get(k))
    if changed:
        detail = ", ".join(f"{k}: {old[k]!r} -> {new.get(k)!r}" for k in changed)
        raise ValueError(
            f"--resume continues run {run.path} with its own settings, but these differ: {detail}. "
            "Continue it with the run's settings, or start it over with --restart (or use another "
            "--out)"
        )
    trained = run.trained_steps()
    if config.steps < trained:
        raise ValueError(
            f"--resume continues run {run.path}, which has trained {trained} steps, but --steps "
            f"is {config.steps}: give at least {trained} steps, or leave --steps out"
        )
    saved.steps = config.steps
    return saved


def _finished_result(run: RunDir, config: RunConfig) -> TrainResult | None:
    """The result of ``run`` as its summary records it when it has already trained
    ``config.steps`` (its last checkpoint and its summary at that step); None otherwise."""
    summary = run.load_summary()
    steps = config.steps
    if summary is None or summary["step"] != steps or run.trained_steps() != steps:
        return None
    return TrainResult(
        run=run.path,
        step=steps,
        resumed_from=steps,
        metric=summary["metric"],
        best_step=summary["best_step"],
        best_value=summary["best_value"],
        last_metrics=summary["last_metrics"],
        history=run.history(),
        clips=summary["train_clips"],
        seconds=0.0,
        clips_per_second=summary["clips_per_second"],
        devices=summary.get("devices", "-"),
        already_trained=True,
    )


def _check_single_labels(data: TrainData) -> None:
    """Refuse training and evaluation clips without exactly one label each, naming them, before
    the run writes anything (:func:`modeling.scoring.check_single_labels`)."""
    check_single_labels(data.reader, data.labels, data.train_rows)
    if data.eval_reader is data.reader:
        check_single_labels(data.reader, data.labels, data.eval_rows)
    elif data.eval_reader is not None:
        eval_labels = read_row_labels(data.eval_reader)
        check_single_labels(data.eval_reader, eval_labels, data.eval_rows)


def _embedding_provenance(config: RunConfig, data: TrainData) -> dict[str, str] | None:
    """The VGGish weights of the run's embeddings (training and evaluation rows); None for
    waveform runs and imported embeddings."""
    if config.input != "embeddings":
        return None
    readers = [data.reader] + ([data.eval_reader] if data.eval_reader is not None else [])
    return shard_provenance(readers, config.embedding_model)


def _check_resumed_provenance(
    run: RunDir, config: RunConfig, provenance: dict[str, str] | None
) -> None:
    """Refuse to continue a run on embeddings made with other weights than it recorded."""
    recorded = config.embedding_provenance
    if recorded is not None and provenance != recorded:
        raise ValueError(
            f"--resume continues run {run.path} on embeddings made with {describe(recorded)}, "
            f"but the dataset's are now made with {describe(provenance)}: start it over with "
            "--restart"
        )


def _build(
    config: RunConfig, data: TrainData, devices: list[str] | None
) -> tuple[keras.Model, str]:
    """The compiled model, under the strategy and policy of ``config`` and ``devices``, and
    :func:`~modeling.models.describe_strategy` of them."""
    strategy, policy = strategy_and_policy(config.mixed_precision, devices)
    weights, negative_weights = _loss_weights(config, data)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(
            config.model, config.input_kind, config.num_classes, config.task, **config.model_kwargs
        )
        compile_model(
            model,
            config.task,
            config.learning_rate,
            weights,
            jit_compile=False,
            negative_weights=negative_weights,
        )
    return model, describe_strategy(strategy, policy)


def _loss_weights(
    config: RunConfig, data: TrainData
) -> tuple[list[float] | None, list[float] | None]:
    """The loss weights of ``--class-weights`` from the training labels, as
    ``(class_weights, negative_weights)``: a one-class multi-label run (a detector) weights
    positives against negatives (:func:`~modeling.models.balanced_binary_weights`), other runs
    weight classes against each other (:func:`~modeling.models.balanced_class_weights`).

    Raises
    ------
    ValueError
        For a detector whose training clips are all positives or all negatives, naming the
        split(s).
    """
    if not config.class_weights:
        return None, None
    dense = data.labels.dense(data.train_rows, config.num_classes)
    if config.task != "multilabel" or config.num_classes != 1:
        return balanced_class_weights(dense).tolist(), None
    try:
        positive, negative = balanced_binary_weights(dense)
    except ValueError as error:
        names = ", ".join(config.splits)
        raise ValueError(
            f"--class-weights on split {names}: {error}; train without --class-weights"
        ) from None
    return [positive], [negative]


def _evaluate(model: keras.Model, config: RunConfig, data: TrainData) -> dict[str, Any] | None:
    if data.eval_reader is None:
        return None
    scores, targets = predict_rows(model, data.eval_reader, data.eval_rows, config.batch_size)
    return task_metrics(config.task, targets, scores)


def train(
    config: RunConfig,
    run_path: str | Path,
    *,
    resume: bool = False,
    restart: bool = False,
    classes: Any = None,
    storage_options: dict | None = None,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
    devices: list[str] | None = None,
) -> TrainResult:
    """Train (or continue) the run at ``run_path``.

    Parameters
    ----------
    config : RunConfig
        With ``resume``, every setting but ``steps`` must equal the saved run's; the run records
        ``steps``, so a run extended by more steps continues to them when resumed again.
    run_path : str or Path
        The run directory; must not hold a run unless ``resume`` or ``restart``.
    resume : bool
        Continue from the run's last checkpoint (a run with no checkpoint yet starts over, and
        so does one that does not exist yet, which makes ``train --resume`` idempotent). A run
        that has already trained its steps is left as it is (``TrainResult.already_trained``).
    restart : bool
        Start over; a run already there is moved to ``RUN.previous`` (:meth:`RunDir.set_aside`)
        once the new one's data checked out, or deleted when it is unfinished and the run at
        ``RUN.previous`` finished. Not with ``resume``.
    classes : ClassMap, optional
        The dataset's class map, copied into the run (required for a fresh run).
    storage_options : dict, optional
        fsspec options of the dataset.
    progress : callable, optional
        Called as ``progress(step, total_steps, logs)`` after each step.
    devices : list of str, optional
        Replicate over these devices; by default every GPU when there are several (see
        :func:`modeling.models.strategy_and_policy`). Not part of the run's identity: a run
        may resume on other hardware.

    Returns
    -------
    TrainResult

    Raises
    ------
    LockedError
        When another process is training the run (it holds the run's lock, which this one holds
        until it returns: :meth:`RunDir.locked`).
    """
    if resume and restart:
        raise ValueError("--resume and --restart do not go together")
    run = RunDir(run_path)
    with run.locked():
        run.remove_temporaries()
        return _train_locked(
            config,
            run,
            resume=resume and run.exists,
            restart=restart,
            classes=classes,
            storage_options=storage_options,
            progress=progress,
            devices=devices,
        )


def _train_locked(
    config: RunConfig,
    run: RunDir,
    *,
    resume: bool,
    restart: bool,
    classes: Any,
    storage_options: dict | None,
    progress: Callable[[int, int, dict[str, Any]], None] | None,
    devices: list[str] | None,
) -> TrainResult:
    """:func:`train`, with the run's lock held and ``resume`` only for a run that exists."""
    if resume:
        config = _check_resume(run, config, storage_options)
        finished = _finished_result(run, config)
        if finished is not None:
            return finished
    elif run.exists and not restart:
        raise FileExistsError(
            f"{run.path} already holds a run; pass --resume to continue it, --restart to start it "
            "over, or choose another --out"
        )
    data = open_train_data(config, storage_options)
    if config.task == "singlelabel":
        _check_single_labels(data)
    provenance = _embedding_provenance(config, data)
    model, placement = _build(config, data, devices)
    aside = None
    if resume:
        _check_resumed_provenance(run, config, provenance)
        run.save_config(config)
    else:
        if classes is None:
            raise ValueError("a new run needs the dataset's class map")
        config = replace(config, embedding_provenance=provenance)
        if run.exists:
            aside = run.set_aside()
        run.save_config(config, classes)

    sampler = make_sampler(config.sampler, data.train_rows, data.labels, config.seed)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"step": None, "value": None}
    start = 0
    checkpoints = run.checkpoints()
    if resume and checkpoints:
        meta = _load_checkpoint(checkpoints[-1], model)
        start, best = int(meta["step"]), meta["best"]
        sampler.restore(meta["sampler"])
        history = run.history()[: meta["history_length"]]
    seconds_before = float(history[-1]["seconds"]) if history else 0.0  # a resumed run's time
    sampler_states = {-1: sampler.state()}

    def record_state(number: int) -> None:
        sampler_states[number] = sampler.state()

    dataset = make_dataset(
        data.reader,
        sampler,
        config.batch_size,
        transform=model_input(config.input),
        on_batch=record_state,
    )
    metric = headline_metric(config.task)
    writer = tf.summary.create_file_writer(str(run.file(LOGS)))
    t0 = time.perf_counter()
    train_seconds = 0.0
    last_metrics: dict[str, Any] = {}
    step = start
    batches_iter = iter(dataset)
    drawn = start

    def next_batches(n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The next ``n`` batches, each mixed up with a generator seeded by its step; fewer
        when a read failed (the dataset ends; :func:`read_failures_raised` raises it)."""
        nonlocal drawn
        for batch in itertools.islice(batches_iter, n):
            x, y = (t.numpy() for t in batch)
            if config.mixup > 0:
                rng = np.random.default_rng([config.seed, _MIXUP_STREAM, drawn])
                mixed = mixup(x, y, config.mixup, rng)
                x, y = mixed.x, mixed.y
            drawn += 1
            yield x, y

    signature = (
        tf.TensorSpec((None, *data.reader.x_shape), tf.float32),
        tf.TensorSpec((None, config.num_classes), tf.float32),
    )
    while step < config.steps:
        n = min(config.eval_every - step % config.eval_every, config.steps - step)
        chunk = tf.data.Dataset.from_generator(
            lambda n=n: next_batches(n), output_signature=signature
        )
        t_chunk, drawn_before = time.perf_counter(), drawn
        with read_failures_raised(data.reader):
            fitted = model.fit(
                chunk,
                epochs=1,
                steps_per_epoch=n,
                shuffle=False,  # the sampler orders the batches
                verbose=0,
                callbacks=[_StepProgress(progress, step, config.steps)] if progress else [],
            )
        if drawn - drawn_before < n:  # no read failed, yet the batches ran out
            raise RuntimeError(f"the training data ended after {drawn} of {config.steps} steps")
        train_seconds += time.perf_counter() - t_chunk
        step += n
        metrics = _evaluate(model, config, data)
        entry = {
            "step": step,
            "loss": float(fitted.history["loss"][-1]),
            "seconds": round(seconds_before + time.perf_counter() - t0, 3),
        }
        if metrics is not None:
            last_metrics = metrics
            entry.update({k: v for k, v in metrics.items() if np.isscalar(v) or v is None})
            value = metrics.get(metric)
            if value is not None and (best["value"] is None or value > best["value"]):
                best = {"step": step, "value": value}
                _save_weights(model, run.file(BEST_WEIGHTS))
        history.append(entry)
        with writer.as_default(step=step):
            for key, value in entry.items():
                if key != "step" and isinstance(value, int | float):
                    tf.summary.scalar(key, value)
        writer.flush()
        run.write_history(history)
        _save_checkpoint(
            run,
            step,
            model,
            {
                "step": step,
                "best": best,
                "sampler": sampler_states[step - start - 1],
                "history_length": len(history),
            },
        )
        for number in [k for k in list(sampler_states) if k < step - start - 1]:
            del sampler_states[number]

    _save_weights(model, run.file(LAST_WEIGHTS))
    seconds = time.perf_counter() - t0
    trained = step - start
    result = TrainResult(
        run=run.path,
        step=step,
        resumed_from=start,
        metric=metric,
        best_step=best["step"],
        best_value=best["value"],
        last_metrics={k: v for k, v in last_metrics.items() if np.isscalar(v) or v is None},
        history=history,
        clips=len(data.train_rows),
        seconds=seconds,
        clips_per_second=trained * config.batch_size / train_seconds if train_seconds else 0.0,
        devices=placement,
        previous=None if aside is None else aside.previous,
        replaced_deleted=aside is not None and aside.deleted,
    )
    write_json(
        run.file(SUMMARY),
        {
            "step": result.step,
            "metric": metric,
            "best_step": result.best_step,
            "best_value": result.best_value,
            "last_metrics": result.last_metrics,
            "train_clips": result.clips,
            "epochs": round(step * config.batch_size / max(result.clips, 1), 3),
            "clips_per_second": round(result.clips_per_second, 2),
            "devices": result.devices,
        },
    )
    return result


def steps_for_epochs(epochs: float, clips: int, batch_size: int) -> int:
    """Steps that cover ``epochs`` passes over ``clips`` clips."""
    return max(1, math.ceil(epochs * clips / batch_size))
