"""pipelines/page_cache.py: written and hashed streams leave the page cache; hashes are exact."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import mmap
import os
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipelines import page_cache
from pipelines.page_cache import (
    PAGE,
    drop_cached,
    hash_file_uncached,
    start_writeback,
    write_behind,
)
from pipelines.shard_writers import HDF5ShardWriter, ShardRow

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux calls")


def resident_pages(path: Path) -> int:
    """Pages of ``path`` in the page cache (``mincore`` on a mapping that touches none)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    size = path.stat().st_size
    with open(path, "r+b") as fh, mmap.mmap(fh.fileno(), size) as mapped:
        address = ctypes.addressof(ctypes.c_char.from_buffer(mapped))
        pages = -(-size // PAGE)
        vec = ctypes.create_string_buffer(pages)
        try:
            assert libc.mincore(ctypes.c_void_p(address), size, vec) == 0, ctypes.get_errno()
        finally:
            address = None
        return sum(byte & 1 for byte in vec.raw)


def cached_file(path: Path, nbytes: int) -> bytes:
    data = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    path.write_bytes(data)
    return data


@linux_only
def test_drop_cached_after_writing_leaves_no_page(tmp_path: Path):
    path = tmp_path / "f.bin"
    cached_file(path, 4 << 20)
    assert resident_pages(path) == (4 << 20) // PAGE
    fd = os.open(path, os.O_RDWR)
    try:
        assert start_writeback(fd, 0, 4 << 20)
        assert drop_cached(fd, 1, (4 << 20) - 2, wait_written=True)  # widened to whole pages
    finally:
        os.close(fd)
    assert resident_pages(path) == 0
    assert (
        hashlib.sha256(path.read_bytes()).digest()
        == hashlib.sha256(
            np.random.default_rng(0).integers(0, 256, 4 << 20, dtype=np.uint8).tobytes()
        ).digest()
    )


@linux_only
def test_start_writeback_says_when_the_kernel_refuses(tmp_path: Path):
    read_end, write_end = os.pipe()
    try:
        assert not start_writeback(write_end, 0, 10)  # ESPIPE: harmless, reported
    finally:
        os.close(read_end)
        os.close(write_end)


@linux_only
def test_write_behind_keeps_only_its_window_cached(tmp_path: Path):
    path = tmp_path / "rows.bin"
    row = np.arange(250_000, dtype="<i2")  # 500,000 bytes: rows straddle pages
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        for i in range(40):
            os.pwrite(fd, row.data, i * row.nbytes)
            write_behind(fd, i * row.nbytes, row.nbytes, window=4 << 20)
        # 20 MB were written; the window stays, and the 2 MB blocks it starts in and ends in.
        assert resident_pages(path) * PAGE <= (4 << 20) + 2 * (2 << 20)
        drop_cached(fd, 0, 40 * row.nbytes, wait_written=True)
    finally:
        os.close(fd)
    assert resident_pages(path) == 0
    np.testing.assert_array_equal(np.fromfile(path, dtype="<i2").reshape(40, -1)[-1], row)


def test_write_behind_from_threads_in_any_order(tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "rows.bin"
    rows = np.arange(64 * 1000, dtype="<i2").reshape(64, 1000)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)

    def write(i: int) -> None:
        os.pwrite(fd, rows[i].data, i * rows[i].nbytes)
        write_behind(fd, i * rows[i].nbytes, rows[i].nbytes, window=10_000)

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, np.random.default_rng(1).permutation(64)))
    finally:
        os.close(fd)
    np.testing.assert_array_equal(np.fromfile(path, dtype="<i2").reshape(64, 1000), rows)


@pytest.mark.parametrize("nbytes", [0, 1, PAGE - 1, PAGE, 3 * 8192 + 5, 5 * 8192])
def test_hash_file_uncached_equals_hashlib(tmp_path: Path, nbytes: int):
    path = tmp_path / "f.bin"
    data = cached_file(path, nbytes)
    assert hash_file_uncached(path, chunk=8192) == (hashlib.sha256(data).hexdigest(), nbytes)
    assert hash_file_uncached(path, "md5")[0] == hashlib.md5(data).hexdigest()


@linux_only
def test_hash_file_uncached_without_o_direct_drops_what_it_read(tmp_path: Path, no_o_direct):
    path = tmp_path / "f.bin"
    data = cached_file(path, 1 << 20)
    assert hash_file_uncached(path, chunk=64 << 10) == (hashlib.sha256(data).hexdigest(), 1 << 20)
    assert resident_pages(path) == 0


@linux_only
def test_hash_file_uncached_falls_back_when_direct_reads_fail(tmp_path: Path, monkeypatch):
    path = tmp_path / "f.bin"
    data = cached_file(path, 100_000)
    real_open, real_preadv = os.open, os.preadv
    calls = []

    def open_as_if_direct(p, flags, *args):  # whatever tmp_path's file system says of O_DIRECT
        return real_open(p, flags & ~os.O_DIRECT, *args)

    def refuse_first(fd, buffers, offset):
        calls.append(offset)
        if len(calls) == 1:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(page_cache.os, "open", open_as_if_direct)
    monkeypatch.setattr(page_cache.os, "preadv", refuse_first)
    assert hash_file_uncached(path, chunk=16384) == (hashlib.sha256(data).hexdigest(), 100_000)
    assert len(calls) > 1


def test_hash_file_uncached_refuses_a_file_that_shrinks(tmp_path: Path, monkeypatch):
    path = tmp_path / "f.bin"
    cached_file(path, 10_000)
    real_fstat = os.fstat

    class Grown:
        def __init__(self, st: os.stat_result) -> None:
            self.st_size = st.st_size + 5000

    monkeypatch.setattr(page_cache.os, "fstat", lambda fd: Grown(real_fstat(fd)))
    with pytest.raises(OSError, match=r"f\.bin: file shrank"):
        hash_file_uncached(path, chunk=8192)


def test_hash_file_uncached_names_a_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        hash_file_uncached(tmp_path / "absent.bin")


@linux_only
def test_hdf5_writer_behind_writes_the_same_rows_and_leaves_them_uncached(tmp_path: Path):
    # Rows of 96,000 bytes are not whole 512-byte blocks: an uncached writer writes them
    # behind (O_DIRECT rows are tested in test_direct_io.py).
    rows = np.random.default_rng(2).integers(-3000, 3000, (24, 48_000), dtype=np.int16)
    paths = {}
    for behind in (False, True):
        path = paths[behind] = tmp_path / f"shard-{behind}.h5"
        writer = HDF5ShardWriter(
            str(path),
            [ShardRow(f"c{i}", f"c{i}.wav", (i % 3,), None) for i in range(24)],
            num_samples=48_000,
            num_classes=3,
            sample_rate=16000,
            uncached=behind,
        )
        for i in np.random.default_rng(3).permutation(24) if behind else range(24):
            writer.write_waveform(int(i), rows[i], 48_000)
        writer.close()
    waveform_pages = rows.nbytes // PAGE
    assert resident_pages(paths[True]) < waveform_pages // 4 < resident_pages(paths[False])
    with h5py.File(paths[True]) as hf:
        np.testing.assert_array_equal(hf["waveform"][:], rows)
