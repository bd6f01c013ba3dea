"""Defer the execution of named modules to their first use (:class:`importlib.util.LazyLoader`).

Great Expectations imports ``scipy.stats`` and ``altair`` when it is imported, for two
expectations audiomill never runs (KL divergence and its charts); together they are about a
third of its import time, paid by every ``audiomill`` command that validates anything. Imported
inside :func:`deferred`, such a module is created at once but runs its code only when an
attribute of it is first read, so nothing changes for code that does use it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds ``names`` as the normal path finder does, with their loaders made lazy."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.abc.Loader):
            return None
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


@contextlib.contextmanager
def deferred(*names: str) -> Iterator[None]:
    """Within the block, the modules ``names`` (full dotted names) are imported lazily.

    A module already imported stays as it is. The parent packages of a dotted name are
    imported as usual.

    Parameters
    ----------
    *names : str
        Modules to defer, such as ``"scipy.stats"``.
    """
    finder = _DeferringFinder(frozenset(names))
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
