"""pipelines/file_io.py: positioned writes and reads finish buffers or stop at the end."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipelines import file_io
from pipelines.file_io import pread_into, pwrite_all


def test_partial_kernel_writes_and_reads_are_finished(tmp_path: Path, monkeypatch):
    real_pwrite, real_preadv = os.pwrite, os.preadv
    # The kernel moves at most 3 bytes per call here: the loops must carry on.
    monkeypatch.setattr(file_io.os, "pwrite", lambda fd, v, off: real_pwrite(fd, v[:3], off))
    monkeypatch.setattr(
        file_io.os, "preadv", lambda fd, bufs, off: real_preadv(fd, [bufs[0][:3]], off)
    )
    data = np.arange(10, dtype="<i2")
    fd = os.open(tmp_path / "rows.bin", os.O_RDWR | os.O_CREAT)
    try:
        pwrite_all(fd, data, 4)
        out = np.empty(10, dtype="<i2")
        assert pread_into(fd, out, 4) == 20
    finally:
        os.close(fd)
    np.testing.assert_array_equal(out, data)
    assert (tmp_path / "rows.bin").read_bytes()[:4] == b"\0" * 4


def test_pread_into_stops_where_the_file_ends(tmp_path: Path):
    path = tmp_path / "short.bin"
    path.write_bytes(bytes(range(6)))
    fd = os.open(path, os.O_RDONLY)
    try:
        out = np.zeros(8, dtype=np.uint8)
        assert pread_into(fd, out, 2) == 4
        assert pread_into(fd, out, 6) == 0
    finally:
        os.close(fd)
    assert list(out[:4]) == [2, 3, 4, 5]
