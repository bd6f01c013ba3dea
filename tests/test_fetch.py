"""The fetch layer against a real HTTP server (through yt-dlp and ffmpeg), local files and fsspec.

A section is fetched by ffmpeg's stream copy (or, with ``exact_cuts``, a lossless re-encode)
into NUT with the source's timestamps, a margin either side: ``decode_section`` cuts the asked
``[start, end)`` from it on the source's timeline, to the sample, in every format
(see ``test_section_start_accuracy``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import fsspec
import numpy as np
import pytest
import soundfile as sf
from yt_dlp.utils import DownloadError

from pipelines.audio import decode, decode_section
from pipelines.fetch import (
    FetchedMedia,
    FetchOptions,
    FetchRequest,
    classify_error,
    fetch_media,
    format_url_template,
    load_cookies,
    youtube_url,
)
from pipelines.ffmpeg import ffmpeg_dir, ffmpeg_executable
from schemas.failures import ClipFailure, FailureReason
from tests.http_media_server import MediaServer, Script
from tests.media import FORMATS, write_media

DECODE_RATE = 8000
MEDIA = [  # (extension, sample rate, channels)
    ("wav", 44100, 2),
    ("wav", 8000, 3),
    ("flac", 96000, 1),
    ("ogg", 48000, 6),
    ("mp3", 22050, 2),
    ("aiff", 2000, 1),
]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOMILL_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def options(tmp_path: Path) -> FetchOptions:
    return FetchOptions(
        backoff_base=0.01,
        backoff_cap=0.05,
        socket_timeout=5.0,
        limiter_state=str(tmp_path / "limit.state"),
    )


def _decode(path: str | Path) -> np.ndarray:
    """Decode any container to mono float32 at ``DECODE_RATE`` with ffmpeg."""
    cmd = [ffmpeg_executable(), "-nostdin", "-v", "error", "-i", str(path)]
    cmd += ["-f", "f32le", "-ac", "1", "-ar", str(DECODE_RATE), "-"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(out, np.float32)


def _seconds(path: str | Path) -> float:
    return len(_decode(path)) / DECODE_RATE


def _section_seconds(path: str | Path, start_s: float, end_s: float) -> float:
    """Seconds of ``[start_s, end_s)`` of the source that the fetched section ``path`` holds."""
    audio = decode_section(path, start_s, end_s)
    return len(audio.samples) / audio.sample_rate


def _failure(request: FetchRequest, workdir: Path, options: FetchOptions) -> ClipFailure:
    with pytest.raises(ClipFailure) as caught:
        fetch_media(request, workdir, options)
    assert not workdir.exists() or not any(workdir.iterdir()), "partial files left behind"
    return caught.value


def _statuses(server: MediaServer, path: str) -> list[int]:
    return [status for p, status in server.requests if p == path]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the test server itself ---------------------------------------------------------------


def test_media_server_serves_ranges(media_server: MediaServer) -> None:
    data = bytes(range(256)) * 4
    (media_server.root / "b.bin").write_bytes(data)

    def get(headers: dict[str, str], method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(media_server.url("b.bin"), headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), b""

    status, headers, body = get({})
    assert (status, headers["Content-Length"], body) == (200, "1024", data)
    status, headers, body = get({"Range": "bytes=10-19"})
    assert (status, headers["Content-Range"], body) == (206, "bytes 10-19/1024", data[10:20])
    assert get({"Range": "bytes=1000-"})[2] == data[1000:]
    assert get({"Range": "bytes=-4"})[2] == data[-4:]
    assert get({"Range": "bytes=2000-"})[0] == 416
    assert get({}, method="HEAD")[1]["Content-Length"] == "1024"
    assert media_server.requests[1] == ("/b.bin", 206)
    assert media_server.hits("/b.bin") == 6


# --- ffmpeg ----------------------------------------------------------------------------------


def test_ffmpeg_dir_links_an_executable_named_ffmpeg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(ffmpeg_dir())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [str(tmp_path / "cache" / "bin")] * 8
    link = Path(results[0]) / "ffmpeg"
    assert link.is_symlink() and os.access(link, os.X_OK)
    assert sorted(p.name for p in link.parent.iterdir()) == ["ffmpeg"]
    version = subprocess.run([str(link), "-version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("ffmpeg version")
    assert ffmpeg_executable() == os.readlink(link)


# --- whole files and sections ----------------------------------------------------------------


@pytest.mark.parametrize(("ext", "rate", "channels"), MEDIA)
def test_whole_file_is_a_byte_copy(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
    ext: str,
    rate: int,
    channels: int,
) -> None:
    source = write_media(media_server.root / f"tone.{ext}", 2.0, rate, channels)
    request = FetchRequest("../../evil id", media_server.url(source.name), None, None)
    got = fetch_media(request, tmp_path / "work", options)
    path = Path(got.path)
    assert path.parent == tmp_path / "work" and path.name.startswith("clip-")
    assert (got.attempts, got.sectioned, got.local) == (1, False, False)
    assert got.bytes == source.stat().st_size > 0 and got.seconds > 0
    assert path.read_bytes() == source.read_bytes()
    assert _seconds(path) == pytest.approx(2.0, abs=0.06)


@pytest.mark.parametrize(("ext", "rate", "channels"), MEDIA)
def test_section_is_cut_by_the_downloader(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
    ext: str,
    rate: int,
    channels: int,
) -> None:
    source = write_media(media_server.root / f"tone.{ext}", 6.0, rate, channels)
    request = FetchRequest("c1", media_server.url(source.name), 1.0, 4.0)
    got = fetch_media(request, tmp_path / "work", options)
    assert (got.attempts, got.sectioned, got.local) == (1, True, False)
    assert 206 in _statuses(media_server, f"/{source.name}"), "ffmpeg should seek with Range"
    assert Path(got.path).suffix == ".nut"
    audio = decode_section(got.path, 1.0, 4.0)
    assert (len(audio.samples), audio.sample_rate, audio.channels) == (3 * rate, rate, channels)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_a_server_without_byte_ranges_sends_the_whole_file_to_cut_here(
    tmp_path: Path, options: FetchOptions, ext: str
) -> None:
    with MediaServer(tmp_path / "www", ranges=False) as server:
        source = write_media(server.root / f"tone.{ext}", 6.0, 16000, 1)
        request = FetchRequest(f"c-{ext}", server.url(source.name), 2.0, 4.0)
        got = fetch_media(request, tmp_path / "work", options)
        assert (got.attempts, got.sectioned) == (1, False)
        assert Path(got.path).read_bytes() == source.read_bytes()
        assert 206 not in _statuses(server, f"/{source.name}")


def test_byte_ranges_are_asked_once_per_server(
    media_server: MediaServer, tmp_path: Path, options: FetchOptions
) -> None:
    for i in range(3):
        source = write_media(media_server.root / f"t{i}.wav", 4.0, 16000, 1)
        got = fetch_media(FetchRequest(f"c{i}", media_server.url(source.name), 1.0, 2.0),
                          tmp_path / "work", options)  # fmt: skip
        assert got.sectioned
    first_byte = [p for p, status in media_server.requests if status == 206 and p == "/t0.wav"]
    assert (
        media_server.hits("/t1.wav") == media_server.hits("/t2.wav") < media_server.hits("/t0.wav")
    ), first_byte


def test_the_byte_range_question_carries_the_cookies_file(
    tmp_path: Path, options: FetchOptions
) -> None:
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(  # a session cookie (expires 0), as browsers' exports write them
        "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tabc\n"
    )
    with MediaServer(tmp_path / "www", ranges=False) as server:
        source = write_media(server.root / "tone.wav", 6.0, 16000, 1)
        server.script("/tone.wav", Script(cookie="session=abc"))
        request = FetchRequest("c1", server.url(source.name), 1.0, 4.0)
        got = fetch_media(request, tmp_path / "work", replace(options, cookies=str(cookies)))
        assert not got.sectioned and Path(got.path).read_bytes() == source.read_bytes()
        assert 403 not in _statuses(server, "/tone.wav")


def test_load_cookies_reads_browser_exports_and_names_a_file_that_is_not_one(
    tmp_path: Path,
) -> None:
    exported = tmp_path / "cookies.txt"
    exported.write_text(
        "# Netscape HTTP Cookie File\n"
        "#HttpOnly_.example.com\tTRUE\t/\tTRUE\t0\tSID\tx1\n"
        ".example.com\tTRUE\t/\tFALSE\t4102444800\tPREF\ty2\n"
    )
    assert {c.name: c.value for c in load_cookies(str(exported))} == {"SID": "x1", "PREF": "y2"}
    json_file = tmp_path / "cookies.json"
    json_file.write_text('[{"name": "SID", "value": "x1"}]')
    with pytest.raises(ValueError, match=f"--cookies {json_file}: not a Netscape cookies file"):
        load_cookies(str(json_file))


def test_a_section_of_an_ogg_with_cover_art_is_its_audio(
    media_server: MediaServer, tmp_path: Path, options: FetchOptions, librosa_audio: Path
) -> None:
    source = media_server.root / "vibeace.ogg"  # has an attached picture stream
    shutil.copy(librosa_audio / "vibeace.hq.ogg", source)
    got = fetch_media(
        FetchRequest("art", media_server.url(source.name), 2.0, 5.0), tmp_path / "work", options
    )
    assert got.sectioned
    assert _section_seconds(got.path, 2.0, 5.0) == 3.0


def _write_marker(path: Path, seconds: float, rate: int) -> Path:
    """Noise under a slow aperiodic envelope: its position in a cut can be found unambiguously."""
    rng = np.random.default_rng(1)
    n = round(seconds * rate)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 0.37 * np.arange(n) / rate) ** 2
    signal = (0.3 * rng.standard_normal(n) * envelope).astype(np.float32)
    fmt, subtype = FORMATS[path.suffix.lstrip(".")]
    sf.write(path, signal, rate, format=fmt, subtype=subtype)
    return path


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize(("ext", "rate"), [("wav", 16000), ("flac", 16000), ("ogg", 22050),
                                           ("mp3", 22050), ("aiff", 2000)])  # fmt: skip
def test_section_start_accuracy(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
    ext: str,
    rate: int,
    exact: bool,
) -> None:
    source = _write_marker(media_server.root / f"marker.{ext}", 6.0, rate)
    opts = replace(options, exact_cuts=exact)
    got = fetch_media(FetchRequest("c", media_server.url(source.name), 1.0, 4.0), tmp_path, opts)
    section = decode_section(got.path, 1.0, 4.0)
    full = decode(source).samples[:, 0]
    cut = section.samples[:, 0]
    probe = cut[rate // 4 : 3 * rate // 4]
    lag = np.argmax(np.correlate(full, probe, "valid")) - rate // 4
    assert (lag, len(cut)) == (rate, 3 * rate)


# --- HTTP failures and retries ---------------------------------------------------------------


def test_not_found_is_not_retried(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
) -> None:
    failure = _failure(FetchRequest("c", media_server.url("nope.wav")), tmp_path / "w", options)
    assert failure.reason is FailureReason.NOT_FOUND and not failure.transient
    assert failure.attempts == 1
    assert _statuses(media_server, "/nope.wav") == [404]


@pytest.mark.parametrize(("status", "reason"), [(403, FailureReason.HTTP_ERROR),
                                                (410, FailureReason.NOT_FOUND)])  # fmt: skip
def test_permanent_http_errors(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
    status: int,
    reason: FailureReason,
) -> None:
    write_media(media_server.root / "a.wav", 1.0, 8000)
    media_server.script("/a.wav", Script(status=status))
    failure = _failure(FetchRequest("c", media_server.url("a.wav")), tmp_path / "w", options)
    assert (failure.reason, failure.attempts) == (reason, 1)
    assert f"HTTP Error {status}" in failure.detail


@pytest.mark.parametrize("section", [None, (0.5, 1.5)])
def test_rate_limited_twice_then_served(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
    section: tuple[float, float] | None,
) -> None:
    source = write_media(media_server.root / "a.wav", 2.0, 16000)
    media_server.script("/a.wav", Script(status=429, times=2))
    request = FetchRequest("c", media_server.url("a.wav"), *(section or (None, None)))
    got = fetch_media(request, tmp_path / "w", options)
    assert got.attempts == 3
    # a section: the first request asks whether the server serves byte ranges
    assert _statuses(media_server, "/a.wav")[:3] == [429, 429, 206 if section else 200]
    seconds = _section_seconds(got.path, *section) if section else _seconds(got.path)
    assert seconds == pytest.approx(1.0 if section else 2.0, abs=0.05)
    assert source.exists()


def test_server_error_forever_exhausts_retries(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
) -> None:
    write_media(media_server.root / "a.wav", 1.0, 8000)
    media_server.script("/a.wav", Script(status=500))
    opts = replace(options, retries=2)
    failure = _failure(FetchRequest("c", media_server.url("a.wav")), tmp_path / "w", opts)
    assert failure.reason is FailureReason.SERVER_ERROR and failure.transient
    assert failure.attempts == 3
    assert _statuses(media_server, "/a.wav") == [500, 500, 500]


def test_server_error_during_section_download_is_retried(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
) -> None:
    # The byte-range question and yt-dlp's probe succeed, ffmpeg's own request gets a 503
    # (ffmpeg exits with code 8).
    write_media(media_server.root / "a.wav", 3.0, 8000)
    media_server.script("/a.wav", Script(status=503, skip=2, times=1))
    got = fetch_media(FetchRequest("c", media_server.url("a.wav"), 1.0, 2.0), tmp_path, options)
    assert got.attempts == 2 and got.sectioned
    assert _statuses(media_server, "/a.wav")[:4] == [206, 200, 503, 200]
    assert _section_seconds(got.path, 1.0, 2.0) == 1.0


@pytest.mark.parametrize("section", [None, (0.5, 1.5)])
def test_zero_length_body_is_a_decode_error(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
    section: tuple[float, float] | None,
) -> None:
    (media_server.root / "empty.wav").write_bytes(b"")
    request = FetchRequest("c", media_server.url("empty.wav"), *(section or (None, None)))
    failure = _failure(request, tmp_path / "w", options)
    assert (failure.reason, failure.attempts) == (FailureReason.DECODE_ERROR, 1)
    if section is None:
        assert failure.detail == "empty file"


def test_truncated_body_whole_file_fails_as_network_error(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
) -> None:
    """yt-dlp's HTTP downloader notices the short body and fails; every retry is cut short too."""
    write_media(media_server.root / "a.wav", 2.0, 16000)
    media_server.script("/a.wav", Script(truncate=True))
    opts = replace(options, retries=1)
    failure = _failure(FetchRequest("c", media_server.url("a.wav")), tmp_path / "w", opts)
    assert failure.reason is FailureReason.NETWORK_ERROR
    assert failure.attempts == 2
    assert "more expected" in failure.detail


