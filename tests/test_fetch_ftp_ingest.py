"""End to end: a store URL whose host cannot be reached (FTP connects when its filesystem is
built) fails its clip as a transient network error, and the other rows are committed."""

from __future__ import annotations

import csv
import socket
from pathlib import Path

import pytest

from tests.http_media_server import MediaServer
from tests.ingest_helpers import audiomill, ledger
from tests.media import write_media


@pytest.mark.slow
def test_ingest_commits_the_good_rows_beside_an_unreachable_ftp_row(
    media_server: MediaServer, tmp_path: Path
) -> None:
    write_media(media_server.root / "a.wav", 1.5, 8000)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        ftp = f"ftp://127.0.0.1:{sock.getsockname()[1]}/x.wav"
    segments = tmp_path / "list.csv"
    with open(segments, "w", newline="") as fh:
        csv.writer(fh).writerows([["url", "labels"], [media_server.url("a.wav"), "a"], [ftp, "x"]])
    out = tmp_path / "ds"
    args = ["ingest", "--segments", str(segments), "--out", str(out), "--sample-rate", "8000",
            "--clip-seconds", "1", "--retries", "0"]  # fmt: skip
    proc = audiomill(*args, check=False, env=None)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"network_error: {ftp}: [Errno 111] Connection refused" in proc.stderr
    rows = {row["source"]: row for row in ledger(out).values()}
    assert rows[media_server.url("a.wav")]["status"] == "ok"
    assert (rows[ftp]["status"], rows[ftp]["reason"], rows[ftp]["transient"]) == (
        "failed",
        "network_error",
        True,
    )
    assert rows[ftp]["detail"] == f"{ftp}: [Errno 111] Connection refused"
