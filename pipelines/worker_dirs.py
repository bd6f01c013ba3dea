"""Scratch folders of ingest's worker processes, named by process so killed ones get cleaned up.

A worker removes its folder (partial downloads, shards being built) in its ``teardown``; a
worker killed with the run (SIGKILL, or stopped by the runner after Ctrl-C) never gets there.
Each folder's name holds the process id of its worker, and a worker making its own removes the
folders of the same kind whose process is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path


def worker_dir(kind: str) -> str:
    """Make this process's scratch folder ``audiomill-<kind>-<pid>-<random>`` in the system's
    temporary folder, after removing those of ``kind`` left by processes that are gone.

    Parameters
    ----------
    kind : str
        What the folder holds (``"fetch"``, ``"shard"``); no ``-`` in it.

    Returns
    -------
    str
        The new folder.
    """
    prefix = f"audiomill-{kind}-"
    for old in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        pid, named, _ = old.name[len(prefix) :].partition("-")  # else not one of ours
        if named and pid.isdigit() and old.is_dir() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        pass
    return True


class ScratchDir:
    """A :func:`worker_dir` that outlasts :meth:`close` while a clip is using it.

    Beam's SDK harness does not wait for the bundles in flight when its runner goes away (after
    Ctrl-C): it tears the DoFns down while other threads still process their elements. Removing
    the folder then failed the clip being fetched into it ("no such file"), and the failure was
    recorded as permanent, so the next run skipped the clip. Here the folder goes when it is
    closed and its last user is done; a process that ends first leaves it to the next worker.

    Parameters
    ----------
    kind : str
        As for :func:`worker_dir`.
    """

    def __init__(self, kind: str) -> None:
        self.path = worker_dir(kind)
        self._lock = threading.Lock()
        self._users = 0
        self._closed = False

    @contextlib.contextmanager
    def use(self) -> Iterator[str]:
        """Hold the folder for one clip's work; yields its path."""
        with self._lock:
            self._users += 1
        try:
            yield self.path
        finally:
            with self._lock:
                self._users -= 1
                done = self._closed and not self._users
            if done:
                shutil.rmtree(self.path, ignore_errors=True)

    def close(self) -> None:
        """Remove the folder now, or when the clips using it are done."""
        with self._lock:
            self._closed = True
            idle = not self._users
        if idle:
            shutil.rmtree(self.path, ignore_errors=True)
