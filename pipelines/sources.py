"""Turn segments into fetch requests: which URL or file each clip comes from.

Sources:

``youtube``
    ``https://www.youtube.com/watch?v=<YTID>``, section-downloaded by yt-dlp.
``http``
    a URL template such as ``http://host/{ytid}.wav`` (fields ``ytid``, ``clip_id``,
    ``start``, ``end``, ``source``), fetched through the same yt-dlp code path.
``local``
    files under ``--audio-root`` (or paths in a custom manifest), read directly; an fsspec URL
    such as ``s3://bucket/key`` is copied first.
``auto``
    per segment: a manifest row's ``url`` or ``path``; for AudioSet rows, ``http`` when a
    URL template is given, ``local`` when an audio root is given, else ``youtube``.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import fsspec

from pipelines.fetch import format_url_template, youtube_url
from schemas.failures import ClipFailure, FailureReason
from schemas.segments import Segment

SOURCES = ("youtube", "http", "local", "auto")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".m4a", ".opus", ".webm")


@dataclass(frozen=True)
class SourceConfig:
    """How segments map to media.

    Attributes
    ----------
    source : str
        One of :data:`SOURCES`.
    url_template : str or None
        Template for ``http`` sources.
    audio_root : str or None
        Directory (local or fsspec URL) of local media.
    precut : bool
        The media already holds just the segment (e.g. PANNs' downloaded ``Y<YTID>.wav``).
    manifest_dir : str or None
        Directory that relative manifest paths resolve against when there is no audio root.
    """

    source: str = "auto"
    url_template: str | None = None
    audio_root: str | None = None
    precut: bool = False
    manifest_dir: str | None = None


@dataclass(frozen=True)
class ResolvedSource:
    """Where to fetch a segment from and whether the file holds only the segment."""

    location: str
    precut: bool


def list_folder(path: str) -> str:
    """The folder of a segment list, which its relative paths resolve against (local or URL).

    Parameters
    ----------
    path : str
        The list's path or fsspec URL, e.g. ``s3://bucket/lists/m.csv``.

    Returns
    -------
    str
        ``s3://bucket/lists`` for that URL; ``os.path.dirname`` of a local path.
    """
    if "://" in path:
        return posixpath.dirname(path.rstrip("/"))
    return os.path.dirname(path)


def audio_root_problem(root: str, storage_options: dict | None = None) -> str | None:
    """Why ``root`` cannot be an audio root, or ``None`` when it is a folder.

    Parameters
    ----------
    root : str
        The ``--audio-root`` value: a local path or an fsspec URL such as ``s3://bucket/audio``.
    storage_options : dict, optional
        For an fsspec URL.

    Returns
    -------
    str or None
        ``"no such folder"`` or ``"not a folder"`` for a local path; for a URL (one request),
        ``"no such folder"`` when nothing is stored under it. ``None`` when it is a folder, for an
        http(s) URL (a server lists no folders), and when the storage cannot be asked (the run
        reports that itself).
    """
    if "://" not in root:
        path = Path(root)
        if path.is_dir():
            return None
        return "not a folder" if path.exists() else "no such folder"
    if urlparse(root).scheme in ("http", "https"):
        return None
    try:
        fs, _, (base,) = fsspec.get_fs_token_paths(root, storage_options=storage_options or {})
        if fs.isdir(base):
            return None
        return "not a folder" if fs.exists(base) else "no such folder"
    except Exception:  # credentials, network: the run's own access check says why
        return None


def index_audio_root(root: str, storage_options: dict | None = None) -> dict[str, str]:
    """Map file stems (without extension) to paths for the audio files directly under ``root``."""
    fs, _, (base,) = fsspec.get_fs_token_paths(root, storage_options=storage_options or {})
    out: dict[str, str] = {}
    for info in sorted(fs.ls(base, detail=True), key=lambda i: i["name"]):
        if info.get("type") != "file":
            continue
        entry = info["name"]
        name = posixpath.basename(entry.rstrip("/"))
        stem, ext = os.path.splitext(name)
        if ext.lower() in AUDIO_EXTENSIONS:
            out.setdefault(
                stem,
                entry if fs.protocol in ("file", ("file", "local")) else fs.unstrip_protocol(entry),
            )
    return out


def _absolute(folder: str) -> str:
    """``folder`` as a message names it from any working directory: an fsspec URL as it is, a
    local path made absolute."""
    return folder if "://" in folder else os.path.abspath(folder)


def _outside(rel: str, cfg: SourceConfig) -> ClipFailure:
    """The failure of a relative path ``rel`` that leads out of the folder it resolves in."""
    if cfg.audio_root:
        where = f"--audio-root {_absolute(cfg.audio_root)}"
    else:
        where = f"the manifest's folder {_absolute(cfg.manifest_dir or '.')}"
    return ClipFailure(
        FailureReason.VALIDATION,
        f"path {rel!r} is outside {where}: relative paths must stay inside it (give an absolute "
        "path, or an --audio-root that holds the file)",
    )


def _within(root: str, rel: str, cfg: SourceConfig) -> str:
    """The absolute path of ``rel`` in local folder ``root``: the same file whatever the
    working directory of the run that reads it, or of the one that compares it with the
    ledger's (a ``ClipFailure`` if ``rel`` leads out of ``root``)."""
    base = os.path.abspath(root)
    joined = os.path.normpath(os.path.join(base, rel))
    if os.path.commonpath([base, joined]) != base:
        raise _outside(rel, cfg)
    return joined


def resolve(
    segment: Segment, cfg: SourceConfig, root_index: dict[str, str] | None
) -> ResolvedSource:
    """Return where ``segment``'s media is.

    A relative local path resolves against the audio root, else the manifest's folder, else
    the working directory, into an absolute path: the ledger records it as the clip's source,
    which a later run from another working directory compares its own with. The clip id is the
    segment's own, whatever it resolves to.

    Raises
    ------
    ClipFailure
        ``VALIDATION`` for an id that cannot be a YouTube id or a relative path leading out
        of the audio root (or of the manifest's folder without one); ``NOT_FOUND`` for a
        segment with no file under the audio root.
    """
    kind = cfg.source
    if segment.source_kind == "url":
        return ResolvedSource(segment.source, cfg.precut)
    if segment.source_kind == "path":
        src = segment.source
        if "://" in src or os.path.isabs(src):
            return ResolvedSource(src, cfg.precut)
        base = cfg.audio_root or cfg.manifest_dir or "."
        if "://" in base:
            if ".." in Path(src).parts:
                raise _outside(src, cfg)
            return ResolvedSource(base.rstrip("/") + "/" + src, cfg.precut)
        return ResolvedSource(_within(base, src, cfg), cfg.precut)
    if kind == "auto":
        kind = "http" if cfg.url_template else "local" if cfg.audio_root else "youtube"
    fields = {
        "ytid": segment.source,
        "clip_id": segment.clip_id,
        "start": f"{segment.start_s:g}" if segment.start_s is not None else "",
        "end": f"{segment.end_s:g}" if segment.end_s is not None else "",
        "source": segment.source,
    }
    if kind == "youtube":
        return ResolvedSource(youtube_url(segment.source), False)
    if kind == "http":
        if not cfg.url_template:
            raise ValueError("--source http needs --url-template")
        return ResolvedSource(format_url_template(cfg.url_template, **fields), cfg.precut)
    if root_index is None:
        raise ValueError("--source local needs --audio-root")
    for stem, precut in (
        (segment.clip_id, True),
        (f"Y{segment.source}", True),
        (segment.source, cfg.precut),
    ):
        if stem in root_index:
            return ResolvedSource(root_index[stem], precut)
    raise ClipFailure(
        FailureReason.NOT_FOUND,
        f"no file named {segment.clip_id}.*, Y{segment.source}.* or {segment.source}.* "
        f"under {cfg.audio_root}",
    )
