"""Fetch one clip's media to a local file: yt-dlp for http(s), fsspec for stores, or a local path.

Every failure is a ``ClipFailure`` with a machine-readable reason. Network attempts go through the
machine-wide rate limiter; transient failures (429, 5xx, timeouts, connection errors) are retried
with exponential backoff and full jitter, permanent ones raise at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import ftplib
import functools
import hashlib
import http.client
import http.cookiejar
import logging
import math
import re
import shutil
import stat
import string
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import fsspec

from pipelines.audio import SECTION_TS_OFFSET_S, holds_nut_frames
from pipelines.byte_ranges import ask_first_byte, serves_sections
from pipelines.ffmpeg import cache_dir, ffmpeg_dir
from pipelines.ratelimit import RateLimiter, backoff_delay, retry_after_seconds
from pipelines.storage import store_failure
from schemas.failures import ClipFailure, FailureReason

log = logging.getLogger(__name__)

_YTID = re.compile(r"[A-Za-z0-9_-]{11}")
_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")
_FFMPEG_EXIT = re.compile(r"ffmpeg exited with code (\d+)")
# Ids ("ERROR: [extractor] <id>: ") and URLs come from the input: never classify on their words.
_PREFIX = re.compile(r"^\s*(?:ERROR:\s*)?(?:\[[\w:.-]+\]\s*(?:\S+:\s)?)?")
_URL = re.compile(r"\S+://\S*")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TEXT_REASONS = (
    (FailureReason.PRIVATE, re.compile(r"private video|video is private")),
    (FailureReason.REMOVED, re.compile(r"\bremoved\b|terminated|no longer available")),
    (
        FailureReason.GEO_BLOCKED,
        re.compile(r"in your country|from your location|geo[- ]?(?:restrict|block)"),
    ),
    (
        FailureReason.SIGN_IN_REQUIRED,
        re.compile(r"sign in|log ?in\b|login required|members[- ]only|confirm your age"),
    ),
    (
        FailureReason.UNAVAILABLE,
        re.compile(r"video unavailable|video is (?:unavailable|not available)|format is not avail"),
    ),
    (FailureReason.TIMEOUT, re.compile(r"timed out|timeout")),
    (
        FailureReason.NETWORK_ERROR,
        re.compile(
            r"connection (?:refused|reset|aborted)|failed to establish|network is unreachable"
            r"|name or service not known|name resolution|remote end closed|incomplete read"
            r"|bytes read, \d+ more expected"
        ),
    ),
)
# ffmpeg exit status = AVERROR & 0xff: 8 for every AVERROR_HTTP_*, 146 ETIMEDOUT, 183 INVALIDDATA,
# 234 EINVAL (a stream the output format cannot hold).
_FFMPEG_REASONS = {
    8: (FailureReason.SERVER_ERROR, "ffmpeg got an HTTP error status while fetching the section"),
    146: (FailureReason.TIMEOUT, "ffmpeg timed out fetching the section"),
    183: (FailureReason.DECODE_ERROR, "ffmpeg found no valid media in the response"),
    234: (FailureReason.DECODE_ERROR, "ffmpeg cannot copy the section's streams"),
}
# ffmpeg ends its input at a network error as at the end of the file, and exits 0: these lines
# of its stderr say that the server's answer ended early.
_FFMPEG_CUT_SHORT = re.compile(
    r"Stream ends prematurely at \d+, should be \d+"
    r"|Error during demuxing: (?:Input/output error|Connection reset by peer|Broken pipe"
    r"|Connection timed out|Network is unreachable)"
)
_FFMPEG_WATCH: contextvars.ContextVar[_FfmpegWatch | None] = contextvars.ContextVar(
    "ffmpeg_watch", default=None
)
"""How the ffmpeg that yt-dlp runs in this context is watched (see :func:`_ffmpeg_watched`)."""
SECTION_REQUESTS = 4
"""The requests (open, seeks) a section's download may spend ``--timeout`` on each, besides
one ``--timeout`` per second of the section: its wall-clock limit."""

SECTION_MARGIN_S = 1.0
"""Seconds fetched either side of a section: the packets before ``start_s`` prime a lossy
decoder, and ffmpeg's ``-t`` stops at a packet, so the end lies inside what is fetched."""

