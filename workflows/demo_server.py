"""Serve the demo audio on 127.0.0.1 and ingest it through the real yt-dlp download path.

The quickstart must work offline, yet exercise what users run against YouTube or a web server:
:func:`ingest_demo_over_http` starts a local HTTP server over the demo folder, writes a manifest
of ``http://127.0.0.1:PORT/...`` URLs, and runs ``audiomill ingest`` on it: yt-dlp fetches every
clip, ffmpeg and soundfile decode it, and the broken files land in the ledger. The ledger records
each clip's URL, and ingest refuses a committed clip named with another one, so every run over a
demo folder serves on the port its first run took (:data:`PORT_FILE`): a re-run resumes.
"""

from __future__ import annotations

import csv
import errno
import functools
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

from schemas.segments import sanitize_clip_id
from workflows.cli_common import fail

PORT_FILE = "server-port"
"""The file of a demo folder that records the port its first ingest served the audio on."""


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serve files without logging every request to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        return


class _Server(ThreadingHTTPServer):
    """A threaded server that ignores clients hanging up early (yt-dlp probes, then closes)."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve_directory(root: str | Path, port: int = 0) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1 while the block runs.

    Parameters
    ----------
    root : str or Path
    port : int
        The port to serve on; 0 takes a free one.

    Yields
    ------
    str
        The base URL, ``http://127.0.0.1:PORT/``.

    Raises
    ------
    OSError
        When ``port`` is in use (``errno.EADDRINUSE``).
    """
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = _Server(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def url_manifest(manifest: str | Path, base_url: str, out: str | Path) -> Path:
    """Rewrite a path manifest as URLs under ``base_url``, keeping ids, labels and splits.

    Clip ids are derived from the paths (not the URLs), so they do not depend on the port.
    """
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["url", "clip_id", "labels", "split"])
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    "url": base_url + quote(row["path"]),
                    "clip_id": sanitize_clip_id(row["path"]),
                    "labels": row.get("labels", ""),
                    "split": row.get("split", ""),
                }
            )
    return Path(out)


@contextmanager
def _serve_demo(demo: Path) -> Iterator[str]:
    """Serve ``demo`` on the port recorded in its :data:`PORT_FILE`, or on a free one that is
    then recorded there; exit with one error line when the recorded port is in use."""
    record = demo / PORT_FILE
    port = int(record.read_text()) if record.is_file() else 0
    with ExitStack() as stack:
        try:
            base = stack.enter_context(serve_directory(demo, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            fail(
                f"{record}: port {port} of 127.0.0.1, which the demo's dataset was ingested "
                "from, is in use now; free it and run again to resume, or use a new --out",
                code=1,
            )
        if not port:
            staged = record.with_name(f".{PORT_FILE}.tmp")
            staged.write_text(f"{urlsplit(base).port}\n")
            os.replace(staged, record)
        yield base


def ingest_demo_over_http(
    demo_dir: str,
    out: str,
    workers: int = 2,
    sample_rate: int = 16000,
    clip_seconds: float = 4.0,
    formats: str = "hdf5,parquet",
    shard_clips: int = 8,
) -> dict:
    """Serve ``demo_dir`` on loopback and run ``audiomill ingest`` on its URLs.

    Parameters
    ----------
    demo_dir : str
        A folder written by :func:`workflows.demo.make_demo`.
    out : str
        Dataset to write (re-running resumes it).
    workers, sample_rate, clip_seconds, formats, shard_clips
        As for ``audiomill ingest``.

    Returns
    -------
    dict
        ``clips`` committed and ``failures`` of this run, and ``dataset_clips`` in the
        dataset, as ``ingest`` returns them.
    """
    from workflows.runner import invoke_audiomill

    demo = Path(demo_dir)
    with _serve_demo(demo) as base:
        manifest = url_manifest(demo / "manifest.csv", base, demo / "url-manifest.csv")
        argv = [
            "ingest",
            "--segments",
            str(manifest),
            "--classes",
            str(demo / "classes.csv"),
            "--out",
            out,
            "--format",
            formats,
            "--shard-clips",
            str(shard_clips),
            "--clip-seconds",
            str(clip_seconds),
            "--sample-rate",
            str(sample_rate),
            "--workers",
            str(workers),
            "--retries",
            "1",
        ]
        return invoke_audiomill(*argv)
