"""Rows of a file written straight to disk with ``O_DIRECT``, past the page cache.

A buffered write copies every byte into the page cache, where it waits, dirty, for the kernel
to write it back; the shard's rows are never read again by the run that writes them, so that
copy, the writeback and dropping the pages afterwards (:mod:`pipelines.page_cache`) are all
overhead: in a 2,000-clip ingest they cost more CPU than downmixing and quantizing the clips.
With ``O_DIRECT`` the disk reads the row from the writer's buffer: one copy into a
page-aligned buffer, no page-cache pages, nothing to write back.

``O_DIRECT`` asks for file offsets, lengths and buffer addresses aligned to the device's
logical block size (512 bytes on most disks, 4096 on some). Rows that are not multiples of
512 bytes, and file systems that refuse ``O_DIRECT`` (tmpfs with older kernels, some network
file systems), are written the buffered way: :meth:`DirectRowWriter.open` gives no writer for
them, and a writer whose writes the disk refuses hands them to its fallback.
:class:`UncachedRows` puts the two together: rows written past the page cache where that
works, and written behind it (:func:`pipelines.page_cache.write_behind`) where it does not.
"""

from __future__ import annotations

import errno
import mmap
import os
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pipelines.file_io import pwrite_all
from pipelines.page_cache import drop_cached, write_behind

BLOCK_BYTES = 512
"""The smallest logical block size of a disk: direct writes start and end on multiples of it."""
WRITES_IN_FLIGHT = 4
"""Rows a :class:`DirectRowWriter` holds in its buffers, waiting for the disk, at most."""