SECTION_OUTPUT_OPTIONS = [
    "-copyts", "-start_at_zero", "-avoid_negative_ts", "disabled",
    "-output_ts_offset", str(SECTION_TS_OFFSET_S), "-f", "nut",
]  # fmt: skip
"""ffmpeg's output options for a section (after yt-dlp's own ``-f``): keep each packet's
timestamp on the source's timeline, as :func:`pipelines.audio.decode_section` reads it, in
NUT, which stores it exactly in the stream's own time base (Matroska rounds it to 1 ms)."""


@dataclass(frozen=True)
class FetchRequest:
    """One clip to fetch.

    Parameters
    ----------
    clip_id : str
        The clip's id (only hashed into file names, never used raw).
    source : str
        An http(s) URL (YouTube included), a local path, or an fsspec URL such as ``s3://b/k``.
    start_s, end_s : float or None
        The section to fetch, in seconds; both or neither.
    """

    clip_id: str
    source: str
    start_s: float | None = None
    end_s: float | None = None


@dataclass(frozen=True)
class FetchOptions:
    """How to fetch.

    Parameters
    ----------
    rate_limit : float or None
        Machine-wide requests per second over all workers; None or 0 for no limit.
    retries : int
        Extra attempts after a transient failure.
    backoff_base, backoff_cap : float
        Retry delays are drawn from ``[0, min(cap, base * 2 ** (attempt - 1))]``.
    socket_timeout : float
        Seconds without data before a request fails with ``TIMEOUT``.
    cookies : str or None
        A Netscape cookies file passed to yt-dlp.
    exact_cuts : bool
        Re-encode sections, losslessly, rather than stream-copy them (slower, and a section is
        cut to the sample either way).
    limiter_state : str or None
        The rate limiter's state file; ``<cache>/ratelimit.state`` when None.
    storage_options : dict or None
        Keyword arguments for the fsspec filesystem of remote sources.
    """

    rate_limit: float | None = None
    retries: int = 3
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    socket_timeout: float = 30.0
    cookies: str | None = None
    exact_cuts: bool = False
    limiter_state: str | None = None
    storage_options: dict | None = None

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if not self.socket_timeout > 0:
            raise ValueError(f"socket_timeout must be > 0, got {self.socket_timeout}")


@dataclass(frozen=True)
class FetchedMedia:
    """A fetched media file.

    Parameters
    ----------
    path : str
        The local file to decode.
    attempts : int
        How many tries it took.
    seconds : float
        Wall-clock seconds spent fetching, waits and retries included.
    bytes : int
        Size of ``path``.
    sectioned : bool
        ``path`` is a section: a NUT file of the source's packets from up to
        :data:`SECTION_MARGIN_S` before ``start_s`` (or from the source's start) to as far past
        ``end_s``, stream-copied with their timestamps, for
        :func:`pipelines.audio.decode_section` to cut exactly; it holds no frame where the
        source ends before that.
    local : bool
        ``path`` is the user's original file: never delete it.
    """

    path: str
    attempts: int
    seconds: float
    bytes: int
    sectioned: bool
    local: bool


def youtube_url(ytid: str) -> str:
    """Return the watch URL of a YouTube id, rejecting anything that is not an 11-char id."""
    if not isinstance(ytid, str) or not _YTID.fullmatch(ytid):
        raise ClipFailure(FailureReason.VALIDATION, f"not a YouTube id: {ytid!r}")
    return f"https://www.youtube.com/watch?v={ytid}"


