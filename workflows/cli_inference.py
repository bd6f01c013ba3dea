"""Serving commands of trained runs: evaluate, predict, search, export."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.cells import cell_len
from rich.markup import escape
from rich.table import Table

from schemas.classmap import NAMES_SEP
from schemas.failures import ClipFailure
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

WEIGHTS_HELP = "Weights to use: best (by the run's headline metric; else last) or last."
BATCH_HELP = "Clips (or windows of a file) per forward pass."
PER_CLASS_ROWS = 20
WRAP_MIN = 8
"""Width kept for a column that wraps (less if it needs less), fitting a table to a console."""

Weights = Annotated[str, typer.Option("--weights", help=WEIGHTS_HELP)]
BatchSize = Annotated[int, typer.Option(help=BATCH_HELP)]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]
RunArg = Annotated[Path, typer.Argument(help="Run directory written by `audiomill train`.")]


def _errors() -> tuple[type[BaseException], ...]:
    """What the serving functions raise on bad input: reported as errors, not tracebacks."""
    return (FileNotFoundError, FileExistsError, ValueError, ClipFailure)


def _load(run: Path, weights: str) -> Any:
    with collection_paused():
        from modeling.evaluation import load_run

    try:
        return load_run(run, weights)
    except _errors() as exc:
        fail(str(exc))


def _with_progress(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs, progress=...)`` under a bar counting ``what``; errors fail cleanly."""
    with progress_bar(what) as (bar, task):
        try:
            return fn(
                *args,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                **kwargs,
            )
        except _errors() as exc:
            fail(str(exc))


def _warn(message: str) -> None:
    """Print a one-line warning on stderr."""
    console.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True, highlight=False)


