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
