"""A file of a remote store whose every call fails the way opening it does.

Opening a file on an object store reaches the store once; reading, seeking, writing and closing
reach it again, in ranged requests and uploads, long after the open returned. A store that goes
away meanwhile (a dropped connection, expired credentials) then raises botocore's or aiohttp's
own exception from deep inside h5py or pyarrow. :class:`GuardedFile` runs each of those calls
inside the guard the store's other calls use, so they fail with the same one-line error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import IO, Any

Guard = Callable[[], contextlib.AbstractContextManager[None]]

GUARDED_CALLS = frozenset({"read", "readinto", "readline", "write", "seek", "flush", "close"})
"""The file methods that may reach the store."""


class GuardedFile:
    """`raw`, with its calls that reach the store (:data:`GUARDED_CALLS`) made inside `guard()`.

    Parameters
    ----------
    raw : file object
        What the store's filesystem opened.
    guard : callable
        Returns a context manager that turns the store's failures into the caller's error.

    Other attributes (``tell``, ``name``, ``mode``, ``closed``, ``size``) are `raw`'s own.
    """

    def __init__(self, raw: IO[Any], guard: Guard) -> None:
        self._raw = raw
        self._guard = guard

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._raw, name)
        if name not in GUARDED_CALLS:
            return attr

        def guarded(*args: Any, **kwargs: Any) -> Any:
            with self._guard():
                return attr(*args, **kwargs)

        return guarded

    def __iter__(self) -> Iterator[Any]:
        while line := self.readline():
            yield line

    def __enter__(self) -> GuardedFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
