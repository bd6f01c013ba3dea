"""Scratch folders of ingest's worker processes, named by process so killed ones get cleaned up.

A worker removes its folder (partial downloads, shards being built) in its ``teardown``; a
worker killed with the run (SIGKILL, or stopped by the runner after Ctrl-C) never gets there.
Each folder's name holds the process id of its worker, and a worker making its own removes the
folders of the same kind whose process is gone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
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
