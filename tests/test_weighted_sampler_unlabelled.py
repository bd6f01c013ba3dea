"""The weighted sampler counts clips without labels as one more class, as the balanced one does."""

from __future__ import annotations

import numpy as np
import pytest

from modeling.samplers import WeightedSampler
from modeling.train_data import RowLabels, make_sampler

DRAWS = 20000


def _labels(rows: list[int], classes: list[int], num_rows: int) -> RowLabels:
    return RowLabels(
        num_rows=num_rows,
        rows=np.array(rows, dtype=np.int64),
        classes=np.array(classes, dtype=np.int64),
        clip_ids=[f"c{i}" for i in range(num_rows)],
    )


def _shares(drawn: np.ndarray, groups: np.ndarray) -> np.ndarray:
    return np.bincount(groups[drawn]) / len(drawn)


def test_detector_draws_positives_and_negatives_equally() -> None:
    labels = _labels(list(range(10)), [0] * 10, 100)
    drawn = make_sampler("weighted", np.arange(100), labels, seed=0).take(DRAWS)
    positive = (np.arange(100) < 10).astype(int)
    assert _shares(drawn, positive) == pytest.approx([0.5, 0.5], abs=0.02)
    negatives = np.bincount(drawn[drawn >= 10], minlength=100)[10:]
    assert negatives.min() > 0


def test_each_class_and_the_unlabelled_clips_get_equal_shares() -> None:
    labels = _labels(list(range(10)), [0] * 8 + [1] * 2, 100)
    drawn = make_sampler("weighted", np.arange(100), labels, seed=1).take(DRAWS)
    groups = np.select([np.arange(100) < 8, np.arange(100) < 10], [0, 1], 2)
    assert _shares(drawn, groups) == pytest.approx([1 / 3] * 3, abs=0.02)


def test_unlabelled_clips_are_counted_among_the_sampled_rows_only() -> None:
    labels = _labels([0, 1], [0, 0], 50)
    rows = np.array([0, 1, 10, 11, 12, 13])
    drawn = make_sampler("weighted", rows, labels, seed=2).take(DRAWS)
    assert set(drawn.tolist()) <= set(rows.tolist())
    assert np.isin(drawn, [0, 1]).mean() == pytest.approx(0.5, abs=0.02)


def test_fully_labelled_data_draws_as_before() -> None:
    # multi-label: row 3 has both classes; class 0 has 5 clips, class 1 has 2
    labels = _labels([0, 1, 2, 3, 3, 4, 5], [0, 0, 0, 0, 1, 1, 0], 6)
    sum_of_inverse_counts = np.array([1 / 5] * 3 + [1 / 5 + 1 / 2, 1 / 2, 1 / 5])
    before = WeightedSampler(sum_of_inverse_counts, seed=7).take(5000)
    drawn = make_sampler("weighted", np.arange(6), labels, seed=7).take(5000)
    assert np.array_equal(drawn, before)
