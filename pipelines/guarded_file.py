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


class GuardedFile:
    """`raw`, with its I/O calls made inside `guard()`.

    Parameters
    ----------
    raw : file object
        What the store's filesystem opened.
    guard : callable
        Returns a context manager that turns the store's failures into the caller's error.

    Other attributes (``name``, ``mode``, ``closed``, ``size``) are read from `raw`.
    """

    def __init__(self, raw: IO[Any], guard: Guard) -> None:
        self._raw = raw
        self._guard = guard

    def read(self, size: int = -1) -> Any:
        with self._guard():
            return self._raw.read(size)

    def readinto(self, buffer: Any) -> int:
        with self._guard():
            return self._raw.readinto(buffer)

    def readline(self, size: int = -1) -> Any:
        with self._guard():
            return self._raw.readline(size)

    def write(self, data: Any) -> int:
        with self._guard():
            return self._raw.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        with self._guard():
            return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def flush(self) -> None:
        with self._guard():
            self._raw.flush()

    def close(self) -> None:
        with self._guard():
            self._raw.close()

    def __iter__(self) -> Iterator[Any]:
        while line := self.readline():
            yield line

    def __enter__(self) -> GuardedFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)