@pytest.mark.parametrize(("section", "skip"), [(None, 0), ((0.5, 1.5), 1)])
def test_slow_server_times_out(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
    section: tuple[float, float] | None,
    skip: int,
) -> None:
    write_media(media_server.root / "a.wav", 2.0, 8000)
    media_server.script("/a.wav", Script(delay=5.0, skip=skip))
    opts = replace(options, socket_timeout=0.4, retries=0)
    request = FetchRequest("c", media_server.url("a.wav"), *(section or (None, None)))
    failure = _failure(request, tmp_path / "w", opts)
    assert (failure.reason, failure.attempts) == (FailureReason.TIMEOUT, 1)


def test_connection_refused_is_a_network_error(tmp_path: Path, options: FetchOptions) -> None:
    opts = replace(options, retries=1)
    url = f"http://127.0.0.1:{_closed_port()}/a.wav"
    failure = _failure(FetchRequest("c", url), tmp_path / "w", opts)
    assert (failure.reason, failure.attempts) == (FailureReason.NETWORK_ERROR, 2)


def test_rate_limit_spaces_network_attempts(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
) -> None:
    write_media(media_server.root / "a.wav", 0.5, 8000)
    media_server.script("/a.wav", Script(status=503, times=2))
    opts = replace(options, rate_limit=4.0, backoff_base=0.0)
    got = fetch_media(FetchRequest("c", media_server.url("a.wav")), tmp_path, opts)
    assert got.attempts == 3
    assert got.seconds >= 2 / 4.0 - 0.01


