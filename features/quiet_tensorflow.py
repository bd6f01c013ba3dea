"""Keep TensorFlow's native start-up INFO lines off stderr.

Importing TensorFlow 2.19 or later (``import keras`` imports it) writes INFO lines from native
code before absl logging is initialised, where ``TF_CPP_MIN_LOG_LEVEL`` does not reach them
(tensorflow/tensorflow#100442): ``WARNING: All log messages before absl::InitializeLog() ...``,
``oneDNN custom operations are on ...``, ``Could not find cuda drivers ...``, each twice, in
every process that imports it, every Dask worker included.

After :func:`quiet_tensorflow_import`, the next import of TensorFlow in this process runs with
file descriptor 2 passed through a filter process that drops those lines and passes every other
line as it comes, native warnings and errors included
(:func:`pipelines.stderr_filter.stderr_lines_dropped`). ``TF_CPP_MIN_LOG_LEVEL`` is set to 1
unless it is set, for TensorFlow's own INFO lines later on.

On a host without an NVIDIA driver, TensorFlow's CUDA build also writes an error line when it
first looks for devices, ``E0000 ... cuda_platform.cc:52] failed call to cuInit: ...``, in every
process: there it only says that there is no GPU. So on such a host the import looks for devices
before the filter ends, and drops that line too; where a driver is installed, a failing cuInit is
a real error and its line stays.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import os
import re
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from pipelines.stderr_filter import stderr_lines_dropped
from schemas.deferred_imports import LoaderWrappingFinder

NATIVE_INFO_LINE = re.compile(
    rb"I\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "  # absl: I0000 00:00:17963.68 4178 a.cc:1]
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: I \S+:\d+\] "  # tsl: 2025-09-17 14:44:05.15: I a.cc:3]
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
)
"""Lines the filter drops: INFO lines of absl and of TSL's own format, and absl's notice that
logging is not initialised."""

CUINIT_FAILURE = re.compile(
    rb"E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: "
)
"""TensorFlow's error line when CUDA does not start (dropped only where no NVIDIA driver is)."""

NVIDIA_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg")
"""Any of these says an NVIDIA driver is installed (Linux; ``/dev/dxg``: WSL2's GPU)."""


class _QuietLoader(importlib.abc.Loader):
    """Runs another loader's ``exec_module``, then ``then(module)`` if given, under
    :func:`stderr_lines_dropped` of ``pattern``."""

    def __init__(
        self,
        loader: importlib.abc.Loader,
        pattern: re.Pattern[bytes],
        then: Callable[[ModuleType], object] | None,
    ) -> None:
        self.loader, self.pattern, self.then = loader, pattern, then

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # no trace of this wrapper
        with stderr_lines_dropped(self.pattern):
            self.loader.exec_module(module)
            if self.then is not None:
                self.then(module)


class _QuietFinder(LoaderWrappingFinder):
    """Finds the top-level module ``name`` with its loader wrapped in a :class:`_QuietLoader`;
    leaves ``sys.meta_path`` once it has found it."""

    def __init__(
        self,
        name: str,
        pattern: re.Pattern[bytes],
        then: Callable[[ModuleType], object] | None = None,
    ) -> None:
        super().__init__(
            frozenset({name}), functools.partial(_QuietLoader, pattern=pattern, then=then)
        )
        self.name = name

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        spec = super().find_spec(fullname, path, target)
        if spec is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self)
        return spec


def quiet_import(
    name: str,
    pattern: re.Pattern[bytes] = NATIVE_INFO_LINE,
    then: Callable[[ModuleType], object] | None = None,
) -> None:
    """Make the next import of the top-level module ``name`` in this process drop the lines
    ``pattern`` matches from stderr; nothing if it is imported already.

    Parameters
    ----------
    name : str
    pattern : re.Pattern[bytes]
        As for :func:`stderr_lines_dropped`; the native INFO lines of :data:`NATIVE_INFO_LINE`
        by default.
    then : callable, optional
        Called with the module once imported, before the filter ends.
    """
    if name in sys.modules:
        return
    if not any(isinstance(f, _QuietFinder) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder(name, pattern, then))


def nvidia_driver_present() -> bool:
    """Whether this host has an NVIDIA driver (any of :data:`NVIDIA_DRIVER_FILES` exists)."""
    return any(os.path.exists(path) for path in NVIDIA_DRIVER_FILES)


def quiet_tensorflow_import() -> None:
    """:func:`quiet_import` of TensorFlow, and ``TF_CPP_MIN_LOG_LEVEL=1`` unless it is set;
    without an NVIDIA driver, the import also looks for devices and drops
    :data:`CUINIT_FAILURE`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if nvidia_driver_present():
        quiet_import("tensorflow")
        return
    pattern = re.compile(NATIVE_INFO_LINE.pattern + b"|" + CUINIT_FAILURE.pattern)
    quiet_import("tensorflow", pattern, _list_devices)


def _list_devices(tf: ModuleType) -> None:
    tf.config.list_physical_devices()
