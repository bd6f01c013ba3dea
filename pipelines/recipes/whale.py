"""Right whale up-calls: Kaggle's "whale-detection-challenge" (Cornell / Marinexplore).

Published layout (the ``data/`` folder of the competition download)::

    data/
      train.csv          clip_name,label       (label 1: an up-call, 0: none)
      train/train1.aiff  ... 2 s clips at 2 kHz
      test/test1.aiff    ... unlabelled (not part of the manifest)

Two ways to frame the task, chosen by ``task``:

``binary``
    One class, ``whale_call``: positive clips carry it, negative clips carry no label, as in
    a multi-label (sigmoid) detector; the target is a single bit.
``singlelabel``
    Two classes, ``no_call`` and ``whale_call``, exactly one per clip, for a softmax classifier.

The train/eval split is deterministic and stratified by label: within each label, the clips
with the smallest seeded hash of their name are held out, so both splits keep the (imbalanced,
about 1:3) ratio of calls to non-calls.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from pipelines.recipes.common import (
    BAD_VALUE,
    ManifestRow,
    RecipeResult,
    Skipped,
    check_fraction,
    named_file_row,
    require_dir,
    rows_from_csv,
    screen_rows,
    stratified_holdout,
    write_manifest_recipe,
)
from schemas.classmap import ClassInfo, ClassMap
from schemas.errors import InputFormatError

WHALE_TASKS = ("binary", "singlelabel")
WHALE_CALL = ClassInfo(0, "whale_call", "Right whale call")
NO_CALL = ClassInfo(0, "no_call", "No call")
# 2 s clips recorded at 2 kHz: keep them as they are rather than upsampling 16-fold.
INGEST_OPTIONS = ("--sample-rate", "2000", "--clip-seconds", "2")


def whale_class_map(task: str) -> ClassMap:
    """One class, ``whale_call``, for ``binary``; ``no_call`` and ``whale_call`` otherwise."""
    if task not in WHALE_TASKS:
        raise ValueError(f"task must be one of {', '.join(WHALE_TASKS)}, not {task!r}")
    if task == "binary":
        return ClassMap([WHALE_CALL])
    return ClassMap([NO_CALL, replace(WHALE_CALL, index=1)])


def _find_layout(root: Path) -> Path:
    """The folder holding ``train.csv`` and ``train/``: ``root`` itself or ``root/data``."""
    for base in (root, root / "data"):
        if (base / "train.csv").is_file():
            return base
    raise InputFormatError(
        str(root / "train.csv"), "file not found (expected train.csv and train/ of the Kaggle data)"
    )


def prepare_whale(
    root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    task: str = "binary",
    eval_fraction: float = 0.2,
    seed: int = 0,
) -> RecipeResult:
    """Write the class map and a train/eval manifest of the whale-call training clips.

    Parameters
    ----------
    root : path
        The competition's ``data`` folder (or its parent).
    out_dir : path
        Output folder.
    task : {"binary", "singlelabel"}
        How labels are framed (see the module docstring).
    eval_fraction : float
        Share of each label held out in the ``eval`` split, in [0, 1).
    seed : int
        Changes which clips are held out.

    Returns
    -------
    RecipeResult
        Splits ``train`` and ``eval``; clip ids are the clip names without extension
        (``train1``). Rows with a label other than 0/1 or no audio file are skipped.

    Raises
    ------
    InputFormatError
        If ``train.csv`` is missing or lacks ``clip_name``/``label``.
    ValueError
        For an unknown ``task`` or an ``eval_fraction`` outside [0, 1).
    """
    class_map = whale_class_map(task)
    check_fraction(eval_fraction)
    base = _find_layout(require_dir(root, "the whale-detection data folder"))
    positive = (WHALE_CALL.mid,)
    negative = () if task == "binary" else (NO_CALL.mid,)

    def make_row(row: dict[str, str], path: str, line: int) -> ManifestRow | Skipped:
        label = row["label"]
        if label not in ("0", "1"):
            return Skipped(path, line, BAD_VALUE, f"label {label!r} is not 0 or 1")
        labels = positive if label == "1" else negative
        return named_file_row(row, "clip_name", "train", labels, "train", path, line)

    rows, skipped = rows_from_csv(base / "train.csv", ("clip_name", "label"), make_row)
    kept, missing = screen_rows(rows, base)
    held = stratified_holdout(((r.clip_id, ";".join(r.labels)) for r in kept), eval_fraction, seed)
    kept = [replace(r, split="eval") if r.clip_id in held else r for r in kept]
    return write_manifest_recipe(
        "whale",
        out_dir,
        class_map,
        kept,
        skipped + missing,
        audio_root=base,
        inputs=[base / "train.csv"],
        params={
            "task": task,
            "eval_fraction": eval_fraction,
            "seed": seed,
        },
        ingest_options=INGEST_OPTIONS,
    )
