"""Keep known lines that native code writes to file descriptor 2 off stderr, and pass the rest.

Native libraries write to file descriptor 2 directly, where neither ``sys.stderr`` nor logging
reaches them. While such code runs, fd 2 is pointed at a filter process that drops the lines a
pattern matches and passes every other line as it comes, whoever writes it: the native code,
``sys.stderr``, other threads, processes started meanwhile. The filter is a process of its own,
so what was written before a crash still arrives. A line left unfinished for
:data:`IDLE_SECONDS` is passed on as far as it goes, unless it already matches: the libraries
write each of their lines at once, and a progress bar redrawn in place ends no line.

- :func:`stderr_lines_dropped`: one block with a filter process of its own (an import, once).
- :class:`StderrLineFilter`: short blocks entered often and by several threads at once (one
  file's decode): one filter process that lasts, fd 2 pointed at it while any thread is inside.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import secrets
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator

IDLE_SECONDS = 0.02
"""How long the filter holds the start of a line before it passes it on unfinished."""

_FILTER_PROGRAM = """
import os, re, select, signal
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is its writers' to handle; EOF ends it
drop = re.compile({pattern!r}, {flags})
sync, ack = {sync!r}, {ack!r}  # on fd ack: b"r" before each read, b"s" once a sync line is out
held = b""  # the start of a line not ended yet
readable, writable = select.poll(), select.poll()  # poll, not select: fds past 1023 work
readable.register(0, select.POLLIN)
if ack is not None:
    os.set_blocking(ack, False)
    writable.register(ack, select.POLLOUT)

def out(data):
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]

def tell(byte):
    global ack
    while ack is not None:
        try:
            os.write(ack, byte)
            return
        except BlockingIOError:  # full of b"r": that one is said already
            if byte == b"r":
                return
            writable.poll()
        except OSError:  # no one listens any more: its writers go on without syncs
            ack = None

while True:
    waiting = held and not drop.match(held)
    if not readable.poll({idle_ms} if waiting else None):
        out(held)  # a line left unfinished is no library's: pass it on as far as it goes
        held = b""
        continue
    tell(b"r")
    chunk = os.read(0, 1 << 16)
    if not chunk:
        break
    *lines, held = (held + chunk).split(b"\\n")
    kept = []
    for line in lines:
        if ack is not None and line.endswith(sync):
            line = line[: -len(sync)]  # a writer's unfinished line, if any
            out(b"".join(kept) + (b"" if drop.match(line) else line))
            kept = []
            tell(b"s")
        elif not drop.match(line + b"\\n"):
            kept.append(line + b"\\n")
    out(b"".join(kept))
if held and not drop.match(held):
    out(held)
"""

_FILTER_EXIT_SECONDS = 2.0
"""How long to wait for a filter to pass on the last lines once its block has ended; a process
started meanwhile that still holds the filter's input keeps it running, passing its lines on."""

_SETTLE_SECONDS = 1.0
"""How long the last thread to leave a :class:`StderrLineFilter` block waits for the filter to
pass on what it was given (a filter that falls behind leaves later lines free to overtake)."""


def _start_filter(
    pattern: re.Pattern[bytes], out_fd: int, sync: bytes = b"", ack: int | None = None
) -> subprocess.Popen:
    """A filter process writing to ``out_fd``; given ``ack``, it writes a byte there when it has
    passed on all that came before a line ending in ``sync``."""
    idle_ms = round(IDLE_SECONDS * 1000)
    program = _FILTER_PROGRAM.format(
        pattern=pattern.pattern, flags=pattern.flags, sync=sync, ack=ack, idle_ms=idle_ms
    )
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", program],
        stdin=subprocess.PIPE,
        stdout=out_fd,
        pass_fds=() if ack is None else (ack,),
    )


def _stop_filter(flt: subprocess.Popen, wait: bool) -> None:
    flt.stdin.close()
    if wait:
        with contextlib.suppress(subprocess.TimeoutExpired):
            flt.wait(_FILTER_EXIT_SECONDS)


