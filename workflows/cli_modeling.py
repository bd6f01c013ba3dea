"""Modeling commands: train and sweep."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from modeling.catalog import MODELS, TASKS
from modeling.runs import INPUTS, SAMPLERS
from workflows.cli_common import (
    StorageOptions,
    console,
    fail,
    local_dir,
    out,
    progress_bar,
    storage_options_from,
)
from workflows.import_gc import collection_paused

if TYPE_CHECKING:
    from modeling.runs import RunConfig, RunDir


def _one_of(option: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    """The parser of ``option``, refusing a value outside ``choices`` in one line naming them;
    the option's ``Literal`` type carries the same set to its help and to a workflow's checks."""

    def parse(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{option} must be one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


Task = Annotated[
    Literal[TASKS],
    typer.Option(
        help="multilabel (sigmoid + binary cross-entropy) or singlelabel (softmax).",
        parser=_one_of("--task", TASKS),
    ),
]
Sampler = Annotated[
    Literal[SAMPLERS],
    typer.Option(
        help="balanced: PANNs' round-robin over classes (unlabelled clips form one more queue); "
        "shuffled: a new permutation each epoch; weighted: with replacement, by 1/count of "
        "labels (unlabelled clips count as one more class).",
        parser=_one_of("--sampler", SAMPLERS),
    ),
]
MODEL_ARG_HELP = "Model builder argument KEY=VALUE (JSON value), repeatable, e.g. width=16."
Splits = Annotated[
    list[str] | None,
    typer.Option("--split", help="Training split, repeatable (folds as splits); default train."),
]


def _format_metric(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _train_table(result: Any, title: str) -> Table:
    t = Table(title=title, show_header=False)
    t.add_row("run", str(result.run))
    if result.replaced_deleted:
        t.add_row("replaced run", f"unfinished: deleted; {result.previous} keeps a finished run")
    elif result.previous is not None:
        t.add_row("replaced run", f"kept as {result.previous}")
    if result.already_trained:
        note = f" (already trained {result.step} steps; nothing to do)"
    else:
        note = f" (resumed from {result.resumed_from})" if result.resumed_from else ""
    t.add_row("steps", f"{result.step}{note}")
    t.add_row("training clips", str(result.clips))
    if result.best_step is not None:
        t.add_row(f"best {result.metric}", f"{result.best_value:.4f} at step {result.best_step}")
    for key in ("mAP", "mean_auc", "d_prime", "lwlrap", "accuracy"):
        if key in result.last_metrics:
            t.add_row(f"last {key}", _format_metric(result.last_metrics[key]))
    if result.history:
        t.add_row("last loss", f"{result.history[-1]['loss']:.4f}")
    t.add_row("devices", result.devices)
    if not result.already_trained:
        t.add_row(
            "time", f"{result.seconds:.1f} s ({result.clips_per_second:.0f} clips/s in steps)"
        )
    return t


def _model_args(items: list[str] | None) -> dict[str, Any]:
    with collection_paused():
        from modeling.run_setup import parse_model_args

    try:
        return parse_model_args(items)
    except ValueError as exc:
        fail(str(exc))


def _learning_rate(rate: float) -> None:
    """Fail on a learning rate that is not positive and finite, before anything is written."""
    with collection_paused():
        from modeling.run_setup import check_learning_rate

    try:
        check_learning_rate(rate)
    except ValueError as exc:
        fail(str(exc))


def _check_devices(devices: list[str] | None) -> None:
    """Fail on a --device TensorFlow does not see, or one given twice
    (:func:`modeling.models.check_devices`), before anything is written."""
    if not devices:
        return
    with collection_paused():
        from modeling.models import check_devices

    try:
        check_devices(devices)
    except ValueError as exc:
        fail(str(exc))


def _check_out(path: Path, command: str, kind: str, restart: bool = False) -> None:
    """Fail on an ``--out`` that ``command`` may not write (:func:`modeling.runs.check_out_dir`),
    before anything is written."""
    with collection_paused():
        from modeling.runs import check_out_dir

    try:
        check_out_dir(path, command, kind, restart=restart)
    except (FileExistsError, PermissionError) as exc:
        fail(str(exc))


def _check_folds(folds: int | None) -> None:
    """Fail on a ``--folds`` of fewer than two folds, before anything is written."""
    if folds is not None and folds < 2:
        fail(f"--folds must be at least 2, got {folds}")


def _plan(dataset: str, so: dict | None, **options: Any) -> tuple[Any, Any]:
    with collection_paused():
        from modeling.run_setup import plan_run

    try:
        return plan_run(dataset, storage_options=so, **options)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))


def _class_weights_warning(config: RunConfig) -> str | None:
    """A warning for a run that weights its loss by class (``--class-weights``) while the
    balanced sampler already draws every class equally often; None for any other run."""
    if not (config.class_weights and config.sampler == "balanced"):
        return None
    return (
        "--class-weights with --sampler balanced corrects class imbalance twice: the balanced "
        "sampler already draws every class (and the clips without labels) equally often; use "
        "--class-weights with --sampler shuffled"
    )


def _warn_about_settings(config: RunConfig) -> None:
    """Print a warning line for each setting of ``config`` that trains but misleads: an
    evaluated training split (:func:`modeling.run_setup.training_split_evaluated`), class
    weights with the balanced sampler."""
    from modeling.run_setup import training_split_evaluated

    for warning in (training_split_evaluated(config), _class_weights_warning(config)):
        if warning is not None:
            console.print(
                f"[bold yellow]warning:[/] {escape(warning)}", soft_wrap=True, highlight=False
            )


def _setting(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _resume_options(
    ctx: typer.Context, run: RunDir, options: dict[str, Any], dataset: str, so: dict | None
) -> dict[str, Any]:
    """The :func:`~modeling.run_setup.plan_run` ``options`` of ``train --resume`` continuing
    ``run``: a setting the command line does not give is the run's own (``eval_every`` too,
    which ``--steps`` would otherwise derive), ``--steps`` or ``--epochs`` may extend the run,
    and a given setting with another value than the run's is refused, naming it, and so is
    another dataset than the run's (the same one by another path is the run's, and is read
    where given: :func:`~modeling.run_setup.same_dataset`)."""
    from modeling.run_setup import check_resume_dataset, run_options

    try:
        config = run.load_config()
        saved = run_options(config)
    except ValueError as exc:
        fail(f"{run.path}: {exc}")
    try:
        check_resume_dataset(config, dataset, str(run.path), so)
    except ValueError as exc:
        fail(str(exc))
    params = {param.name: param for param in ctx.command.params}
    merged = dict(options)
    changes = []
    for key, value in saved.items():
        name = {"splits": "split", "learning_rate": "lr", "model_args": "model_arg"}.get(key, key)
        flag = params[name].opts[0]
        source = ctx.get_parameter_source(name)  # typer's own click: its ParameterSource
        if source is None or source.name != "COMMANDLINE":
            if key != "steps" or options["epochs"] is None:
                merged[key] = value
        elif key == "model_args":
            merged[key] = {**value, **options[key]}
            changes += [
                f"{flag} {arg}: {_setting(value.get(arg))} -> {_setting(given)}"
                for arg, given in options[key].items()
                if value.get(arg) != given
            ]
        elif key != "steps" and options[key] != value:
            changes.append(f"{flag} {_setting(value)} -> {_setting(options[key])}")
    if changes:
        fail(
            f"--resume continues run {run.path} with its own settings, but the command changes "
            f"{', '.join(changes)}: leave them out to continue the run, or start it over with "
            "--restart"
        )
    return merged


def _check_resumed_epochs(run: RunDir, config: RunConfig, epochs: float | None) -> None:
    """Fail on a ``--resume`` whose ``--epochs`` make fewer steps (``config.steps``) than ``run``
    has trained, naming ``--epochs`` and those steps (a run is not cut back)."""
    if epochs is None:
        return
    trained = run.trained_steps()
    if config.steps < trained:
        fail(
            f"--resume continues run {run.path}, which has trained {trained} steps, but --epochs "
            f"{epochs:g} makes {config.steps} steps: give more --epochs (at least {trained} "
            "steps), or leave --epochs out"
        )


def _train(
    config: Any,
    classes: Any,
    run: Path,
    resume: bool,
    so: dict | None,
    devices: list[str] | None = None,
    restart: bool = False,
) -> Any:
    with collection_paused():
        from modeling.runs import out_error_line
        from modeling.training import train as train_run

    with progress_bar("steps", loss="-") as (bar, task):

        def advance(step: int, total: int, logs: dict[str, Any]) -> None:
            bar.update(task, completed=step, total=total, loss=f"{logs['loss']:.4f}")

        try:
            return train_run(
                config,
                run,
                resume=resume,
                restart=restart,
                classes=classes,
                storage_options=so,
                progress=advance,
                devices=devices,
            )
        except (ValueError, FileNotFoundError, FileExistsError) as exc:
            fail(str(exc))
        except OSError as exc:
            fail(out_error_line(exc, run, "train"))


def train(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset directory or URL.")],
    out_dir: Annotated[str, typer.Option("--out", help="Run directory to write (local).")],
    input: Annotated[
        Literal[INPUTS],
        typer.Option(
            "--input",
            help="embeddings (VGGish shards) or waveforms.",
            parser=_one_of("--input", INPUTS),
        ),
    ] = "embeddings",
    model: Annotated[
        Literal[MODELS] | None,
        typer.Option(
            help="Model; default multi_level_attention (embeddings), cnn14 (waves).",
            parser=_one_of("--model", MODELS),
            show_choices=False,
        ),
    ] = None,
    split: Splits = None,
    eval_split: Annotated[
        str | None,
        typer.Option(help="Split evaluated during training; default eval if present; 'none'."),
    ] = None,
    task: Task = "multilabel",
    sampler: Sampler = "balanced",
    batch_size: Annotated[int, typer.Option(help="Clips per step.")] = 32,
    steps: Annotated[int | None, typer.Option(help="Training steps.")] = None,
    epochs: Annotated[
        float | None, typer.Option(help="Passes over the training clips (default 10).")
    ] = None,
    eval_every: Annotated[
        int | None, typer.Option(help="Evaluate and checkpoint every N steps (default: 10 times).")
    ] = None,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 1e-3,
    mixup: Annotated[float, typer.Option(help="Mixup Beta(alpha, alpha); 0 disables.")] = 0.0,
    class_weights: Annotated[
        bool, typer.Option(help="Weight the loss by inverse class frequency.")
    ] = False,
    folds: Annotated[
        int | None, typer.Option(help="K-fold cross-validation over the training splits.")
    ] = None,
    fold: Annotated[int | None, typer.Option(help="Held-out fold, 1..K.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of weights, sampler, mixup and dropout.")] = 0,
    model_arg: Annotated[list[str] | None, typer.Option(help=MODEL_ARG_HELP)] = None,
    embedding_model: Annotated[str, typer.Option(help="Embedding shards to read.")] = "vggish",
    mixed_precision: Annotated[
        bool | None,
        typer.Option(
            "--mixed-precision/--no-mixed-precision",
            help="float16 compute; default: on when a GPU is visible.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue RUN from its last checkpoint, exactly, with its own settings: options "
            "left out are the run's, --steps may extend it (a new RUN starts fresh)."
        ),
    ] = False,
    restart: Annotated[
        bool,
        typer.Option(
            help="Start RUN over, keeping a run already there as RUN.previous (deleting an "
            "older one); an unfinished RUN is deleted instead when RUN.previous has finished."
        ),
    ] = False,
    device: Annotated[
        list[str] | None,
        typer.Option(
            help="Replicate over these devices (repeat, e.g. /gpu:0 /gpu:1); default: all GPUs."
        ),
    ] = None,
    storage_options: StorageOptions = None,
) -> dict[str, Any]:
    """Train a classifier on a dataset's embedding or waveform shards.

    Evaluates and checkpoints every --eval-every steps (history.jsonl, TensorBoard logs in
    RUN/logs), keeps the best weights by mAP (multilabel) or accuracy (singlelabel), and uses
    every visible GPU (MirroredStrategy, mixed precision). --resume continues exactly: the same
    batches, the same weights as a run that was never stopped; options left out take the run's
    own settings, and a larger --steps (or --epochs) extends it. In a workflow, a stage that runs
    again starts its run over, unless it resumes a run it left unfinished with the same settings;
    a stage with no record of the run at RUN (its state file lost, or the stage renamed) resumes
    it when it has the stage's settings and steps, and starts it over otherwise.
    """
    run_dir = local_dir(out_dir, "train")
    if resume and restart:
        fail("--resume and --restart do not go together")
    _check_folds(folds)
    _check_devices(device)
    resume, restart = _workflow_rerun(ctx, resume, restart)
    adopting = _unrecorded_stage_run(ctx, run_dir, restart)
    _check_out(run_dir, "train", "run", restart)
    so = storage_options_from(storage_options)
    options = dict(
        input=input,
        model=model,
        splits=split,
        eval_split=eval_split,
        task=task,
        sampler=sampler,
        batch_size=batch_size,
        steps=steps,
        epochs=epochs,
        eval_every=eval_every,
        learning_rate=lr,
        mixup=mixup,
        class_weights=class_weights,
        folds=folds,
        fold=fold,
        seed=seed,
        embedding_model=embedding_model,
        model_args=_model_args(model_arg),
        mixed_precision=mixed_precision,
    )
    with collection_paused():
        from modeling.runs import RunDir

    resumed = resume and not adopting and RunDir(run_dir).exists
    if resumed:
        options = _resume_options(ctx, RunDir(run_dir), options, dataset, so)
    config, classes = _plan(dataset, so, **options)
    if resumed:
        _check_resumed_epochs(RunDir(run_dir), config, epochs)
    if adopting:
        resume, restart = _adopted_run(RunDir(run_dir), config, so)
    _warn_about_settings(config)
    result = _train(config, classes, run_dir, resume, so, device, restart)
    console.print(_train_table(result, f"train {config.model} on {config.input}"))
    return {"clips": result.clips, "steps": result.step, result.metric: result.best_value}


def _workflow_rerun(ctx: typer.Context, resume: bool, restart: bool) -> tuple[bool, bool]:
    """``resume`` and ``restart`` for a workflow stage's earlier run (see
    :mod:`workflows.runner`): a resumable run is continued when ``resume`` asks, any other run
    the stage made is started over."""
    from workflows.runner import EARLIER_RUN, RESUMABLE

    earlier = ctx.meta.get(EARLIER_RUN)
    if earlier is None or (earlier == RESUMABLE and resume):
        return resume, restart
    return False, True


def _unrecorded_stage_run(ctx: typer.Context, run_dir: Path, restart: bool) -> bool:
    """Whether train runs as a workflow stage with no record of its run (its state file lost,
    or the stage renamed) while its ``--out`` holds a run it does not start over."""
    from modeling.runs import RunDir
    from workflows.runner import EARLIER_RUN

    in_workflow = EARLIER_RUN in ctx.meta
    return in_workflow and ctx.meta[EARLIER_RUN] is None and not restart and RunDir(run_dir).exists


def _adopted_run(run: RunDir, config: RunConfig, so: dict | None) -> tuple[bool, bool]:
    """train's ``resume`` and ``restart`` for a workflow stage adopting ``run``, as the other
    stages adopt their outputs: the run is resumed (or left as it is, when finished) when it
    records ``config``'s settings and steps, and started over otherwise, as a stage whose
    parameters changed is."""
    saved = _saved_config(run)
    same = not _changed_settings(saved, config, so) and saved.steps == config.steps
    return same, not same


def _saved_config(run: RunDir) -> RunConfig:
    try:
        return run.load_config()
    except ValueError as exc:
        fail(f"{run.path}: {exc}")


def _changed_settings(saved: RunConfig, config: RunConfig, so: dict | None) -> list[str]:
    """The settings but ``steps`` in which ``config`` differs from the run recorded as ``saved``;
    the dataset's path is none where it is the same dataset
    (:func:`~modeling.run_setup.same_dataset`)."""
    from modeling.run_setup import same_dataset

    old, new = saved.training_identity(), config.training_identity()
    if same_dataset(saved.dataset, config.dataset, so):
        new["dataset"] = old["dataset"]
    return sorted(k for k in new if old.get(k) != new[k])


def _grid(text: str | None, option: str, default: float) -> list[float]:
    """The values of a sweep's comma-separated grid ``option`` (empty items left out), or
    ``default`` when it is not given; fails on an item that is not a number, on a list of no
    values (``--lr ,``), and on a value given twice (``1e-3,0.001``; ``-0`` is ``0``) or two
    that name the same runs (``{:g}``, 6 significant digits, names a setting's folder)."""
    if text is None:
        return [default]
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        fail(f"{option} lists no values")
    try:
        values = [float(item) + 0.0 for item in items]  # + 0.0 turns -0.0 into 0.0
    except ValueError:
        fail(f"{option} is not a comma-separated list of numbers: {text!r}")
    first: dict[str, int] = {}
    for i, value in enumerate(values):
        j = first.setdefault(f"{value:g}", i)
        if j == i:
            continue
        if values[j] == value:
            fail(f"{option} lists {value:g} twice ({items[j]}, {items[i]}): give each value once")
        name = f"{option.removeprefix('--')}{value:g}"
        fail(
            f"{option} values {items[j]} and {items[i]} name the same runs ({name}: 6 "
            "significant digits): give values that differ there"
        )
    return values


def _check_fold_splits(
    fold_splits: list[str] | None, split: list[str] | None, eval_split: str | None
) -> None:
    """Fail on fold splits (``--fold-split``) that are fewer than two or name a split twice, and
    on ``--split`` or ``--eval-split`` beside them (each fold split is held out once and trained
    on otherwise, so they are both the training and the evaluation splits)."""
    if not fold_splits:
        return
    if len(fold_splits) < 2:
        fail("--fold-split needs at least two splits")
    twice = next((s for i, s in enumerate(fold_splits) if s in fold_splits[:i]), None)
    if twice is not None:
        fail(f"--fold-split {twice} is given twice: give each split once")
    if split or eval_split is not None:
        fail(
            "--split and --eval-split do not go with --fold-split: the fold splits are both the "
            "training and the evaluation splits"
        )


def _nothing_to_rank(eval_split: str | None, splits: list[str] | None) -> NoReturn:
    """Fail a sweep whose runs evaluate no split (no folds, no evaluation split), saying why."""
    if eval_split == "none":
        why = "--eval-split none"
    elif "eval" in (splits or []):
        why = "eval is a training split"
    else:
        why = "the dataset has no eval split"
    fail(
        f"sweep has nothing to rank the settings on: its runs evaluate no split ({why}); pass "
        "--eval-split NAME, --folds K or --fold-split NAME (repeated)"
    )


def _sweep_run_action(
    run: RunDir, config: RunConfig, earlier: str | None, so: dict | None
) -> tuple[str, RunConfig, bool, bool] | None:
    """How a sweep brings ``run`` up to date for ``config``: None keeps it as it is, else why it
    trains, the config it trains with, and train's ``resume`` and ``restart``.

    ``earlier`` is the workflow's :data:`~workflows.runner.EARLIER_RUN`: a stale stage starts
    every run it made over; otherwise a run with other settings than ``config`` starts over, one
    short of ``config.steps`` resumes (extended to them) and one finished with ``config.steps``
    is kept. ``eval_every``, which the sweep derives from the steps, is not a setting: a run keeps
    its own; nor is the dataset's path where it is the same dataset
    (:func:`~modeling.run_setup.same_dataset`): a resumed run reads it where given.
    """
    from workflows.runner import RESUMABLE

    if not run.exists:
        return "new", config, False, False
    if earlier is not None and earlier != RESUMABLE:
        return "starting over: the workflow re-runs this stage", config, False, True
    saved = _saved_config(run)
    continued = replace(config, eval_every=saved.eval_every)
    changed = _changed_settings(saved, continued, so)
    if changed:
        return f"starting over: {', '.join(changed)} changed", config, False, True
    summary = run.load_summary()
    trained = run.trained_steps() if summary is None else summary["step"]
    if trained > config.steps:
        return f"starting over: trained {trained} steps, not {config.steps}", config, False, True
    if summary is None or trained < config.steps:
        return "resuming", continued, True, False
    return None


def _final_value(run: RunDir) -> float | None:
    """The headline metric of ``run``'s last evaluation, at the end of its training, as its
    summary records it; None when that evaluation has none."""
    summary = run.load_summary()
    return summary["last_metrics"].get(summary["metric"])


def sweep(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset directory or URL.")],
    out_dir: Annotated[str, typer.Option("--out", help="Directory of the sweep's runs (local).")],
    lr: Annotated[str | None, typer.Option("--lr", help="Learning rates, e.g. 1e-3,3e-4.")] = None,
    mixup: Annotated[str | None, typer.Option(help="Mixup alphas, e.g. 0,0.2.")] = None,
    folds: Annotated[
        int | None, typer.Option(help="K-fold cross-validation: every fold of every setting.")
    ] = None,
    fold_splits: Annotated[
        list[str] | None,
        typer.Option(
            "--fold-split",
            help="Predefined folds as splits (repeat, e.g. fold1 .. fold10): each is held out "
            "once and the others trained on.",
        ),
    ] = None,
    input: Annotated[
        Literal[INPUTS],
        typer.Option("--input", help="embeddings or waveforms.", parser=_one_of("--input", INPUTS)),
    ] = "embeddings",
    model: Annotated[
        Literal[MODELS] | None,
        typer.Option(
            help="Model (as for train).", parser=_one_of("--model", MODELS), show_choices=False
        ),
    ] = None,
    split: Splits = None,
    eval_split: Annotated[str | None, typer.Option(help="As for train.")] = None,
    task: Task = "multilabel",
    sampler: Sampler = "balanced",
    batch_size: Annotated[int, typer.Option(help="Clips per step.")] = 32,
    steps: Annotated[int | None, typer.Option(help="Steps per run.")] = None,
    epochs: Annotated[float | None, typer.Option(help="Epochs per run.")] = None,
    class_weights: Annotated[bool, typer.Option(help="As for train.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of every run.")] = 0,
    model_arg: Annotated[list[str] | None, typer.Option(help=MODEL_ARG_HELP)] = None,
    embedding_model: Annotated[str, typer.Option(help="Embedding shards to read.")] = "vggish",
    storage_options: StorageOptions = None,
) -> dict[str, Any]:
    """Train a grid of learning rates x mixup alphas, each over every fold, and rank them.

    Each run lives in OUT/<setting>/<fold>. Re-running the sweep keeps runs finished with the
    same settings, resumes unfinished ones (and extends them to more --steps) and starts runs
    with other settings (or fewer steps) over, keeping the replaced run as RUN.previous; in a
    workflow, a stage that runs again starts every run over unless it resumes runs it left
    unfinished. Every run is planned before the first trains, so a setting that cannot train
    stops the sweep before it writes anything. Scores each fold by the headline metric of its
    run's final evaluation (not its best, which was picked on that same fold), prints the mean
    and spread per setting and writes OUT/sweep.json. The runs must evaluate something to rank
    on: folds, or an evaluation split (eval by default, when the dataset has it).
    """
    import numpy as np

    with collection_paused():
        from modeling.runs import RunDir, out_error_line

    from workflows.runner import EARLIER_RUN

    sweep_dir = local_dir(out_dir, "sweep")
    _check_out(sweep_dir, "sweep", "sweep")
    earlier = ctx.meta.get(EARLIER_RUN)
    so = storage_options_from(storage_options)
    model_args = _model_args(model_arg)
    if folds is not None and fold_splits:
        fail("use --folds or --fold-split, not both")
    _check_folds(folds)
    _check_fold_splits(fold_splits, split, eval_split)
    rates = _grid(lr, "--lr", 1e-3)
    for rate in rates:
        _learning_rate(rate)
    plans: list[tuple[str, dict[str, Any]]] = []
    if fold_splits:
        for held in fold_splits:
            rest = [s for s in fold_splits if s != held]
            plans.append((held, {"splits": rest, "eval_split": held}))
    elif folds is not None:
        plans = [(f"fold{k}", {"folds": folds, "fold": k}) for k in range(1, folds + 1)]
    else:
        plans = [("all", {"splits": split, "eval_split": eval_split})]
    alphas = _grid(mixup, "--mixup", 0.0)
    settings = [(f"lr{rate:g}-mixup{alpha:g}", rate, alpha) for rate in rates for alpha in alphas]
    for setting, _, _ in settings:  # every run's folder, before the first run trains
        for name, _ in plans:
            _check_out(sweep_dir / setting / name, "sweep", "run")
    runs = []  # every run planned before the first trains: a refusal leaves nothing written
    for setting, rate, alpha in settings:
        for name, fold_options in plans:
            options = {"splits": split, "eval_split": eval_split, **fold_options}
            config, classes = _plan(
                dataset,
                so,
                input=input,
                model=model,
                task=task,
                sampler=sampler,
                batch_size=batch_size,
                steps=steps,
                epochs=epochs,
                learning_rate=rate,
                mixup=alpha,
                class_weights=class_weights,
                seed=seed,
                embedding_model=embedding_model,
                model_args=model_args,
                **options,
            )
            if config.eval_split is None and config.folds is None:
                _nothing_to_rank(eval_split, split)
            if not runs:  # the sweep's first run: its splits and clips are every run's
                _warn_about_settings(config)
            run = RunDir(sweep_dir / setting / name)
            runs.append((setting, run, classes, _sweep_run_action(run, config, earlier, so)))
    values: dict[str, list[Any]] = {setting: [] for setting, _, _ in settings}
    for setting, run, classes, action in runs:
        if action is not None:
            why, config, resume, restart = action
            console.print(f"[bold]{setting}[/] {run.path.name} ({why})")
            _train(config, classes, run.path, resume, so, restart=restart)
        values[setting].append(_final_value(run))
    rows = []
    for setting, rate, alpha in settings:
        scored = [v for v in values[setting] if v is not None]
        rows.append(
            {
                "setting": setting,
                "lr": rate,
                "mixup": alpha,
                "folds": [name for name, _ in plans],
                "values": values[setting],
                "score": "final",
                "mean": float(np.mean(scored)) if scored else None,
                "std": float(np.std(scored)) if scored else None,
            }
        )
    rows.sort(key=lambda r: -np.inf if r["mean"] is None else -r["mean"])
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / "sweep.json").write_text(json.dumps(rows, indent=2) + "\n")
    except OSError as exc:
        fail(out_error_line(exc, sweep_dir, "sweep"))
    metric = "accuracy" if task == "singlelabel" else "mAP"
    t = Table(title=f"sweep: final {metric} per setting, over {len(plans)} fold(s)")
    for col in ("setting", f"mean {metric}", "std", "per fold"):
        t.add_column(col)
    for r in rows:
        per_fold = " ".join(_format_metric(v) for v in r["values"])
        t.add_row(r["setting"], _format_metric(r["mean"]), _format_metric(r["std"]), per_fold)
    out.print(t)
    return {"settings": len(rows), "runs": len(rows) * len(plans), "best": rows[0]["setting"]}


def register(app: typer.Typer) -> None:
    """Add the modeling commands to ``app``."""
    app.command()(train)
    app.command()(sweep)
