"""A 429 or 503 answer's ``Retry-After`` (seconds or an HTTP date) sets the wait before the
retry, for every worker sharing the rate limiter; a wait beyond the cap fails the clip at once,
transient, saying what the server asked."""

from __future__ import annotations

import email.utils
import time
from pathlib import Path

import pytest

from pipelines.fetch import FetchOptions, FetchRequest, fetch_media
from pipelines.ratelimit import RateLimiter, retry_after_seconds
from schemas.failures import ClipFailure, FailureReason
from tests.http_media_server import MediaServer, Script
from tests.media import write_media


@pytest.fixture
def options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FetchOptions:
    """Backoff of at most 50 ms, capped at 60 s for a server's wait; a private cache."""
    monkeypatch.setenv("AUDIOMILL_CACHE_DIR", str(tmp_path / "cache"))
    return FetchOptions(retries=3, backoff_base=0.01, backoff_cap=60.0)


def _http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@pytest.mark.parametrize(
    ("status", "section"), [(429, None), (503, None), (429, (0.5, 1.5)), (503, (0.5, 1.5))]
)
def test_the_retry_waits_the_seconds_the_server_asks(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
    status: int,
    section: tuple[float, float] | None,
) -> None:
    write_media(media_server.root / "a.wav", 2.0, 8000)
    media_server.script("/a.wav", Script(status=status, retry_after="1", times=2))
    request = FetchRequest("c", media_server.url("a.wav"), *(section or (None, None)))
    started = time.monotonic()
    got = fetch_media(request, tmp_path / "w", options)
    assert got.attempts == 3
    assert time.monotonic() - started >= 2.0


def test_the_retry_waits_until_the_date_the_server_names(
    media_server: MediaServer, tmp_path: Path, options: FetchOptions
) -> None:
    write_media(media_server.root / "a.wav", 2.0, 8000)
    media_server.script("/a.wav", Script(status=503, retry_after=_http_date(3.0), times=1))
    started = time.monotonic()
    got = fetch_media(FetchRequest("c", media_server.url("a.wav")), tmp_path / "w", options)
    assert got.attempts == 2
    assert time.monotonic() - started >= 2.0


@pytest.mark.parametrize(("status", "reason"), [(429, "rate_limited"), (503, "server_error")])
def test_a_wait_beyond_the_cap_fails_the_clip_at_once_as_transient(
    media_server: MediaServer, tmp_path: Path, options: FetchOptions, status: int, reason: str
) -> None:
    write_media(media_server.root / "a.wav", 2.0, 8000)
    media_server.script("/a.wav", Script(status=status, retry_after="3600"))
    started = time.monotonic()
    with pytest.raises(ClipFailure) as caught:
        fetch_media(FetchRequest("c", media_server.url("a.wav")), tmp_path / "w", options)
    failure = caught.value
    assert (failure.reason, failure.attempts) == (FailureReason(reason), 1)
    assert failure.transient
    assert failure.detail.endswith(
        "; the server asked to wait 3600 s, more than the 60 s a retry waits"
    )
    assert media_server.hits("/a.wav") == 1
    assert time.monotonic() - started < 30


def test_a_hold_off_delays_every_limiter_sharing_the_file(tmp_path: Path) -> None:
    state = tmp_path / "limit.state"
    RateLimiter(100.0, state).hold_off(5.0)
    assert RateLimiter(100.0, state).reserve() >= time.time() + 4.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        (None, None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
    ],
)
def test_retry_after_values(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value) == seconds


def test_retry_after_date_counts_from_now() -> None:
    now = time.time()
    asked = retry_after_seconds(email.utils.formatdate(now + 30, usegmt=True), now=now)
    assert asked == pytest.approx(30, abs=1)
