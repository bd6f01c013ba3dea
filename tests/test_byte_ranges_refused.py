"""A server that answers 416 to the byte-range question (``bytes=0-0``) of a file it holds
serves no usable ranges: the whole file is downloaded and cut here, not the clip failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.audio import decode
from pipelines.byte_ranges import serves_sections
from pipelines.fetch import FetchOptions, FetchRequest, fetch_media
from tests.http_media_server import MediaServer, Script
from tests.media import write_media


@pytest.fixture
def options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FetchOptions:
    """No retries; the cache (ffmpeg's link, the limiter) kept in the test's."""
    monkeypatch.setenv("AUDIOMILL_CACHE_DIR", str(tmp_path / "cache"))
    return FetchOptions(retries=0)


def test_a_416_to_the_question_means_no_sections(media_server: MediaServer) -> None:
    write_media(media_server.root / "a.wav", 1.0, 8000)
    media_server.script("/a.wav", Script(refuse_ranges=True))
    assert serves_sections(media_server.url("a.wav"), 5.0) is False
    assert media_server.requests == [("/a.wav", 416)]


def test_a_section_from_a_server_that_refuses_ranges_is_cut_from_the_whole_file(
    media_server: MediaServer, tmp_path: Path, options: FetchOptions
) -> None:
    write_media(media_server.root / "a.wav", 3.0, 8000)
    media_server.script("/a.wav", Script(refuse_ranges=True))
    got = fetch_media(FetchRequest("c", media_server.url("a.wav"), 1.0, 2.0), tmp_path, options)
    assert (got.sectioned, got.attempts) == (False, 1)
    assert decode(got.path).samples.shape[0] == 3 * 8000