def format_url_template(template: str, **fields: object) -> str:
    """Fill ``{name}`` placeholders with URL-quoted values, so values cannot change the URL's shape.

    Format specs apply before quoting (``{start:.1f}``). Raises ``ValueError`` for placeholders
    that are positional, index into a value, or name no given field.
    """
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if name not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ValueError(f"unknown placeholder {{{name}}} in {template!r}; known: {known}")
        value = fields[name]
        if conversion:
            value = {"s": str, "r": repr, "a": ascii}[conversion](value)
        quoted = urllib.parse.quote(format(value, spec or ""), safe="")
        out.append(quoted.replace(".", "%2E") if quoted in {".", ".."} else quoted)
    return "".join(out)


def classify_error(error: BaseException) -> tuple[FailureReason, str]:
    """Map a yt-dlp (or network) exception to a failure reason and a one-line detail."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError

    chain = _exception_chain(error)
    message = " ".join(_ANSI.sub("", str(error)).replace("\r", " ").split())
    detail = re.sub(r"^ERROR:\s*", "", message)
    status = next((e.status for e in chain if isinstance(e, HTTPError)), None)
    if status is None and (match := _HTTP_STATUS.search(message)):
        status = int(match.group(1))
    if status is not None:
        return _http_reason(status), detail
    if any(isinstance(e, TimeoutError) for e in chain):
        return FailureReason.TIMEOUT, detail
    if any(isinstance(e, ConnectionError | TransportError) for e in chain):
        return FailureReason.NETWORK_ERROR, detail
    text = _URL.sub("", _PREFIX.sub("", message)).lower()
    if "did not get any data blocks" in text:
        return FailureReason.DECODE_ERROR, "empty file"
    for reason, pattern in _TEXT_REASONS:
        if pattern.search(text):
            return reason, detail
    if match := _FFMPEG_EXIT.search(message):
        code = int(match.group(1))
        reason, what = _FFMPEG_REASONS.get(code, (FailureReason.NETWORK_ERROR, "ffmpeg failed"))
        return reason, f"{what} (exit code {code})"
    return FailureReason.UNAVAILABLE, detail


def is_local(location: str) -> bool:
    """Whether a resolved location is a local file (a plain path or a ``file:`` URL), which
    :func:`fetch_media` reads in place rather than downloading."""
    return urllib.parse.urlsplit(location).scheme.lower() in {"", "file"}


def fetch_media(request: FetchRequest, workdir: str | Path, options: FetchOptions) -> FetchedMedia:
    """Fetch ``request`` into ``workdir`` (local paths are used in place).

    Raises ``ClipFailure`` on failure, after removing whatever it left in ``workdir``.
    """
    started = time.monotonic()
    section = _section(request)
    if is_local(request.source):
        path, size = _local_file(request.source)
        return _result(path, size, 1, started, sectioned=False, local=True)
    scheme = urllib.parse.urlsplit(request.source).scheme.lower()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stem = "clip-" + hashlib.sha256(request.clip_id.encode()).hexdigest()[:24]
    _remove_partials(workdir, stem)
    if scheme in {"http", "https"}:
        fetch = partial(_download_http, request.source, workdir, stem, section, options)
    else:
        fetch = partial(_copy_fsspec, request.source, workdir, stem, options)
    try:
        (path, sectioned), attempts = _with_retries(fetch, options)
        size = path.stat().st_size
        if size == 0:
            raise ClipFailure(FailureReason.DECODE_ERROR, "empty file", attempts)
    except BaseException:
        _remove_partials(workdir, stem)
        raise
    return _result(path, size, attempts, started, sectioned=sectioned, local=False)


def _section(request: FetchRequest) -> tuple[float, float] | None:
    start, end = request.start_s, request.end_s
    if start is None and end is None:
        return None
    if start is None or end is None or not (0 <= start < end and math.isfinite(end)):
        raise ClipFailure(FailureReason.VALIDATION, f"bad section [{start}, {end}]")
    return float(start), float(end)


_MISSING_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EBADF})
"""``stat`` errors that mean there is no file at the path (as ``Path.exists`` reads them)."""


def _local_file(source: str) -> tuple[Path, int]:
    """The regular, non-empty file a local source names, and its size, from one ``stat``
    (each is a system call and a hand-over of the GIL on a decoding thread)."""
    split = urllib.parse.urlsplit(source)
    path = Path(urllib.parse.unquote(split.path) if split.scheme else source)
    try:
        info = path.stat()
    except OSError as exc:
        if exc.errno not in _MISSING_ERRNOS:
            raise
        raise ClipFailure(FailureReason.NOT_FOUND, f"no such file: {path}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ClipFailure(FailureReason.NOT_FOUND, f"not a regular file: {path}")
    if info.st_size == 0:
        raise ClipFailure(FailureReason.DECODE_ERROR, "empty file")
    return path, info.st_size


def _result(
    path: Path, size: int, attempts: int, started: float, sectioned: bool, local: bool
) -> FetchedMedia:
    return FetchedMedia(
        path=str(path),
        attempts=attempts,
        seconds=time.monotonic() - started,
        bytes=size,
        sectioned=sectioned,
        local=local,
    )


def _with_retries(
    fetch: Callable[[], tuple[Path, bool]], options: FetchOptions
) -> tuple[tuple[Path, bool], int]:
    state = options.limiter_state or cache_dir() / "ratelimit.state"
    limiter = RateLimiter(options.rate_limit, state)
    attempt = 0
    while True:
        attempt += 1
        limiter.acquire()
        try:
            return fetch(), attempt
        except ClipFailure as failure:
            failure.attempts = attempt
            if not failure.transient or attempt > options.retries:
                raise
            delay = _retry_delay(failure, attempt, options, limiter)
            log.debug("attempt %d failed (%s); retrying", attempt, failure)
        time.sleep(delay)


def _retry_delay(
    failure: ClipFailure, attempt: int, options: FetchOptions, limiter: RateLimiter
) -> float:
    """Seconds to wait before retrying after ``failure``: the backoff, or the longer wait its
    server asked for, which every worker sharing the limiter keeps too.

    Raises ``failure``'s reason at once, saying what the server asked, where that is longer
    than ``options.backoff_cap``: transient, for a later run to retry.
    """
    delay = backoff_delay(attempt, options.backoff_base, options.backoff_cap)
    if not isinstance(failure, WaitAsked):
        return delay
    if failure.wait_s > options.backoff_cap:
        detail = (
            f"{failure.detail}; the server asked to wait {failure.wait_s:g} s, more than the"
            f" {options.backoff_cap:g} s a retry waits"
        )
        raise ClipFailure(failure.reason, detail, attempt) from failure
    limiter.hold_off(failure.wait_s)
    return max(delay, failure.wait_s)


class _QuietLogger:
    """Send yt-dlp's output to debug logging: failures surface as ``ClipFailure`` instead."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    info = warning = error = debug


