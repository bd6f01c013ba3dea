"""Download a dataset published as one archive, resumably, and unpack it safely.

The archive is streamed to ``<name>.part`` and, when that file exists from an interrupted
run, continued with an HTTP ``Range`` request (or restarted if the server ignores it); it is
renamed to ``<name>`` only when complete. Unpacking goes into a temporary folder beside the
destination with :mod:`tarfile`'s ``data`` filter (no absolute paths, no ``..``, no links out
of the folder, no devices), the layout is checked, and the folder is renamed into place: an
interrupted run never leaves a half-unpacked dataset where a recipe would read it.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

_CHUNK = 1 << 20


@dataclass
class ArchiveResult:
    """What :func:`download_archive` did."""

    root: Path
    """The unpacked dataset folder (``out_dir / top``, absolute)."""
    fetched_bytes: int
    """Bytes downloaded by this call (0 when the folder or the archive was already there)."""
    resumed_from: int
    """Bytes of an earlier partial download this call continued from."""
    unpacked: bool
    """Whether this call unpacked the archive (False when the folder was already there)."""


def _open(url: str, offset: int, timeout: float):
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the partial file is already whole
            return None
        raise OSError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise OSError(f"{url}: {exc.reason}") from exc


def fetch_resumable(
    url: str,
    dest: Path,
    *,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> tuple[int, int]:
    """Download ``url`` to ``dest`` through ``dest.part``, continuing a partial download.

    Parameters
    ----------
    url : str
        http(s) URL.
    dest : Path
        Final file (its folder is created); written only once the download is complete.
    timeout : float
        Socket timeout in seconds.
    progress : callable, optional
        ``progress(bytes_so_far, total_or_None)`` after each chunk.

    Returns
    -------
    (int, int)
        Bytes fetched by this call, and bytes of the partial file it continued from.

    Raises
    ------
    OSError
        Naming the URL and the HTTP status or network error; the partial file is kept so the
        next call resumes.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    resp = _open(url, offset, timeout)
    fetched = 0
    if resp is not None:
        with resp:
            if offset and resp.status != 206:  # no Range support: start again
                offset = 0
            length = resp.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            with open(part, "ab" if offset else "wb") as fh:
                try:
                    while chunk := resp.read(_CHUNK):
                        fh.write(chunk)
                        fetched += len(chunk)
                        if progress is not None:
                            progress(offset + fetched, total)
                except OSError as exc:
                    raise OSError(f"{url}: {exc} after {offset + fetched} bytes") from exc
                fh.flush()
                os.fsync(fh.fileno())
            if total is not None and offset + fetched != total:
                raise OSError(
                    f"{url}: connection closed after {offset + fetched} of {total} bytes; "
                    "run again to resume"
                )
    os.replace(part, dest)
    return fetched, offset


def unpack_tar(archive: Path, out_dir: Path, top: str, required: tuple[str, ...]) -> Path:
    """Unpack ``archive`` and move its folder ``top`` to ``out_dir / top``.

    Parameters
    ----------
    archive : Path
        A tar file (any compression :mod:`tarfile` reads).
    out_dir : Path
    top : str
        The folder the archive holds the dataset in.
    required : tuple of str
        Paths under ``top`` that must exist after unpacking.

    Returns
    -------
    Path
        ``out_dir / top``.

    Raises
    ------
    ValueError
        If the file is not a tar archive, a member would land outside the folder, or a
        required path is missing; nothing is left behind.
    """
    work = Path(tempfile.mkdtemp(prefix=f".{top}-unpack-", dir=out_dir))
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(work, filter="data")
        except tarfile.FilterError as exc:
            raise ValueError(f"{archive}: refused member: {exc}") from exc
        except tarfile.TarError as exc:
            raise ValueError(f"{archive}: not a readable tar archive ({exc})") from exc
        missing = [p for p in required if not (work / top / p).exists()]
        if missing:
            raise ValueError(
                f"{archive}: does not hold the expected layout: missing {top}/{missing[0]}"
            )
        dest = out_dir / top
        os.replace(work / top, dest)
        return dest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def download_archive(
    url: str,
    out_dir: str | os.PathLike[str],
    *,
    top: str,
    required: tuple[str, ...],
    keep_archive: bool = False,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> ArchiveResult:
    """Download a tar archive from ``url`` into ``out_dir`` and unpack its folder ``top``.

    Re-running resumes: a dataset folder that is already there is kept, a complete archive is
    unpacked without downloading it again, and a partial one is continued.

    Parameters
    ----------
    url : str
        http(s) URL of the archive.
    out_dir : path
        Local folder; the archive and the dataset folder go here.
    top, required
        As for :func:`unpack_tar`.
    keep_archive : bool
        Keep the archive after unpacking (it is removed by default).
    timeout : float
    progress : callable, optional
        As for :func:`fetch_resumable`.

    Returns
    -------
    ArchiveResult

    Raises
    ------
    ValueError
        If ``url`` is not http(s), or the archive is not what is expected.
    OSError
        If the download fails.
    """
    if urlparse(url).scheme not in ("http", "https"):
        raise ValueError(f"the archive URL must be http(s), not {url!r}")
    out = Path(out_dir).absolute()  # the printed next command works from any folder
    out.mkdir(parents=True, exist_ok=True)
    root = out / top
    if all((root / p).exists() for p in required):
        return ArchiveResult(root, 0, 0, unpacked=False)
    if root.exists():
        raise ValueError(f"{root} exists but lacks {required}: remove it and run again")
    archive = out / Path(urlparse(url).path).name
    fetched = resumed = 0
    if not archive.exists():
        fetched, resumed = fetch_resumable(url, archive, timeout=timeout, progress=progress)
    try:
        unpack_tar(archive, out, top, required)
    except ValueError as exc:
        archive.unlink()  # the next run downloads it again
        raise ValueError(f"{exc}; the archive was removed") from exc
    if not keep_archive:
        archive.unlink()
    return ArchiveResult(root, fetched, resumed, unpacked=True)
