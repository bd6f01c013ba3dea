"""pipelines/stderr_filter.py: while any thread is inside a block of a shared filter, lines that
native code writes to C's stderr stream and the pattern matches are dropped; every other line,
whoever writes it, passes, and file descriptor 2 stays as it is."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SETUP = """
import ctypes, os, re, sys, threading, time
from pipelines.stderr_filter import StderrLineFilter

QUIET = StderrLineFilter(re.compile(rb"Note: "))
LIBC = ctypes.CDLL(None)
LIBC.fputs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]


def native(text: bytes) -> None:
    \"\"\"Write as a native library does: fputs(text, stderr).\"\"\"
    LIBC.fputs(text, ctypes.c_void_p.in_dll(LIBC, "stderr").value)
"""


def run(program: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SETUP + textwrap.dedent(program)],
        capture_output=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )


def test_threads_inside_and_outside_blocks_lose_no_line():
    done = run(
        """
        def decode(n):
            for i in range(200):
                with QUIET:
                    native(b"Note: Trying to resync...\\n")
                    native(f"decoder {n} line {i}\\n".encode())
                    time.sleep(0.0005 * (n % 2))

        def talk():
            for i in range(300):
                sys.stderr.write(f"Note: ours {i}\\n")  # Python's own lines are never dropped
                time.sleep(0.0002)

        threads = [threading.Thread(target=decode, args=(n,)) for n in range(4)]
        threads.append(threading.Thread(target=talk))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        native(b"Note: outside any block\\n")
        """
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.decode().splitlines()
    expected = {f"decoder {n} line {i}" for n in range(4) for i in range(200)}
    expected |= {f"Note: ours {i}" for i in range(300)} | {"Note: outside any block"}
    assert sorted(lines) == sorted(expected)
    ours = [line for line in lines if line.startswith("Note: ours ")]
    assert ours == [f"Note: ours {i}" for i in range(300)]


def test_file_descriptor_2_is_left_as_it_is():
    done = run(
        """
        before = os.fstat(2).st_ino
        with QUIET:
            inside = os.fstat(2).st_ino
            native(b"Note: dropped\\n")
        print(before == inside == os.fstat(2).st_ino)
        """
    )
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == (b"True\n", b"")


def test_what_came_before_a_crash_in_a_block_still_arrives():
    done = run(
        """
        with QUIET:
            native(b"Note: Trying to resync...\\nFatal error: the decoder crashed\\n")
            os.abort()
        """
    )
    assert done.returncode == -6
    assert done.stderr.decode().splitlines() == ["Fatal error: the decoder crashed"]


def test_a_block_writes_to_stderr_as_it_is_now(tmp_path: Path):
    log = tmp_path / "log.txt"
    done = run(
        f"""
        with QUIET:
            native(b"Note: one\\nto the first stderr\\n")
        fd = os.open({str(log)!r}, os.O_WRONLY | os.O_CREAT)
        os.dup2(fd, 2)
        with QUIET:
            native(b"Note: two\\nto the log\\n")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == b"to the first stderr\n"
    deadline = time.monotonic() + 10  # the filter may pass it on after the process has ended
    while not log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_bytes() == b"to the log\n"


def test_a_forked_child_writes_past_its_parents_filter():
    done = run(
        """
        with QUIET:
            pid = os.fork()
            if pid == 0:
                native(b"Note: from the child\\n")
                os._exit(0)
            os.waitpid(pid, 0)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == b"Note: from the child\n"
