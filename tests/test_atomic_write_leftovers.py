"""The atomic writes of runs, evaluations, exports and the scores cache
(:func:`modeling.runs.write_atomic`, :func:`modeling.runs.staged_files`) remove the temporaries
of the same files that writes killed half-way left (``.metrics.json.XXXX.tmp``, a partial
``.scores.npz.XXXX.tmp`` as large as the scores): a crash leaves only temporary files, which the
next run removes (DESIGN.md §3). A temporary that a live write holds (its ``flock``) stays, and
so do names that no write makes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from modeling.runs import write_all_atomic, write_atomic

HEX = "5f0c3c6ad0b84f7e9d1c2b3a4e5f6071"
KILLED = (
    f".metrics.json.{HEX}.tmp",
    ".scores.npz.k3v9_x0q.tmp",  # as mkstemp named them
    f".report.html.{HEX[::-1]}.tmp",
)
USERS = (
    f".notes.txt.{HEX}.tmp",
    ".metrics.json.old.tmp",
    f"metrics.json.{HEX}.tmp",
    f".scores.npz.{HEX}.bak",
)
HOLD = """
import fcntl, sys, time
stream = open(sys.argv[1], "xb")
fcntl.flock(stream, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""


def _plant(folder: Path, names: tuple[str, ...]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"partial")


def test_writes_remove_the_temporaries_killed_writes_left(tmp_path: Path) -> None:
    _plant(tmp_path, KILLED + USERS)
    write_all_atomic({tmp_path / "metrics.json": b"{}", tmp_path / "report.html": b"<p>"})
    write_atomic(tmp_path / "scores.npz", b"npz")
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["metrics.json", "report.html", "scores.npz", *USERS]
    )


def test_a_temporary_a_live_write_holds_stays(tmp_path: Path) -> None:
    live = tmp_path / f".metrics.json.{HEX}.tmp"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(live)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        write_all_atomic({tmp_path / "metrics.json": b"{}"})
        assert live.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    write_atomic(tmp_path / "metrics.json", b"{}")
    assert os.listdir(tmp_path) == ["metrics.json"]
