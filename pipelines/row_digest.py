"""The sha256 of a file computed while its rows are written, in any order.

A shard file is a fixed prefix (HDF5's metadata and small datasets), rows of equal size
written by several threads in roughly ascending order, and a fixed suffix. Hashing the rows as
they are written, instead of reading the finished file back, saves reading every shard once
more from disk and takes the hash of the last shard off the end of a run.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

MAX_WAITING_ROWS = 32
"""Rows held back (by reference) for an earlier row that has not been written yet; past this
the digest gives up (a clip that failed to decode leaves its row unwritten for good)."""


class RowStreamDigest:
    """sha256 of ``prefix + row 0 + row 1 + ... + suffix``, fed rows in any order.

    A row that comes before its turn waits, by reference, until every earlier row has been
    hashed: callers must not change an array after passing it. When more than ``max_waiting``
    rows wait, or a row comes twice, the digest is abandoned (``finish`` returns ``None``)
    and the caller hashes the finished file instead.

    Parameters
    ----------
    prefix : bytes
        The file's bytes before the first row, final when this is made.
    num_rows : int
    max_waiting : int
        Rows that may wait for an earlier one.
    """

    def __init__(self, prefix: bytes, num_rows: int, max_waiting: int = MAX_WAITING_ROWS) -> None:
        self._hash = hashlib.sha256(prefix)
        self._num_rows = num_rows
        self._max_waiting = max_waiting
        self._next = 0
        self._waiting: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self.abandoned = False

    def add(self, row: int, data: np.ndarray) -> None:
        """Feed the bytes of ``row`` (a C-contiguous array); thread-safe."""
        with self._lock:
            if self.abandoned:
                return
            if row < self._next or row in self._waiting or not 0 <= row < self._num_rows:
                self._abandon()
                return
            self._waiting[row] = data
            while self._next in self._waiting:
                self._hash.update(memoryview(self._waiting.pop(self._next)).cast("B"))
                self._next += 1
            if len(self._waiting) > self._max_waiting:
                self._abandon()

    def _abandon(self) -> None:
        self.abandoned = True
        self._waiting.clear()

    def finish(self, suffix: bytes) -> str | None:
        """The hex digest with ``suffix`` (the file's bytes after the last row) appended, or
        ``None`` when the digest was abandoned or a row is missing."""
        with self._lock:
            if self.abandoned or self._next != self._num_rows:
                return None
            self._hash.update(suffix)
            return self._hash.hexdigest()
