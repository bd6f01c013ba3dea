"""Whether an http(s) server serves byte ranges, which a section download through ffmpeg needs.

To fetch a section of a media file, yt-dlp runs ffmpeg, which seeks into the file with HTTP
``Range`` requests. A server that ignores them (``python -m http.server``, many plain static
servers) answers every request with the whole file from its first byte, and ffmpeg's seeks then
go wrong without an error: a WAV section started seconds late, a FLAC or Ogg section decoded to
nothing. Fetching asks first, once per server and process, and downloads the whole file to cut
it locally where ranges are not served.
"""

from __future__ import annotations

import email.message
import http.cookiejar
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

_PAGE_TYPES = ("text/html", "application/xhtml+xml")
_RANGE_NOT_SATISFIABLE = 416

_answers: dict[str, bool] = {}
_lock = threading.Lock()


def serves_sections(
    url: str,
    timeout: float,
    *,
    headers: Mapping[str, str] | None = None,
    cookies: http.cookiejar.CookieJar | None = None,
) -> bool:
    """Whether a section of the media at ``url`` can be fetched with range requests.

    Asks the server for the first byte of ``url``: a 206 answer, or a web page (which yt-dlp
    extracts the media's own URL from), means yes; a file answered in full (200) means no, and
    so does a 416 (no usable ranges, or an empty file). The answer is kept for the server
    (scheme, host and port), but for a 416, which may be the file's own.

    Parameters
    ----------
    url : str
        An http(s) URL.
    timeout : float
        Seconds to wait for the answer.
    headers : mapping, optional
        Headers to send, such as the downloader's own ``User-Agent``.
    cookies : http.cookiejar.CookieJar, optional
        Cookies to send with the question, those the downloader sends.

    Returns
    -------
    bool

    Raises
    ------
    urllib.error.URLError
        An error status other than 416 (``HTTPError``) or no answer.
    http.client.HTTPException, OSError
        A broken answer.
    """
    parts = urllib.parse.urlsplit(url)
    server = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
    with _lock:
        known = _answers.get(server)
    if known is not None:
        return known
    try:
        status, answer_headers = ask_first_byte(url, timeout, headers=headers, cookies=cookies)
    except urllib.error.HTTPError as error:
        if error.code == _RANGE_NOT_SATISFIABLE:
            return False
        raise
    answer = status == 206 or answer_headers.get_content_type() in _PAGE_TYPES
    with _lock:
        _answers[server] = answer
    return answer


def ask_first_byte(
    url: str,
    timeout: float,
    *,
    headers: Mapping[str, str] | None = None,
    cookies: http.cookiejar.CookieJar | None = None,
) -> tuple[int, email.message.Message]:
    """The status and headers of the server's answer to a request for the first byte of
    ``url`` (``Range: bytes=0-0``), sent with ``headers`` and ``cookies``.

    Raises as :func:`serves_sections` does.
    """
    request = urllib.request.Request(url, headers={**(headers or {}), "Range": "bytes=0-0"})
    handlers = [] if cookies is None else [urllib.request.HTTPCookieProcessor(cookies)]
    with urllib.request.build_opener(*handlers).open(request, timeout=timeout) as response:
        return response.status, response.headers
