"""A machine-wide request rate limit shared by worker processes, and backoff delays for retries.

The limiter hands out time slots ``1 / rate`` seconds apart. The next free slot lives in a small
state file; taking a slot is a read-modify-write under ``fcntl.flock``, so every process on the
machine that uses the same file shares one rate, whatever the number of workers.
"""

from __future__ import annotations

import email.utils
import fcntl
import os
import random
import struct
import time
from collections.abc import Callable
from pathlib import Path

_SLOT = struct.Struct("<d")
# A stored slot further ahead than this is stale (the wall clock went back): start afresh.
_MAX_QUEUE_S = 3600.0


class RateLimiter:
    """Space requests ``1 / requests_per_second`` apart across all processes sharing a file.

    Parameters
    ----------
    requests_per_second : float or None
        The machine-wide rate; None or 0 means unlimited (``acquire`` never waits or touches disk).
    state_file : str or os.PathLike
        The file holding the next free slot; created (with its directory) on first use.
    """

    def __init__(
        self, requests_per_second: float | None, state_file: str | os.PathLike[str]
    ) -> None:
        if requests_per_second is not None and requests_per_second < 0:
            raise ValueError(f"requests_per_second must be >= 0, got {requests_per_second}")
        self.requests_per_second = requests_per_second or None
        self.state_file = Path(state_file)

    def reserve(self) -> float:
        """Take the next free slot and return its time (``time.time()`` scale) without waiting."""
        if self.requests_per_second is None:
            return time.time()
        return self._update(lambda slot: slot + 1.0 / self.requests_per_second)

    def hold_off(self, seconds: float) -> None:
        """Hand out no slot for the next ``seconds``, to any process sharing the file (a server
        asked to wait, with ``Retry-After``); nothing to do without a rate."""
        if self.requests_per_second is not None:
            self._update(lambda slot: max(slot, time.time() + seconds))

    def _update(self, next_free: Callable[[float], float]) -> float:
        """Under the file's lock, store ``next_free`` of the current free slot; return the slot."""
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, _SLOT.size, 0)
            now = time.time()
            stored = _SLOT.unpack(raw)[0] if len(raw) == _SLOT.size else now
            slot = max(now, stored) if stored - now <= _MAX_QUEUE_S else now
            os.pwrite(fd, _SLOT.pack(next_free(slot)), 0)
            return slot
        finally:
            os.close(fd)

    def acquire(self) -> float:
        """Wait for this caller's slot; return the seconds slept."""
        wait = max(0.0, self.reserve() - time.time())
        if wait:
            time.sleep(wait)
        return wait


def backoff_delay(
    attempt: int, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None
) -> float:
    """Return a retry delay with exponential growth and full jitter.

    Parameters
    ----------
    attempt : int
        How many attempts have failed so far (>= 1).
    base, cap : float
        The ceiling is ``min(cap, base * 2 ** (attempt - 1))``.
    rng : random.Random, optional
        Source of jitter (the ``random`` module's global generator when None).

    Returns
    -------
    float
        A delay drawn uniformly from ``[0, ceiling]``.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    return (rng or random).uniform(0.0, ceiling)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds.

    Parameters
    ----------
    value : str or None
        The header: delay seconds (``120``) or an HTTP date (``Wed, 21 Oct 2026 07:28:00 GMT``).
    now : float, optional
        The time the date is counted from (``time.time()`` when None).

    Returns
    -------
    float or None
        Seconds to wait (0 for a date past); None without a header or for one that is neither.
    """
    text = (value or "").strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
