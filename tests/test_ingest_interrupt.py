"""Ctrl-C in an ingest whose clips Beam's worker processes fetch: one line, then a clean resume."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.http_media_server import MediaServer, Script
from tests.ingest_helpers import audiomill, cli_env, ledger, manifest
from tests.media import write_media

N_CLIPS = 24

AS_A_TERMINAL_RUNS_IT = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('workflows', run_name='__main__', alter_sys=True)"
)
"""``python -m workflows`` with Ctrl-C raising KeyboardInterrupt, as in a terminal's foreground
job, however pytest was started: a test run started in the background by a shell without job
control (``pytest ... &`` in a script, a CI runner) ignores SIGINT, its children inherit that,
and Python then never installs its handler, so the ingest would rightly not stop."""


def _group_members(pgid: int) -> list[int]:
    """The processes still running in process group ``pgid`` (not those that have ended and
    wait for their new parent, init, to collect their exit status)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_quietly_and_the_rerun_finishes(tmp_path: Path):
    with MediaServer(tmp_path / "www") as server:
        rows = []
        for i in range(N_CLIPS):
            write_media(server.root / f"c{i:02d}.wav", 2.0, 16000, 1, 300 + 20 * i, i)
            server.script(f"/c{i:02d}.wav", Script(delay=0.4))  # a slow mirror
            rows.append([server.url(f"c{i:02d}.wav"), "dog"])
        segs = tmp_path / "manifest.csv"
        with open(segs, "w", newline="") as fh:
            csv.writer(fh).writerows([["url", "labels"], *rows])
        out = tmp_path / "ds"
        args = ["ingest", "--segments", str(segs), "--out", str(out), "--sample-rate", "16000",
                "--clip-seconds", "2", "--workers", "2"]  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-c", AS_A_TERMINAL_RUNS_IT, *args],
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        staged = out / ".staging" / "train" / "clips"
        deadline = time.time() + 240
        while proc.poll() is None and time.time() < deadline:
            if staged.is_dir() and len(list(staged.iterdir())) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "ingest finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C does
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert stderr.strip().splitlines()[-1] == "interrupted: re-run the same command to resume"
        assert "Traceback" not in stderr and "Exception in thread" not in stderr, stderr
        assert _group_members(proc.pid) == []
        audiomill(*args)
    failed = {k: row["detail"] for k, row in ledger(out).items() if row["status"] != "ok"}
    assert manifest(out)["splits"]["train"]["num_clips"] == N_CLIPS, failed
    assert len(ledger(out)) == N_CLIPS
