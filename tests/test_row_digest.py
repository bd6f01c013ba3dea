"""The sha256 of rows fed in any order (``pipelines.row_digest``)."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pipelines.row_digest import RowStreamDigest

ROWS = np.random.default_rng(0).integers(-(2**15), 2**15, (40, 3000), dtype=np.int16)


def _expected(prefix: bytes, suffix: bytes) -> str:
    return hashlib.sha256(prefix + ROWS.tobytes() + suffix).hexdigest()


@pytest.mark.parametrize("order", ["ascending", "pairs swapped", "reversed in blocks of 8"])
def test_digest_equals_sha256_of_the_whole_file(order):
    n = len(ROWS)
    rows = {
        "ascending": list(range(n)),
        "pairs swapped": [i ^ 1 for i in range(n)],
        "reversed in blocks of 8": [b + 7 - i for b in range(0, n, 8) for i in range(8)],
    }[order]
    digest = RowStreamDigest(b"head", n, max_waiting=8)
    for row in rows:
        digest.add(row, ROWS[row])
    assert digest.finish(b"tail") == _expected(b"head", b"tail")


def test_digest_from_threads_writing_rows_as_they_finish():
    # room for every row to wait: a thread descheduled on a loaded machine must not matter
    digest = RowStreamDigest(b"", len(ROWS), max_waiting=len(ROWS))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda row: digest.add(row, ROWS[row]), range(len(ROWS))))
    assert digest.finish(b"") == _expected(b"", b"")


def test_too_many_rows_waiting_abandons_the_digest():
    digest = RowStreamDigest(b"", len(ROWS), max_waiting=4)
    for row in range(1, 6):  # row 0 never comes
        digest.add(row, ROWS[row])
    assert digest.abandoned
    digest.add(0, ROWS[0])
    assert digest.finish(b"") is None


@pytest.mark.parametrize("rows", [[0, 1, 1], [0, 2, 2], [0, 0], [0, 40], [-1]])
def test_a_row_twice_or_out_of_range_abandons_the_digest(rows):
    digest = RowStreamDigest(b"", len(ROWS))
    for row in rows:
        digest.add(row, ROWS[0])
    assert digest.abandoned and digest.finish(b"") is None


def test_a_missing_row_gives_no_digest():
    digest = RowStreamDigest(b"", 3)
    digest.add(0, ROWS[0])
    digest.add(2, ROWS[2])
    assert not digest.abandoned
    assert digest.finish(b"") is None