def _ytdlp_params(
    workdir: Path, stem: str, fetched: tuple[float, float] | None, options: FetchOptions
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "format": "bestaudio/best",
        "outtmpl": {"default": str(workdir / f"{stem}.%(ext)s")},
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _QuietLogger(),
        "color": "no_color",  # else a terminal's colour codes end up in the ledger's details
        "noplaylist": True,
        "overwrites": True,
        "continuedl": False,
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "socket_timeout": options.socket_timeout,
        "ffmpeg_location": ffmpeg_dir(),
        # ffmpeg does its own HTTP for sections; without this a stalled server hangs it forever.
        # Only the first audio stream is copied: a picture stream (an Ogg's cover art) cannot
        # be written back to most audio formats, and failed the whole section.
        "external_downloader_args": {
            # yt-dlp's "-loglevel quiet" comes first; the last one applies: errors are read.
            "ffmpeg_i": [
                "-loglevel",
                "error",
                "-rw_timeout",
                str(round(options.socket_timeout * 1e6)),
            ],
            "ffmpeg_o": ["-map", "0:a:0"],
        },
    }
    if options.cookies:
        params["cookiefile"] = options.cookies
    if fetched is not None:
        from yt_dlp.utils import download_range_func

        params["outtmpl"] = {"default": str(workdir / f"{stem}.nut")}
        params["download_ranges"] = download_range_func(None, [fetched])
        params["force_keyframes_at_cuts"] = options.exact_cuts
        params["external_downloader_args"]["ffmpeg_o"] += _section_output_options(options)
    return params


