"""Locate ffmpeg: the system one on ``PATH``, else the binary shipped by ``imageio-ffmpeg``."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import imageio_ffmpeg


def cache_dir() -> Path:
    """Return the per-user cache directory (``$AUDIOMILL_CACHE_DIR`` or ``~/.cache/audiomill``)."""
    return Path(os.environ.get("AUDIOMILL_CACHE_DIR") or Path.home() / ".cache" / "audiomill")


def ffmpeg_executable() -> str:
    """Return the path of an ffmpeg executable, preferring a system ``ffmpeg`` on ``PATH``."""
    return shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_dir() -> str:
    """Return a directory holding an executable named exactly ``ffmpeg`` (what yt-dlp looks for).

    That is the directory of the system ffmpeg when there is one; otherwise ``<cache>/bin``, where
    a symlink ``ffmpeg`` to the imageio-ffmpeg binary is created atomically, so concurrent callers
    never observe a missing or half-made link.
    """
    system = shutil.which("ffmpeg")
    if system:
        return os.path.dirname(os.path.abspath(system))
    target = imageio_ffmpeg.get_ffmpeg_exe()
    bin_dir = cache_dir() / "bin"
    link = bin_dir / "ffmpeg"
    if link.is_symlink() and os.readlink(link) == target:
        return str(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    tmp = bin_dir / f".ffmpeg-{uuid.uuid4().hex}"
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return str(bin_dir)
