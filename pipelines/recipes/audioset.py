"""AudioSet: Google's segment CSVs and ``class_labels_indices.csv``.

The ingest reads AudioSet's CSVs as they are, so this recipe validates them against the class map,
leaves out the rows the ingest would reject anyway (malformed lines, unknown mids, bad bounds, ids
that cannot be clip ids, the same clip twice), writes one normalized CSV per split
(``<split>_segments.csv``, in AudioSet's own format) and reports counts. Each split is one ingest
command, since an AudioSet CSV has no split column.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from pipelines.recipes.archive_download import ArchiveResult, download_archive, fetch_resumable
from pipelines.recipes.common import (
    BAD_VALUE,
    CLASSES_FILE,
    DUPLICATE,
    MALFORMED,
    UNKNOWN_LABEL,
    RecipeResult,
    Skipped,
    check_split_name,
    write_outputs,
)
from pipelines.storage import DatasetStore
from schemas.audioset import parse_segments_text
from schemas.classmap import ClassMap
from schemas.errors import InputFormatError
from schemas.segments import CLIP_ID_PATTERN, Segment
from schemas.textio import read_text

AUDIOSET_URL_BASE = "https://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv"
AUDIOSET_SEGMENT_FILES = (
    "balanced_train_segments.csv",
    "eval_segments.csv",
    "unbalanced_train_segments.csv",
)
AUDIOSET_CLASSES_FILE = "class_labels_indices.csv"
AUDIOSET_EMBEDDINGS_URL = (
    "https://storage.googleapis.com/us_audioset/youtube_corpus/v1/features/features.tar.gz"
)
"""AudioSet's released VGGish embeddings (about 2.4 GB): ``audioset_v1_embeddings/`` with
``bal_train/``, ``eval/`` and ``unbal_train/`` TFRecords."""


def split_from_filename(path: str | os.PathLike[str]) -> str:
    """The split a segment CSV holds, from its name: ``eval_segments.csv`` -> ``eval``."""
    stem = os.path.basename(os.fspath(path).rstrip("/"))
    stem = re.sub(r"\.csv$", "", stem, flags=re.IGNORECASE).removesuffix("_segments")
    return check_split_name(re.sub(r"[^A-Za-z0-9_.\-]+", "_", stem).strip("_.") or "train")


def _problem(seg: Segment) -> tuple[str, str] | None:
    """Why the ingest would reject ``seg`` (reason, detail), or None."""
    if seg.unknown_labels:
        return UNKNOWN_LABEL, ", ".join(seg.unknown_labels)
    if not CLIP_ID_PATTERN.match(seg.clip_id):
        return BAD_VALUE, f"YTID {seg.source!r} cannot make a clip id"
    if seg.start_s is None or seg.end_s is None or not 0 <= seg.start_s < seg.end_s:
        return BAD_VALUE, f"segment {seg.start_s}..{seg.end_s} s is not 0 <= start < end"
    return None


def _segments_csv(source: str, segments: Sequence[Segment]) -> str:
    lines = [
        f"# Prepared by audiomill from {os.path.basename(source)}",
        f"# num_segs={len(segments)}",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]
    lines += [
        f'{s.source}, {s.start_s:.3f}, {s.end_s:.3f}, "{",".join(s.label_mids)}"' for s in segments
    ]
    return "\n".join(lines) + "\n"


def prepare_audioset(
    csv_paths: Sequence[str | os.PathLike[str]],
    class_labels_indices_csv: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    split_names: Sequence[str] | None = None,
    *,
    audio_root: str | os.PathLike[str] | None = None,
    storage_options: dict | None = None,
) -> RecipeResult:
    """Validate AudioSet segment CSVs and write them, normalized, with the class map.

    Parameters
    ----------
    csv_paths : sequence of path or URL
        Segment CSVs (``balanced_train_segments.csv``, ``eval_segments.csv``, ...).
    class_labels_indices_csv : path or URL
        AudioSet's class map, written to ``out_dir/classes.csv`` in canonical form.
    out_dir : path
        Output folder.
    split_names : sequence of str, optional
        One split per CSV; by default derived from the file name (``balanced_train``, ``eval``,
        ``unbalanced_train``).
    audio_root : path, optional
        A folder of already downloaded audio (``Y<YTID>.wav`` and the like); when given, the
        printed ingest commands read it instead of YouTube.
    storage_options : dict, optional
        fsspec options for URL inputs.

    Returns
    -------
    RecipeResult
        ``files`` has ``segments:<split>_segments`` per split; a clip id already seen in an
        earlier CSV (or line) is skipped as a duplicate, so splits never share a clip. There is
        one ingest command per split that has clips.

    Raises
    ------
    InputFormatError
        If the class map is unreadable or a CSV is missing.
    ValueError
        If ``split_names`` does not match ``csv_paths`` or two CSVs map to the same split.
    """
    paths = [os.fspath(p) for p in csv_paths]
    if not paths:
        raise ValueError("give at least one AudioSet segment CSV")
    if split_names is not None and len(split_names) != len(paths):
        raise ValueError(f"{len(split_names)} split names for {len(paths)} CSVs")
    splits = [check_split_name(s) for s in split_names or [split_from_filename(p) for p in paths]]
    if len(set(splits)) != len(splits):
        raise ValueError(f"two CSVs would fill the same split: {splits}; pass split names")
    class_map = ClassMap.load(class_labels_indices_csv, storage_options)
    skipped: list[Skipped] = []
    notes: list[str] = []
    texts: dict[str, str] = {}
    counts: dict[str, int] = {}
    first_seen: dict[str, tuple[str, int]] = {}
    for path, split in zip(paths, splits, strict=True):
        parsed = parse_segments_text(read_text(path, storage_options), class_map, path=path)
        skipped += [Skipped(m.path, m.line, MALFORMED, m.reason) for m in parsed.malformed]
        kept: list[Segment] = []
        for seg in parsed.segments:
            problem = _problem(seg)
            if problem is None and seg.clip_id in first_seen:
                where, line = first_seen[seg.clip_id]
                problem = DUPLICATE, f"{seg.clip_id!r} (first on {where}:{line})"
            if problem is not None:
                skipped.append(Skipped(path, seg.line, *problem))
                continue
            first_seen[seg.clip_id] = (os.path.basename(path), seg.line)
            kept.append(seg)
        rows = len(parsed.segments) + len(parsed.malformed)
        declared = parsed.header.get("num_segs")
        if declared is not None and declared != rows:
            notes.append(f"{path}: header says num_segs={declared}, found {rows} rows")
        texts[f"{split}_segments.csv"] = _segments_csv(path, kept)
        counts[split] = len(kept)
    out = Path(DatasetStore(out_dir).url())
    root = None if audio_root is None else Path(audio_root).resolve()
    result = RecipeResult(
        recipe="audioset",
        out_dir=out,
        files={},
        class_map=class_map,
        clips_per_split=counts,
        skipped=skipped,
        audio_root=root,
        notes=notes,
    )
    local = ["--audio-root", str(root)] if root is not None else []
    result.ingest_args = [
        ["--segments", str(out / name), "--classes", str(out / CLASSES_FILE), "--split", s, *local]
        for s, name in zip(splits, texts, strict=True)
        if counts[s]
    ]
    params = {
        "csv_paths": paths,
        "class_labels_indices_csv": os.fspath(class_labels_indices_csv),
        "split_names": splits,
    }
    return write_outputs(result, texts, params, [*paths, class_labels_indices_csv])


@dataclass
class DownloadResult:
    """Files a ``download_x`` recipe fetched or found already present."""

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    bytes_fetched: int = 0


def _check_download(path: Path, name: str) -> None:
    """Refuse a download that is not what AudioSet publishes (an HTML error page, say)."""
    text = read_text(path)
    if name == AUDIOSET_CLASSES_FILE:
        ClassMap.from_csv_text(text, str(path))
        return
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first.startswith("#"):
        raise InputFormatError(str(path), "does not start like an AudioSet segments CSV ('# ...')")


def download_audioset(
    out_dir: str | os.PathLike[str],
    url_base: str = AUDIOSET_URL_BASE,
    *,
    files: Sequence[str] = (*AUDIOSET_SEGMENT_FILES, AUDIOSET_CLASSES_FILE),
    force: bool = False,
    timeout: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> DownloadResult:
    """Download AudioSet's segment CSVs and class map over http(s).

    Each file is streamed to a temporary name and renamed when complete, so an interrupted
    download never leaves a truncated CSV; files already present are kept (re-running resumes)
    unless ``force``.

    Parameters
    ----------
    out_dir : path
        Local folder for the files.
    url_base : str
        http(s) URL of the folder holding them (Google's bucket by default).
    files : sequence of str
        File names to fetch.
    force : bool
        Fetch even the files already present.
    timeout : float
        Socket timeout in seconds.
    progress : callable, optional
        Called with each file name before it is fetched.

    Raises
    ------
    ValueError
        If ``url_base`` is not http(s).
    OSError
        If a download fails (the message names the URL and the HTTP status).
    InputFormatError
        If a downloaded file is not a segments CSV or class map (it is removed).
    """
    if urlparse(url_base).scheme not in ("http", "https"):
        raise ValueError(f"url_base must be an http(s) URL, not {url_base!r}")
    store = DatasetStore(out_dir)
    result = DownloadResult(out_dir=Path(store.url()))
    for name in files:
        dest = Path(store.url(name))
        result.files[name] = dest
        if dest.is_file() and not force:
            result.present.append(name)
            continue
        if progress is not None:
            progress(name)
        fetched, _ = fetch_resumable(f"{url_base.rstrip('/')}/{name}", dest, timeout=timeout)
        result.bytes_fetched += fetched
        try:
            _check_download(dest, name)
        except InputFormatError:
            store.remove(name)
            raise
        result.fetched.append(name)
    return result


def download_audioset_embeddings(
    out_dir: str | os.PathLike[str],
    url: str = AUDIOSET_EMBEDDINGS_URL,
    url_base: str = AUDIOSET_URL_BASE,
    *,
    keep_archive: bool = False,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> ArchiveResult:
    """Download AudioSet's released embeddings and unpack them to
    ``out_dir/audioset_v1_embeddings``, with ``class_labels_indices.csv`` beside the TFRecords
    (where ``recipes/audioset_embeddings`` looks for it).

    Resumable (see :func:`pipelines.recipes.archive_download.download_archive`).

    Parameters
    ----------
    out_dir : path
    url : str
        http(s) URL of ``features.tar.gz`` (Google's bucket by default; a mirror works too).
    url_base : str
        http(s) folder holding ``class_labels_indices.csv``.
    keep_archive : bool
    timeout : float
    progress : callable, optional
        ``progress(bytes_so_far, total_or_None)`` for the archive.

    Returns
    -------
    ArchiveResult
    """
    result = download_archive(
        url,
        out_dir,
        top="audioset_v1_embeddings",
        required=("bal_train", "eval"),
        keep_archive=keep_archive,
        timeout=timeout,
        progress=progress,
    )
    download_audioset(result.root, url_base, files=[AUDIOSET_CLASSES_FILE], timeout=timeout)
    return result