# --- URLs, templates and ids -----------------------------------------------------------------


@pytest.mark.parametrize("ytid", ["dQw4w9WgXcQ", "-abc_DEF123", "--exec-1234", "___________"])
def test_youtube_url_accepts_ids(ytid: str) -> None:
    assert youtube_url(ytid) == f"https://www.youtube.com/watch?v={ytid}"


@pytest.mark.parametrize(
    "ytid",
    ["short", "dQw4w9WgXcQx", "--exec=1234", "../../etc/pa", "$(reboot)xx", "dQw4w9WgXc\n", ""],
)
def test_youtube_url_rejects_non_ids(ytid: str) -> None:
    with pytest.raises(ClipFailure) as caught:
        youtube_url(ytid)
    assert caught.value.reason is FailureReason.VALIDATION


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("../../etc/passwd", "..%2F..%2Fetc%2Fpasswd"),
        ("$(reboot)", "%24%28reboot%29"),
        ("a b?c=d#e&f", "a%20b%3Fc%3Dd%23e%26f"),
        ("..", "%2E%2E"),
        ("--exec=x", "--exec%3Dx"),
        ("http://evil/", "http%3A%2F%2Fevil%2F"),
    ],
)
def test_template_quotes_each_field(value: str, quoted: str) -> None:
    url = format_url_template("http://host/audio/{ytid}/{start:.1f}.wav", ytid=value, start=30)
    assert url == f"http://host/audio/{quoted}/30.0.wav"
    split = urlsplit(url)
    assert (split.netloc, split.path.count("/")) == ("host", 3)


