"""The machine-wide rate limiter and the retry backoff."""

from __future__ import annotations

import multiprocessing
import random
import time
from itertools import pairwise
from pathlib import Path

import pytest

from pipelines.ratelimit import RateLimiter, backoff_delay


def _worker(
    state: str, rate: float, count: int, reserve: bool, queue: multiprocessing.Queue
) -> None:
    limiter = RateLimiter(rate, state)
    times = []
    for _ in range(count):
        if reserve:
            times.append(limiter.reserve())
        else:
            limiter.acquire()
            times.append(time.time())
    queue.put(times)


def _run_workers(state: Path, rate: float, procs: int, count: int, reserve: bool) -> list[float]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    args = (str(state), rate, count, reserve, queue)
    workers = [ctx.Process(target=_worker, args=args) for _ in range(procs)]
    for worker in workers:
        worker.start()
    times = sorted(t for _ in workers for t in queue.get(timeout=60))
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    return times


def test_processes_share_one_rate(tmp_path: Path) -> None:
    times = _run_workers(tmp_path / "limit.state", 20.0, procs=3, count=10, reserve=False)
    assert len(times) == 30
    # 30 requests at 20/s take at least 29 slots of 50 ms however the work is split (slack for
    # the first request being scheduled late).
    assert times[-1] - times[0] >= 29 / 20.0 - 0.05


def test_processes_never_share_a_slot(tmp_path: Path) -> None:
    slots = _run_workers(tmp_path / "limit.state", 20.0, procs=3, count=10, reserve=True)
    gaps = [b - a for a, b in pairwise(slots)]
    assert min(gaps) == pytest.approx(1 / 20.0, abs=1e-6)


def test_slots_are_spaced_by_the_rate(tmp_path: Path) -> None:
    limiter = RateLimiter(4.0, tmp_path / "limit.state")
    slots = [limiter.reserve() for _ in range(5)]
    gaps = [b - a for a, b in pairwise(slots)]
    assert gaps == pytest.approx([0.25] * 4, abs=1e-6)


def test_acquire_sleeps_until_slot(tmp_path: Path) -> None:
    limiter = RateLimiter(50.0, tmp_path / "sub" / "limit.state")
    start = time.monotonic()
    for _ in range(11):
        limiter.acquire()
    assert time.monotonic() - start >= 10 / 50.0 - 0.01


@pytest.mark.parametrize("rate", [None, 0])
def test_unlimited_never_waits_nor_writes(tmp_path: Path, rate: float | None) -> None:
    state = tmp_path / "limit.state"
    limiter = RateLimiter(rate, state)
    start = time.monotonic()
    assert all(limiter.acquire() == 0.0 for _ in range(1000))
    assert time.monotonic() - start < 0.5
    assert not state.exists()


def test_stale_future_slot_is_ignored(tmp_path: Path) -> None:
    state = tmp_path / "limit.state"
    limiter = RateLimiter(10.0, state)
    state.write_bytes(b"\x00" * 7 + b"\x7f")  # a slot absurdly far in the future
    assert limiter.acquire() < 0.2


def test_negative_rate_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="requests_per_second"):
        RateLimiter(-1.0, tmp_path / "s")


def test_backoff_bounds() -> None:
    rng = random.Random(0)
    for attempt in range(1, 12):
        ceiling = min(60.0, 2.0 ** (attempt - 1))
        draws = [backoff_delay(attempt, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        # Full jitter: the draws spread over the whole range.
        assert max(draws) > 0.8 * ceiling
        assert min(draws) < 0.2 * ceiling
    assert backoff_delay(1000, base=0.5, cap=3.0, rng=rng) <= 3.0
    assert backoff_delay(3, base=0.0) == 0.0


def test_backoff_is_reproducible_and_rejects_bad_attempt() -> None:
    assert backoff_delay(4, rng=random.Random(7)) == backoff_delay(4, rng=random.Random(7))
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(0)