def _section_output_options(options: FetchOptions) -> list[str]:
    """ffmpeg's output options for a section; exact cuts, which re-encode, re-encode losslessly
    (NUT's own default is Vorbis)."""
    codec = ["-c:a", "pcm_f32le"] if options.exact_cuts else []
    return [*codec, *SECTION_OUTPUT_OPTIONS]


def _download_http(
    url: str, workdir: Path, stem: str, section: tuple[float, float] | None, options: FetchOptions
) -> tuple[Path, bool]:
    """Download ``url`` through yt-dlp: ``section`` alone where the server can serve it (see
    :mod:`pipelines.byte_ranges`), else the whole file, to be cut when decoded; and whether
    the file is the section."""
    if section is None or not _sections_served(url, options):
        return _download_ytdlp(url, workdir, stem, None, options), False
    start, end = max(0.0, section[0] - SECTION_MARGIN_S), section[1] + SECTION_MARGIN_S
    path = _download_ytdlp(url, workdir, stem, (start, end), options)
    if start > 0 and not holds_nut_frames(path):
        # Past the source's end, or ffmpeg's seek failed inside a long first frame (FLAC at
        # 2 kHz, 2 s a frame): read from the start to tell.
        path = _download_ytdlp(url, workdir, stem, (0.0, end), options)
    return path, True


def _sections_served(url: str, options: FetchOptions) -> bool:
    """Whether ffmpeg can fetch a section of ``url``; YouTube's media servers can, and its pages
    are never asked. A request that fails is the clip's failure, as yt-dlp's would be."""
    if _is_youtube(url):
        return True
    from yt_dlp.utils.networking import std_headers

    cookies = _cookie_jar(options.cookies) if options.cookies else None
    try:
        return serves_sections(url, options.socket_timeout, headers=std_headers, cookies=cookies)
    except urllib.error.HTTPError as error:
        detail = f"{url}: HTTP Error {error.code}"
        raise _http_failure(_http_reason(error.code), detail, _retry_after(error)) from error
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", error)
        kind = FailureReason.TIMEOUT if isinstance(reason, TimeoutError) else None
        raise ClipFailure(kind or FailureReason.NETWORK_ERROR, f"{url}: {reason}") from error


def _is_youtube(url: str) -> bool:
    """Whether ``url`` is on YouTube, whose pages yt-dlp extracts media from."""
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    return host == "youtu.be" or host == "youtube.com" or host.endswith(".youtube.com")


_NOT_MEDIA_TYPES = ("text/", "application/xhtml+xml", "application/json", "application/xml")
"""Content types (or their prefixes) of answers that are pages or text, never audio."""


def _download_failure(url: str, error: BaseException, options: FetchOptions) -> ClipFailure:
    """The failure of a yt-dlp download of ``url``.

    yt-dlp finds no media in a page that is no site it knows and says ``Unsupported URL``: for
    a URL off YouTube that the server answers with a page or text, the failure says that, as
    a ``decode_error`` (the server answers, with no audio, and will again).
    """
    from yt_dlp.utils import UnsupportedError

    unsupported = any(isinstance(e, UnsupportedError) for e in _exception_chain(error))
    if unsupported and not _is_youtube(url) and (kind := _text_served(url, options)):
        detail = f"not audio: the server sent {kind} for {url}"
        return ClipFailure(FailureReason.DECODE_ERROR, detail)
    reason, detail = classify_error(error)
    return _http_failure(reason, detail, _retry_after(error))


class WaitAsked(ClipFailure):
    """A ``rate_limited`` or ``server_error`` failure whose server said how long to wait.

    Parameters
    ----------
    reason : FailureReason
    detail : str
    wait_s : float
        Seconds the server's ``Retry-After`` asked to wait before the next request.
    """

    def __init__(self, reason: FailureReason, detail: str, wait_s: float) -> None:
        super().__init__(reason, detail)
        self.wait_s = wait_s