@pytest.mark.parametrize("template", ["{ytid}/{nope}", "{}", "{0}", "{ytid.real}", "{ytid[0]}"])
def test_template_rejects_unknown_placeholders(template: str) -> None:
    with pytest.raises(ValueError, match="unknown placeholder"):
        format_url_template(template, ytid="x")


@pytest.mark.parametrize("hostile", ["$(reboot)", "--exec=touch x", "a b&c=d?#"])
def test_hostile_ids_fetch_the_file_they_name(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
    hostile: str,
) -> None:
    source = write_media(media_server.root / f"{hostile}.wav", 0.5, 8000)
    url = format_url_template(media_server.base_url + "/{ytid}.wav", ytid=hostile)
    got = fetch_media(FetchRequest(hostile, url), tmp_path / "w", options)
    assert Path(got.path).read_bytes() == source.read_bytes()
    assert media_server.requests[0][0] == f"/{hostile}.wav"


def test_traversal_id_stays_inside_the_server_root(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
) -> None:
    write_media(tmp_path / "secret.wav", 0.5, 8000)  # next to the served root
    url = format_url_template(media_server.base_url + "/{ytid}.wav", ytid="../secret")
    failure = _failure(FetchRequest("c", url), tmp_path / "w", options)
    assert failure.reason is FailureReason.NOT_FOUND
    assert media_server.requests == [("/../secret.wav", 404)]