@contextlib.contextmanager
def stderr_lines_dropped(pattern: re.Pattern[bytes]) -> Iterator[None]:
    """Within the block, lines written to file descriptor 2 that ``pattern`` matches are dropped.

    Every other line reaches the original stderr as it is written. Where no filter process can
    start (no stderr, no interpreter to run), the block runs unfiltered. Not for blocks that
    other threads enter at the same time: :class:`StderrLineFilter` is.

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
        _stop_filter(flt, wait=True)


class StderrLineFilter:
    """``with`` it, lines written to file descriptor 2 that ``pattern`` matches are dropped;
    threads may be inside at the same time.

    One filter process serves every block, started on first use and again when stderr is no
    longer what it writes to. Fd 2 is pointed at it while any thread is inside a block; when the
    last one leaves, fd 2 is given back and the filter asked to pass on what it holds, so a line
    written later does not overtake one written before. Where no filter process can start,
    blocks run unfiltered.

    Parameters
    ----------
    pattern : re.Pattern[bytes]
        As for :func:`stderr_lines_dropped`.
    """

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        self.pattern = pattern
        self._lock = threading.Lock()
        self._inside = 0
        self._saved: int | None = None  # the original fd 2, while fd 2 is the filter's
        self._filter: subprocess.Popen | None = None
        self._target: tuple[int, int] | None = None  # the file the filter writes to
        self._ack: int | None = None  # where the filter says it has passed everything on
        self._sync = b"\0sync-" + secrets.token_hex(16).encode()
        os.register_at_fork(after_in_child=self._forget)
        atexit.register(self._close)

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                self._redirect()
            self._inside += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                self._give_back()

    def _redirect(self) -> None:
        try:
            saved = os.dup(2)
            stat = os.fstat(saved)
        except OSError:
            return
        target = (stat.st_dev, stat.st_ino)
        if self._filter is None or self._filter.poll() is not None or target != self._target:
            self._stop()
            try:
                self._start(saved)
            except OSError:
                os.close(saved)
                return
            self._target = target
        _drained(self._ack)  # a read the filter tells of from now on is of this block's lines
        os.dup2(self._filter.stdin.fileno(), 2)
        self._saved = saved

    def _start(self, out_fd: int) -> None:
        ack, ack_w = os.pipe()
        try:
            self._filter = _start_filter(self.pattern, out_fd, self._sync, ack_w)
        except OSError:
            os.close(ack)
            raise
        finally:
            os.close(ack_w)
        os.set_blocking(ack, False)
        self._ack = ack

    def _give_back(self) -> None:
        if self._saved is None:
            return
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._saved = None
        if _unread(self._filter.stdin.fileno()) or _drained(self._ack):
            self._settle()

    def _settle(self) -> None:
        """Wait until the filter has passed on all it was given."""
        deadline = time.monotonic() + _SETTLE_SECONDS
        acks = select.poll()
        acks.register(self._ack, select.POLLIN)
        with contextlib.suppress(OSError):
            os.write(self._filter.stdin.fileno(), self._sync + b"\n")
            while (left := deadline - time.monotonic()) > 0:
                if not acks.poll(left * 1000):
                    return
                told = os.read(self._ack, 1 << 10)
                if not told or b"s" in told:  # b"": the filter is gone
                    return

    def _stop(self, wait: bool = False) -> None:
        if self._filter is not None:
            _stop_filter(self._filter, wait)
            os.close(self._ack)
            self._filter = self._ack = self._target = None

    def _forget(self) -> None:
        """In a forked child: its fd 2 back, and the parent's filter left to the parent."""
        self._lock = threading.Lock()
        self._inside = 0
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = None
        self._stop()

    def _close(self) -> None:
        with self._lock:
            self._give_back()
            self._stop(wait=True)


def _unread(fd: int) -> int:
    """Bytes in the pipe ``fd`` not read yet (1 where that cannot be told)."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    except OSError:
        return 1


def _drained(fd: int) -> bytes:
    """What the non-blocking pipe ``fd`` holds, read out."""
    got = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 1 << 10):
            got += chunk
    return got


def _flush_stderr() -> None:
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