def _http_failure(reason: FailureReason, detail: str, wait_s: float | None) -> ClipFailure:
    """The failure of an HTTP request, holding the wait its server asked for where it is one
    that waiting fixes (429, 5xx)."""
    waits = reason in {FailureReason.RATE_LIMITED, FailureReason.SERVER_ERROR}
    if waits and wait_s is not None:
        return WaitAsked(reason, detail, wait_s)
    return ClipFailure(reason, detail)


def _retry_after(error: BaseException) -> float | None:
    """The wait that the ``Retry-After`` header of an HTTP error answer in ``error``'s chain
    asks for (yt-dlp's or urllib's)."""
    from yt_dlp.networking.exceptions import HTTPError

    for linked in _exception_chain(error):
        if isinstance(linked, HTTPError):
            return retry_after_seconds(linked.response.headers.get("Retry-After"))
        if isinstance(linked, urllib.error.HTTPError) and linked.headers is not None:
            return retry_after_seconds(linked.headers.get("Retry-After"))
    return None


def _text_served(url: str, options: FetchOptions) -> str | None:
    """The content type of ``url`` when the server answers with a page or text
    (:data:`_NOT_MEDIA_TYPES`); None for anything else, or no answer.

    The question is the one :func:`_sections_served` asks
    (:func:`pipelines.byte_ranges.ask_first_byte`), with yt-dlp's headers and the cookies.
    """
    from yt_dlp.utils.networking import std_headers

    jar = _cookie_jar(options.cookies) if options.cookies else None
    try:
        _, answer = ask_first_byte(url, options.socket_timeout, headers=std_headers, cookies=jar)
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        return None
    kind = (answer.get("Content-Type") or "").split(";")[0].strip().lower()
    return kind if kind.startswith(_NOT_MEDIA_TYPES) else None


_COOKIES_MAGIC = re.compile(r"#( Netscape)? HTTP Cookie File")
"""A Netscape cookies file's first line, as :class:`http.cookiejar.MozillaCookieJar` wants it."""