# --- local files and fsspec ------------------------------------------------------------------


def test_local_file_is_used_in_place(tmp_path: Path, options: FetchOptions) -> None:
    source = write_media(tmp_path / "a.flac", 0.5, 8000)
    for spec in (str(source), source.as_uri()):
        got = fetch_media(FetchRequest("c", spec, 0.1, 0.3), tmp_path / "w", options)
        assert got == FetchedMedia(str(source), 1, got.seconds, source.stat().st_size, False, True)
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("missing.wav", "no such file"),
        ("dir/missing.wav", "no such file"),
        ("loop.wav", "no such file"),
        ("not-a-dir.wav/x.wav", "no such file"),
        (".", "not a regular file"),
    ],
)
def test_local_missing_or_not_a_file(
    tmp_path: Path, options: FetchOptions, name: str, detail: str
) -> None:
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop.wav")
    write_media(tmp_path / "not-a-dir.wav", 0.1, 8000)
    failure = _failure(FetchRequest("c", str(tmp_path / name)), tmp_path / "w", options)
    assert (failure.reason, failure.attempts) == (FailureReason.NOT_FOUND, 1)
    assert failure.detail == f"{detail}: {tmp_path / name}"


def test_local_empty_file_is_a_decode_error(tmp_path: Path, options: FetchOptions) -> None:
    (tmp_path / "e.wav").write_bytes(b"")
    failure = _failure(FetchRequest("c", str(tmp_path / "e.wav")), tmp_path / "w", options)
    assert (failure.reason, failure.detail) == (FailureReason.DECODE_ERROR, "empty file")


