"""A section's download has a wall-clock limit: an ffmpeg that never ends (a server that
gzips its byte ranges sets it spinning, and ``-rw_timeout`` never trips) fails the clip as a
``timeout`` instead of holding the ingest forever."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipelines.fetch import FetchOptions, FetchRequest, fetch_media
from schemas.failures import ClipFailure, FailureReason
from tests.http_media_server import MediaServer, Script
from tests.media import write_media


def test_a_section_download_that_never_ends_is_a_timeout(
    media_server: MediaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIOMILL_CACHE_DIR", str(tmp_path / "cache"))
    write_media(media_server.root / "a.wav", 20.0, 16000)
    media_server.script("/a.wav", Script(gzip=True))
    options = FetchOptions(retries=0, socket_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ClipFailure) as caught:
        fetch_media(FetchRequest("c", media_server.url("a.wav"), 16.0, 18.0), tmp_path, options)
    failure = caught.value
    assert (failure.reason, failure.attempts) == (FailureReason.TIMEOUT, 1)
    assert failure.transient
    url = media_server.url("a.wav")
    assert failure.detail == f"{url}: the section's download ran past its limit of 8 s"
    assert time.monotonic() - started < 30