def load_cookies(path: str) -> http.cookiejar.CookieJar:
    """Read a Netscape cookies file as yt-dlp does (session cookies with ``expires`` 0,
    ``#HttpOnly_`` lines).

    Parameters
    ----------
    path : str

    Returns
    -------
    http.cookiejar.CookieJar

    Raises
    ------
    ValueError
        The file cannot be read or is not a Netscape cookies file, naming it and why.
    """
    from yt_dlp.cookies import YoutubeDLCookieJar

    jar = YoutubeDLCookieJar(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
        if not _COOKIES_MAGIC.match(first):  # else yt-dlp warns about each line first
            raise http.cookiejar.LoadError("its first line is not '# Netscape HTTP Cookie File'")
        jar.load()
    except (OSError, http.cookiejar.LoadError) as exc:
        raise ValueError(f"--cookies {path}: not a Netscape cookies file ({exc})") from exc
    return jar


@functools.lru_cache(maxsize=4)
def _cookie_jar(path: str) -> http.cookiejar.CookieJar:
    """:func:`load_cookies`, read once per process rather than for each clip."""
    return load_cookies(path)


def _download_ytdlp(
    url: str, workdir: Path, stem: str, fetched: tuple[float, float] | None, options: FetchOptions
) -> Path:
    """Download ``url``, or the ``fetched`` range of it as a timestamped section, to a file in
    ``workdir`` named ``stem`` and the format's extension."""
    import yt_dlp  # imported here: workers that only read local files never need it
    from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

    _remove_partials(workdir, stem)
    # FFmpegFD.available() ignores the ffmpeg_location param and reads this context variable.
    FFmpegPostProcessor._ffmpeg_location.set(ffmpeg_dir())
    started = time.monotonic()
    with _ffmpeg_watched(workdir, _time_limit(fetched, options)) as watch:
        try:
            with yt_dlp.YoutubeDL(_ytdlp_params(workdir, stem, fetched, options)) as ydl:
                info = ydl.extract_info(url, download=True)
        except yt_dlp.utils.YoutubeDLError as error:
            if watch.expired:
                detail = f"{url}: the section's download ran past its limit of {watch.limit_s:g} s"
                raise ClipFailure(FailureReason.TIMEOUT, detail) from error
            raise _download_failure(url, error, options) from error
        _raise_if_cut_short(url, watch.stderr, time.monotonic() - started, options)
    downloads = (info or {}).get("requested_downloads") or []
    if not downloads or not Path(downloads[0]["filepath"]).is_file():
        raise ClipFailure(FailureReason.UNAVAILABLE, f"no downloadable media at {url}")
    return Path(downloads[0]["filepath"])


def _time_limit(fetched: tuple[float, float] | None, options: FetchOptions) -> float | None:
    """The wall-clock limit of a section's download (see :data:`SECTION_REQUESTS`); None for
    a whole file, which yt-dlp's own downloader bounds with ``--timeout``."""
    if fetched is None:
        return None
    return options.socket_timeout * (SECTION_REQUESTS + fetched[1] - fetched[0])


@dataclass
class _FfmpegWatch:
    """How the ffmpeg that yt-dlp runs is watched: where its stderr goes, how long it may run
    (None: as long as it takes) and whether it was stopped for running past that."""

    stderr: IO[bytes]
    limit_s: float | None
    expired: bool = False


@contextlib.contextmanager
def _ffmpeg_watched(workdir: Path, limit_s: float | None) -> Iterator[_FfmpegWatch]:
    """Watch the ffmpeg that yt-dlp runs in this context: its stderr to a temporary file, and
    killed past ``limit_s`` seconds.

    yt-dlp lets ffmpeg write to this process's stderr, where nobody reads it, and waits for it
    without limit; its downloader module's ``Popen`` is replaced, once, by one that reads
    :data:`_FFMPEG_WATCH`.
    """
    _install_watched_popen()
    with tempfile.TemporaryFile(dir=workdir) as stderr:
        token = _FFMPEG_WATCH.set(_FfmpegWatch(stderr, limit_s))
        try:
            yield _FFMPEG_WATCH.get()
        finally:
            _FFMPEG_WATCH.reset(token)


@functools.cache
def _install_watched_popen() -> None:
    """Make yt-dlp's downloaders start and wait for ffmpeg as :data:`_FFMPEG_WATCH` says."""
    from yt_dlp.downloader import external

    class WatchedPopen(external.Popen):
        def __init__(self, args: list[str], *rest: Any, **kwargs: Any) -> None:
            self.watch = _FFMPEG_WATCH.get()
            if self.watch is not None and kwargs.get("stderr") is None:
                kwargs["stderr"] = self.watch.stderr
            self.started = time.monotonic()
            super().__init__(args, *rest, **kwargs)

        def wait(self, timeout: float | None = None) -> int:
            if timeout is not None or self.watch is None or self.watch.limit_s is None:
                return super().wait(timeout)
            left = self.started + self.watch.limit_s - time.monotonic()
            try:
                return super().wait(max(0.0, left))
            except subprocess.TimeoutExpired:
                self.watch.expired = True
                self.kill()
                return super().wait()

    external.Popen = WatchedPopen


def _raise_if_cut_short(url: str, stderr: IO[bytes], seconds: float, options: FetchOptions) -> None:
    """Raise the transient failure of a download whose ffmpeg says the server's answer ended
    early (it exits 0 then): a ``timeout`` when it ran for at least ``--timeout`` (a stall),
    else a ``network_error``."""
    stderr.seek(0)
    said = stderr.read().decode("utf-8", "replace")
    if not (match := _FFMPEG_CUT_SHORT.search(said)):
        return
    stalled = "Stream ends prematurely" not in said and seconds >= options.socket_timeout
    reason = FailureReason.TIMEOUT if stalled else FailureReason.NETWORK_ERROR
    what = (
        f"no data for {options.socket_timeout:g} s"
        if stalled
        else "the server's answer ended early"
    )
    raise ClipFailure(reason, f"{url}: {what} (ffmpeg: {match.group(0)})")


def _copy_fsspec(url: str, workdir: Path, stem: str, options: FetchOptions) -> tuple[Path, bool]:
    with _store_failures(url):
        try:
            fs, path = fsspec.core.url_to_fs(url, **(options.storage_options or {}))
        except (ValueError, ImportError) as error:
            raise ClipFailure(FailureReason.VALIDATION, f"cannot open {url}: {error}") from error
        target = workdir / f"{stem}{Path(path).suffix or '.bin'}"
        with fs.open(path, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return target, False


@contextlib.contextmanager
def _store_failures(url: str) -> Iterator[None]:
    """Turn a failure to reach or read ``url`` through fsspec into the clip's ``ClipFailure``.

    Filesystems such as FTP's connect when they are built, so building one fails as opening a
    file does: a refused connection or an unknown host is a ``network_error``, silence a
    ``timeout`` (both retried on a later run); an FTP server's 4xx reply is a ``server_error``
    (retried), a 5xx one (a refused login) an ``http_error``.
    """
    try:
        yield
    except ClipFailure:
        raise
    except FileNotFoundError as error:
        raise ClipFailure(FailureReason.NOT_FOUND, f"no such object: {url}") from error
    except IsADirectoryError as error:
        raise ClipFailure(FailureReason.NOT_FOUND, f"not a file: {url}") from error
    except PermissionError as error:
        raise ClipFailure(FailureReason.HTTP_ERROR, f"access denied: {url}: {error}") from error
    except TimeoutError as error:
        raise ClipFailure(FailureReason.TIMEOUT, f"{url}: {error}") from error
    except OSError as error:
        raise ClipFailure(FailureReason.NETWORK_ERROR, f"{url}: {error}") from error
    except EOFError as error:  # ftplib, when the server hangs up
        detail = f"{url}: the server closed the connection"
        raise ClipFailure(FailureReason.NETWORK_ERROR, detail) from error
    except ftplib.Error as error:
        detail = f"{url}: {' '.join(str(error).split())}"
        raise ClipFailure(_ftp_reason(error), detail) from error
    except Exception as error:  # botocore and aiohttp errors are not OSErrors
        failure = store_failure(error)
        if failure is None:
            raise
        verb, reason = failure
        kind = FailureReason.NETWORK_ERROR if verb == "reach" else FailureReason.HTTP_ERROR
        raise ClipFailure(kind, f"cannot {verb} {url}: {reason}") from error


def _ftp_reason(error: ftplib.Error) -> FailureReason:
    """An FTP server's refusal as a failure reason: a 4xx reply is worth trying again later."""
    if isinstance(error, ftplib.error_temp):
        return FailureReason.SERVER_ERROR
    if isinstance(error, ftplib.error_perm):
        return FailureReason.HTTP_ERROR
    return FailureReason.NETWORK_ERROR


def _http_reason(status: int) -> FailureReason:
    if status == 429:
        return FailureReason.RATE_LIMITED
    if status in {404, 410}:
        return FailureReason.NOT_FOUND
    if status >= 500:
        return FailureReason.SERVER_ERROR
    return FailureReason.HTTP_ERROR


def _exception_chain(error: BaseException) -> list[BaseException]:
    """Return ``error`` and every exception it links to (yt-dlp's exc_info and cause included)."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        exc_info = getattr(current, "exc_info", None)
        linked = [
            exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None,
            getattr(current, "cause", None),
            current.__cause__,
            current.__context__,
        ]
        todo.extend(e for e in linked if isinstance(e, BaseException))
    return seen


def _remove_partials(workdir: Path, stem: str) -> None:
    for leftover in workdir.glob(f"{stem}.*"):
        leftover.unlink(missing_ok=True)