class DirectRowWriter:
    """Write equal-size rows of a file with ``O_DIRECT``, from any number of threads, on a
    thread of its own.

    :meth:`submit` copies the row into one of ``depth`` page-aligned buffers (waiting for one
    to be free) and returns; a writer thread writes it to disk, so the caller's thread never
    waits for the device. The first write the system refuses as unaligned (``EINVAL``) turns
    direct writes off: that row and every later one go to ``fallback`` (a buffered write).

    Use :meth:`open`, which returns ``None`` where direct writes cannot work.

    Parameters
    ----------
    fd : int
        The file, opened for writing with ``O_DIRECT``; the writer closes it.
    row_bytes : int
        Bytes per row, a multiple of :data:`BLOCK_BYTES`.
    fallback : callable
        ``fallback(row_bytes_view, offset)`` writes a row the buffered way.
    depth : int
        Rows in flight at most.
    """

    def __init__(
        self,
        fd: int,
        row_bytes: int,
        fallback: Callable[[memoryview, int], None],
        depth: int = WRITES_IN_FLIGHT,
    ) -> None:
        self._fd = fd
        self.row_bytes = row_bytes
        self.direct = True
        self._fallback = fallback
        self._buffers = [mmap.mmap(-1, row_bytes) for _ in range(depth)]  # page-aligned
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        for buffer in self._buffers:
            self._free.put(buffer)
        # One thread, so its queue is first in, first out: a no-op submitted after the writes
        # runs after all of them (see flush).
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="audiomill-direct-write")
        self._error: Exception | None = None  # the first write that failed

    @classmethod
    def open(
        cls,
        path: str,
        first_offset: int,
        row_bytes: int,
        fallback: Callable[[memoryview, int], None],
    ) -> DirectRowWriter | None:
        """A writer for rows of ``row_bytes`` starting at ``first_offset`` of the existing file
        ``path``, or ``None`` where the system has no ``O_DIRECT``, the rows are not aligned to
        :data:`BLOCK_BYTES`, or the file system refuses to open the file so.

        Raises
        ------
        OSError
            The file cannot be opened for another reason (missing, no permission).
        """
        direct = getattr(os, "O_DIRECT", 0)
        if not direct or row_bytes <= 0 or row_bytes % BLOCK_BYTES or first_offset % BLOCK_BYTES:
            return None
        try:
            fd = os.open(path, os.O_WRONLY | direct)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return None
            raise
        return cls(fd, row_bytes, fallback)

    def submit(self, data: np.ndarray, offset: int) -> None:
        """Queue one row (a C-contiguous array of ``row_bytes``) for writing at ``offset``.

        Raises
        ------
        ValueError
            ``data`` is not ``row_bytes`` long.
        OSError
            An earlier write failed (a full disk, an I/O error); :meth:`flush` raises it too.
        """
        if data.nbytes != self.row_bytes:
            raise ValueError(f"a row is {self.row_bytes} bytes, got {data.nbytes}")
        self._raise_failed()
        buffer = self._free.get()
        buffer[:] = memoryview(data).cast("B")
        self._pool.submit(self._write, buffer, offset)

    def _write(self, buffer: mmap.mmap, offset: int) -> None:
        try:
            with memoryview(buffer) as view:
                if self.direct and not self._write_direct(view, offset):
                    self.direct = False
                if not self.direct:
                    self._fallback(view, offset)
        except Exception as exc:
            self._error = self._error or exc
        finally:
            self._free.put(buffer)

    def _write_direct(self, view: memoryview, offset: int) -> bool:
        done = 0
        try:
            while done < self.row_bytes:
                with view[done:] as rest:
                    done += os.pwrite(self._fd, rest, offset + done)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            return False
        return True

    def _raise_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def flush(self) -> None:
        """Wait until every row submitted so far is written.

        Raises
        ------
        OSError
            The first write that failed.
        """
        self._pool.submit(lambda: None).result()
        self._raise_failed()

    def close(self) -> None:
        """Wait for the writes in flight, then close the file and free the buffers. Errors of
        the writes are not raised here: :meth:`flush` first to see them."""
        self._pool.shutdown(wait=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for buffer in self._buffers:
            buffer.close()


class UncachedRows:
    """Equal-size rows written at offsets of an open file, kept out of the page cache.

    Rows go with ``O_DIRECT`` from a writer thread (:class:`DirectRowWriter`) where the file
    system and the row size allow it, and are otherwise written with ``pwrite`` and pushed to
    disk at once, only the last few MB staying cached (:func:`pipelines.page_cache.write_behind`).
    For files that the process writing them does not read again (committed shards).

    Parameters
    ----------
    path : str
        The file, opened again for ``O_DIRECT`` writes.
    fd : int
        The file open for writing; the caller keeps it open until :meth:`close` and closes it.
    first_offset : int
        Where the rows start.
    row_bytes : int
        Bytes per row.
    """

    def __init__(self, path: str, fd: int, first_offset: int, row_bytes: int) -> None:
        self._fd = fd
        self._row_bytes = row_bytes
        self._direct = DirectRowWriter.open(path, first_offset, row_bytes, self._write_behind)

    @property
    def direct(self) -> bool:
        """Whether rows are being written with ``O_DIRECT``."""
        return self._direct is not None and self._direct.direct

    def write(self, data: np.ndarray, offset: int) -> None:
        """Write one row (thread-safe); ``data`` may be reused as soon as this returns."""
        if self._direct is not None:
            self._direct.submit(data, offset)
        else:
            self._write_behind(data, offset)

    def _write_behind(self, data: np.ndarray | memoryview, offset: int) -> None:
        pwrite_all(self._fd, data, offset)
        write_behind(self._fd, offset, self._row_bytes)

    def flush(self) -> None:
        """Wait until every row written so far is in the file (readable through ``fd``); raise
        the first write error."""
        if self._direct is not None:
            self._direct.flush()

    def settle(self, offset: int, nbytes: int) -> None:
        """:meth:`flush`, then wait until the byte range is on disk and drop what is left of it
        in the page cache."""
        self.flush()
        drop_cached(self._fd, offset, nbytes, wait_written=True)

    def close(self) -> None:
        """Stop the writer thread, if any (the caller's ``fd`` stays open); idempotent."""
        if self._direct is not None:
            self._direct.close()
            self._direct = None
