"""pipelines/direct_io.py: rows written past the page cache, on a thread of the writer's own."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipelines import direct_io
from pipelines.direct_io import BLOCK_BYTES, WRITES_IN_FLIGHT, DirectRowWriter, UncachedRows
from pipelines.file_io import pwrite_all
from pipelines.shard_writers import DATA_ALIGN, HDF5ShardWriter, ShardRow

ROW_BYTES = 8 * BLOCK_BYTES


def blank_file(path: Path, nbytes: int) -> Path:
    path.write_bytes(b"\0" * nbytes)
    return path


def file_system_takes_o_direct(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_DIRECT))
    except OSError as exc:
        assert exc.errno == errno.EINVAL
        return False
    return True


def rows(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(-3000, 3000, (n, ROW_BYTES // 2), dtype="<i2")


def buffered_into(path: Path, calls: list[int] | None = None):
    fd = os.open(path, os.O_WRONLY)

    def write(view: memoryview, offset: int) -> None:
        if calls is not None:
            calls.append(offset)
        pwrite_all(fd, view, offset)

    return fd, write


def plain_writer(path: Path, fallback, depth: int = WRITES_IN_FLIGHT) -> DirectRowWriter:
    """A writer on a descriptor without ``O_DIRECT``: the same code path on any file system."""
    return DirectRowWriter(os.open(path, os.O_WRONLY), ROW_BYTES, fallback, depth)


def test_open_uses_o_direct_where_the_file_system_takes_it(tmp_path: Path):
    path = blank_file(tmp_path / "f.bin", 4 * ROW_BYTES)
    writer = DirectRowWriter.open(str(path), 0, ROW_BYTES, lambda view, offset: None)
    if not file_system_takes_o_direct(path):
        assert writer is None
        return
    try:
        assert fcntl.fcntl(writer._fd, fcntl.F_GETFL) & os.O_DIRECT
        data = rows(4)
        for i in range(4):
            writer.submit(data[i], i * ROW_BYTES)
        writer.flush()
        assert writer.direct
    finally:
        writer.close()
    assert path.read_bytes() == data.tobytes()


@pytest.mark.parametrize(("first_offset", "row_bytes"), [(0, 1000), (100, ROW_BYTES), (0, 0)])
def test_open_refuses_rows_off_block_boundaries(tmp_path: Path, first_offset, row_bytes):
    path = blank_file(tmp_path / "f.bin", 4 * ROW_BYTES)
    assert DirectRowWriter.open(str(path), first_offset, row_bytes, print) is None


def test_open_gives_none_where_the_file_system_refuses_o_direct(tmp_path: Path, no_o_direct):
    path = blank_file(tmp_path / "f.bin", ROW_BYTES)
    assert DirectRowWriter.open(str(path), 0, ROW_BYTES, print) is None


def test_open_raises_for_a_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        DirectRowWriter.open(str(tmp_path / "absent.bin"), 0, ROW_BYTES, print)


def test_rows_from_threads_in_any_order_land_at_their_offsets(tmp_path: Path):
    path = blank_file(tmp_path / "f.bin", 40 * ROW_BYTES)
    data = rows(40)
    writer = DirectRowWriter.open(str(path), 0, ROW_BYTES, print) or plain_writer(path, print)
    order = np.random.default_rng(1).permutation(40)
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda i: writer.submit(data[i], int(i) * ROW_BYTES), order))
    writer.flush()
    writer.close()
    assert path.read_bytes() == data.tobytes()


def test_rows_refused_as_unaligned_go_to_the_fallback_from_then_on(tmp_path: Path, monkeypatch):
    path = blank_file(tmp_path / "f.bin", 5 * ROW_BYTES)
    data = rows(5)
    calls: list[int] = []
    fd, fallback = buffered_into(path, calls)
    writer = plain_writer(path, fallback)
    real_pwrite = os.pwrite

    def refuse_from_row_2(fd_, view, offset):
        if fd_ != fd and offset >= 2 * ROW_BYTES:  # as a 4096-byte-sector disk refuses rows
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd_, view, offset)

    monkeypatch.setattr(direct_io.os, "pwrite", refuse_from_row_2)
    for i in range(5):
        writer.submit(data[i], i * ROW_BYTES)
    writer.flush()
    writer.close()
    os.close(fd)
    assert not writer.direct
    assert calls == [i * ROW_BYTES for i in (2, 3, 4)]
    assert path.read_bytes() == data.tobytes()


def test_a_failed_write_is_raised_by_flush_and_by_the_next_submit(tmp_path: Path, monkeypatch):
    path = blank_file(tmp_path / "f.bin", 3 * ROW_BYTES)
    writer = plain_writer(path, print)

    def disk_full(fd, view, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(direct_io.os, "pwrite", disk_full)
    writer.submit(rows(1)[0], 0)
    with pytest.raises(OSError, match="No space left"):
        writer.flush()
    with pytest.raises(OSError, match="No space left"):
        writer.submit(rows(1)[0], ROW_BYTES)
    writer.close()


def test_submit_refuses_a_row_of_another_size(tmp_path: Path):
    writer = plain_writer(blank_file(tmp_path / "f.bin", ROW_BYTES), print)
    with pytest.raises(ValueError, match=f"a row is {ROW_BYTES} bytes, got {ROW_BYTES - 2}"):
        writer.submit(np.zeros(ROW_BYTES // 2 - 1, "<i2"), 0)
    writer.close()


def test_rows_in_flight_are_bounded_by_the_buffers(tmp_path: Path, monkeypatch):
    path = blank_file(tmp_path / "f.bin", 4 * ROW_BYTES)
    writer = plain_writer(path, print, depth=2)
    disk = threading.Event()
    real_pwrite = os.pwrite

    def slow_disk(fd, view, offset):
        disk.wait()
        return real_pwrite(fd, view, offset)

    monkeypatch.setattr(direct_io.os, "pwrite", slow_disk)
    data = rows(3)
    writer.submit(data[0], 0)
    writer.submit(data[1], ROW_BYTES)
    third = threading.Thread(target=writer.submit, args=(data[2], 2 * ROW_BYTES))
    third.start()
    third.join(0.3)
    assert third.is_alive()  # both buffers hold rows the disk has not taken
    disk.set()
    third.join(5)
    assert not third.is_alive()
    writer.flush()
    writer.close()
    assert path.read_bytes()[: 3 * ROW_BYTES] == data.tobytes()


def test_submitted_rows_are_copied_so_the_caller_may_reuse_its_array(tmp_path: Path):
    path = blank_file(tmp_path / "f.bin", 3 * ROW_BYTES)
    writer = plain_writer(path, print)
    data = rows(3)
    scratch = np.empty(ROW_BYTES // 2, "<i2")
    for i in range(3):
        scratch[:] = data[i]
        writer.submit(scratch, i * ROW_BYTES)
    writer.flush()
    writer.close()
    assert path.read_bytes() == data.tobytes()


def test_uncached_hdf5_shard_equals_the_buffered_one_and_its_digest(tmp_path: Path):
    n, samples = 30, 12_800  # rows of 25,600 bytes: 50 blocks of 512
    data = np.random.default_rng(4).integers(-3000, 3000, (n, samples), dtype=np.int16)
    shard_rows = [ShardRow(f"c{i}", f"c{i}.wav", (i % 3,), float(i)) for i in range(n)]
    files = {}
    for uncached in (False, True):
        path = files[uncached] = tmp_path / f"shard-{uncached}.h5"
        writer = HDF5ShardWriter(
            str(path),
            shard_rows,
            num_samples=samples,
            num_classes=3,
            sample_rate=16000,
            uncached=uncached,
        )
        assert writer._offset % DATA_ALIGN == 0
        direct = writer._uncached is not None and writer._uncached.direct
        assert direct == (uncached and file_system_takes_o_direct(path))
        for i in range(n):
            writer.write_waveform(i, data[i], samples - i)
        np.testing.assert_array_equal(writer.read_waveform(7), data[7])
        assert writer.close() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert files[True].read_bytes() == files[False].read_bytes()
    with h5py.File(files[True]) as hf:
        np.testing.assert_array_equal(hf["waveform"][:], data)
        np.testing.assert_array_equal(hf["num_samples"][:], samples - np.arange(n))
        assert hf["waveform"].id.get_offset() % DATA_ALIGN == 0


@pytest.mark.parametrize("refused", [False, True])
def test_uncached_rows_land_at_their_offsets_with_or_without_o_direct(
    tmp_path: Path, request, refused: bool
):
    if refused:
        request.getfixturevalue("no_o_direct")
    header = 4 * BLOCK_BYTES
    path = blank_file(tmp_path / "f.bin", header + 6 * ROW_BYTES)
    fd = os.open(path, os.O_RDWR)
    data = rows(6)
    store = UncachedRows(str(path), fd, header, ROW_BYTES)
    try:
        assert store.direct == (not refused and file_system_takes_o_direct(path))
        row = np.empty_like(data[0])
        for i in (3, 0, 5, 1, 4, 2):
            row[:] = data[i]  # the caller's buffer, reused at once
            store.write(row, header + i * ROW_BYTES)
        store.flush()
        assert os.pread(fd, ROW_BYTES, header + 5 * ROW_BYTES) == data[5].tobytes()
        store.settle(header, 6 * ROW_BYTES)
    finally:
        store.close()
        store.close()
    os.fstat(fd)  # still open: the caller's to close
    os.close(fd)
    assert path.read_bytes() == b"\0" * header + data.tobytes()
