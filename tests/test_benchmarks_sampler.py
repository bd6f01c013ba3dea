"""benchmarks/sampler_bench.py: the copy-limit reader reads the rows it says it reads."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from benchmarks.sampler_bench import copy_limit_reader, write_dataset


def test_copy_limit_reader_reads_consecutive_rows_shard_by_shard(tmp_path: Path):
    write_dataset(tmp_path, shards=2, clips=10)
    paths = sorted(str(p) for p in (tmp_path / "waveforms" / "train").glob("*.h5"))
    waves = []
    for path in paths:
        with h5py.File(path, "r") as hf:
            waves.append(hf["waveform"][:])
    read = copy_limit_reader(paths, batch_size=4)
    expected = [
        (0, 0),
        (1, 0),
        (0, 4),
        (1, 4),
        (0, 1),
    ]  # (shard, first row): 8 wraps mod 10 - 4 + 1
    for shard, first in expected:
        np.testing.assert_array_equal(read(None), waves[shard][first : first + 4])
