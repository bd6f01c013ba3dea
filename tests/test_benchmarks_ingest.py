"""benchmarks/ingest_bench.py: the limit measurements decode, resample and write what they say."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.ingest_bench import (
    SECONDS,
    SR_OUT,
    _decode_resample_write,
    bench_limit_with_write,
    make_files,
    warm_page_cache,
)


def test_limit_with_write_writes_one_int16_row_per_clip(tmp_path: Path):
    paths = make_files(tmp_path / "wav", 3)
    warm_page_cache(paths)  # reads every file through; a missing one raises
    out = tmp_path / "rows.bin"
    assert _decode_resample_write(([str(p) for p in paths], str(out))) == 3
    rows = np.fromfile(out, np.int16).reshape(3, int(SR_OUT * SECONDS))
    assert np.all(np.abs(rows).max(axis=1) > 5000)  # 0.3-amplitude tones, not silence
    result = bench_limit_with_write(paths, 2, tmp_path / "scratch")
    assert result["clips_per_s"] > 0 and not list((tmp_path / "scratch").iterdir())
