"""benchmarks/ingest_bench.py: the limit measurements decode, resample and write what they say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.ingest_bench import (
    SECONDS,
    SR_OUT,
    _decode_resample_write,
    bench_audiomill,
    bench_limit_with_write,
    make_files,
    steady_rate,
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


def test_steady_rate_leaves_out_the_fixed_cost_of_a_run():
    # 20 clips in 5 s and 2,020 in 15 s: the 2,000 more cost 10 s
    assert steady_rate(2020, 15.0, 20, 5.0) == 200.0
    with pytest.raises(ValueError, match="longer run"):
        steady_rate(20, 5.0, 20, 5.0)


def test_audiomill_run_ingests_every_file(tmp_path: Path):
    paths = make_files(tmp_path / "wav", 3)
    result = bench_audiomill(paths, tmp_path, workers=2)
    assert result["clips_per_s"] > 0 and result["peak_rss_mb"] > 50
    manifest = json.loads((tmp_path / "dataset-3" / "manifest.json").read_text())
    assert sum(s["num_clips"] for s in manifest["splits"]["train"]["shards"]) == 3
