"""Feature-stage commands: embed, embed-files, import, index, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from workflows.cli_common import (
    Formats,
    StorageOptions,
    console,
    fail,
    out,
    parse_formats,
    progress_bar,
    storage_options_from,
)
from workflows.import_gc import collection_paused

import_app = typer.Typer(help="Import embeddings made elsewhere.", no_args_is_help=True)

MODE_HELP = (
    "Front-end precision: 'exact' computes in float64 like Google's reference (log-mel within "
    "1e-4 of it); 'fast' uses float32 (within 1e-3), several times faster."
)
RESAMPLER_HELP = (
    "Resampler to 16 kHz: 'resampy' is what the reference uses (kaiser_best) and reproduces "
    "its values; 'soxr' is much faster but changes log-mel values by up to about 2 near the "
    "top mel bands and the clip edges. Default: resampy with --mode exact, soxr with fast."
)


def _settings(checkpoint, pca_params, batch_size, mode, resampler, formats):
    from features.embed import EmbedSettings

    if mode not in ("fast", "exact"):
        fail("--mode must be 'fast' or 'exact'")
    if resampler not in (None, "soxr", "resampy"):
        fail("--resampler must be 'soxr' or 'resampy'")
    if batch_size < 1:
        fail(f"--batch-size must be at least 1, not {batch_size}")
    return EmbedSettings(
        checkpoint=checkpoint,
        pca_params=pca_params,
        batch_size=batch_size,
        mode=mode,
        resampler=resampler,
        formats=parse_formats(formats),
    )


def embed(
    dataset: Annotated[str, typer.Argument(help="Dataset directory or URL.")],
    checkpoint: Annotated[
        str, typer.Option(help="Google's vggish_model.ckpt (TF-slim checkpoint prefix).")
    ],
    pca_params: Annotated[str, typer.Option(help="Google's vggish_pca_params.npz.")],
    model: Annotated[str, typer.Option(help="Embedding model (only vggish).")] = "vggish",
    split: Annotated[
        list[str] | None, typer.Option(help="Split(s) to embed (default: all).")
    ] = None,
    scheduler: Annotated[
        str, typer.Option(help="'local' (a LocalCluster) or a Dask scheduler tcp://host:port.")
    ] = "local",
    workers: Annotated[int, typer.Option(help="Local Dask worker processes.")] = 2,
    batch_size: Annotated[int, typer.Option(help="Examples per forward pass.")] = 64,
    format: Formats = None,
    mode: Annotated[str, typer.Option(help=MODE_HELP)] = "fast",
    resampler: Annotated[str | None, typer.Option(help=RESAMPLER_HELP)] = None,
    storage_options: StorageOptions = None,
) -> dict:
    """VGGish embeddings for every waveform shard, one Dask task per shard, resumable.

    Embedding shards are row-aligned with the waveform shards (same index, same clip order) and
    record the checkpoint and PCA digests. A clip keeps the 0.96 s examples the VGGish front end
    makes of its audio (each needs 0.975 s), one zero-padded example when it has less audio than
    that. A GPU is used when TensorFlow sees one.
    """
    with collection_paused():
        from features.embed import embed_dataset
        from features.vggish_checkpoint import CheckpointError
        from pipelines.storage import DatasetAccessError, DatasetLockedError

    if model != "vggish":
        fail(f"--model {model!r} is not available; only 'vggish'")
    if workers < 1:
        fail(f"--workers must be positive, not {workers}")
    settings = _settings(checkpoint, pca_params, batch_size, mode, resampler, format)
    with progress_bar("shards") as (bar, task):
        try:
            summary = embed_dataset(
                dataset,
                settings,
                splits=split,
                scheduler=None if scheduler == "local" else scheduler,
                workers=workers,
                storage_options=storage_options_from(storage_options),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except (
            CheckpointError,
            DatasetAccessError,
            DatasetLockedError,
            FileNotFoundError,
            ValueError,
        ) as exc:
            fail(str(exc))
    t = Table(title=f"embed {summary.run_id}", show_header=False)
    t.add_row("shards embedded", str(summary.shards_done))
    t.add_row("shards already done", str(summary.shards_skipped))
    if summary.dropped_shards:
        t.add_row("shards dropped (files gone or another frame count)", str(summary.dropped_shards))
    t.add_row("clips", str(summary.clips))
    t.add_row("clips under one 0.975 s example (zero-padded to one)", str(summary.short_clips))
    t.add_row("checkpoint sha256", summary.checkpoint_sha256[:16])
    t.add_row("PCA sha256", summary.pca_sha256[:16])
    if summary.devices:
        t.add_row("devices", summary.describe_devices())
    rate = summary.clips / summary.seconds if summary.seconds else 0.0
    t.add_row("time", f"{summary.seconds:.1f} s ({rate:.1f} clips/s)")
    console.print(t)
    return {"clips": summary.clips}


def embed_files(
    files: Annotated[list[str], typer.Argument(help="Audio files (any format ingest reads).")],
    checkpoint: Annotated[str, typer.Option(help="vggish_model.ckpt.")],
    pca_params: Annotated[str, typer.Option(help="vggish_pca_params.npz.")],
    out_path: Annotated[str, typer.Option("--out", help="Output FILE.npz or FILE.parquet.")],
    batch_size: Annotated[int, typer.Option(help="Examples per forward pass.")] = 64,
    mode: Annotated[str, typer.Option(help=MODE_HELP)] = "fast",
    resampler: Annotated[str | None, typer.Option(help=RESAMPLER_HELP)] = None,
) -> None:
    """Embeddings of a few audio files, one row per 0.96 s example, without a dataset.

    A file shorter than one example is zero-padded to one, and its line says so.
    """
    with collection_paused():
        from features.embed_files import embed_files as run
        from features.vggish_checkpoint import CheckpointError
        from schemas.failures import ClipFailure

    settings = _settings(checkpoint, pca_params, batch_size, mode, resampler, None)
    with progress_bar("files") as (bar, task):
        try:
            results = run(
                files, settings, out_path,
                progress=lambda d, n: bar.update(task, completed=d, total=n),
            )  # fmt: skip
        except (CheckpointError, ClipFailure, FileNotFoundError, ValueError) as exc:
            fail(str(exc))
    for r in results:
        line = f"{r.path}: {len(r.quantized)} embedding{'s' * (len(r.quantized) != 1)}"
        if r.padded:
            line += " (shorter than one 0.975 s example: zero-padded to one)"
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    out.print(f"wrote {out_path}", markup=False, highlight=False, soft_wrap=True)


def _import_summary(summary) -> None:
    t = Table(title=f"import {summary.source} -> {summary.split}", show_header=False)
    t.add_row("files", str(len(summary.files)))
    if summary.files_without_records:
        t.add_row("files without records", str(len(summary.files_without_records)))
    t.add_row("records read", str(summary.read))
    t.add_row("imported", str(summary.imported))
    t.add_row("already imported", str(summary.already_imported))
    t.add_row("duplicates skipped", str(summary.duplicates))
    t.add_row("empty skipped", str(summary.empty))
    t.add_row("truncated to 10 frames", str(summary.truncated))
    t.add_row("shards written", str(len(summary.shards)))
    t.add_row("clips in split", str(summary.split_clips))
    if not summary.created:
        t.add_row("dataset", "not made (nothing imported)")
    t.add_row("time", f"{summary.seconds:.1f} s")
    console.print(t)


@import_app.command("audioset-tfrecord")
def import_tfrecord(
    pattern: Annotated[
        list[str],
        typer.Argument(
            help="TFRecord files, globs (e.g. 'bal_train/*.tfrecord') or folders, imported as "
            "one input."
        ),
    ],
    classes: Annotated[str, typer.Option(help="class_labels_indices.csv.")],
    out_path: Annotated[str, typer.Option("--out", help="Dataset directory or URL.")],
    split: Annotated[str, typer.Option(help="Split to import into.")],
    shard_clips: Annotated[int, typer.Option(help="Clips per shard.")] = 1000,
    format: Formats = None,
    storage_options: StorageOptions = None,
) -> dict:
    """Import AudioSet's released VGGish embedding TFRecords, without downloading audio."""
    with collection_paused():
        from features.importers import import_audioset_tfrecords

    return _run_import(import_audioset_tfrecords, pattern, classes, out_path, split,
                       shard_clips, format, storage_options)  # fmt: skip


