"""pipelines/process_exit.py: the collections of interpreter shutdown are skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROGRAM = """
import atexit, gc
# Registered first, so it runs last: after the freeze, before the interpreter's own teardown.
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))
from pipelines.process_exit import exit_without_collecting
before = atexit._ncallbacks()
exit_without_collecting()
exit_without_collecting()
print("handlers added:", atexit._ncallbacks() - before, flush=True)
print("frozen now:", gc.get_freeze_count() > 0, flush=True)
"""


def test_exit_freezes_every_object_and_registers_once() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parents[1])  # fmt: skip
    assert done.stdout.strip().splitlines()[-3:] == [
        "handlers added: 1",
        "frozen now: False",
        "frozen at exit: True",
    ]


EXIT_NOW = """
import atexit, sys, threading, time
from pathlib import Path
from pipelines.process_exit import exit_now
out = Path(sys.argv[1])
def late_writer():
    time.sleep(0.3)
    (out / "thread").write_text("joined")
threading.Thread(target=late_writer).start()  # not a daemon: shutdown waits for it
atexit.register(lambda: (out / "atexit").write_text("ran"))
sys.stdout.write("unflushed output")
exit_now(int(sys.argv[2]) if sys.argv[2].isdigit() else sys.argv[2])
print("never")
"""


def test_exit_now_waits_for_threads_runs_atexit_and_keeps_the_status(tmp_path: Path) -> None:
    for status, code in (("0", 0), ("3", 3), ("bad input", 1)):
        out = tmp_path / status.replace(" ", "_")
        out.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", EXIT_NOW, str(out), status],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parents[1],
        )
        assert done.returncode == code
        assert done.stdout == "unflushed output"
        assert done.stderr == ("bad input\n" if code == 1 else "")
        assert (out / "thread").read_text() == "joined"
        assert (out / "atexit").read_text() == "ran"
