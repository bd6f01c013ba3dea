"""Load a segment list of any supported kind: AudioSet CSV, custom CSV/JSONL manifest, folder."""

from __future__ import annotations

import os
import posixpath

import fsspec

from pipelines.sources import AUDIO_EXTENSIONS
from schemas.audioset import parse_segments_text
from schemas.classmap import ClassMap
from schemas.custom_manifest import (
    SOURCE_COLUMNS,
    first_csv_row,
    is_column_header,
    is_jsonl,
    manifest_labels,
    missing_source_column,
    parse_manifest_text,
)
from schemas.errors import InputFormatError
from schemas.segments import Segment, SegmentList, sanitize_clip_id
from schemas.textio import read_text


def is_directory(path: str, storage_options: dict | None = None) -> bool:
    """Whether ``path`` (local or fsspec URL) is a directory."""
    fs, _, (p,) = fsspec.get_fs_token_paths(path, storage_options=storage_options or {})
    return fs.isdir(p)


def looks_like_manifest(text: str, path: str) -> bool:
    """A custom manifest (JSONL, or CSV whose header names ``path`` or ``url`` in any case)."""
    return is_jsonl(path) or _names_a_source(first_csv_row(text))


def _names_a_source(first: tuple[int, list[str]] | None) -> bool:
    """Whether a CSV's first row (:func:`first_csv_row`) names ``path`` or ``url``."""
    return first is not None and bool({f.lower() for f in first[1]}.intersection(SOURCE_COLUMNS))


def is_manifest(text: str, path: str) -> bool:
    """Whether ``path`` is a custom manifest rather than an AudioSet segment list.

    Raises
    ------
    InputFormatError
        If a CSV's first line (past blank lines and ``#`` comments) names columns, none of them
        ``path`` or ``url``: a manifest with a wrong header (an AudioSet list's own column
        line, ``# YTID, ...``, is a comment).
    """
    if is_jsonl(path):
        return True
    first = first_csv_row(text)
    if _names_a_source(first):
        return True
    if first and is_column_header(first[1]) and first[1][0].lower() != "ytid":
        raise missing_source_column(path, *first)
    return False


def scan_folder(
    root: str, class_map: ClassMap, split: str, storage_options: dict | None = None
) -> SegmentList:
    """Every audio file under ``root`` (recursively) as a whole-file clip.

    A file's label is the name of the folder directly under ``root`` that holds it, however
    deep (as torchvision's ``ImageFolder`` and ``audiomill prepare folder`` label): a class of
    ``class_map``, or else an unknown label (the clip fails validation, as a manifest row naming
    a label the class map lacks does); a file directly in ``root`` has no label. A clip's
    ``origin`` is its file (as its ``source``) and its ``line`` 0, so that whatever names where a
    clip came from names the file, not its place in the folder.
    Raises :class:`~schemas.errors.InputFormatError` if there is no audio file under ``root``.
    """
    fs, base, files = _audio_files(root, storage_options)
    result = SegmentList()
    for path in files:
        rel = posixpath.relpath(path, base)
        location = path if fs.protocol in ("file", ("file", "local")) else fs.unstrip_protocol(path)
        result.segments.append(_folder_segment(rel, location, class_map, split))
    return result


def _folder_segment(rel: str, location: str, class_map: ClassMap, split: str) -> Segment:
    """The whole-file clip of a folder's file, labelled by its class folder.

    Parameters
    ----------
    rel : str
        The file's path relative to the folder, which its clip id is made of.
    location : str
        The file's path or URL.
    class_map : ClassMap
        The dataset's classes, by mid or display name.
    split : str
        The run's split.

    Returns
    -------
    Segment
        Labelled with the class its class folder names, with the folder's name as an unknown
        label when it names none, and unlabelled for a file directly in the folder.
    """
    folder = _class_folder(rel)
    info = class_map.resolve(folder) if folder else None
    return Segment(
        clip_id=sanitize_clip_id(rel),
        source=location,
        source_kind="path",
        start_s=None,
        end_s=None,
        labels=(info.index,) if info else (),
        label_mids=(info.mid,) if info else (),
        unknown_labels=(folder,) if folder and info is None else (),
        split=split,
        origin=location,
    )


