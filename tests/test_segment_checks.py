"""Plain words for failed segment checks (``schemas.segment_checks``)."""

from __future__ import annotations

from schemas.segment_checks import describe_failed_checks
from schemas.segments import Segment


def _segment(**fields) -> Segment:
    base = {"clip_id": "abc_1000", "source": "abc", "source_kind": "youtube", "start_s": 1.0,
            "end_s": 11.0}  # fmt: skip
    return Segment(**{**base, **fields})


def test_each_check_is_said_with_the_segments_values_and_named():
    cases = [
        ({"end_s": 0.5}, "expect_column_pair_values_a_to_be_greater_than_b:end_s,start_s",
         "end 0.5 s is not after start 1 s"),
        ({"end_s": None}, "expect_column_pair_values_a_to_be_greater_than_b:end_s,start_s",
         "start 1 s and end none: give both or neither"),
        ({"end_s": 91.0}, "expect_column_values_to_be_between:duration_s",
         "the segment is 90 s long, longer than the 60 s allowed"),
        ({"start_s": -2.5}, "expect_column_values_to_be_between:start_s",
         "start -2.5 s is negative"),
        ({"unknown_labels": ("Cat", "/m/zz")},
         "expect_column_values_to_be_between:num_unknown_labels",
         "labels not in the class map: 'Cat', '/m/zz'"),
        ({"labels": (-1, 2)}, "expect_column_values_to_be_between:num_invalid_labels",
         "labels [-1, 2] are not all non-negative class indices"),
        ({"clip_id": ".hidden"}, "expect_column_values_to_not_match_regex:clip_id",
         "clip id '.hidden' starts with '.'"),
        ({"clip_id": "a b"}, "expect_column_values_to_match_regex:clip_id",
         "clip id 'a b' is not 1 to 200 letters, digits, '_', '.' or '-'"),
        ({}, "expect_column_values_to_be_unique:clip_id",
         "clip id 'abc_1000' is used by another segment"),
        ({}, "expect_column_values_to_not_be_null:source", "source is missing"),
    ]  # fmt: skip
    for fields, name, words in cases:
        assert describe_failed_checks(_segment(**fields), [name], 60.0) == f"{words} [{name}]"


def test_several_checks_are_joined_and_unknown_ones_named():
    seg = _segment(start_s=-1.0, unknown_labels=("Cat",))
    said = describe_failed_checks(
        seg,
        [
            "expect_column_values_to_be_between:start_s",
            "expect_column_values_to_be_between:num_unknown_labels",
            "expect_table_row_count_to_be_between",
        ],
        60.0,
    )
    assert said.split("; ") == [
        "start -1 s is negative [expect_column_values_to_be_between:start_s]",
        "labels not in the class map: 'Cat' "
        "[expect_column_values_to_be_between:num_unknown_labels]",
        "failed expect_table_row_count_to_be_between",
    ]