def test_memory_fsspec_source_is_copied(tmp_path: Path, options: FetchOptions) -> None:
    source = write_media(tmp_path / "a.ogg", 1.0, 16000, 2)
    url = f"memory://audiomill-test/{uuid.uuid4().hex}/a.ogg"
    with fsspec.open(url, "wb") as out:
        out.write(source.read_bytes())
    got = fetch_media(FetchRequest("c", url, 0.2, 0.8), tmp_path / "w", options)
    assert (got.local, got.sectioned, got.attempts) == (False, False, 1)
    assert Path(got.path).parent == tmp_path / "w" and got.path.endswith(".ogg")
    assert Path(got.path).read_bytes() == source.read_bytes()


def test_fsspec_missing_object_and_unknown_protocol(tmp_path: Path, options: FetchOptions) -> None:
    missing = f"memory://audiomill-test/{uuid.uuid4().hex}/none.wav"
    failure = _failure(FetchRequest("c", missing), tmp_path / "w", options)
    assert (failure.reason, failure.attempts) == (FailureReason.NOT_FOUND, 1)
    failure = _failure(FetchRequest("c", "nosuchproto://x/y.wav"), tmp_path / "w", options)
    assert failure.reason is FailureReason.VALIDATION


def test_ftp_to_a_closed_port_is_a_network_error_retried(
    tmp_path: Path, options: FetchOptions
) -> None:
    url = f"ftp://127.0.0.1:{_closed_port()}/x.wav"
    failure = _failure(FetchRequest("c", url), tmp_path / "w", replace(options, retries=1))
    assert (failure.reason, failure.attempts) == (FailureReason.NETWORK_ERROR, 2)
    assert failure.detail == f"{url}: [Errno 111] Connection refused"


@pytest.mark.parametrize(
    ("error", "reason", "why"),
    [
        (socket.gaierror(-2, "Name or service not known"), FailureReason.NETWORK_ERROR,
         "[Errno -2] Name or service not known"),
        (TimeoutError("timed out"), FailureReason.TIMEOUT, "timed out"),
    ],
)  # fmt: skip
def test_ftp_host_unknown_or_silent_is_a_transient_failure(
    tmp_path: Path,
    options: FetchOptions,
    monkeypatch: pytest.MonkeyPatch,
    error: OSError,
    reason: FailureReason,
    why: str,
) -> None:
    def connect(*args: object, **kwargs: object) -> socket.socket:
        raise error

    monkeypatch.setattr(socket, "create_connection", connect)
    url = "ftp://media.example/x.wav"
    failure = _failure(FetchRequest("c", url), tmp_path / "w", replace(options, retries=0))
    assert (failure.reason, failure.attempts, failure.transient) == (reason, 1, True)
    assert failure.detail == f"{url}: {why}"


