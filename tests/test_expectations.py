"""Great Expectations suites: exact failing rows, passing and empty frames, reports, no network."""

from __future__ import annotations

import json
import os
import socket
import threading

os.environ["GX_ANALYTICS_ENABLED"] = "false"

import numpy as np
import pandas as pd
import pytest

from schemas import expectations as ex

NAN = float("nan")
UNIQUE = "expect_column_values_to_be_unique:clip_id"
REGEX = "expect_column_values_to_match_regex:clip_id"
NO_DOT = "expect_column_values_to_not_match_regex:clip_id"
ORDER = "expect_column_pair_values_a_to_be_greater_than_b:end_s,start_s"
START = "expect_column_values_to_be_between:start_s"
DURATION = "expect_column_values_to_be_between:duration_s"
UNKNOWN = "expect_column_values_to_be_between:num_unknown_labels"
BAD_LABELS = "expect_column_values_to_be_between:num_invalid_labels"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any attempt to resolve a host or open a connection (GE must not phone home)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def segments(rows: list[tuple]) -> pd.DataFrame:
    """Segment frame from (clip_id, start_s, end_s, labels, num_unknown_labels) tuples."""
    frame = pd.DataFrame(
        rows, columns=["clip_id", "start_s", "end_s", "labels", "num_unknown_labels"]
    )
    frame.insert(1, "source", [f"https://example.org/{i}.wav" for i in range(len(frame))])
    frame["split"] = "train"
    # A non-default index: failures are reported by position, not by label.
    frame.index = [f"r{i}" for i in range(len(frame))][::-1]
    return frame


GOOD_SEGMENTS = [
    ("--PJHxphWEs_30000", 30.0, 40.0, [0, 3], 0),
    ("a_b.c-d", 0.0, 10.0, [], 0),
    ("whole_file.wav", NAN, NAN, [5], 0),
    ("x" * 200, 0.0, 60.0, np.array([1, 2]), 0),
]


def clips(rows: list[dict]) -> pd.DataFrame:
    """Clip-metadata frame: a good 32 kHz clip per row, with the given fields overridden."""
    good = {
        "sample_rate": 32000,
        "channels": 1,
        "source_sample_rate": 44100,
        "source_channels": 2,
        "requested_seconds": 10.0,
        "delivered_seconds": 10.0,
        "coverage": 1.0,
        "peak": 0.8,
        "clipping_ratio": 0.0,
        "silence_ratio": 0.2,
    }
    records = [{"clip_id": f"clip{i}", **good, **row} for i, row in enumerate(rows)]
    return pd.DataFrame(records, columns=list(ex.CLIP_COLUMNS))


def test_segment_failures_are_exact_rows() -> None:
    frame = segments(
        [
            *GOOD_SEGMENTS,
            ("bad id!", 0.0, 10.0, [1], 0),  # 4
            ("../../etc/passwd", 0.0, 10.0, [1], 0),  # 5
            ("--exec=touch x", 0.0, 10.0, [1], 0),  # 6
            ("dup", 0.0, 10.0, [1], 0),  # 7
            ("dup", 20.0, 15.0, [1], 0),  # 8: duplicate and end < start
            ("same", 5.0, 5.0, [1], 0),  # 9: start == end
            ("neg", -1.0, 5.0, [1], 0),  # 10
            ("long", 0.0, 60.5, [1], 0),  # 11
            ("unknown", 0.0, 10.0, [1], 2),  # 12
            ("half", 3.0, NAN, [1], 0),  # 13: only one bound
            (".hidden", 0.0, 10.0, [1], 0),  # 14
            ("bad_labels", 0.0, 10.0, [1, -3, "Speech"], 0),  # 15
            ("x" * 201, 0.0, 10.0, [1], 0),  # 16
        ]
    )
    before = frame.copy()
    outcome = ex.validate_frame(frame, ex.segment_suite(), asset_name="segments")
    assert not outcome.success
    assert outcome.failures == {
        4: [REGEX],
        5: [REGEX, NO_DOT],
        6: [REGEX],
        7: [UNIQUE],
        8: [ORDER, UNIQUE],
        9: [ORDER],
        10: [START],
        11: [DURATION],
        12: [UNKNOWN],
        13: [ORDER],
        14: [NO_DOT],
        15: [BAD_LABELS],
        16: [REGEX],
    }
    pd.testing.assert_frame_equal(frame, before)
    assert outcome.statistics["unsuccessful_expectations"] == 8
    json.dumps(outcome.result_json, allow_nan=False)


