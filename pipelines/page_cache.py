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
    flags = os.O_RDONLY | getattr(os, "O_DIRECT", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if flags == os.O_RDONLY or exc.errno != errno.EINVAL:
            raise
        flags = os.O_RDONLY
        fd = os.open(path, flags)
    try:
        try:
            return _hash_fd(fd, path, algorithm, chunk, cached=flags == os.O_RDONLY)
        except OSError as exc:  # a file system that takes O_DIRECT opens but not its reads
            if flags == os.O_RDONLY or exc.errno != errno.EINVAL:
                raise
        os.close(fd)
        fd = os.open(path, os.O_RDONLY)
        return _hash_fd(fd, path, algorithm, chunk, cached=True)
    finally:
        os.close(fd)


def _hash_fd(
    fd: int, path: str | os.PathLike[str], algorithm: str, chunk: int, *, cached: bool
) -> tuple[str, int]:
    digest = hashlib.new(algorithm)
    size = os.fstat(fd).st_size
    offsets = range(0, size, chunk)
    buffers = [mmap.mmap(-1, chunk), mmap.mmap(-1, chunk)]  # page-aligned, as O_DIRECT needs
    views = [memoryview(buffer) for buffer in buffers]
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="audiomill-hash-read") as reader:

            def read(i: int) -> int:
                offset = offsets[i]
                return _read_chunk(fd, views[i % 2], offset, min(chunk, size - offset))

            pending = reader.submit(read, 0) if offsets else None
            for i, offset in enumerate(offsets):
                got = pending.result()
                if got < min(chunk, size - offset):
                    raise OSError(f"{os.fspath(path)}: file shrank while it was hashed")
                if i + 1 < len(offsets):
                    pending = reader.submit(read, i + 1)
                digest.update(views[i % 2][:got])
                if cached:
                    drop_cached(fd, offset, got, wait_written=True)
    finally:
        for view in views:
            view.release()
        for buffer in buffers:
            buffer.close()
    return digest.hexdigest(), size


def _read_chunk(fd: int, view: memoryview, offset: int, want: int) -> int:
    """Read ``want`` bytes at ``offset`` into ``view``, asking for whole pages (as ``O_DIRECT``
    needs: the end of the file comes back short); returns the bytes read, fewer at the end."""
    done = 0
    with view[: -(-want // PAGE) * PAGE] as padded:
        while done < want:
            with padded[done:] as rest:
                got = os.preadv(fd, [rest], offset + done)
            if not got:
                break
            done += got
    return min(done, want)
