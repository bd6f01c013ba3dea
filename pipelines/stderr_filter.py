"""Keep known lines that native code writes to stderr off it, and pass every other line.

Native libraries write to stderr below Python, where neither ``sys.stderr`` nor logging reaches
them. While such code runs, what they write goes through a filter process that drops the lines
a pattern matches and passes every other line as it comes. The filter is a process of its own,
so what was written before a crash still arrives.

- :func:`stderr_lines_dropped`: file descriptor 2 itself, for one block (an import, once):
  every writer's lines go through the filter meanwhile, Python's and other threads' included.
- :class:`StderrLineFilter`: C's ``stderr`` stream (``fprintf(stderr, ...)``), for short blocks
  that several threads enter at once (one file's decode). File descriptor 2 is left as it is, so
  Python's writes, a terminal's ``isatty`` (which progress bars ask) and a crash report are not
  touched, and only the C library's stream is swapped while any thread is inside.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

_FILTER_PROGRAM = """
import re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is its writers' to handle; EOF ends it
drop = re.compile({pattern!r}, {flags})
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    if not drop.match(line):
        out.write(line)
        out.flush()
"""

_FILTER_EXIT_SECONDS = 2.0
"""How long to wait for the filter to pass on the last lines; a process started during the
block that still holds the filter's input keeps it running after that, passing its lines on."""

_UNBUFFERED = 2
"""``_IONBF`` of ``setvbuf``: each ``fprintf`` reaches the filter as it is made."""


def _start_filter(pattern: re.Pattern[bytes], out_fd: int) -> subprocess.Popen:
    program = _FILTER_PROGRAM.format(pattern=pattern.pattern, flags=pattern.flags)
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", program], stdin=subprocess.PIPE, stdout=out_fd
    )


@contextlib.contextmanager
def stderr_lines_dropped(pattern: re.Pattern[bytes]) -> Iterator[None]:
    """Within the block, lines written to file descriptor 2 that ``pattern`` matches are dropped.

    Every other line reaches the original stderr as it is written, whoever writes it: native
    code, Python's ``sys.stderr``, other threads, processes started in the block. Where no
    filter process can start (no stderr, no interpreter to run), the block runs unfiltered. Not
    for blocks that other threads enter at the same time: :class:`StderrLineFilter` is.

    Parameters
    ----------
    pattern : re.Pattern[bytes]
        Matched (``re.match``, with its flags) against each line, its newline included.
    """
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        flt = _start_filter(pattern, saved)
    except OSError:
        os.close(saved)
        yield
        return
    _flush_stderr()
    os.dup2(flt.stdin.fileno(), 2)
    try:
        yield
    finally:
        _flush_stderr()
        os.dup2(saved, 2)
        os.close(saved)
        flt.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            flt.wait(_FILTER_EXIT_SECONDS)


class StderrLineFilter:
    """``with`` it, lines that native code writes to C's ``stderr`` stream and ``pattern``
    matches are dropped; threads may be inside at the same time.

    While any thread is inside a block, C's ``stderr`` is a stream into a filter process that
    passes every other line on to file descriptor 2 (another thread's ``fprintf(stderr, ...)``
    meanwhile included); the last thread to leave puts the library's own stream back. One
    filter process serves every block, started on first use and again when file descriptor 2 is
    no longer what it writes to. Where C's ``stderr`` cannot be found or no filter process can
    start, blocks run unfiltered.

    Parameters
    ----------
    pattern : re.Pattern[bytes]
        As for :func:`stderr_lines_dropped`.
    """

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        self.pattern = pattern
        self._lock = threading.Lock()
        self._inside = 0
        self._filter: subprocess.Popen | None = None
        self._stream: int | None = None  # the C stream into the filter (FILE *)
        self._target: tuple[int, int] | None = None  # the file the filter writes to
        self._original: int | None = None  # C's stderr, while the filter's stream stands in
        os.register_at_fork(after_in_child=self._forget)

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                self._swap_in()
            self._inside += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                self._swap_back()

    def _swap_in(self) -> None:
        c_stderr = _c_stderr()
        if c_stderr is None:
            return
        try:
            stat = os.fstat(2)
        except OSError:  # no stderr to pass lines on to
            return
        target = (stat.st_dev, stat.st_ino)
        if self._filter is None or self._filter.poll() is not None or target != self._target:
            try:
                self._start()
            except OSError:
                return
            self._target = target
        self._original = c_stderr.value
        c_stderr.value = self._stream

    def _start(self) -> None:
        """A new filter writing to file descriptor 2 as it is now. The stream into the previous
        one is left open: a thread may still be writing to it."""
        out = os.dup(2)
        try:
            flt = _start_filter(self.pattern, out)
        finally:
            os.close(out)
        fd = os.dup(flt.stdin.fileno())
        flt.stdin.close()
        stream = _libc().fdopen(fd, b"w")
        if not stream:
            os.close(fd)
            raise OSError("fdopen failed")
        _libc().setvbuf(stream, None, _UNBUFFERED, 0)
        self._filter, self._stream = flt, stream

    def _swap_back(self) -> None:
        if self._original is not None:
            _c_stderr().value = self._original
            self._original = None

    def _forget(self) -> None:
        """In a forked child: C's own stderr back, and the parent's filter left to the parent."""
        self._lock = threading.Lock()
        self._inside = 0
        self._swap_back()
        if self._stream is not None:
            _libc().fclose(self._stream)
        self._filter = self._stream = self._target = None


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)
    libc.fdopen.restype = ctypes.c_void_p
    libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
    libc.setvbuf.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t]
    libc.fclose.argtypes = [ctypes.c_void_p]
    return libc


@functools.cache
def _c_stderr() -> ctypes.c_void_p | None:
    """C's ``stderr`` (glibc's name; macOS's ``__stderrp``), or None where it is neither."""
    for name in ("stderr", "__stderrp"):
        with contextlib.suppress(OSError, ValueError):
            return ctypes.c_void_p.in_dll(_libc(), name)
    return None


def _flush_stderr() -> None:
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
