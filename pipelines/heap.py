"""Keep freed memory in the process heap, so large arrays made over and over cost no page faults.

Decoding a clip allocates arrays of a few MB (the decoded frames, the downmix, the resampled
clip, the int16 row), as does every training batch. glibc serves such sizes with ``mmap`` (its
threshold starts at 128 kB) or returns freed heap to the kernel (``M_TRIM_THRESHOLD``;
TensorFlow's generator datasets set it to 128 kB), so each new array is fresh pages and its page
faults cost as much as the work on it: the decode of a 10 s 44.1 kHz stereo WAV to 32 kHz took
about twice as long as with the memory kept.
"""

from __future__ import annotations

import ctypes
import gc

RETAINED_HEAP_BYTES = 256 << 20
"""Freed heap glibc keeps for reuse once :func:`retain_freed_memory` ran (per malloc arena)."""

HEAP_SERVED_BYTES = 32 << 20
"""Largest allocation served from the heap instead of ``mmap`` (glibc's ceiling for it)."""


def retain_freed_memory() -> bool:
    """Serve allocations of up to 32 MB from the heap and keep up to 256 MB of it when freed.

    Process-wide; safe to call again (TensorFlow may reset the options when it builds a
    generator dataset). Memory stays bounded: what is kept is reused by the next arrays of the
    same sizes.

    Returns
    -------
    bool
        Whether it applied (False where the C library is not glibc).
    """
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, HEAP_SERVED_BYTES)) and bool(
        mallopt(m_trim_threshold, RETAINED_HEAP_BYTES)
    )


def release_freed_memory() -> bool:
    """Hand the free memory of the process heap, and of Arrow's allocator, back to the system.

    For a process that is about to sit idle, or to start other work, with memory a big
    request left behind (the validation service after checking a long segment list; ingest
    once its plan is written). A full collection runs first: at 200,000 segments the ingest
    driver kept 324 MB after the trim alone, 247 MB with the collection before it.

    Returns
    -------
    bool
        Whether the heap was trimmed (False where the C library is not glibc).
    """
    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    malloc_trim = _glibc("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True


def _glibc(name: str):
    """glibc's function ``name``, or ``None`` where the C library is not glibc."""
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None
