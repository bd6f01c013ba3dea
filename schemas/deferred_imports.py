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
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType


class LoaderWrappingFinder(importlib.abc.MetaPathFinder):
    """Finds the modules ``names`` as the normal path finder does, with their loaders passed
    through ``wrap`` (here :class:`importlib.util.LazyLoader`; ``features.quiet_tensorflow``
    wraps TensorFlow's import in a stderr filter)."""

    def __init__(
        self, names: frozenset[str], wrap: Callable[[importlib.abc.Loader], importlib.abc.Loader]
    ) -> None:
        self.names = names
        self.wrap = wrap

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.abc.Loader):
            return None
        spec.loader = self.wrap(spec.loader)
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
    finder = LoaderWrappingFinder(frozenset(names), importlib.util.LazyLoader)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
