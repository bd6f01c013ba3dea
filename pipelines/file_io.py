"""Positioned whole-buffer reads and writes on file descriptors (``pwrite``/``preadv`` loops).

The kernel may move fewer bytes than asked in one call; these helpers loop until the buffer is
done. They release the GIL while the kernel copies, and need no lock between threads that use
disjoint byte ranges of one descriptor.
"""

from __future__ import annotations

import os

import numpy as np


def pwrite_all(fd: int, data: np.ndarray | memoryview, offset: int) -> None:
    """Write all bytes of ``data`` (a C-contiguous array or buffer) to ``fd`` at ``offset``.

    Parameters
    ----------
    fd : int
        A descriptor open for writing.
    data : np.ndarray or memoryview
        C-contiguous; written as its raw bytes.
    offset : int
        File position of the first byte.
    """
    view = memoryview(data).cast("B")
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def pread_into(
    fd: int, buffer: np.ndarray | memoryview, offset: int, need: int | None = None
) -> int:
    """Fill ``buffer`` (C-contiguous) with the bytes of ``fd`` from ``offset`` on.

    Parameters
    ----------
    fd : int
        A descriptor open for reading.
    buffer : np.ndarray or memoryview
        C-contiguous, writable.
    offset : int
        File position of the first byte.
    need : int, optional
        Stop once this many bytes are in; the rest of ``buffer`` is room a read may fill
        (``O_DIRECT`` reads ask for whole pages, and come back short at the file's end).
        Default: all of ``buffer``.

    Returns
    -------
    int
        Bytes read: at least ``need``, or fewer where the file ends first (the caller decides
        whether that is an error).
    """
    done = 0
    with memoryview(buffer).cast("B") as view:
        need = len(view) if need is None else need
        while done < need:
            with view[done:] as rest:
                got = os.preadv(fd, [rest], offset + done)
            if not got:
                break
            done += got
    return done