def _class_folder(rel: str) -> str:
    """The first folder of a path relative to the scanned folder ("" for a file in it)."""
    head, sep, _ = rel.partition("/")
    return head if sep else ""


def folder_labels(root: str, storage_options: dict | None = None) -> list[str]:
    """Distinct class-folder names (:func:`_class_folder`) of the audio files under ``root``,
    sorted (an :class:`~schemas.errors.InputFormatError` if there is none)."""
    _, base, files = _audio_files(root, storage_options)
    names = {_class_folder(posixpath.relpath(p, base)) for p in files}
    return sorted(n for n in names if n)


def _audio_files(
    root: str, storage_options: dict | None
) -> tuple[fsspec.AbstractFileSystem, str, list[str]]:
    """The file system, base path and audio files under ``root``, sorted. Hidden files, and
    files in hidden folders (names starting with ``.``), are left out, as ``audiomill prepare
    folder`` leaves them. A local folder's symbolic links are followed, to folders too
    (:func:`_local_files`).

    Raises
    ------
    InputFormatError
        If no file under ``root`` has an audio extension.
    """
    fs, _, (base,) = fsspec.get_fs_token_paths(root, storage_options=storage_options or {})
    found = _local_files(base) if fs.protocol in ("file", ("file", "local")) else fs.find(base)
    files = [
        path
        for path in sorted(found)
        if os.path.splitext(path)[1].lower() in AUDIO_EXTENSIONS and not _hidden(path, base)
    ]
    if not files:
        raise InputFormatError(
            root, f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in it or its sub-folders"
        )
    return fs, base, files


def _local_files(base: str) -> list[str]:
    """The files under local folder ``base``, through symbolic links to folders too (which
    ``find`` lists as files), each folder once: one reached again by its real path (a link
    back to a folder above it, or a second link to one) is not walked again.
    """
    seen: set[str] = set()
    files = []
    for folder, folders, names in os.walk(base, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            folders.clear()
            continue
        seen.add(real)
        folders.sort()
        files += [posixpath.join(folder, name) for name in names]
    return files


def _hidden(path: str, base: str) -> bool:
    """Whether ``path`` is hidden below ``base``: it, or a folder on the way, starts with ``.``."""
    return any(part.startswith(".") for part in posixpath.relpath(path, base).split("/"))


def class_map_from_list(path: str, storage_options: dict | None = None) -> ClassMap:
    """A class map made of the labels a manifest or folder uses (when no class file is given).

    Raises
    ------
    ValueError
        When it uses none, saying why (a folder's files all directly in it, a manifest's rows
        without labels) and that ``--classes`` ingests its clips unlabelled.
    """
    if is_directory(path, storage_options):
        names = folder_labels(path, storage_options)
        why = "its audio files are all directly in it, none in a sub-folder naming its class"
    else:
        text = read_text(path, storage_options)
        if not text.strip():
            raise InputFormatError(path, "the list holds no segments")
        if not is_manifest(text, path):
            raise ValueError(f"{path}: an AudioSet segment list needs --classes")
        names = manifest_labels(path, storage_options)
        why = "no row has labels"
    if not names:
        raise ValueError(
            f"{path}: no labels found ({why}), so no class map can be made of them; pass "
            "--classes with a class map to ingest its clips unlabelled"
        )
    return ClassMap.from_names(names)


def load_segment_list(
    path: str, class_map: ClassMap, split: str, storage_options: dict | None = None
) -> SegmentList:
    """Parse ``path`` as an AudioSet CSV, a custom manifest or a folder of audio."""
    if is_directory(path, storage_options):
        return scan_folder(path, class_map, split, storage_options)
    text = read_text(path, storage_options)
    if is_manifest(text, path):
        return parse_manifest_text(text, class_map, path=path, split=split)
    return parse_segments_text(text, class_map, path=path, split=split)
