"""The dataset an import writes to: locked, and removed again when a first import fails."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from pipelines.storage import LOCK_NAME, DatasetLock, DatasetStore
from schemas.dataset import MANIFEST


@contextlib.contextmanager
def locked_target(store: DatasetStore, owner: dict) -> Iterator[None]:
    """Hold ``store``'s lock for the block; if the block fails, leave no dataset this call made.

    When the dataset is a local directory that did not exist before, and the block raises
    before a manifest was saved (nothing was committed), what it wrote is removed under the
    lock, then the directory and the parents made for it.

    Parameters
    ----------
    store : DatasetStore
    owner : dict
        Shown to a run refused by the lock (:class:`pipelines.storage.DatasetLock`).
    """
    created = _missing_dirs(store)
    try:
        with DatasetLock(store, owner):
            try:
                yield
            except BaseException:
                if created and not store.exists(MANIFEST):
                    _remove_all_but_lock(created[0])
                raise
    except BaseException:
        for path in created:  # deepest first; one left non-empty keeps its parents
            try:
                path.rmdir()
            except OSError:
                break
        raise


def _missing_dirs(store: DatasetStore) -> list[Path]:
    """The local dataset directory and its parents that do not exist, deepest first."""
    if not store.is_local:
        return []
    missing, path = [], store.local_path()
    while not path.exists():
        missing.append(path)
        path = path.parent
    return missing


def _remove_all_but_lock(root: Path) -> None:
    for entry in root.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
