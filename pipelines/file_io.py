"""Positioned whole-buffer reads and writes on file descriptors (``pwrite``/``preadv`` loops).

The kernel may move fewer bytes than asked in one call; these helpers loop until the buffer is
done. They release the GIL while the kernel copies, and need no lock between threads that use
disjoint byte ranges of one descriptor.
"""

from __future__ import annotations

import os

import numpy as np


def pwrite_all(fd: int, data: np.ndarray, offset: int) -> None:
    """Write all bytes of ``data`` (a C-contiguous array) to ``fd`` at ``offset``.

    Parameters
    ----------
    fd : int
        A descriptor open for writing.
    data : np.ndarray
        C-contiguous; written as its raw bytes.
    offset : int
        File position of the first byte.
    """
    view = memoryview(data).cast("B")
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def pread_into(fd: int, buffer: np.ndarray, offset: int) -> int:
    """Fill ``buffer`` (a C-contiguous array) with the bytes of ``fd`` from ``offset`` on.

    Parameters
    ----------
    fd : int
        A descriptor open for reading.
    buffer : np.ndarray
        C-contiguous, writable.
    offset : int
        File position of the first byte.

    Returns
    -------
    int
        Bytes read: ``buffer.nbytes``, or fewer where the file ends first (the caller decides
        whether that is an error).
    """
    view = memoryview(buffer).cast("B")
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if not got:
            break
        done += got
    return done
