"""UrbanSound8K: 8,732 labelled slices of urban sound in ten predefined folds.

Published layout::

    UrbanSound8K/
      metadata/UrbanSound8K.csv   slice_file_name,fsID,start,end,salience,fold,classID,class
      audio/fold1/ ... audio/fold10/<slice_file_name>

The slices are already cut, so every manifest row is a whole file: the CSV's ``start`` and ``end``
are positions in the original freesound recording, not in the slice, and are never used as
offsets. Each fold becomes a split (``fold1`` ... ``fold10``), so the dataset's own 10-fold
cross-validation (train on nine folds, test on the tenth) is a choice of splits; mixing folds
differently inflates scores, as the dataset's authors warn.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pipelines.recipes.archive_download import ArchiveResult, download_archive
from pipelines.recipes.common import (
    BAD_VALUE,
    UNKNOWN_LABEL,
    ManifestRow,
    RecipeResult,
    Skipped,
    class_map_from_names,
    named_file_row,
    require_dir,
    rows_from_csv,
    screen_rows,
    write_manifest_recipe,
)

URBANSOUND8K_URL = "https://zenodo.org/record/1203745/files/UrbanSound8K.tar.gz"
"""The dataset's archive on Zenodo (about 6 GB), as its authors publish it."""

URBANSOUND8K_CLASSES = (
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
)
URBANSOUND8K_METADATA = "metadata/UrbanSound8K.csv"
URBANSOUND8K_FOLDS = range(1, 11)
# Slices are at most 4 s long; shorter ones are zero padded (num_samples keeps their length).
INGEST_OPTIONS = ("--clip-seconds", "4")


def _row(row: dict[str, str], path: str, line: int) -> ManifestRow | Skipped:
    try:
        fold, class_id = int(row["fold"]), int(row["classID"])
    except ValueError:
        return Skipped(path, line, BAD_VALUE, f"fold {row['fold']!r} or classID not an integer")
    if fold not in URBANSOUND8K_FOLDS:
        return Skipped(path, line, BAD_VALUE, f"fold {fold} is not 1..10")
    if row["class"] not in URBANSOUND8K_CLASSES:
        return Skipped(path, line, UNKNOWN_LABEL, repr(row["class"]))
    if URBANSOUND8K_CLASSES.index(row["class"]) != class_id:
        return Skipped(path, line, BAD_VALUE, f"classID {class_id} is not {row['class']!r}")
    folder, split = f"audio/fold{fold}", f"fold{fold}"
    return named_file_row(row, "slice_file_name", folder, (row["class"],), split, path, line)


def prepare_urbansound8k(
    root: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> RecipeResult:
    """Write the class map and a manifest of UrbanSound8K, one split per fold.

    Parameters
    ----------
    root : path
        The ``UrbanSound8K`` folder (holding ``metadata/`` and ``audio/``).
    out_dir : path
        Output folder.

    Returns
    -------
    RecipeResult
        Ten classes in ``classID`` order; clip ids are the slice names without extension
        (``100032-3-0-0``). Rows whose audio is missing, whose ``class`` disagrees with
        ``classID`` or whose fold is not 1..10 are skipped with reasons.

    Raises
    ------
    InputFormatError
        If ``root`` or the metadata CSV is missing or the CSV lacks a needed column.
    """
    base = require_dir(root, "the UrbanSound8K folder, holding metadata/ and audio/")
    meta = base / URBANSOUND8K_METADATA
    rows, skipped = rows_from_csv(meta, ("slice_file_name", "fold", "classID", "class"), _row)
    kept, missing = screen_rows(rows, base)
    kept.sort(key=lambda r: (int(r.split.removeprefix("fold")), r.line or 0))
    return write_manifest_recipe(
        "urbansound8k",
        out_dir,
        class_map_from_names(URBANSOUND8K_CLASSES),
        kept,
        skipped + missing,
        audio_root=Path(base),
        inputs=[meta],
        ingest_options=INGEST_OPTIONS,
    )


def download_urbansound8k(
    out_dir: str | os.PathLike[str],
    url: str = URBANSOUND8K_URL,
    *,
    keep_archive: bool = False,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> ArchiveResult:
    """Download UrbanSound8K's archive and unpack it to ``out_dir/UrbanSound8K``.

    Resumable (see :func:`pipelines.recipes.archive_download.download_archive`); the unpacked
    folder is what :func:`prepare_urbansound8k` and ``recipes/urbansound8k`` read.

    Parameters
    ----------
    out_dir : path
    url : str
        http(s) URL of ``UrbanSound8K.tar.gz`` (Zenodo by default; a mirror works too).
    keep_archive : bool
    timeout : float
    progress : callable, optional
        ``progress(bytes_so_far, total_or_None)``.

    Returns
    -------
    ArchiveResult
    """
    return download_archive(
        url,
        out_dir,
        top="UrbanSound8K",
        required=("metadata/UrbanSound8K.csv", "audio"),
        keep_archive=keep_archive,
        timeout=timeout,
        progress=progress,
    )