def _print_whole(table: Table) -> None:
    """Print ``table`` on stdout with its no-wrap columns whole.

    Its other columns wrap, folding words wider than they are. Where the table is wider
    than the console even so (a stdout that is no terminal has ``COLUMNS`` or 80 columns),
    its lines run past the console's width instead of cutting a clip id or a score.
    """
    widths = [
        (column, max(cell_len(str(text)) for text in (column.header, *column.cells)))
        for column in table.columns
    ]
    content = sum(width if column.no_wrap else min(width, WRAP_MIN) for column, width in widths)
    need = content + 3 * len(widths) + 1  # padding and borders
    table.width = need if need > out.width else None
    out.print(table, crop=False)


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def evaluate(
    run: RunArg,
    dataset: Annotated[str, typer.Argument(help="Dataset directory or URL to evaluate on.")],
    out_dir: Annotated[
        str, typer.Option("--out", help="Local directory for metrics.json, per_class.csv, ...")
    ],
    split: Annotated[str, typer.Option(help="Split to score.")] = "eval",
    tta: Annotated[
        int,
        typer.Option(
            help="Test-time augmentation: average over N circular time shifts of each clip "
            "(waveforms: by k/N of its length); N at most 32 and at most the clip's samples. "
            "0: none. It changes nothing for the embedding models, which pool frames "
            "regardless of order: they warn and score once, whatever the clip's frames."
        ),
    ] = 0,
    batch_size: BatchSize = 64,
    weights: Weights = "best",
    storage_options: StorageOptions = None,
) -> dict[str, Any]:
    """Score a split with a trained run: metrics, per-class table, scores and an HTML report.

    Writes OUT/metrics.json (mAP over classes with a positive, mean AUC, d-prime, lwlrap;
    accuracy and confusion matrix for single-label runs), OUT/per_class.csv, OUT/scores.npz
    (clip ids, scores, targets) and OUT/report.html (PR curves, AP against class frequency,
    training curves, confusion matrix; opens offline).
    """
    with collection_paused():
        from modeling.evaluation import evaluate_run
        from modeling.evaluation_report import rows_by_ap
        from modeling.runs import check_out_dir, out_error_line

    eval_dir = local_dir(out_dir, "evaluate")
    try:
        check_out_dir(eval_dir, "evaluate", "output")
    except (FileExistsError, PermissionError) as exc:
        fail(str(exc))
    loaded = _load(run, weights)
    try:
        result = _with_progress(
            "clips",
            evaluate_run,
            loaded,
            dataset,
            split,
            tta=tta,
            batch_size=batch_size,
            out_dir=eval_dir,
            storage_options=storage_options_from(storage_options),
            warn=_warn,
        )
    except OSError as exc:
        fail(out_error_line(exc, eval_dir, "evaluate"))
    metrics = result["metrics"]
    title = f"evaluate {run} on {split} ({result['num_clips']} clips)"
    t = Table(title=escape(title), show_header=False)
    for key in ("accuracy", "mAP", "mean_auc", "d_prime", "lwlrap"):
        if key in metrics:
            t.add_row(key, _number(metrics[key]))
    t.add_row("classes with a positive", str(metrics["num_classes_ap"]))
    t.add_row("test-time augmentation", f"{result['tta']} variants" if result["tta"] else "none")
    t.add_row("weights", result["weights"])
    out.print(t)
    rows = rows_by_ap(result["per_class"])
    shown = [r for r in rows if r["positives"]][:PER_CLASS_ROWS]
    if shown:
        pc = Table(title=f"per class, by AP (top {len(shown)} of {len(rows)})")
        for col in ("class", "positives", "AP", "AUC"):
            pc.add_column(col, justify="left" if col == "class" else "right")
        for r in shown:
            pc.add_row(
                escape(r["display_name"]), str(r["positives"]), _number(r["ap"]), _number(r["auc"])
            )
        out.print(pc)
    out.print(
        f"report written to {result['files']['report.html']}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return {"clips": result["num_clips"], result["headline"]: metrics.get(result["headline"])}


def predict(
    run: RunArg,
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Audio files (any format ingest reads; paths or URLs such as s3://b/x.wav), "
            "or with --dataset clip ids of it."
        ),
    ],
    top_k: Annotated[int, typer.Option(help="Classes shown per input.")] = 5,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset whose clip ids may be given as inputs.")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(help="Look clip ids up in this split only (default: every split)."),
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option(help="vggish_model.ckpt: embedding runs need it for files.")
    ] = None,
    pca_params: Annotated[
        str | None, typer.Option(help="vggish_pca_params.npz: embedding runs need it for files.")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="VGGish front end precision for files: fast or exact. Default: the front end "
            "the run's embeddings were made with, as its dataset records it (another --mode "
            "is refused); fast, with a warning, when that is not recorded."
        ),
    ] = None,
    batch_size: BatchSize = 64,
    weights: Weights = "best",
    as_json: AsJson = False,
    storage_options: StorageOptions = None,
) -> dict[str, Any]:
    """Top-k classes of audio files (paths or URLs) or of a dataset's clips.

    A file is resampled to the run's rate (waveform runs) or embedded with VGGish (embedding
    runs: --checkpoint and --pca-params, the files the run's embeddings were made with, and
    the front end they were made with; others are refused). Files longer than the run's clip
    are scored in windows of a clip length, every half clip, and each class keeps its maximum
    over the windows; shorter files are zero-padded. A file that cannot be fetched or
    decoded is listed as not scored, with its failure class and why, and a warning; the
    others are scored, and the exit status is 1. A folder is refused.
    """
    with collection_paused():
        from modeling import inference

    if top_k < 1:
        fail("--top-k must be at least 1")
    if mode not in (None, "fast", "exact"):
        fail("--mode must be 'fast' or 'exact'")
    files = [x for x in inputs if "://" in x or Path(x).exists()]
    clips = [x for x in inputs if x not in files]
    if clips and dataset is None:
        fail(
            f"no such file: {', '.join(clips[:5])}; to score clips of a dataset by clip id "
            "pass --dataset DIR (and optionally --split)"
        )
    try:
        inference.refuse_folders(files)
    except ValueError as exc:
        fail(str(exc))
    loaded = _load(run, weights)
    if loaded.config.input != "embeddings" and (checkpoint or pca_params):
        fail(
            f"run {loaded.run.path} scores waveforms: --checkpoint and --pca-params are for runs "
            "on VGGish embeddings"
        )
    so = storage_options_from(storage_options)
    found: dict[str, Any] = {}
    failed: dict[str, ClipFailure] = {}
    if files:
        predictions = _with_progress(
            "files",
            inference.predict_files,
            loaded,
            files,
            checkpoint=checkpoint,
            pca_params=pca_params,
            mode=mode,
            batch_size=batch_size,
            warn=_warn,
            storage_options=so,
            on_failure=lambda source, failure: _not_scored(failed, source, failure),
        )
        found.update((p.source, p) for p in predictions)
    if clips:
        try:
            predictions = inference.predict_clips(
                loaded, dataset, clips, split, batch_size=batch_size, storage_options=so
            )
        except _errors() as exc:
            fail(str(exc))
        found.update((p.source, p) for p in predictions)
    names = loaded.classes.display_names
    results = []
    for source in inputs:
        if source in failed:
            results.append(_failure_row(source, failed[source]))
            continue
        p = found[source]
        results.append(
            {
                "input": source,
                "kind": p.kind,
                "windows": p.windows,
                "split": p.split,
                "labels": None if p.labels is None else [names[i] for i in p.labels],
                "top": [
                    {"display_name": name, "mid": mid, "score": score}
                    for name, mid, score in inference.top_k(p.scores, loaded.classes, top_k)
                ],
            }
        )
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" in r:
                _print_failure_row(r)
                continue
            detail = (
                f"{r['windows']} window{'s' * (r['windows'] != 1)}"
                if r["kind"] == "file"
                else f"clip of {r['split']}, labels: {NAMES_SEP.join(r['labels']) or 'none'}"
            )
            out.print(f"{r['input']} ({detail})", markup=False, highlight=False, soft_wrap=True)
            t = Table()
            for col in ("rank", "class", "mid", "score"):
                t.add_column(
                    col,
                    justify="right" if col in ("rank", "score") else "left",
                    no_wrap=col != "class",
                    overflow="fold",
                )
            for rank, hit in enumerate(r["top"], start=1):
                t.add_row(
                    str(rank),
                    escape(hit["display_name"]),
                    escape(hit["mid"]),
                    f"{hit['score']:.4f}",
                )
            _print_whole(t)
    if failed:
        raise typer.Exit(1)
    return {"inputs": len(results)}


