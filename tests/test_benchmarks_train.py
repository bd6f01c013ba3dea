"""benchmarks/train_bench.py: its synthetic data, convergence rule and a tiny end-to-end run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.train_bench import converged_at, embed_clips, main, parse_args
from modeling.readers import ShardReader
from modeling.train_data import read_row_labels

TINY = [
    "--train-clips",
    "256",
    "--eval-clips",
    "96",
    "--classes",
    "8",
    "--shard-clips",
    "100",
    "--signal",
    "40",
    "--hidden",
    "16",
    "--batch-size",
    "32",
    "--warmup-steps",
    "2",
    "--timed-steps",
    "4",
    "--rounds",
    "1",
    "--eval-every",
    "4",
    "--max-epochs",
    "2",
]


def test_converged_at_waits_for_a_plateau_at_the_best() -> None:
    assert converged_at([0.1, 0.3, 0.5, 0.6], 0.005, 3) is None
    assert converged_at([0.1, 0.5, 0.6, 0.603, 0.601], 0.005, 3) == 4
    # A dip below the best so far restarts the wait.
    assert converged_at([0.6, 0.601, 0.55, 0.6, 0.6], 0.005, 3) is None
    assert converged_at([0.2, 0.2], 0.005, 3) is None


def test_embeddings_carry_their_classes_patterns() -> None:
    rng = np.random.default_rng(0)
    patterns = rng.standard_normal((3, 128)).astype(np.float32)
    targets = np.zeros((300, 3), dtype=bool)
    targets[np.arange(300), np.arange(300) % 3] = True
    x = embed_clips(rng, targets, patterns, signal=10.0, noise=4.0, active=1.0)
    assert x.dtype == np.uint8 and x.shape == (300, 10, 128)
    # With every label present in every frame, the mean frame of a class is its pattern.
    for c in range(3):
        mean = x[targets[:, c]].astype(np.float64).mean(axis=(0, 1)) - 128
        assert np.corrcoef(mean, patterns[c])[0, 1] > 0.99


def test_tiny_run_reports_throughput_and_convergence(tmp_path: Path) -> None:
    report = main(["--dir", str(tmp_path), *TINY])
    args = parse_args(["--dir", str(tmp_path), *TINY])
    # The dataset is written with the project's writers and reads back with its labels.
    with ShardReader(tmp_path / "dataset", "train", "embeddings") as reader:
        assert reader.num_rows == args.train_clips and reader.x_shape == (10, 128)
        labels = read_row_labels(reader)
        _, y = reader.read_all()
    assert y.sum(axis=1).min() >= 1
    assert np.array_equal(np.flatnonzero(y), np.sort(labels.rows * args.classes + labels.classes))
    speed = report["throughput"]
    for key in ("audiomill_clips_per_s", "in_memory_fit_clips_per_s", "pipeline_only_clips_per_s"):
        assert speed[key] > 0
    assert speed["audiomill_vs_in_memory"] > 0
    conv = report["convergence"]
    assert conv["steps"] % 4 == 0 and 0 < conv["epochs"] <= 2
    assert conv["mAP_history"] and 0 <= conv["mAP"] <= 1
    assert conv["mAP"] == conv["mAP_history"][conv["evaluations"] - 1]
    assert report["command"].startswith("python -m benchmarks.train_bench --dir")
