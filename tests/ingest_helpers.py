"""Helpers for the ingest end-to-end tests: run the CLI, read back datasets."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.http_media_server import MediaServer, Script
from tests.media import write_media

REPO = Path(__file__).resolve().parents[1]

AS_A_TERMINAL_RUNS_IT = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('workflows', run_name='__main__', alter_sys=True)"
)
"""``python -m workflows`` with Ctrl-C raising KeyboardInterrupt, as in a terminal's foreground
job, however pytest was started: a test run started in the background by a shell without job
control (``pytest ... &`` in a script, a CI runner) ignores SIGINT, its children inherit that,
and Python then never installs its handler, so the ingest would rightly not stop."""


def group_members(pgid: int) -> list[int]:
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


def beam_workers(pgid: int) -> list[int]:
    """The Beam worker processes (``pipelines.beam_worker``) running in process group ``pgid``."""
    found = []
    for pid in group_members(pgid):
        try:
            if b"pipelines.beam_worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def start_as_a_terminal(args: list[str]) -> subprocess.Popen:
    """Start ``audiomill ARGS`` as a terminal's foreground job (:data:`AS_A_TERMINAL_RUNS_IT`),
    in a process group of its own (its id is the process's), with stderr piped as text."""
    return subprocess.Popen(
        [sys.executable, "-c", AS_A_TERMINAL_RUNS_IT, *args],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@contextlib.contextmanager
def running_as_a_terminal(args: list[str]) -> Iterator[subprocess.Popen]:
    """:func:`start_as_a_terminal`, with every process left in its group killed at the end."""
    proc = start_as_a_terminal(args)
    try:
        yield proc
    finally:
        if group_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def interrupt_quietly(
    proc: subprocess.Popen,
    *,
    group: bool,
    timeout: float,
    noise: tuple[str, ...] = ("Traceback", "Exception in thread"),
) -> None:
    """Send SIGINT to the process group of the ingest ``proc`` (as a terminal's Ctrl-C does)
    or, without ``group``, to ``proc`` alone, and check that it ends within ``timeout`` seconds
    with status 130 and the one line that says how to resume last, that no line of its stderr
    holds any of ``noise``, and that no process of its group is left."""
    if group:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {timeout} s after SIGINT")
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted: re-run the same command to resume"
    assert not [line for line in stderr.splitlines() if any(n in line for n in noise)], stderr
    assert group_members(proc.pid) == []


def slow_mirror_ingest(server: MediaServer, work: Path, n_clips: int) -> tuple[list[str], Path]:
    """Serve ``n_clips`` 2 s clips from ``server`` 0.4 s late each (a slow mirror), and write a
    manifest of their URLs in ``work``.

    Returns
    -------
    tuple of (list of str, Path)
        The arguments of an ingest of the manifest on 2 workers, and its dataset folder.
    """
    rows = []
    for i in range(n_clips):
        write_media(server.root / f"c{i:02d}.wav", 2.0, 16000, 1, 300 + 20 * i, i)
        server.script(f"/c{i:02d}.wav", Script(delay=0.4))
        rows.append([server.url(f"c{i:02d}.wav"), "dog"])
    segs = work / "manifest.csv"
    with open(segs, "w", newline="") as fh:
        csv.writer(fh).writerows([["url", "labels"], *rows])
    out = work / "ds"
    args = ["ingest", "--segments", str(segs), "--out", str(out), "--sample-rate", "16000",
            "--clip-seconds", "2", "--workers", "2"]  # fmt: skip
    return args, out


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a child ``audiomill`` process (no analytics, quiet TF)."""
    env = dict(os.environ)
    env.update(GX_ANALYTICS_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def audiomill(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 300,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``audiomill ARGS`` in a child process and return the completed process."""
    proc = subprocess.run(
        [sys.executable, "-m", "workflows", *args],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"audiomill {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-6000:]}"
        )
    return proc


def manifest(dataset: Path) -> dict:
    """The dataset's manifest.json."""
    return json.loads((dataset / "manifest.json").read_text())


def ledger(dataset: Path, split: str = "train") -> dict[str, dict]:
    """One ledger row per clip (ok beats failures, then latest)."""
    from schemas.ledger import latest_rows

    table = pq.read_table(dataset / "ledger" / split)
    return latest_rows(table)


def hdf5_clips(dataset: Path, split: str = "train") -> dict[str, dict]:
    """clip_id -> {target, num_samples, waveform, shard} for every committed HDF5 row."""
    out: dict[str, dict] = {}
    for shard in manifest(dataset)["splits"][split]["shards"]:
        with h5py.File(dataset / shard["files"]["hdf5"]["path"], "r") as hf:
            ids = hf["clip_id"].asstr()[:]
            for i, clip_id in enumerate(ids):
                assert clip_id not in out, f"{clip_id} in two shards"
                out[clip_id] = {
                    "labels": np.flatnonzero(hf["target"][i]).tolist(),
                    "num_samples": int(hf["num_samples"][i]),
                    "waveform": hf["waveform"][i],
                    "audio_name": hf["audio_name"][i].decode(),
                    "shard": shard["index"],
                }
    return out