def _not_scored(failed: dict[str, ClipFailure], source: str, failure: ClipFailure) -> None:
    """Record that file ``source`` cannot be scored, and warn on stderr."""
    failed[source] = failure
    _warn(f"not scored: {failure}")


def _failure_row(source: str, failure: ClipFailure) -> dict[str, Any]:
    """The result of an input that was not scored: its failure class and why, no scores."""
    return {
        "input": source,
        "kind": "file",
        "error": {"reason": failure.reason.value, "detail": failure.detail},
    }


def _print_failure_row(row: dict[str, Any]) -> None:
    """Print the input of a failure row as not scored, then its failure class and why."""
    error = row["error"]
    for line in (f"{row['input']} (not scored)", f"{error['reason']}: {error['detail']}"):
        out.print(line, markup=False, highlight=False, soft_wrap=True)


def search(
    run: RunArg,
    dataset: Annotated[str, typer.Argument(help="Dataset directory or URL to search.")],
    keyword: Annotated[
        str,
        typer.Argument(
            help="Whole words of class names, e.g. 'car' or 'car alarm' (case-insensitive; "
            "'cars' matches 'Car' too)."
        ),
    ],
    split: Annotated[str, typer.Option(help="Split to search.")] = "eval",
    top: Annotated[int, typer.Option(help="Clips to list.")] = 10,
    batch_size: BatchSize = 64,
    weights: Weights = "best",
    as_json: AsJson = False,
    storage_options: StorageOptions = None,
) -> dict[str, Any]:
    """The clips most likely to contain a sound: rank a split by the matching classes' scores.

    Classes whose names hold KEYWORD's words, whole and in a row, are matched ('car' matches
    'Car alarm' but not 'Carnatic music'; punctuation only separates words, and a plural -s
    or -es does not matter); each clip counts with its best score among them. The split's
    scores are cached in RUN/scores/, so later searches are instant.
    """
    with collection_paused():
        from modeling.inference import search as run_search

    loaded = _load(run, weights)
    result = _with_progress(
        "clips",
        run_search,
        loaded,
        dataset,
        split,
        keyword,
        top,
        batch_size=batch_size,
        storage_options=storage_options_from(storage_options),
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return {"hits": len(result.hits)}
    matched = NAMES_SEP.join(c.display_name for c in result.matched)
    title = f"{keyword!r} in {split}: {len(result.hits)} of {result.num_clips} clips"
    t = Table(title=escape(title))
    for col in ("rank", "clip", "score", "class", "true labels"):
        t.add_column(
            col,
            justify="right" if col in ("rank", "score") else "left",
            no_wrap=col in ("rank", "clip", "score"),
            overflow="fold",
        )
    for h in result.hits:
        labels = NAMES_SEP.join(h.labels)
        t.add_row(str(h.rank), *map(escape, (h.clip_id, f"{h.score:.4f}", h.display_name, labels)))
    _print_whole(t)
    lines = [f"matched classes: {matched}"]
    if result.cache is not None:
        origin = "cached scores" if result.cached else "scores cached for next time"
        lines.append(f"{origin} in {result.cache}")
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return {"hits": len(result.hits)}


def export(
    run: RunArg,
    out_dir: Annotated[str, typer.Option("--out", help="Local directory to write the export to.")],
    weights: Weights = "best",
) -> dict[str, Any]:
    """Export a run as a TensorFlow SavedModel with its class map and export.json.

    The model takes float32 waveforms (B, T) in [-1, 1] at the run's sample rate, or VGGish
    embeddings (B, F, 128) on their 0..255 scale, and returns float32 scores (B, C).
    """
    with collection_paused():
        from modeling.export import check_export_dir, export_run
        from modeling.runs import out_error_line

    export_dir = local_dir(out_dir, "export")
    try:
        check_export_dir(export_dir)
    except (FileExistsError, PermissionError) as exc:
        fail(str(exc))
    loaded = _load(run, weights)
    with console.status("exporting"):
        try:
            description = export_run(loaded, export_dir)
        except _errors() as exc:
            fail(str(exc))
        except OSError as exc:
            fail(out_error_line(exc, export_dir, "export"))
    spec = description["input"]
    t = Table(title=escape(f"export {run}"), show_header=False)
    t.add_row("saved model", escape(str(export_dir / description["saved_model"])))
    t.add_row("input", escape(f"{spec['name']} {spec['shape']} float32 in {spec['range']}"))
    if description["sample_rate"]:
        t.add_row("sample rate", f"{description['sample_rate']} Hz")
    t.add_row("output", escape(f"scores [None, {description['num_classes']}] float32"))
    t.add_row("weights", description["weights"])
    out.print(t)
    return {"classes": description["num_classes"]}


def register(app: typer.Typer) -> None:
    """Add the serving commands to the ``audiomill`` app."""
    app.command()(evaluate)
    app.command()(predict)
    app.command()(search)
    app.command()(export)
