"""Any folder of the user's own audio, labelled by sub-folder or by a CSV.

Every audio file below the root counts (``wav flac ogg mp3 aiff aif m4a opus``, recursively,
hidden files passed over). Labels come from either

``subfolder``
    the first folder below the root: ``root/dog/park/a.wav`` is a ``dog``; files directly in
    the root are unlabelled;
``csv``
    a CSV with a ``path,labels`` header: paths relative to the root, labels separated by ``;``
    (or by ``,`` when the field has no ``;``). Only the files it lists are used; the others are
    reported as skipped.

The class map is the sorted label names, each with a slug of its name as mid; preparing for an
existing dataset that holds clips (``dataset``) keeps that dataset's class map, fixed when its
first clips were committed, and refuses a label it does not have. Clip ids are the
sanitized relative paths, the same ids ``audiomill ingest --segments FOLDER`` gives. An optional
eval split takes every file whose seeded hash of its path falls below ``eval_fraction``: a
file's split never changes when files are added or removed.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path, PurePosixPath

from pipelines import staging
from pipelines.dataset_state import load_manifest
from pipelines.recipes.common import (
    BAD_VALUE,
    OUTSIDE_ROOT,
    UNLISTED,
    ManifestRow,
    RecipeResult,
    Skipped,
    check_fraction,
    check_split_name,
    class_map_from_names,
    find_audio_files,
    hash_fraction,
    require_dir,
    rows_from_csv,
    screen_rows,
    split_label_field,
    write_manifest_recipe,
)
from pipelines.sources import AUDIO_EXTENSIONS
from pipelines.storage import DatasetStore
from schemas.classmap import ClassMap
from schemas.dataset import CLASSES, STAGING
from schemas.segments import sanitize_clip_id

LABEL_SOURCES = ("subfolder", "csv")


def _relative(raw: str, root: Path) -> str | None:
    """``raw`` as a normalized POSIX path below ``root``, or None if it points outside."""
    path = Path(raw)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(root.resolve())
        except ValueError:
            return None
    rel = PurePosixPath(os.path.normpath(path.as_posix()))
    if rel.is_absolute() or not rel.parts or rel.parts[0] in ("..", "."):
        return None
    return rel.as_posix()


def _csv_rows(root: Path, labels_csv: Path, split: str) -> tuple[list[ManifestRow], list[Skipped]]:
    def make_row(row: dict[str, str], path: str, line: int) -> ManifestRow | Skipped:
        rel = _relative(row["path"], root)
        if rel is None:
            return Skipped(path, line, OUTSIDE_ROOT, repr(row["path"]))
        if os.path.splitext(rel)[1].lower() not in AUDIO_EXTENSIONS:
            return Skipped(path, line, BAD_VALUE, f"{rel!r} is not an audio file name")
        labels = tuple(dict.fromkeys(split_label_field(row["labels"])))
        return ManifestRow(rel, labels, split, sanitize_clip_id(rel), path, line)

    rows, skipped = rows_from_csv(labels_csv, ("path", "labels"), make_row)
    listed = {r.path for r in rows}
    skipped += [
        Skipped(str(root / f), None, UNLISTED, labels_csv.name)
        for f in find_audio_files(root)
        if f not in listed
    ]
    return rows, skipped


def _folder_rows(root: Path, split: str) -> list[ManifestRow]:
    rows = []
    for rel in find_audio_files(root):
        parts = PurePosixPath(rel).parts
        labels = (parts[0],) if len(parts) > 1 else ()
        rows.append(ManifestRow(rel, labels, split, sanitize_clip_id(rel), str(root / rel)))
    return rows


def dataset_class_map(dataset: str | os.PathLike[str]) -> ClassMap | None:
    """The class map ``dataset`` is bound to, or None when it may still take any.

    As ``audiomill ingest`` holds it: a dataset's class map is fixed once it has committed
    clips or embeddings (shards store one target column per class), also those an interrupted
    run committed; a folder that is no dataset yet, or one with no clips, takes any class map.
    """
    store = DatasetStore(os.fspath(dataset))
    manifest = load_manifest(store)
    if manifest is None or not store.exists(CLASSES):
        return None
    entries = [*manifest.splits.values()]
    entries += [e for model in manifest.embeddings.values() for e in model.values()]
    splits = [name for name in store.listdir(STAGING) if not name.startswith(".")]
    if not any(e.shards for e in entries) and not any(
        staging.staged_names(store, split, "commits") for split in splits
    ):
        return None
    return ClassMap.from_csv_text(store.read_text(CLASSES), store.url(CLASSES))


def _class_map(
    labels: list[str], dataset: str | os.PathLike[str] | None, where: str, undo: str
) -> ClassMap:
    """The class map of ``labels`` (sorted, unique): ``dataset``'s when it is bound to one.

    Raises
    ------
    ValueError
        If ``dataset`` is bound to a class map without a display name in ``labels``; ``where``
        says where those labels come from (``"audio has class folder(s)"``), ``undo`` how to
        take them out (``"move them out of audio"``).
    """
    fixed = None if dataset is None else dataset_class_map(dataset)
    if fixed is None:
        return class_map_from_names(labels)
    if new := [n for n in labels if n not in fixed.display_names]:
        raise ValueError(
            f"prepare folder: {where} {', '.join(new)} that the dataset {os.fspath(dataset)} "
            f"does not have (its classes: {', '.join(fixed.display_names)}). A dataset's "
            "classes are fixed when it is made, so a new class needs a new dataset: give "
            f"another --dataset and --out (in recipes/folder, --set work=NEW_FOLDER), or {undo}"
        )
    return fixed


def prepare_folder(
    root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    labels_from: str | None = None,
    labels_csv: str | os.PathLike[str] | None = None,
    split: str = "train",
    eval_fraction: float = 0.0,
    eval_split: str = "eval",
    seed: int = 0,
    dataset: str | os.PathLike[str] | None = None,
) -> RecipeResult:
    """Write a class map and manifest for a folder of audio.

    Parameters
    ----------
    root : path
        The folder; manifest paths are relative to it.
    out_dir : path
        Output folder.
    labels_from : {"subfolder", "csv"}, optional
        Where labels come from; ``csv`` when ``labels_csv`` is given, else ``subfolder``.
    labels_csv : path, optional
        CSV with ``path,labels`` columns (needed for ``labels_from="csv"``).
    split : str
        Split of the files not held out.
    eval_fraction : float
        Expected share of files in ``eval_split``, in [0, 1); 0 for no eval split.
    eval_split : str
        Name of the held-out split.
    seed : int
        Changes which files are held out.
    dataset : path or URL, optional
        The dataset the manifest is for: when it holds clips, its class map is the one written
        (see :func:`dataset_class_map`), so files added to its classes' folders can be ingested
        into it, and a class it does not have is refused.

    Returns
    -------
    RecipeResult

    Raises
    ------
    InputFormatError
        If ``root`` is not a folder, or the labels CSV is missing or lacks ``path``/``labels``.
    ValueError
        For a bad ``labels_from``, split name or fraction, when no file has a label, or for a
        label (a class folder, a CSV label) that ``dataset`` does not have; nothing is written.
    """
    base = require_dir(root, "the folder of audio")
    labels_from = labels_from or ("csv" if labels_csv is not None else "subfolder")
    if labels_from not in LABEL_SOURCES:
        raise ValueError(f"labels_from must be one of {', '.join(LABEL_SOURCES)}")
    if labels_from == "csv" and labels_csv is None:
        raise ValueError("labels_from='csv' needs labels_csv")
    check_split_name(split)
    check_split_name(eval_split)
    check_fraction(eval_fraction)
    if labels_from == "csv":
        rows, skipped = _csv_rows(base, Path(labels_csv), split)
    else:
        rows, skipped = _folder_rows(base, split), []
    kept, missing = screen_rows(rows, base)
    labels = sorted({n for r in kept for n in r.labels})
    if labels_from == "csv":
        where, undo = f"{labels_csv} gives label(s)", "take them out of it"
    else:
        where, undo = f"{base} has class folder(s)", f"move them out of {base}"
    class_map = _class_map(labels, dataset, where, undo)
    mid = {c.display_name: c.mid for c in class_map}
    kept = [
        replace(
            r,
            labels=tuple(mid[n] for n in r.labels),
            split=eval_split if hash_fraction(r.path, seed) < eval_fraction else r.split,
        )
        for r in kept
    ]
    params = {
        "labels_from": labels_from,
        "labels_csv": None if labels_csv is None else str(Path(labels_csv).resolve()),
        "split": split,
        "eval_fraction": eval_fraction,
        "eval_split": eval_split,
        "seed": seed,
    }
    return write_manifest_recipe(
        "folder",
        out_dir,
        class_map,
        kept,
        skipped + missing,
        audio_root=base,
        inputs=[] if labels_csv is None else [labels_csv],
        params=params,
    )
