"""Folders nobody may write into, root included, for tests of unwritable outputs."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def immutable(folder: Path) -> Iterator[Path]:
    """``folder`` made one nobody, root included, may write into (``chattr +i``: root ignores
    permission bits) for the block. Skipped only where chattr is missing or the file system
    refuses the attribute (the test machines and CI have both)."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available")
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"chattr +i is refused here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