@import_app.command("packed-h5")
def import_packed(
    path: Annotated[
        list[str],
        typer.Argument(help="Packed HDF5 file(s) with x, y, video_id_list, imported as one input."),
    ],
    classes: Annotated[str, typer.Option(help="Class map CSV matching y's columns.")],
    out_path: Annotated[str, typer.Option("--out", help="Dataset directory or URL.")],
    split: Annotated[str, typer.Option(help="Split to import into.")],
    shard_clips: Annotated[int, typer.Option(help="Clips per shard.")] = 1000,
    format: Formats = None,
    storage_options: StorageOptions = None,
    segments: Annotated[
        list[str] | None,
        typer.Option(
            help="AudioSet segment list (YTID, start, end, labels; repeatable) giving the rows' "
            "clip ids <YTID>_<start_ms>: packed files record no start times."
        ),
    ] = None,
) -> dict:
    """Import a packed embedding file (x uint8 (N,10,128), y (N,C), video_id_list).

    A row without a clip_id takes the clip id of its video's segment in --segments; without
    them, that of the dataset's one clip of its video, else <YTID>_0 (with a warning).
    """
    with collection_paused():
        from features.importers import import_packed_h5

    return _run_import(import_packed_h5, path, classes, out_path, split, shard_clips, format,
                       storage_options, segments=segments)  # fmt: skip


