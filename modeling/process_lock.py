"""A lock that keeps other processes off a file's work and dies with its holder.

An ``flock`` of a lock file, which the system releases when its process ends, however it ends:
a lock file left by a killed process blocks nothing. Training holds one on its run
(:meth:`modeling.runs.RunDir.locked`), ``audiomill run`` one on its records file, ``export`` one
on the folder it writes its SavedModel in, so that another export removes that folder
(:func:`remove_abandoned`) only when its writer is gone. The atomic writes of
:mod:`modeling.runs` hold their temporary files the same way (:func:`new_held_file`), so that a
later write removes one (:func:`remove_unheld_file`) only when its writer is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


class LockedError(OSError):
    """Another process holds the lock :func:`process_lock` was asked for; the message says whose."""


_HELD_LOCKS: set[Path] = set()
"""The lock files this process holds (:func:`process_lock`)."""


@contextlib.contextmanager
def process_lock(path: str | os.PathLike[str], busy: str) -> Iterator[None]:
    """Keep every other process off while the block runs, with an ``flock`` of the file ``path``.

    The system releases an ``flock`` when its process ends, however it ends, so a lock file left
    by a killed process blocks nothing. The file (and its folder) is made when missing and
    removed on release. A lock this process holds already is taken again at once.

    Parameters
    ----------
    path : str or os.PathLike
        The lock file.
    busy : str
        The message of the :class:`LockedError` raised when another process holds the lock.

    Raises
    ------
    LockedError
        When another process holds the lock.
    OSError
        When the lock file cannot be made.
    """
    path = Path(path).absolute()
    if path in _HELD_LOCKS:
        yield
        return
    fd = _take_lock(path)
    if fd is None:
        raise LockedError(busy)
    _HELD_LOCKS.add(path)
    try:
        yield
    finally:
        _HELD_LOCKS.discard(path)
        path.unlink(missing_ok=True)
        os.close(fd)


def remove_abandoned(path: str | os.PathLike[str], lock: str | os.PathLike[str]) -> None:
    """Delete the folder ``path`` and the lock file ``lock`` unless a process holds ``lock``
    (:func:`process_lock`): what a writer that held it while writing ``path`` left, killed.

    Parameters
    ----------
    path : str or os.PathLike
        The folder, which may be missing (its writer died before making it).
    lock : str or os.PathLike
        Its writer's lock file; a lock this process holds keeps ``path`` too.
    """
    lock = Path(lock).absolute()
    if lock in _HELD_LOCKS:
        return
    with contextlib.suppress(LockedError), process_lock(lock, f"{lock} is held"):
        shutil.rmtree(path, ignore_errors=True)


def new_held_file(new_path: Callable[[], Path]) -> tuple[Path, BinaryIO]:
    """A new, empty file, open for writing and held by this process (an ``flock``, released
    when it is closed or the process ends) so that :func:`remove_unheld_file` leaves it.

    The file is made as ``open`` makes files: the umask decides its mode.

    Parameters
    ----------
    new_path : callable
        Gives the file's path, a new one at each call: another is tried when a remover deleted
        the file between its making and its locking.

    Returns
    -------
    tuple of Path and BinaryIO
    """
    while True:
        path = new_path()
        stream = path.open("xb")
        fcntl.flock(stream, fcntl.LOCK_EX)  # waits for a remover that took it first
        if _names_file(path, stream.fileno()):
            return path, stream
        stream.close()


def remove_unheld_file(path: str | os.PathLike[str]) -> None:
    """Delete the file ``path`` unless a process holds it (:func:`new_held_file`): what a
    writer killed while writing it left. A file this process may not open or delete stays."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # BlockingIOError: its writer holds it
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _names_file(path, fd):
                path.unlink()
    finally:
        os.close(fd)


def _take_lock(path: Path) -> int | None:
    """A descriptor of the file ``path`` holding its ``flock``; None when another process holds
    it. A file its holder removed as we opened it is left for the one now at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if _names_file(path, fd):
            return fd
        os.close(fd)


def _names_file(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open at ``fd``."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)
