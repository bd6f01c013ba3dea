"""Dataset recipe commands: ``prepare <dataset>`` and ``download audioset``."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from workflows.cli_common import (
    StorageOptions,
    console,
    fail,
    out,
    progress_bar,
    storage_options_from,
)

prepare_app = typer.Typer(
    help="Turn a public dataset's own layout into a class map and a manifest for `ingest`.",
    no_args_is_help=True,
)
download_app = typer.Typer(
    help="Download a public dataset's files: AudioSet's segment lists (small), or a whole "
    "archive (UrbanSound8K, about 6 GB; AudioSet's released embeddings, about 2.4 GB).",
    no_args_is_help=True,
)

SHOWN_SKIPPED = 20

OutDir = Annotated[
    str, typer.Option("--out", help="Folder for classes.csv, the manifest and recipe.json.")
]
Dataset = Annotated[
    str | None,
    typer.Option(help="Dataset folder the printed ingest command writes to (default OUT/dataset)."),
]
Root = Annotated[str, typer.Argument(help="The dataset's folder, as published.")]
EvalFraction = Annotated[float, typer.Option(help="Share of clips held out in the eval split.")]
Seed = Annotated[int, typer.Option(help="Seed of the deterministic train/eval split.")]


def register(app: typer.Typer) -> None:
    """Add the ``prepare`` and ``download`` command groups to ``app``."""
    app.add_typer(prepare_app, name="prepare")
    app.add_typer(download_app, name="download")


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        out.print(line, markup=False, highlight=False, soft_wrap=True)


def _run(recipe: Callable[..., object], *args: object, **kwargs: object):
    """Call a recipe, turning bad input into a clear error and exit status 2."""
    from schemas.errors import InputFormatError

    try:
        return recipe(*args, **kwargs)
    except (InputFormatError, ValueError, OSError) as exc:
        fail(str(exc))


def _report(result, dataset: str | None) -> None:
    """Print clips per split, skipped rows by reason, the files written and the next command."""
    title = f"prepare {result.recipe}"
    table = Table(title=title, min_width=len(title) + 4)
    table.add_column("split")
    table.add_column("clips", justify="right")
    for split, n in result.clips_per_split.items():
        table.add_row(split, str(n))
    table.add_row("total", str(result.num_clips), style="bold")
    out.print(table)
    out.print(f"{len(result.class_map)} classes, {result.num_clips} clips", highlight=False)
    if result.skipped:
        reasons = Table("skipped because", "rows", title="skipped rows")
        for reason, n in result.skipped_by_reason().items():
            reasons.add_row(reason, str(n))
        out.print(reasons)
        shown = [f"skipped {s}" for s in result.skipped[:SHOWN_SKIPPED]]
        if len(result.skipped) > SHOWN_SKIPPED:
            rest = len(result.skipped) - SHOWN_SKIPPED
            shown.append(f"... and {rest} more, all listed in {result.files['skipped']}")
        _print_lines(shown)
    _print_lines([f"note: {n}" for n in result.notes])
    _print_lines([f"wrote {p}" for p in result.files.values()])
    if not result.num_clips:
        fail("no usable clips: see the skipped rows above", code=1)
    target = dataset or str(result.out_dir / "dataset")
    out.print("next, ingest with:")
    _print_lines([shlex.join(cmd) for cmd in result.ingest_commands(target)])


@prepare_app.command("urbansound8k")
def prepare_urbansound8k_cmd(root: Root, out_dir: OutDir, dataset: Dataset = None) -> None:
    """UrbanSound8K: metadata/UrbanSound8K.csv and audio/fold1..fold10.

    One split per predefined fold (fold1 ... fold10) for 10-fold cross-validation; the slices are
    already cut, so rows are whole files (the CSV's start/end are positions in the original
    recording and are not used).
    """
    from pipelines.recipes import prepare_urbansound8k

    _report(_run(prepare_urbansound8k, root, out_dir), dataset)


@prepare_app.command("fsd2019")
def prepare_fsd2019_cmd(
    root: Root,
    out_dir: OutDir,
    noisy: Annotated[bool, typer.Option(help="Include train_noisy as split 'noisy'.")] = True,
    test: Annotated[bool, typer.Option(help="Include test/ as unlabelled split 'test'.")] = True,
    dataset: Dataset = None,
) -> None:
    """Freesound Audio Tagging 2019: train_curated.csv, train_noisy.csv and their folders.

    Splits curated, noisy and test (when present); the class order is sample_submission.csv's
    column order when it is there, else the sorted label names.
    """
    from pipelines.recipes import prepare_fsd2019

    result = _run(prepare_fsd2019, root, out_dir, include_noisy=noisy, include_test=test)
    _report(result, dataset)


@prepare_app.command("whale")
def prepare_whale_cmd(
    root: Root,
    out_dir: OutDir,
    task: Annotated[
        str,
        typer.Option(
            help="binary: one class 'whale_call', negatives unlabelled (sigmoid detector); "
            "singlelabel: classes no_call and whale_call (softmax)."
        ),
    ] = "binary",
    eval_fraction: EvalFraction = 0.2,
    seed: Seed = 0,
    dataset: Dataset = None,
) -> None:
    """Kaggle whale-detection-challenge: train.csv (clip_name,label) and train/*.aiff at 2 kHz.

    Splits train and eval, held out per label so both keep the ratio of calls.
    """
    from pipelines.recipes import prepare_whale

    result = _run(prepare_whale, root, out_dir, task=task, eval_fraction=eval_fraction, seed=seed)
    _report(result, dataset)


@prepare_app.command("folder")
def prepare_folder_cmd(
    root: Root,
    out_dir: OutDir,
    labels_csv: Annotated[
        str | None,
        typer.Option(
            help="CSV with path,labels columns (paths relative to ROOT, labels ';'-separated); "
            "default: labels are the first sub-folder names."
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="Split of the clips not held out.")] = "train",
    eval_fraction: EvalFraction = 0.0,
    seed: Seed = 0,
    dataset: Dataset = None,
) -> None:
    """Any folder of audio (wav flac ogg mp3 aiff aif m4a opus), searched recursively.

    Labels come from the first sub-folder name or from --labels-csv; an eval split takes the
    files whose hash of their path falls below --eval-fraction.
    """
    from pipelines.recipes import prepare_folder

    result = _run(
        prepare_folder,
        root,
        out_dir,
        labels_csv=labels_csv,
        split=split,
        eval_fraction=eval_fraction,
        seed=seed,
        dataset=dataset,
    )
    _report(result, dataset)


@prepare_app.command("audioset")
def prepare_audioset_cmd(
    csvs: Annotated[list[str], typer.Argument(help="AudioSet segment CSVs.")],
    classes: Annotated[str, typer.Option(help="class_labels_indices.csv.")],
    out_dir: OutDir,
    split: Annotated[
        list[str] | None,
        typer.Option(help="Split of each CSV, in order (default: from the file names)."),
    ] = None,
    audio_root: Annotated[
        str | None, typer.Option(help="Folder of audio already downloaded (Y<YTID>.wav ...).")
    ] = None,
    dataset: Dataset = None,
    storage_options: StorageOptions = None,
) -> None:
    """AudioSet segment CSVs: check them against the class map, count, write one per split.

    Malformed lines, unknown mids, bad bounds and repeated clips are left out and listed.
    """
    from pipelines.recipes import prepare_audioset

    result = _run(
        prepare_audioset,
        csvs,
        classes,
        out_dir,
        split or None,
        audio_root=audio_root,
        storage_options=storage_options_from(storage_options),
    )
    _report(result, dataset)


@download_app.command("audioset")
def download_audioset_cmd(
    out_dir: Annotated[str, typer.Option("--out", help="Folder for the CSVs.")],
    url_base: Annotated[
        str | None,
        typer.Option(help="http(s) folder holding the CSVs (default: Google's bucket)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Download files already present again.")] = False,
    timeout: Annotated[float, typer.Option(help="Network timeout in seconds.")] = 60.0,
) -> None:
    """Download AudioSet's three segment CSVs and class_labels_indices.csv.

    Files already present are kept, so an interrupted download resumes.
    """
    from pipelines.recipes.audioset import (
        AUDIOSET_CLASSES_FILE,
        AUDIOSET_SEGMENT_FILES,
        AUDIOSET_URL_BASE,
        download_audioset,
    )

    result = _run(
        download_audioset,
        out_dir,
        url_base or AUDIOSET_URL_BASE,
        force=force,
        timeout=timeout,
        progress=lambda name: console.print(f"fetching {name}", markup=False, highlight=False),
    )
    table = Table("file", "status", title=f"download audioset -> {result.out_dir}")
    for name in result.files:
        table.add_row(name, "fetched" if name in result.fetched else "already present")
    out.print(table)
    segs = [str(result.files[n]) for n in AUDIOSET_SEGMENT_FILES if n in result.files]
    classes = result.files.get(AUDIOSET_CLASSES_FILE)
    if segs and classes is not None:
        out.print("next, prepare with:")
        cmd = ["audiomill", "prepare", "audioset", *segs, "--classes", str(classes)]
        _print_lines([shlex.join([*cmd, "--out", str(Path(result.out_dir) / "prepared")])])


@download_app.command("urbansound8k")
def download_urbansound8k_cmd(
    out_dir: Annotated[str, typer.Option("--out", help="Folder to unpack UrbanSound8K/ into.")],
    url: Annotated[
        str | None,
        typer.Option(help="http(s) URL of UrbanSound8K.tar.gz (default: the Zenodo record)."),
    ] = None,
    keep_archive: Annotated[
        bool, typer.Option(help="Keep the 6 GB archive after unpacking it.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Network timeout in seconds.")] = 60.0,
) -> None:
    """Download UrbanSound8K's archive (about 6 GB) and unpack it.

    An interrupted download resumes where it stopped when run again; a folder already
    unpacked is kept.
    """
    from pipelines.recipes.urbansound8k import URBANSOUND8K_URL, download_urbansound8k

    result = _download_archive(
        download_urbansound8k,
        out_dir,
        url or URBANSOUND8K_URL,
        keep_archive=keep_archive,
        timeout=timeout,
    )
    out.print("next, run the recipe with:")
    _print_lines([shlex.join(["audiomill", "run", "recipes/urbansound8k", "--set",
                              f"root={result.root}"])])  # fmt: skip


@download_app.command("audioset-embeddings")
def download_audioset_embeddings_cmd(
    out_dir: Annotated[
        str, typer.Option("--out", help="Folder to unpack audioset_v1_embeddings/ into.")
    ],
    url: Annotated[
        str | None,
        typer.Option(help="http(s) URL of features.tar.gz (default: Google's bucket)."),
    ] = None,
    url_base: Annotated[
        str | None,
        typer.Option(help="http(s) folder holding class_labels_indices.csv (default: Google's)."),
    ] = None,
    keep_archive: Annotated[
        bool, typer.Option(help="Keep the 2.4 GB archive after unpacking it.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Network timeout in seconds.")] = 60.0,
) -> None:
    """Download AudioSet's released VGGish embeddings (about 2.4 GB) and the class map.

    An interrupted download resumes where it stopped when run again; a folder already
    unpacked is kept.
    """
    from pipelines.recipes.audioset import (
        AUDIOSET_EMBEDDINGS_URL,
        AUDIOSET_URL_BASE,
        download_audioset_embeddings,
    )

    result = _download_archive(
        download_audioset_embeddings,
        out_dir,
        url or AUDIOSET_EMBEDDINGS_URL,
        url_base or AUDIOSET_URL_BASE,
        keep_archive=keep_archive,
        timeout=timeout,
    )
    out.print("next, run the recipe with:")
    cmd = ["audiomill", "run", "recipes/audioset_embeddings", "--set", f"root={result.root}"]
    _print_lines([shlex.join(cmd)])


def _download_archive(download: Callable[..., object], *args: object, **kwargs: object):
    """Run an archive download with a progress bar in MB; print what it did."""
    with progress_bar("MB") as (bar, task):

        def show(done: int, total: int | None) -> None:
            bar.update(task, completed=done / 1e6, total=None if total is None else total / 1e6)

        result = _run(download, *args, progress=show, **kwargs)
    if result.unpacked:
        resumed = ""
        if result.resumed_from:
            resumed = f", resumed from {result.resumed_from / 1e6:.1f} MB"
        out.print(f"fetched {result.fetched_bytes / 1e6:.1f} MB{resumed}; unpacked {result.root}")
    else:
        out.print(f"{result.root} is already unpacked")
    return result
