"""benchmarks/frontend_bench.py, index_bench.py and embed_bench.py measure what they say."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import keras
import numpy as np

from benchmarks import frontend_bench
from benchmarks.embed_bench import _make_waveform_dataset, model_flops_per_example
from benchmarks.frontend_bench import (
    baseline_examples,
    main,
    make_clips,
    paired_speedups,
    reference_mel_matrix,
)
from benchmarks.index_bench import class_probabilities, draw_targets, make_dataset, run_measurement
from features.mel import mel_weights
from features.vggish_frontend import batch_waveform_to_examples
from features.vggish_model import build_vggish


def test_reference_mel_matrix_equals_the_front_ends_mel_weights():
    ours = mel_weights(64, 512, 16000, 125.0, 7500.0)
    np.testing.assert_allclose(reference_mel_matrix(), ours, rtol=0, atol=1e-12)


def test_baseline_examples_equal_the_exact_front_end():
    clips = make_clips(2, 2.0)
    baseline = np.stack([baseline_examples(c, reference_mel_matrix()) for c in clips])
    ours = batch_waveform_to_examples(clips, 16000, mode="exact")
    assert baseline.shape == ours.shape == (2, 2, 96, 64)
    np.testing.assert_allclose(baseline, ours, rtol=0, atol=1e-10)


def test_paired_speedups_divide_each_round_by_its_own_baseline():
    rounds = {"baseline": [4.0, 8.0, 6.0], "fast": [1.0, 4.0, 1.0]}
    speedups = paired_speedups(rounds, "baseline")
    assert speedups["fast"] == {"median": 4.0, "min": 2.0, "max": 6.0}
    assert speedups["baseline"] == {"median": 1.0, "min": 1.0, "max": 1.0}


def test_frontend_benchmark_reports_every_run_against_the_baseline():
    report = main(["--clips", "2", "--seconds", "2", "--repeats", "2", "--workers", "2"])
    assert report["kept_freed_memory"] is False
    runs = {"baseline", "exact-w1", "exact-w2", "fast-w1", "fast-w2"}
    assert set(report["results"]) == set(report["paired_speedup_vs_baseline"]) == runs
    assert report["examples"] == 4
    assert report["results"]["exact-w2"]["max_abs_err"] < 1e-10
    assert report["results"]["fast-w1"]["max_abs_err"] < 1e-3
    assert all(r["seconds"] > 0 for r in report["results"].values())


def test_frontend_benchmark_can_keep_freed_memory(monkeypatch):
    applied = []
    monkeypatch.setattr(frontend_bench, "retain_freed_memory", lambda: applied.append(1) or True)
    report = main(["--clips", "1", "--seconds", "1", "--repeats", "1", "--keep-freed-memory"])
    assert report["kept_freed_memory"] is True and applied == [1]


def test_synthetic_targets_follow_the_zipf_class_frequencies():
    rng = np.random.default_rng(0)
    target = draw_targets(rng, 20_000, 50, 1.3)
    assert target.dtype == bool and target.sum(axis=1).min() >= 1
    counts = target.sum(axis=0)
    p = class_probabilities(50, 1.3)
    assert p[0] > p[1] > p[-1] and np.isclose(p.sum(), 1.0)
    assert counts[0] > counts[5] > counts[-1]
    assert abs(target.sum(axis=1).mean() - 2.4) < 0.1  # 1 + Poisson(1.4), a few capped


def test_index_benchmark_and_panns_baseline_find_the_same_rows(tmp_path: Path):
    info = make_dataset(tmp_path, clips=2500, shard_clips=1000, num_classes=30, zipf=1.3)
    assert info["shards"] == 3
    ours = run_measurement("audiomill[synchronous]", tmp_path)
    panns = run_measurement("panns", tmp_path)
    assert ours["digest"] == panns["digest"]
    assert ours["positions"] == info["labels"]
    assert ours["peak_rss"] > 0


def test_embed_benchmark_flops_match_the_keras_vggish_layers():
    model = build_vggish()
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            positions = int(np.prod(layer.output.shape[1:3]))
            macs += positions * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Dense):
            macs += int(np.prod(layer.kernel.shape))
    assert model_flops_per_example() == 2 * macs
    assert model_flops_per_example() == 1_727_791_104


def test_embed_benchmark_dataset_is_a_committed_waveform_dataset(tmp_path: Path):
    _make_waveform_dataset(tmp_path / "ds", 5, shard_clips=2)
    shards = json.loads((tmp_path / "ds" / "manifest.json").read_text())["splits"]["train"]
    assert [s["num_clips"] for s in shards["shards"]] == [2, 2, 1]
    ids = []
    for shard in shards["shards"]:
        path = tmp_path / "ds" / shard["files"]["hdf5"]["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["files"]["hdf5"]["sha256"]
        with h5py.File(path) as hf:
            assert hf["waveform"].shape == (shard["num_clips"], 160_000)
            assert np.abs(hf["waveform"][:]).max() > 5000  # noise, not zeros
            ids += [c.decode() for c in hf["clip_id"][:]]
    assert ids == [f"c{i}" for i in range(5)]
