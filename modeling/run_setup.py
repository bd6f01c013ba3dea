"""Turn what a user asks for (``audiomill train`` options) into a complete :class:`RunConfig`.

Defaults that depend on the data are resolved here, once, and recorded in the run: the model
for the input (multi-level attention on embeddings, CNN14 on waveforms), the evaluation split
(``eval`` when the dataset has it), the model's input shape (frames and dimensions of the
embeddings, or the clip length and sample rate of the waveforms), and ``--epochs`` as steps.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from modeling.models import build_model, check_task, model_names, model_parameters
from modeling.models_logmel import DEFAULT_FMAX
from modeling.runs import INPUTS, RunConfig
from modeling.train_data import check_fold_count
from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetStore
from schemas.classmap import ClassMap
from schemas.dataset import CLASSES, DatasetManifest

DEFAULT_MODELS = {"embeddings": "multi_level_attention", "waveforms": "cnn14"}
DATA_ARGS = {
    "waveforms": ("clip_samples", "sample_rate"),
    "embeddings": ("num_frames", "embedding_dim", "input_dtype"),
}
"""Builder arguments set from the dataset (its input shape), never by ``--model-arg``."""
MAX_STEPS = 10**12
"""The most steps a run may train. At 10,000 steps a second, far more than any model trains,
they take three years, so a larger count (``--steps``, or the steps ``--epochs`` make) is a
mistake; the limit is far below ``sys.maxsize`` (``itertools.islice``, Keras' steps per epoch)
and below 2**53, so step counts stay exact in float arithmetic (progress, TensorBoard)."""
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def parse_model_args(items: list[str] | None) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` model arguments; values are JSON when they parse, else strings.

    Raises
    ------
    ValueError
        If an item has no ``=``.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-arg {item!r} must look like KEY=VALUE (e.g. width=32)")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def check_learning_rate(rate: float) -> None:
    """Refuse a learning rate that is not a positive, finite number.

    Raises
    ------
    ValueError
        Naming ``--lr`` and the value.
    """
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"--lr must be a positive, finite learning rate, got {rate:g}")


def run_options(config: RunConfig) -> dict[str, Any]:
    """The :func:`plan_run` options that plan ``config`` again (``steps`` and ``eval_every``
    given, the model arguments as recorded but those the dataset sets, ``fold`` counting from
    1)."""
    return {
        "input": config.input,
        "model": config.model,
        "splits": list(config.splits),
        "eval_split": config.eval_split or "none",
        "task": config.task,
        "sampler": config.sampler,
        "batch_size": config.batch_size,
        "steps": config.steps,
        "eval_every": config.eval_every,
        "learning_rate": config.learning_rate,
        "mixup": config.mixup,
        "class_weights": config.class_weights,
        "folds": config.folds,
        "fold": None if config.fold is None else config.fold + 1,
        "seed": config.seed,
        "embedding_model": config.embedding_model,
        "model_args": {
            name: value
            for name, value in config.model_kwargs.items()
            if name not in DATA_ARGS.get(config.input, ())
        },
        "mixed_precision": config.mixed_precision,
    }


def dataset_location(store: DatasetStore) -> str:
    """Where the dataset of ``store`` is, as a run records it: a local dataset's real path
    (absolute, ``..`` and symbolic links resolved), so that every path to it names it alike, or
    a remote dataset's URL."""
    return os.path.realpath(store.root) if store.is_local else store.url()


def same_dataset(recorded: str, given: str, storage_options: dict | None = None) -> bool:
    """Whether ``given`` is the dataset a run records as ``recorded``: local paths are compared
    by their real paths (a run written before runs recorded them may hold ``..``), URLs as
    they are."""
    return dataset_location(DatasetStore(recorded, storage_options)) == dataset_location(
        DatasetStore(given, storage_options)
    )


def check_resume_dataset(
    config: RunConfig, dataset: str, run: str, storage_options: dict | None = None
) -> None:
    """Refuse to resume ``run`` (trained on ``config.dataset``) on another dataset
    (:func:`same_dataset`).

    Raises
    ------
    ValueError
        Naming both datasets.
    """
    if not same_dataset(config.dataset, dataset, storage_options):
        given = dataset_location(DatasetStore(dataset, storage_options))
        raise ValueError(
            f"--resume continues run {run}, trained on dataset {config.dataset}, but the dataset "
            f"given is {given}: give the run's dataset, or start a new run (--restart)"
        )


def split_names(manifest: DatasetManifest, source: str, embedding_model: str) -> list[str]:
    """Splits of the dataset that have committed shards of ``source``."""
    if source == "waveforms":
        splits = manifest.splits
    else:
        splits = manifest.embeddings.get(embedding_model, {})
    return sorted(name for name, entry in splits.items() if entry.shards)


def training_split_evaluated(config: RunConfig) -> str | None:
    """A warning for a run that evaluates one of its training splits (``--split train
    --eval-split train``): allowed, as for a smoke test, but its scores do not measure how the
    model does on clips it has not seen. None for any other run.

    Parameters
    ----------
    config : RunConfig
    """
    if config.eval_split is None or config.eval_split not in config.splits:
        return None
    return (
        f"--eval-split {config.eval_split} is also a training split (--split): the scores "
        "measured during training, and the best weights chosen by them, are on clips the model "
        "trains on, not held-out ones"
    )


def plan_run(
    dataset: str,
    *,
    input: str,
    model: str | None = None,
    splits: list[str] | None = None,
    eval_split: str | None = None,
    task: str = "multilabel",
    sampler: str = "balanced",
    batch_size: int = 32,
    steps: int | None = None,
    epochs: float | None = None,
    eval_every: int | None = None,
    learning_rate: float = 1e-3,
    mixup: float = 0.0,
    class_weights: bool = False,
    folds: int | None = None,
    fold: int | None = None,
    seed: int = 0,
    embedding_model: str = "vggish",
    model_args: dict[str, Any] | None = None,
    mixed_precision: bool | None = None,
    storage_options: dict | None = None,
) -> tuple[RunConfig, ClassMap]:
    """Resolve the options of a training run against the dataset.

    Parameters
    ----------
    dataset : str
        Dataset directory or fsspec URL.
    input : {"embeddings", "waveforms"}
    model : str, optional
        Default: :data:`DEFAULT_MODELS` of the input.
    splits : list of str, optional
        Training splits (default ``["train"]``).
    eval_split : str, optional
        Default: ``"eval"`` when the dataset has it (and no folds are asked for); ``"none"``
        disables evaluation.
    steps, epochs
        At most one; default 10 epochs.
    eval_every : int, optional
        Default: about ten evaluations in the run.
    folds, fold : int, optional
        K-fold cross-validation; ``fold`` counts from 1.
    model_args : dict, optional
        Builder arguments; those the data fixes (input shape) are added.
    (others) : as :class:`RunConfig`

    Returns
    -------
    config : RunConfig
        Recording the dataset by :func:`dataset_location`.
    classes : ClassMap

    Raises
    ------
    ValueError
        For a split the dataset does not have or has no shards of the input, with what it
        has instead, for a ``--batch-size``, ``--steps`` or ``--eval-every`` that is not
        positive, ``--epochs`` that is not positive and finite, more steps than
        :data:`MAX_STEPS`, a ``--mixup`` alpha that is not finite and >= 0, for model arguments
        the model does not take, that the dataset sets, or that it cannot be built or run on a
        zero batch with, and for a learning rate that is not positive and finite.
    """
    if input not in INPUTS:
        raise ValueError(f"--input must be one of {', '.join(INPUTS)}, got {input!r}")
    check_learning_rate(learning_rate)
    for option, value in (
        ("--batch-size", batch_size),
        ("--steps", steps),
        ("--eval-every", eval_every),
    ):
        if value is not None and value < 1:
            raise ValueError(f"{option} must be positive, got {value}")
    if steps is not None and steps > MAX_STEPS:
        raise ValueError(
            f"--steps {steps} is more than a run may train: at most {MAX_STEPS:,} steps"
        )
    if epochs is not None and not (math.isfinite(epochs) and epochs > 0):
        raise ValueError(f"--epochs must be positive and finite, got {epochs:g}")
    if not (math.isfinite(mixup) and mixup >= 0):
        raise ValueError(f"--mixup must be a finite alpha >= 0, got {mixup:g}")
    store = DatasetStore(dataset, storage_options)
    manifest = load_manifest(store)
    if manifest is None:
        raise ValueError(f"{store.url()} is not a dataset (no manifest.json)")
    classes = ClassMap.from_csv_text(store.read_text(CLASSES), store.url(CLASSES))
    model = model or DEFAULT_MODELS[input]
    known = [name for name, kind in model_names() if kind == input.removesuffix("s")]
    if model not in known:
        raise ValueError(f"no model {model!r} for {input}; choose one of {', '.join(known)}")
    available = split_names(manifest, input, embedding_model)
    splits = splits or ["train"]
    wanted = splits + ([eval_split] if eval_split not in (None, "none") else [])
    existing = sorted({*manifest.splits, *(s for e in manifest.embeddings.values() for s in e)})
    unknown = [s for s in wanted if s not in existing]
    if unknown:
        raise ValueError(
            f"the dataset has no split {', '.join(map(repr, unknown))} (it has "
            f"{', '.join(existing) or 'none'})"
        )
    missing = [s for s in wanted if s not in available]
    if missing:
        what = input if input == "waveforms" else f"{embedding_model} embeddings"
        raise ValueError(
            f"the dataset has no {what} of split(s) {', '.join(missing)}; it has "
            f"[{', '.join(available)}]"
            + ("; compute embeddings with `audiomill embed`" if input == "embeddings" else "")
        )
    if (folds is None) != (fold is None):
        raise ValueError("--folds and --fold go together")
    if folds is not None:
        if eval_split not in (None, "none"):
            raise ValueError("--eval-split cannot be used with --folds (the held-out fold is)")
        eval_split = None
        if not 1 <= fold <= folds:  # type: ignore[operator]
            raise ValueError(f"--fold must be in 1..{folds}, got {fold}")
        fold -= 1  # type: ignore[operator]
    elif eval_split is None:
        eval_split = "eval" if "eval" in available and "eval" not in splits else None
    elif eval_split == "none":
        eval_split = None
    if steps is not None and epochs is not None:
        raise ValueError("give --steps or --epochs, not both")
    clips = sum(
        (manifest.splits if input == "waveforms" else manifest.embeddings[embedding_model])[
            s
        ].num_clips
        for s in splits
    )
    if folds is not None:
        try:
            check_fold_count(clips, folds)
        except ValueError as exc:
            raise ValueError(f"--folds {folds}: {exc}") from None
        clips -= clips // folds
    if steps is None:
        steps = _epoch_steps(10.0 if epochs is None else epochs, clips, batch_size)
    if eval_every is None:
        eval_every = max(1, math.ceil(steps / 10))
    data_kwargs = _data_kwargs(
        manifest, input, store.url(), splits[0], embedding_model, storage_options
    )
    model_args = model_args or {}
    defaults = _rate_defaults(model, input, model_args, data_kwargs)
    _check_model_args(model, input, manifest.num_classes, task, model_args, data_kwargs, defaults)
    kwargs = {**defaults, **model_args, **data_kwargs}
    config = RunConfig(
        dataset=dataset_location(store),
        input=input,
        model=model,
        task=task,
        num_classes=manifest.num_classes,
        splits=list(splits),
        eval_split=eval_split,
        sampler=sampler,
        batch_size=batch_size,
        steps=steps,
        eval_every=min(eval_every, steps),
        learning_rate=learning_rate,
        mixup=mixup,
        class_weights=class_weights,
        seed=seed,
        folds=folds,
        fold=fold,
        embedding_model=embedding_model,
        model_kwargs=kwargs,
        mixed_precision=mixed_precision,
    )
    return config, classes


def _epoch_steps(epochs: float, clips: int, batch_size: int) -> int:
    """The steps of ``epochs`` passes over ``clips`` clips in batches of ``batch_size`` (at
    least one).

    Raises
    ------
    ValueError
        Naming ``--epochs`` and the most epochs a run may train, when they make more steps than
        :data:`MAX_STEPS`.
    """
    steps = epochs * clips / batch_size  # inf when it overflows
    if not steps <= MAX_STEPS:
        raise ValueError(
            f"--epochs {epochs:g} is more than a run may train: at most {MAX_STEPS:,} steps, "
            f"{MAX_STEPS * batch_size / clips:.4g} epochs of {clips} training clips in batches "
            f"of {batch_size}"
        )
    return max(1, math.ceil(steps))


def _check_model_args(
    model: str,
    input: str,
    num_classes: int,
    task: str,
    model_args: dict[str, Any],
    data_kwargs: dict[str, Any],
    defaults: dict[str, Any] | None = None,
) -> None:
    """Refuse ``--model-arg`` names the builder of ``model`` does not take, values of those the
    dataset sets (input shape, sample rate) other than the dataset's, and values it cannot be
    built or run with (building it and running it on a zero batch once, when there are any,
    with the ``defaults`` the dataset's rate decides where they give none), before a run is
    written.

    Raises
    ------
    ValueError
        Naming the arguments, with those the model takes or the builder's complaint.
    """
    kind = input.removesuffix("s")
    takes = model_parameters(model, kind)
    fixed = [
        name
        for name in model_args
        if name in DATA_ARGS[input] and model_args[name] != data_kwargs[name]
    ]
    if fixed:
        given = ", ".join(f"{name}={json.dumps(model_args[name])}" for name in fixed)
        values = ", ".join(f"{name}={json.dumps(data_kwargs[name])}" for name in fixed)
        raise ValueError(
            f"--model-arg {given}: set from the dataset ({values}), not by --model-arg (the "
            f"{input} shards are read as they are)"
        )
    unknown = [name for name in model_args if name not in takes]
    if unknown:
        settable = ", ".join(name for name in takes if name not in data_kwargs)
        raise ValueError(
            f"--model-arg {', '.join(unknown)}: {model} takes no argument "
            f"{', '.join(map(repr, unknown))} (it takes: {settable})"
        )
    if not model_args:
        return
    check_task(task)
    try:
        kwargs = {**(defaults or {}), **model_args, **data_kwargs}
        built = build_model(model, kind, num_classes, task, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(_model_args_error(model, model_args, "be built", exc)) from None
    try:
        _forward_pass(built, input, data_kwargs)
    except Exception as exc:  # any failure of the model on a zero batch
        raise ValueError(
            _model_args_error(model, model_args, "run on the dataset's clips", exc)
        ) from None


def _model_args_error(model: str, model_args: dict[str, Any], what: str, exc: Exception) -> str:
    """One line: the model arguments, what ``model`` cannot do with them, and why (the
    exception's message without ANSI colour codes, TensorFlow's ``{{node ...}}`` and ``[Op:
    ...]`` decorations, Keras' "Exception encountered when calling" and "Arguments received
    by" parts or line breaks, cut to 300 characters)."""
    given = ", ".join(f"{name}={json.dumps(value)}" for name, value in model_args.items())
    reason = _ANSI.sub("", str(exc))
    reason = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]", "", reason)
    reason = " ".join(reason.split())
    reason = re.sub(r"^Exception encountered when calling \S+\.\s*", "", reason)
    reason = reason.split(" Arguments received by ")[0]
    if len(reason) > 300:
        reason = reason[:299] + "…"
    return (
        f"--model-arg {given}: {model} cannot {what} with "
        f"{'it' if len(model_args) == 1 else 'them'}: {reason}"
    )


def _forward_pass(model: Any, input: str, data_kwargs: dict[str, Any]) -> None:
    """Run ``model`` once on a zero batch of two clips of the data's shape, and refuse output
    that is not ``(2, classes)`` or not finite.

    Raises
    ------
    ValueError
        If the output has another shape or non-finite values; anything the model raises
        passes through.
    """
    import numpy as np

    if input == "waveforms":
        batch = np.zeros((2, data_kwargs["clip_samples"]), np.float32)
    else:
        shape = (2, data_kwargs["num_frames"], data_kwargs["embedding_dim"])
        batch = np.zeros(shape, data_kwargs["input_dtype"])
    output = np.asarray(model(batch, training=False))
    expected = (2, model.output_shape[-1])
    if output.shape != expected:
        raise ValueError(f"a batch of 2 clips gives outputs of shape {output.shape}")
    if not np.isfinite(output).all():
        raise ValueError("a batch of silent clips gives outputs that are not finite")


def _rate_defaults(
    model: str, input: str, model_args: dict[str, Any], data_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Model arguments the dataset's sample rate decides unless given: a waveform model's mel
    bands stop at the Nyquist frequency (``fmax`` None) where it is below the models' default
    top (:data:`~modeling.models_logmel.DEFAULT_FMAX`), so models build on 8 kHz audio."""
    if (
        input == "waveforms"
        and "fmax" not in model_args
        and "fmax" in model_parameters(model, "waveform")
        and data_kwargs["sample_rate"] / 2 < DEFAULT_FMAX
    ):
        return {"fmax": None}
    return {}


def _data_kwargs(
    manifest: DatasetManifest,
    source: str,
    dataset: str,
    split: str,
    embedding_model: str,
    storage_options: dict | None,
) -> dict[str, Any]:
    """The input shape the data fixes, as model builder arguments."""
    if source == "waveforms":
        return {"clip_samples": manifest.num_samples, "sample_rate": manifest.sample_rate}
    from modeling.readers import ShardReader

    with ShardReader(
        dataset, split, "embeddings", model=embedding_model, storage_options=storage_options
    ) as reader:
        frames, dim = reader.x_shape
    return {"num_frames": int(frames), "embedding_dim": int(dim), "input_dtype": "float32"}