def test_segment_suite_max_duration_and_nulls() -> None:
    frame = segments([*GOOD_SEGMENTS, (None, 0.0, 10.0, None, NAN)])
    outcome = ex.validate_frame(frame, ex.segment_suite(max_duration_s=20.0), asset_name="segments")
    assert outcome.failures == {
        3: [DURATION],
        4: [
            "expect_column_values_to_not_be_null:clip_id",
            "expect_column_values_to_not_be_null:labels",
            "expect_column_values_to_not_be_null:num_unknown_labels",
        ],
    }


def test_good_segments_pass() -> None:
    outcome = ex.validate_frame(segments(GOOD_SEGMENTS), ex.segment_suite(), asset_name="segments")
    assert outcome.success
    assert outcome.failures == {}
    assert outcome.statistics["unsuccessful_expectations"] == 0
    assert outcome.result_json["success"] is True


def test_clip_failures_are_exact_rows() -> None:
    frame = clips(
        [
            {},  # 0: good
            {"delivered_seconds": 8.0, "coverage": 0.8},  # 1: too short
            {"silence_ratio": 1.0, "peak": 0.0},  # 2: silent
            {"clipping_ratio": 0.2, "peak": 1.0},  # 3: clipping
            {"sample_rate": 16000},  # 4: wrong output rate
            {"channels": 2},  # 5: not mono
            {"source_sample_rate": 500},  # 6
            {"coverage": 1.6, "delivered_seconds": 16.0},  # 7: far too long
            {"peak": 1.5},  # 8
            {"clip_id": "clip0"},  # 9: duplicate of row 0
            {"coverage": NAN},  # 10
            {"coverage": 0.9, "clipping_ratio": 0.01, "silence_ratio": 0.99},  # 11: at the limits
        ]
    )
    outcome = ex.validate_frame(frame, ex.clip_suite(32000), asset_name="clips")
    assert not outcome.success
    between = "expect_column_values_to_be_between:"
    assert outcome.failures == {
        0: [UNIQUE],
        1: [between + "coverage"],
        2: [between + "silence_ratio"],
        3: [between + "clipping_ratio"],
        4: ["expect_column_values_to_be_in_set:sample_rate"],
        5: ["expect_column_values_to_be_in_set:channels"],
        6: [between + "source_sample_rate"],
        7: [between + "coverage"],
        8: [between + "peak"],
        9: [UNIQUE],
        10: ["expect_column_values_to_not_be_null:coverage"],
    }
    json.dumps(outcome.result_json, allow_nan=False)


def test_clip_suite_parameters() -> None:
    frame = clips([{"coverage": 0.85}, {"clipping_ratio": 0.05}, {"silence_ratio": 0.995}])
    strict = ex.validate_frame(frame, ex.clip_suite(32000), asset_name="clips")
    assert sorted(strict.failures) == [0, 1, 2]
    loose = ex.clip_suite(32000, min_coverage=0.8, max_clipping=0.1, max_silence=1.0)
    assert ex.validate_frame(frame, loose, asset_name="clips").success
    with pytest.raises(ValueError):
        ex.clip_suite(32000, min_coverage=2.0)


@pytest.mark.parametrize(
    ("frame", "suite"),
    [
        (segments([]), ex.segment_suite()),
        (clips([]), ex.clip_suite(16000)),
        (clips([{}, {"clip_id": "other"}]), ex.clip_suite(32000)),
    ],
    ids=["empty-segments", "empty-clips", "passing-clips"],
)
def test_empty_and_passing_frames(frame: pd.DataFrame, suite: object) -> None:
    outcome = ex.validate_frame(frame, suite, asset_name="frames")
    assert outcome.success
    assert outcome.failures == {}
    assert outcome.statistics["evaluated_expectations"] == len(suite.expectations)


def test_missing_column_fails_every_row() -> None:
    frame = clips([{}, {"clip_id": "clip1"}]).drop(columns=["peak"])
    outcome = ex.validate_frame(frame, ex.clip_suite(32000), asset_name="clips")
    assert not outcome.success
    assert set(outcome.failures) == {0, 1}
    assert "expect_table_columns_to_match_set" in outcome.failures[0]
    assert not ex.validate_frame(frame.iloc[:0], ex.clip_suite(32000), asset_name="clips").success


def test_concurrent_validation_shares_one_context() -> None:
    frame = segments([*GOOD_SEGMENTS, ("neg", -1.0, 5.0, [1], 0)])
    suite = ex.segment_suite()
    results: list[dict[int, list[str]]] = []

    def work() -> None:
        results.append(ex.validate_frame(frame, suite, asset_name="threads").failures)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [{4: [START]}] * 4
