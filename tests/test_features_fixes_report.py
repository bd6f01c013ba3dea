"""The dataset report's duration figures each mean what their names say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from features.report import SplitStats, build_report
from tests.dataset_builders import CLIP_SECONDS, SR, make_dataset


def _stats(audio_seconds: np.ndarray, clip_seconds: float) -> SplitStats:
    n = len(audio_seconds)
    return SplitStats(
        name="train",
        source="waveforms",
        num_shards=1,
        counts=np.array([n]),
        cardinality=np.array([0, n]),
        top=np.array([0]),
        cooccurrence=np.array([[n]]),
        audio_seconds=audio_seconds,
        delivered_seconds=audio_seconds,
        loudness_dbfs=np.zeros(0),
        clip_seconds=clip_seconds,
    )


def test_stored_hours_count_the_padded_clips_and_audio_hours_the_real_samples():
    numbers = _stats(np.full(300, 0.4), clip_seconds=1.0).numbers()  # 300 short clips, as fsdd
    assert numbers["stored_hours"] == round(300 / 3600, 3)
    assert (numbers["audio_hours"], numbers["median_audio_seconds"]) == (0.033, 0.4)
    assert "median_stored_seconds" not in numbers


def test_the_report_takes_the_stored_length_from_the_manifest(tmp_path: Path):
    built = make_dataset(tmp_path / "ds", {"train": [[0], [1], [0], [1], [0]]}, num_classes=2)
    build_report(built.root, tmp_path / "out", client="synchronous")
    train = json.loads((tmp_path / "out" / "summary.json").read_text())["splits"]["train"]
    audio = np.array([c.num_samples / SR for c in built.clips["train"]])
    assert audio.min() < CLIP_SECONDS  # some clips are stored padded
    assert train["stored_hours"] == round(5 * CLIP_SECONDS / 3600, 3)
    assert train["audio_hours"] == round(float(audio.sum()) / 3600, 3)
    assert train["median_audio_seconds"] == round(float(np.median(audio)), 3)
    page = (tmp_path / "out" / "index.html").read_text()
    assert "stored hours" in page and "audio hours" in page
