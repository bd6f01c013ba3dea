"""A section whose download the server cuts short or stalls is a transient failure, retried,
never a short file (ffmpeg ends its input there as at the end of the file, and exits 0)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.audio import decode_section
from pipelines.fetch import FetchOptions, FetchRequest, fetch_media
from schemas.failures import ClipFailure, FailureReason
from tests.http_media_server import MediaServer, Script
from tests.media import write_media

SOURCE_S = 20.0
SECTION = (16.0, 18.0)  # fetched from 15 s to 19 s: past the half of the byte range from 15 s
FFMPEG_SEEK = 4  # the range question, yt-dlp's request, then ffmpeg's open and its two seeks


@pytest.fixture
def options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FetchOptions:
    """One retry after a short wait; the cache (ffmpeg's link, the limiter) kept in the test's."""
    monkeypatch.setenv("AUDIOMILL_CACHE_DIR", str(tmp_path / "cache"))
    return FetchOptions(retries=1, backoff_base=0.01, backoff_cap=0.05)


def _failure(server: MediaServer, name: str, workdir: Path, options: FetchOptions) -> ClipFailure:
    with pytest.raises(ClipFailure) as caught:
        fetch_media(FetchRequest("c", server.url(name), *SECTION), workdir, options)
    assert not any(workdir.iterdir()), "partial files left behind"
    return caught.value


@pytest.mark.parametrize(("ext", "exact_cuts"), [("wav", False), ("wav", True), ("flac", False)])
def test_a_section_cut_short_every_time_is_a_network_error_after_the_retries(
    media_server: MediaServer, tmp_path: Path, options: FetchOptions, ext: str, exact_cuts: bool
) -> None:
    write_media(media_server.root / f"a.{ext}", SOURCE_S, 16000)
    media_server.script(f"/a.{ext}", Script(truncate=True))
    opts = replace(options, exact_cuts=exact_cuts)
    failure = _failure(media_server, f"a.{ext}", tmp_path / "w", opts)
    assert (failure.reason, failure.attempts) == (FailureReason.NETWORK_ERROR, 2)
    assert failure.transient
    assert failure.detail.startswith(f"{media_server.url(f'a.{ext}')}: the server's answer ended")
    assert "Stream ends prematurely" in failure.detail


def test_a_section_cut_short_once_is_fetched_whole_on_the_retry(
    media_server: MediaServer, tmp_path: Path, options: FetchOptions
) -> None:
    write_media(media_server.root / "a.wav", SOURCE_S, 16000)
    media_server.script("/a.wav", Script(truncate=True, skip=FFMPEG_SEEK, times=1))
    got = fetch_media(FetchRequest("c", media_server.url("a.wav"), *SECTION), tmp_path, options)
    assert got.sectioned and got.attempts == 2
    audio = decode_section(got.path, *SECTION)
    assert len(audio.samples) == 2 * audio.sample_rate


def test_a_section_that_stalls_past_the_timeout_is_a_timeout(
    media_server: MediaServer, tmp_path: Path, options: FetchOptions
) -> None:
    write_media(media_server.root / "a.wav", SOURCE_S, 16000)
    media_server.script("/a.wav", Script(truncate=True, stall=30.0, skip=FFMPEG_SEEK))
    opts = replace(options, socket_timeout=1.0, retries=0)
    failure = _failure(media_server, "a.wav", tmp_path / "w", opts)
    assert (failure.reason, failure.attempts) == (FailureReason.TIMEOUT, 1)
    assert failure.transient
    assert failure.detail.startswith(f"{media_server.url('a.wav')}: no data for 1 s")
