"""Freesound Audio Tagging 2019 (Kaggle): multi-label tagging of variable-length clips, 80 classes.

Published layout::

    train_curated.csv   fname,labels    labels: "Bark,Walk_and_footsteps" (class names, quoted)
    train_noisy.csv     fname,labels
    sample_submission.csv   fname,<the 80 class names>   (optional: gives the class order)
    train_curated/<fname>   train_noisy/<fname>   test/<fname>   (WAV, 0.3 s to 30 s)

Splits are ``curated``, ``noisy`` and ``test`` (unlabelled), each when present. The class order
is the column order of ``sample_submission.csv`` when it is there, so predictions line up with a
submission; otherwise the sorted union of the labels used. Class names are their own mids. Clips
vary in length, so rows are whole files with no offsets; clip ids are the file names without
extension (``0006ae4e``), the ids a submission uses.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from pipelines.recipes.common import (
    BAD_VALUE,
    UNKNOWN_LABEL,
    ManifestRow,
    RecipeResult,
    Skipped,
    find_audio_files,
    named_file_row,
    require_dir,
    rows_from_csv,
    screen_rows,
    write_manifest_recipe,
)
from schemas.classmap import ClassMap
from schemas.errors import InputFormatError
from schemas.textio import read_text

FSD2019_TRAIN = (("curated", "train_curated"), ("noisy", "train_noisy"))
FSD2019_SUBMISSION = "sample_submission.csv"
# The longest clips last 30 s; shorter ones are zero padded and num_samples keeps their length,
# so training can crop the real audio (random crops of variable-length clips).
INGEST_OPTIONS = ("--clip-seconds", "30")


def submission_classes(path: Path) -> list[str]:
    """The class names of ``sample_submission.csv``: its header after ``fname``, in order."""
    header = next(csv.reader(io.StringIO(read_text(path))), None)
    names = [h.strip() for h in header or []]
    if not names or names[0] != "fname" or len(names) < 2:
        raise InputFormatError(str(path), "expected a header 'fname,<class>,<class>,...'", 1)
    if len(set(names)) != len(names) or not all(names):
        raise InputFormatError(str(path), "empty or repeated class names in the header", 1)
    return names[1:]


def _labelled_row(split: str, folder: str, known: set[str] | None):
    def make_row(row: dict[str, str], path: str, line: int) -> ManifestRow | Skipped:
        labels = tuple(dict.fromkeys(t.strip() for t in row["labels"].split(",") if t.strip()))
        if not labels:
            return Skipped(path, line, BAD_VALUE, "no labels")
        unknown = [t for t in labels if known is not None and t not in known]
        if unknown:
            return Skipped(path, line, UNKNOWN_LABEL, ", ".join(unknown))
        return named_file_row(row, "fname", folder, labels, split, path, line)

    return make_row


def _test_row(row: dict[str, str], path: str, line: int | None) -> ManifestRow | Skipped:
    return named_file_row(row, "fname", "test", (), "test", path, line)


def prepare_fsd2019(
    root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    include_noisy: bool = True,
    include_test: bool = True,
) -> RecipeResult:
    """Write the class map and a manifest of FSDKaggle2019 (curated, noisy and test splits).

    Parameters
    ----------
    root : path
        The competition folder (``train_curated.csv`` and ``train_curated/`` at least).
    out_dir : path
        Output folder.
    include_noisy : bool
        Include the ``noisy`` split when ``train_noisy.csv`` is there.
    include_test : bool
        Include the unlabelled ``test`` split when ``test/`` is there: the files that
        ``sample_submission.csv`` lists, or every audio file in ``test/`` without it.

    Returns
    -------
    RecipeResult
        Rows with unknown labels (not in ``sample_submission.csv``), no labels or no audio
        are skipped with reasons.

    Raises
    ------
    InputFormatError
        If ``train_curated.csv`` is missing, a CSV lacks ``fname``/``labels``, or the
        submission header is not ``fname`` plus unique class names.
    """
    base = require_dir(root, "the FSDKaggle2019 folder")
    submission = base / FSD2019_SUBMISSION
    names = submission_classes(submission) if submission.is_file() else None
    known = set(names) if names is not None else None
    rows: list[ManifestRow] = []
    skipped: list[Skipped] = []
    notes: list[str] = []
    for split, stem in FSD2019_TRAIN:
        csv_path = base / f"{stem}.csv"
        if split == "noisy" and not (include_noisy and csv_path.is_file()):
            notes.append(f"no '{split}' split ({csv_path.name} not used)")
            continue
        got, bad = rows_from_csv(csv_path, ("fname", "labels"), _labelled_row(split, stem, known))
        rows += got
        skipped += bad
    test_dir = base / "test"
    if include_test and test_dir.is_dir():
        if submission.is_file():
            got, bad = rows_from_csv(submission, ("fname",), _test_row)
        else:
            files = find_audio_files(test_dir)
            got, bad = [_test_row({"fname": f}, str(test_dir), None) for f in files], []
        rows += got
        skipped += bad
    kept, missing = screen_rows(rows, base)
    if names is None:
        names = sorted({label for r in kept for label in r.labels})
    return write_manifest_recipe(
        "fsd2019",
        out_dir,
        ClassMap.from_names(names),
        kept,
        skipped + missing,
        audio_root=base,
        inputs=[*(base / f"{stem}.csv" for _, stem in FSD2019_TRAIN), submission],
        params={
            "include_noisy": include_noisy,
            "include_test": include_test,
        },
        ingest_options=INGEST_OPTIONS,
        notes=notes,
    )