def _run_import(
    fn, sources, classes, out_path, split, shard_clips, fmt, storage_options, **options
) -> dict:
    """Run importer ``fn`` (its ``options`` added), print its summary and return its clip
    count for ``audiomill run``'s summary."""
    from pipelines.storage import DatasetAccessError, DatasetLockedError
    from schemas.errors import InputFormatError

    if shard_clips < 1:
        fail(f"--shard-clips must be at least 1, not {shard_clips}")
    with progress_bar("records") as (bar, task):
        try:
            summary = fn(
                sources, classes, out_path, split,
                shard_clips=shard_clips, formats=parse_formats(fmt),
                storage_options=storage_options_from(storage_options),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                **options,
            )  # fmt: skip
        except (
            InputFormatError,
            DatasetAccessError,
            DatasetLockedError,
            FileNotFoundError,
            ValueError,
        ) as exc:
            fail(str(exc))
    _import_summary(summary)
    if not summary.created:
        fail(f"nothing was imported, so there is no dataset at {out_path}", code=1)
    return {"clips": summary.imported}


def index(
    dataset: Annotated[str, typer.Argument(help="Dataset directory or URL.")],
    split: Annotated[list[str] | None, typer.Option(help="Split(s) (default: all).")] = None,
    source: Annotated[
        str, typer.Option(help="'waveforms', or 'embeddings' for embedding-only datasets.")
    ] = "waveforms",
    scheduler: Annotated[
        str, typer.Option(help="'local' or a Dask scheduler address tcp://host:port.")
    ] = "local",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    storage_options: StorageOptions = None,
) -> dict:
    """Per-class index (positions of each class's clips) and per-clip weights, with Dask."""
    import dataclasses

    with collection_paused():
        from features.class_index import build_class_index
        from pipelines.dataset_state import load_manifest
        from pipelines.storage import DatasetStore

    opts = storage_options_from(storage_options)
    manifest = load_manifest(DatasetStore(dataset, opts))
    if manifest is None:
        fail(f"{dataset} is not an audiomill dataset (no manifest.json)")
    have = manifest.splits if source == "waveforms" else manifest.embeddings.get("vggish", {})
    # A split with no committed shards (every clip of it failed) has nothing to index.
    splits = split or sorted(name for name, entry in have.items() if entry.shards)
    if not splits:
        embedded = sorted(n for n, e in manifest.embeddings.get("vggish", {}).items() if e.shards)
        hint = ""
        if source == "waveforms" and embedded:
            hint = f"; it has embeddings of splits {', '.join(embedded)}: add --source embeddings"
        fail(f"the dataset has no {source} splits to index{hint}")
    results = []
    for name in splits:
        try:
            summary = build_class_index(
                dataset, name, source=source,
                client=None if scheduler == "local" else scheduler, storage_options=opts,
            )  # fmt: skip
        except (FileNotFoundError, ValueError) as exc:
            fail(str(exc))
        results.append(dataclasses.asdict(summary))
        if not as_json:
            console.print(
                f"{name}: {summary.num_clips} clips, {summary.num_positions} positive labels, "
                f"{len(summary.classes_without_clips)} classes without clips, "
                f"{summary.unlabeled_clips} unlabeled; {summary.seconds:.1f} s -> {summary.path}",
                highlight=False, soft_wrap=True,
            )  # fmt: skip
    if as_json:
        out.print_json(json.dumps(results))
    return {"clips": sum(r["num_clips"] for r in results)}


def _check_report_out(out_dir: str) -> None:
    """Fail on a local ``--out`` that is a dataset's folder or inside one
    (:func:`modeling.runs.enclosing_dataset`, the check of train's ``--out``), unless it lies in
    the dataset's ``reports/``, where reports belong, and not in ``reports/validation/``, whose
    validation results ingest writes; before anything is read."""
    if "://" in out_dir:
        return
    with collection_paused():
        from modeling.runs import enclosing_dataset
        from schemas.dataset import MANIFEST

    found = enclosing_dataset(out_dir)
    if found is None:
        return
    parts = Path(out_dir).resolve().relative_to(found).parts
    if parts[:1] == ("reports",) and parts[1:2] != ("validation",):
        return
    where = "is a dataset" if not parts else f"is inside the dataset {found}"
    fail(
        f"--out {out_dir} {where} (it has {MANIFEST}): report would write its files among the "
        f"dataset's; choose a folder outside the dataset, or in its reports/ folder (the "
        f"default: {found / 'reports' / 'dataset'})"
    )


def report(
    dataset: Annotated[str, typer.Argument(help="Dataset directory or URL.")],
    out_dir: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Report directory (default: <dataset>/reports/dataset); inside a dataset, "
            "only under its reports/.",
        ),
    ] = None,
    scheduler: Annotated[
        str, typer.Option(help="'local' or a Dask scheduler address tcp://host:port.")
    ] = "local",
    storage_options: StorageOptions = None,
) -> None:
    """HTML report with plots: class counts, cardinality, co-occurrence, durations, failures."""
    with collection_paused():
        from features.report import build_report

    if out_dir is not None:
        _check_report_out(out_dir)
    try:
        path = build_report(
            dataset, out_dir, storage_options=storage_options_from(storage_options),
            client=None if scheduler == "local" else scheduler,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    out.print(f"report written to {path}")


def register(app: typer.Typer) -> None:
    """Add the feature-stage commands to the ``audiomill`` app."""
    app.command()(embed)
    app.command("embed-files")(embed_files)
    app.add_typer(import_app, name="import")
    app.command()(index)
    app.command()(report)
