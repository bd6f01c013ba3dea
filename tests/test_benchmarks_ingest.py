"""benchmarks/ingest_bench.py: the limit measurements decode, resample and write what they say."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import ingest_bench
from benchmarks.ingest_bench import (
    SECONDS,
    SR_OUT,
    _decode_resample_write,
    _resampled,
    bench_audiomill,
    bench_limit_with_write,
    make_files,
    measure_round,
    steady_rate,
    summarize,
    warm_page_cache,
)
from pipelines.audio import decode, resample, to_mono


def test_limit_does_the_decoding_and_resampling_that_ingest_does(tmp_path: Path):
    path = make_files(tmp_path / "wav", 1)[0]
    decoded = decode(path)
    ours = resample(to_mono(decoded.samples), decoded.sample_rate, SR_OUT)
    np.testing.assert_array_equal(_resampled(str(path)), ours)


def test_limit_with_write_writes_one_int16_row_per_clip(tmp_path: Path):
    paths = make_files(tmp_path / "wav", 3)
    warm_page_cache(paths)  # reads every file through; a missing one raises
    out = tmp_path / "rows.bin"
    rows_written, sha256 = _decode_resample_write(([str(p) for p in paths], str(out)))
    assert rows_written == 3 and sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    rows = np.fromfile(out, np.int16).reshape(3, int(SR_OUT * SECONDS))
    assert np.all(np.abs(rows).max(axis=1) > 5000)  # 0.3-amplitude tones, not silence
    result = bench_limit_with_write(paths, 2, tmp_path / "scratch")
    assert result["clips_per_s"] > 0 and not list((tmp_path / "scratch").iterdir())


def test_files_past_the_distinct_ones_are_hard_links_with_names_of_their_own(tmp_path: Path):
    paths = make_files(tmp_path / "wav", 5, distinct=2)
    assert len({p.name for p in paths}) == 5
    assert [p.stat().st_ino for p in paths[2:]] == [paths[i % 2].stat().st_ino for i in (2, 3, 4)]
    assert paths[0].stat().st_ino != paths[1].stat().st_ino
    assert make_files(tmp_path / "wav", 5, distinct=2) == paths  # reused as they are


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


def test_a_round_measures_limits_and_runs_and_their_ratios(tmp_path: Path, monkeypatch):
    calls = []

    def fake_limit(paths, workers, *scratch):
        calls.append(("limit_with_write" if scratch else "limit", len(paths)))
        if scratch:
            return {"clips_per_s": 400.0, "seconds": 2.5}
        seconds = 1.5 if len(calls) == 1 else 2.5  # slower after the runs: 2 s on average
        return {"clips_per_s": 1000 / seconds, "seconds": seconds}

    def fake_audiomill(paths, workdir, workers):
        calls.append(("audiomill", len(paths)))
        seconds = 2.0 + len(paths) / 250  # 2 s fixed, then 250 clips/s
        return {"seconds": seconds, "clips_per_s": len(paths) / seconds, "peak_rss_mb": 1.0}

    monkeypatch.setattr(ingest_bench, "bench_limit", fake_limit)
    monkeypatch.setattr(ingest_bench, "bench_limit_with_write", fake_limit)
    monkeypatch.setattr(ingest_bench, "bench_audiomill", fake_audiomill)
    r = measure_round([tmp_path / f"{i}.wav" for i in range(1000)], tmp_path, 2, start_clips=20)
    assert calls == [
        ("limit", 1000), ("limit_with_write", 1000), ("audiomill", 20), ("audiomill", 1000),
        ("limit", 1000),
    ]  # fmt: skip
    assert r["limit"]["clips_per_s"] == pytest.approx(500.0)
    assert (r["limit"]["before"]["seconds"], r["limit"]["after"]["seconds"]) == (1.5, 2.5)
    assert r["audiomill_steady"]["clips_per_s"] == pytest.approx(250.0)
    assert r["ratios"] == pytest.approx(
        {
            "audiomill_over_limit": 1000 / 6 / 500,
            "audiomill_over_limit_with_write": 1000 / 6 / 400,
            "steady_over_limit": 0.5,
            "steady_over_limit_with_write": 0.625,
        }
    )


def test_summary_is_the_median_and_range_over_rounds():
    rounds = [
        {"ratios": {"a": a}, "audiomill": {"peak_rss_mb": m, "clips_per_s": c}}
        for a, m, c in ((0.5, 300.0, 10.0), (0.3, 320.0, 30.0), (0.4, 310.0, 20.0))
    ]
    summary = summarize(rounds)
    assert summary["a"] == {"median": 0.4, "min": 0.3, "max": 0.5}
    assert summary["peak_rss_mb"] == 320.0 and summary["audiomill_clips_per_s"] == 20.0
