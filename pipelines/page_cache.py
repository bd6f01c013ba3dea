"""Keep big one-pass file streams out of the page cache: write-behind and drop-behind.

A shard is written once, hashed once and not read again by the run that writes it. Left to
the kernel, its pages stay in memory: dirty until the commit's ``fsync`` writes them all at
once while the caller waits, then cached, pushing out pages that are read again (the source
audio). Worse, every page of a fresh stream is memory the system has to hand out: on a VM
whose host reclaims free guest memory (virtio-balloon free page reporting, as on Firecracker)
that costs a host page fault per page, about 3 ms per MB, which made writing a 640 MB shard
four to nine times slower than encoding it.

:func:`write_behind` starts writing each range to disk as soon as it is written, and waits
for the range a window of bytes before it to be on disk and drops it from the cache; freed
pages are reused by the next writes. :func:`drop_cached` does the same for a
range just read. This is the write pattern databases use for their data files (PostgreSQL's
``*_flush_after``). It changes nothing about durability: the commit still fsyncs. Where the
calls do not exist (``sync_file_range`` is Linux-only) the data simply stays cached.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import mmap
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pipelines.file_io import pread_into

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
WINDOW_BYTES = 32 << 20
"""How far behind the writes of a stream :func:`write_behind` drops what they wrote."""

HASH_CHUNK_BYTES = 8 << 20
DROP_ALIGN = 2 << 20
"""Alignment that ranges to drop are widened to: the largest block the page cache holds."""

# <linux/fs.h>
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    func = getattr(libc, "sync_file_range", None)
    if func is not None:
        func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        func.restype = ctypes.c_int
    return func


_sync_file_range = _load_sync_file_range()


def start_writeback(fd: int, offset: int, nbytes: int) -> bool:
    """Ask the kernel to start writing a range of ``fd`` to disk, without waiting for it.

    Parameters
    ----------
    fd : int
        A descriptor open for writing.
    offset, nbytes : int
        The byte range.

    Returns
    -------
    bool
        Whether writeback was started; false where the system has no such call or the file
        system refused it, which is harmless.
    """
    if _sync_file_range is None:
        return False
    return _sync_file_range(fd, offset, nbytes, _WRITE) == 0


def drop_cached(fd: int, offset: int, nbytes: int, *, wait_written: bool = False) -> bool:
    """Drop a range of ``fd`` from the page cache (data, not durability: nothing is lost).

    The kernel keeps a cached block (a page, or a folio of up to 2 MB) that the range covers
    only in part, so the range is widened to whole 2 MB blocks; the kernel also keeps what is
    still dirty, so neighbours still being written are safe.

    Parameters
    ----------
    fd : int
        An open descriptor.
    offset, nbytes : int
        The byte range.
    wait_written : bool
        First write the range to disk and wait for it, so that its pages are clean and can go.

    Returns
    -------
    bool
        Whether the kernel was asked; false where ``posix_fadvise`` does not exist.
    """
    if wait_written and _sync_file_range is not None:
        _sync_file_range(fd, offset, nbytes, _WAIT_BEFORE | _WRITE | _WAIT_AFTER)
    if not hasattr(os, "posix_fadvise"):
        return False
    start = offset - offset % DROP_ALIGN
    end = -(-(offset + nbytes) // DROP_ALIGN) * DROP_ALIGN
    os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)
    return True


def write_behind(fd: int, offset: int, nbytes: int, window: int = WINDOW_BYTES) -> None:
    """Report ``nbytes`` just written at ``offset``: start writing them to disk, and drop the
    range ``window`` bytes before them from the cache once it is on disk.

    Stateless, so any number of threads or processes writing disjoint ranges of one file in
    roughly ascending order (rows of a shard) can use it. What this leaves cached, the last
    ``window`` bytes, :func:`drop_cached` with ``wait_written`` clears when writing is done.

    Parameters
    ----------
    fd : int
        A descriptor open for writing.
    offset, nbytes : int
        The byte range just written.
    window : int
        How far behind the writes the dropping runs: enough to keep the disk busy, small next
        to any memory.
    """
    start_writeback(fd, offset, nbytes)
    if offset >= window:
        drop_cached(fd, offset - window, nbytes, wait_written=True)


def hash_file_uncached(
    path: str | os.PathLike[str], algorithm: str = "sha256", chunk: int = HASH_CHUNK_BYTES
) -> tuple[str, int]:
    """Hash a local file in one pass that leaves nothing in the page cache.

    The file is read with ``O_DIRECT`` into two reused buffers, the next chunk read while the
    last one is hashed (both release the GIL). Where ``O_DIRECT`` is refused (tmpfs, systems
    without it) it is read through the cache, each chunk dropped once hashed (and on disk).

    Parameters
    ----------
    path : str or PathLike
    algorithm : str
        A :func:`hashlib.new` name.
    chunk : int
        Bytes per read, a multiple of the page size.

    Returns
    -------
    (str, int)
        The hex digest and the file's size in bytes.

    Raises
    ------
    OSError
        The file cannot be read, or it shrank while it was read.
    """
    direct = getattr(os, "O_DIRECT", 0)
    if direct:
        try:
            return _hash_path(path, os.O_RDONLY | direct, algorithm, chunk)
        except OSError as exc:  # EINVAL: the file system refuses O_DIRECT opens or reads
            if exc.errno != errno.EINVAL:
                raise
    return _hash_path(path, os.O_RDONLY, algorithm, chunk)


def _hash_path(
    path: str | os.PathLike[str], flags: int, algorithm: str, chunk: int
) -> tuple[str, int]:
    cached = flags == os.O_RDONLY
    digest = hashlib.new(algorithm)
    fd = os.open(path, flags)
    buffers = [mmap.mmap(-1, chunk), mmap.mmap(-1, chunk)]  # page-aligned, as O_DIRECT needs
    try:
        size = os.fstat(fd).st_size
        spans = [(offset, min(chunk, size - offset)) for offset in range(0, size, chunk)]

        def read(i: int) -> int:
            offset, want = spans[i]
            with memoryview(buffers[i % 2])[: -(-want // PAGE) * PAGE] as whole_pages:
                return pread_into(fd, whole_pages, offset, need=want)

        with ThreadPoolExecutor(1, thread_name_prefix="audiomill-hash-read") as reader:
            pending = reader.submit(read, 0) if spans else None
            for i, (offset, want) in enumerate(spans):
                if pending.result() < want:
                    raise OSError(f"{os.fspath(path)}: file shrank while it was hashed")
                if i + 1 < len(spans):
                    pending = reader.submit(read, i + 1)
                with memoryview(buffers[i % 2])[:want] as data:
                    digest.update(data)
                if cached:
                    drop_cached(fd, offset, want, wait_written=True)
    finally:
        os.close(fd)
        for buffer in buffers:
            buffer.close()
    return digest.hexdigest(), size
