"""Plain words for failed decoded-clip checks (``schemas.clip_checks``)."""

from __future__ import annotations

import pytest

from schemas.clip_checks import clip_coverage, describe_failed_clip_checks

LIMITS = {"target_sr": 32000, "min_coverage": 0.9, "max_clipping": 0.01, "max_silence": 0.99}


def _meta(**fields) -> dict:
    base = {"clip_id": "a_0", "sample_rate": 32000, "channels": 1, "source_sample_rate": 44100,
            "source_channels": 2, "requested_seconds": 10.0, "delivered_seconds": 10.0,
            "early_start_trimmed_s": 0.0, "peak": 0.5, "clipping_ratio": 0.0,
            "silence_ratio": 0.0}  # fmt: skip
    return {**base, **fields}


def test_clip_coverage_leaves_out_an_early_start():
    assert clip_coverage(_meta(delivered_seconds=9.0)) == pytest.approx(0.9)
    assert clip_coverage(_meta(delivered_seconds=10.0, early_start_trimmed_s=1.5)) == 0.85
    assert clip_coverage(_meta(requested_seconds=0.0, delivered_seconds=0.0)) == 0.0


def test_each_check_is_said_with_the_clips_values_and_named():
    b = "expect_column_values_to_be_between:"
    cases = [
        (_meta(delivered_seconds=4.0), b + "coverage",
         "delivered 4 s of the 10 s requested (40%), less than the 90% required (--min-coverage)"),
        (_meta(delivered_seconds=20.0), b + "coverage",
         "delivered 20 s of the 10 s requested (200%): more than the source can hold"),
        (_meta(clipping_ratio=0.125), b + "clipping_ratio",
         "12.50% of its samples clip, more than the 1.00% accepted (--max-clipping)"),
        (_meta(silence_ratio=1.0), b + "silence_ratio",
         "100% of its 100 ms frames are silent, more than the 99% accepted "
         "(--max-silence)"),
        (_meta(sample_rate=16000), "expect_column_values_to_be_in_set:sample_rate",
         "decoded at 16000 Hz, not 32000 Hz"),
        (_meta(channels=2), "expect_column_values_to_be_in_set:channels",
         "decoded to 2 channels, not 1"),
        (_meta(source_sample_rate=500), b + "source_sample_rate",
         "the source's rate of 500 Hz is implausible"),
        (_meta(source_channels=0), b + "source_channels", "the source has no audio channel"),
        (_meta(requested_seconds=0.0), b + "requested_seconds",
         "the requested duration 0 s is not positive"),
        (_meta(delivered_seconds=-1.0), b + "delivered_seconds",
         "the delivered duration -1 s is negative"),
        (_meta(peak=1.5), b + "peak", "peak 1.5 is beyond full scale"),
        (_meta(), "expect_column_values_to_be_unique:clip_id",
         "clip id 'a_0' is used by another clip of the shard"),
        (_meta(), "expect_column_values_to_not_be_null:peak", "peak is missing"),
        (_meta(rms_dbfs=-12.0), b + "rms_dbfs", "rms_dbfs is -12.0"),
    ]  # fmt: skip
    for meta, name, words in cases:
        assert describe_failed_clip_checks(meta, [name], LIMITS) == f"{words} [{name}]"


def test_several_checks_are_joined_and_unknown_ones_named():
    said = describe_failed_clip_checks(
        _meta(silence_ratio=1.0, peak=2.0),
        [
            "expect_column_values_to_be_between:peak",
            "expect_column_values_to_be_between:silence_ratio",
            "expect_table_columns_to_match_set",
        ],
        LIMITS,
    )
    assert (
        said.split("; ")[0]
        == "peak 2 is beyond full scale [expect_column_values_to_be_between:peak]"
    )
    assert said.split("; ")[2] == "failed expect_table_columns_to_match_set"
