"""A threaded HTTP media server on 127.0.0.1 for tests, with Range support (or none) and scripted
faults.

Use the ``media_server`` fixture (``from tests.http_media_server import media_server``) or the
``MediaServer`` context manager directly::

    with MediaServer(root) as server:
        server.script("/a.wav", Script(status=429, times=2))
        url = server.url("a.wav")
"""

from __future__ import annotations

import gzip
import mimetypes
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest

CONTENT_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".aiff": "audio/aiff",
    ".aif": "audio/aiff",
}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class Script:
    """A scripted behaviour for one path.

    Parameters
    ----------
    status : int or None
        Answer with this status code (and no media) instead of serving the file.
    retry_after : str or None
        With ``status``: the ``Retry-After`` header to send (seconds, or an HTTP date).
    skip : int
        Serve this many requests normally before the behaviour starts.
    times : int or None
        Apply the behaviour to this many requests, then serve normally; None means forever.
    truncate : bool
        Declare the full Content-Length but send only half of the body, then close.
    stall : float
        With ``truncate``: seconds to wait after the half body before closing (to trip a
        client's read timeout mid-body).
    empty : bool
        Serve a 200 with a zero-length body whatever the file holds.
    delay : float
        Seconds to wait before answering (to trip client timeouts).
    cookie : str or None
        Answer 403 to requests that do not carry this cookie (``name=value``).
    gzip : bool
        Send the body gzip-compressed (``Content-Encoding: gzip``), ranges included, as some
        misconfigured servers do.
    refuse_ranges : bool
        Answer 416 to every request with a ``Range`` header, as a server whose ranges are broken.
    """

    status: int | None = None
    retry_after: str | None = None
    skip: int = 0
    times: int | None = None
    truncate: bool = False
    stall: float = 0.0
    empty: bool = False
    delay: float = 0.0
    cookie: str | None = None
    gzip: bool = False
    refuse_ranges: bool = False


class MediaServer:
    """Serve files under ``root`` over HTTP on an ephemeral port of 127.0.0.1.

    Parameters
    ----------
    root : Path
        Directory whose files are served; URL paths map to paths relative to it.
    ranges : bool
        Answer ``Range`` requests with the range (206); False answers every request with the
        whole file (200), as ``python -m http.server`` and many static servers do.
    """

    def __init__(self, root: Path, ranges: bool = True) -> None:
        self.root = Path(root)
        self.ranges = ranges
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._scripts: dict[str, Script] = {}
        self._seen: dict[str, int] = {}
        self._log: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, name: str) -> str:
        """Return the URL serving ``root / name``."""
        return f"{self.base_url}/{quote(name.lstrip('/'))}"

    def script(self, path: str, behaviour: Script) -> None:
        """Attach ``behaviour`` to URL path ``path`` (e.g. ``"/a.wav"``), replacing any earlier."""
        path = "/" + path.lstrip("/")
        with self._lock:
            self._scripts[path] = behaviour
            self._seen[path] = 0

    @property
    def requests(self) -> list[tuple[str, int]]:
        """The ``(path, status)`` of every request answered so far, in order."""
        with self._lock:
            return list(self._log)

    def hits(self, path: str) -> int:
        """How many requests were made for URL path ``path``."""
        path = "/" + path.lstrip("/")
        return sum(1 for p, _ in self.requests if p == path)

    def start(self) -> MediaServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, waking any handler that is deliberately stalling."""
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> MediaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take(self, path: str) -> Script | None:
        """Count this request and return the behaviour it gets (None: serve normally)."""
        with self._lock:
            script = self._scripts.get(path)
            seen = self._seen.get(path, 0)
            self._seen[path] = seen + 1
            if script is None or seen < script.skip:
                return None
            if script.times is not None and seen - script.skip >= script.times:
                return None
            return script

    def _record(self, path: str, status: int) -> None:
        with self._lock:
            self._log.append((path, status))


def _handler_for(server: MediaServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def log_message(self, format: str, *args: object) -> None:
            """Silence the default stderr log; the server keeps its own request log."""

        def _answer(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            script = server._take(path) or Script()
            if script.delay and server._stop.wait(script.delay):
                return
            if script.status is not None:
                retry_after = (
                    {} if script.retry_after is None else {"Retry-After": script.retry_after}
                )
                self._empty_reply(path, script.status, retry_after)
                return
            sent = [c.strip() for c in self.headers.get("Cookie", "").split(";")]
            if script.cookie is not None and script.cookie not in sent:
                self._empty_reply(path, 403)
                return
            file = (server.root / path.lstrip("/")).resolve()
            if not file.is_relative_to(server.root.resolve()) or not file.is_file():
                self._empty_reply(path, 404)
                return
            data = b"" if script.empty else file.read_bytes()
            start, end, status = 0, len(data), 200
            if script.refuse_ranges and "Range" in self.headers:
                self._empty_reply(path, 416, {"Content-Range": f"bytes */{len(data)}"})
                return
            match = _RANGE.match(self.headers.get("Range", "")) if server.ranges else None
            if match and data:
                first, last = match.groups()
                if first:
                    start = int(first)
                    end = min(int(last) + 1, len(data)) if last else len(data)
                elif last:
                    start = max(len(data) - int(last), 0)
                if start >= len(data) or start >= end:
                    self._empty_reply(path, 416, {"Content-Range": f"bytes */{len(data)}"})
                    return
                status = 206
            chunk = gzip.compress(data[start:end]) if script.gzip else data[start:end]
            server._record(path, status)
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPES.get(file.suffix.lower(), _guess(file)))
            self.send_header("Content-Length", str(len(chunk)))
            if server.ranges:
                self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            if script.gzip:
                self.send_header("Content-Encoding", "gzip")
            if script.truncate:
                self.send_header("Connection", "close")
            self.end_headers()
            if not body:
                return
            if script.truncate:
                chunk = chunk[: len(chunk) // 2]
                self.close_connection = True
            try:
                self.wfile.write(chunk)
                if script.truncate and script.stall:
                    self.wfile.flush()
                    server._stop.wait(script.stall)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _empty_reply(
            self, path: str, status: int, headers: dict[str, str] | None = None
        ) -> None:
            server._record(path, status)
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def _guess(file: Path) -> str:
    return mimetypes.guess_type(file.name)[0] or "application/octet-stream"


@pytest.fixture
def media_server(tmp_path: Path) -> Iterator[MediaServer]:
    """A running ``MediaServer`` serving ``tmp_path / "www"``."""
    with MediaServer(tmp_path / "www") as server:
        yield server