def _scripted_ftp(replies: list[bytes]) -> int:
    """The port of a one-connection FTP server on 127.0.0.1 that greets with the first reply,
    answers each command with the next one, then hangs up."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        with server, server.accept()[0] as conn, conn.makefile("rwb") as stream:
            for i, reply in enumerate(replies):
                if i:
                    stream.readline()
                stream.write(reply)
                stream.flush()

    threading.Thread(target=answer, daemon=True).start()
    return server.getsockname()[1]


@pytest.mark.parametrize(
    ("replies", "reason", "why"),
    [
        ([b"220 hi\r\n", b"530-No anonymous\r\n530 Login incorrect.\r\n"],
         FailureReason.HTTP_ERROR, "530-No anonymous 530 Login incorrect."),
        ([b"421 Too many users\r\n"], FailureReason.SERVER_ERROR, "421 Too many users"),
        ([], FailureReason.NETWORK_ERROR, "the server closed the connection"),
    ],
)  # fmt: skip
def test_an_ftp_server_that_refuses_the_session_fails_the_clip(
    tmp_path: Path, options: FetchOptions, replies: list[bytes], reason: FailureReason, why: str
) -> None:
    url = f"ftp://127.0.0.1:{_scripted_ftp(replies)}/x.wav"
    failure = _failure(FetchRequest("c", url), tmp_path / "w", replace(options, retries=0))
    assert (failure.reason, failure.attempts) == (reason, 1)
    assert failure.detail == f"{url}: {why}"


@pytest.mark.parametrize(
    ("start", "end"), [(2.0, 1.0), (1.0, 1.0), (-1.0, 1.0), (1.0, None), (None, 1.0),
                       (float("nan"), 1.0), (0.0, float("inf"))],
)  # fmt: skip
def test_bad_sections_are_rejected(
    tmp_path: Path, options: FetchOptions, start: float | None, end: float | None
) -> None:
    request = FetchRequest("c", "http://127.0.0.1:9/a.wav", start, end)
    failure = _failure(request, tmp_path / "w", options)
    assert failure.reason is FailureReason.VALIDATION


# --- error classification --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable", FailureReason.UNAVAILABLE),
        ("ERROR: [youtube] abcdefghijk: Video unavailable. This video is unavailable",
         FailureReason.UNAVAILABLE),
        ("ERROR: [youtube] abcdefghijk: Private video. Sign in if you've been granted access to "
         "this video", FailureReason.PRIVATE),
        ("ERROR: [youtube] abcdefghijk: Video unavailable. This video has been removed by the "
         "uploader", FailureReason.REMOVED),
        ("ERROR: [youtube] abcdefghijk: Video unavailable. This video is no longer available "
         "because the YouTube account associated with this video has been terminated.",
         FailureReason.REMOVED),
        ("ERROR: [youtube] abcdefghijk: This video has been removed for violating YouTube's "
         "Terms of Service", FailureReason.REMOVED),
        ("ERROR: [youtube] abcdefghijk: Video unavailable. The uploader has not made this video "
         "available in your country", FailureReason.GEO_BLOCKED),
        ("ERROR: [youtube] abcdefghijk: Video unavailable. This video contains content from SME, "
         "who has blocked it in your country on copyright grounds", FailureReason.GEO_BLOCKED),
        ("ERROR: [youtube] abcdefghijk: Sign in to confirm your age. This video may be "
         "inappropriate for some users.", FailureReason.SIGN_IN_REQUIRED),
        ("ERROR: [youtube] abcdefghijk: Sign in to confirm you’re not a bot. Use --cookies-from-"
         "browser or --cookies for the authentication.", FailureReason.SIGN_IN_REQUIRED),
        ("ERROR: [youtube] abcdefghijk: Join this channel to get access to members-only content "
         "like this video, and other exclusive perks.", FailureReason.SIGN_IN_REQUIRED),
        ("ERROR: [youtube] abcdefghijk: Requested format is not available. Use --list-formats "
         "for a list of available formats", FailureReason.UNAVAILABLE),
        ("ERROR: [youtube] abcdefghijk: Unable to download API page: HTTP Error 429: Too Many "
         "Requests (caused by <HTTPError 429: Too Many Requests>)", FailureReason.RATE_LIMITED),
        ("ERROR: unable to download video data: HTTP Error 403: Forbidden",
         FailureReason.HTTP_ERROR),
        ("ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found (caused by "
         "<HTTPError 404: Not Found>)", FailureReason.NOT_FOUND),
        ("ERROR: [generic] x: Unable to download webpage: HTTP Error 410: Gone",
         FailureReason.NOT_FOUND),
        ("ERROR: [download] Got error: HTTP Error 503: Service Unavailable",
         FailureReason.SERVER_ERROR),
        ("ERROR: [generic] x: Unable to download webpage: HTTP Error 502: Bad Gateway",
         FailureReason.SERVER_ERROR),
        ("ERROR: [download] Got error: HTTPSConnectionPool(host='rr1---sn.googlevideo.com', "
         "port=443): Read timed out. (read timeout=20.0)", FailureReason.TIMEOUT),
        ("ERROR: [generic] x: Unable to download webpage: HTTPConnection(host='127.0.0.1', "
         "port=9): Failed to establish a new connection: [Errno 111] Connection refused",
         FailureReason.NETWORK_ERROR),
        ("ERROR: [download] Got error: ('Connection aborted.', ConnectionResetError(104, "
         "'Connection reset by peer'))", FailureReason.NETWORK_ERROR),
        ("ERROR: \r[download] Got error: 64022 bytes read, 64022 more expected",
         FailureReason.NETWORK_ERROR),
        ("ERROR: Did not get any data blocks", FailureReason.DECODE_ERROR),
        ("ERROR: ffmpeg exited with code 183", FailureReason.DECODE_ERROR),
        ("ERROR: ffmpeg exited with code 8", FailureReason.SERVER_ERROR),
        ("ERROR: ffmpeg exited with code 146", FailureReason.TIMEOUT),
        ("ERROR: ffmpeg exited with code 1", FailureReason.NETWORK_ERROR),
        ("ERROR: ffmpeg exited with code 234", FailureReason.DECODE_ERROR),
        # A terminal's colour codes change neither the class nor the detail.
        ("\x1b[0;31mERROR:\x1b[0m [youtube] xyz-login-Q: Video unavailable",
         FailureReason.UNAVAILABLE),
        # Ids come from URLs; words in them must not decide the class.
        ("ERROR: [generic] removed: Unsupported URL: http://h/removed", FailureReason.UNAVAILABLE),
        ("ERROR: [generic] sign-in: Unsupported URL: http://h/", FailureReason.UNAVAILABLE),
    ],
)  # fmt: skip
def test_classify_messages(message: str, reason: FailureReason) -> None:
    got, detail = classify_error(DownloadError(message))
    assert got is reason
    assert not detail.startswith("ERROR") and "\r" not in detail and "\x1b" not in detail


def test_classify_follows_exception_causes() -> None:
    timeout = DownloadError("ERROR: [generic] x: Unable to download webpage", (None, None, None))
    timeout.__cause__ = TimeoutError("timed out")
    assert classify_error(timeout)[0] is FailureReason.TIMEOUT
    refused = ConnectionRefusedError(111, "refused")
    wrapped = DownloadError("ERROR: [generic] x: oops", (type(refused), refused, None))
    assert classify_error(wrapped)[0] is FailureReason.NETWORK_ERROR
    assert classify_error(DownloadError("ERROR: ffmpeg exited with code 183"))[1] == (
        "ffmpeg found no valid media in the response (exit code 183)"
    )


def test_object_store_that_cannot_be_reached_or_accessed_is_a_clip_failure(tmp_path, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    url = "s3://bucket/audio/a.wav"
    cases = [
        ({"key": "k", "secret": "s"}, FailureReason.NETWORK_ERROR, "reach", "connection refused"),
        ({}, FailureReason.HTTP_ERROR, "access", "no credentials"),
    ]
    for credentials, reason, verb, why in cases:
        options = FetchOptions(
            retries=0,
            storage_options={**credentials, "client_kwargs": {"endpoint_url": endpoint}},
        )
        exc = _failure(FetchRequest("c", url), tmp_path / "w", options)
        assert exc.reason is reason
        assert exc.detail.startswith(f"cannot {verb} {url}: {why}")


@pytest.mark.parametrize(
    ("name", "kind"), [("page.html", "text/html"), ("notes.txt", "text/plain")]
)
@pytest.mark.parametrize("section", [None, (0.5, 1.5)])
def test_a_page_served_instead_of_audio_is_not_audio(
    media_server: MediaServer,
    tmp_path: Path,
    options: FetchOptions,
    name: str,
    kind: str,
    section: tuple[float, float] | None,
) -> None:
    media_server.root.mkdir(parents=True, exist_ok=True)
    (media_server.root / name).write_text("<html><body>no audio here</body></html>")
    url = media_server.url(name)
    failure = _failure(FetchRequest("c", url, *(section or (None, None))), tmp_path / "w", options)
    assert (failure.reason, failure.attempts) == (FailureReason.DECODE_ERROR, 1)
    assert failure.detail == f"not audio: the server sent {kind} for {url}"
    assert not failure.transient
