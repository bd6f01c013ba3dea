"""Joining plain words for failed checks (``schemas.check_words``)."""

from __future__ import annotations

from schemas.check_words import say_failed_checks


def test_words_missing_columns_and_unknown_checks_are_joined_in_order():
    words = {"expect_x:a": "a is wrong"}
    said = say_failed_checks(
        ["expect_x:a", "expect_column_values_to_not_be_null:b", "expect_table_thing"], words.get
    )
    assert said == (
        "a is wrong [expect_x:a]; b is missing [expect_column_values_to_not_be_null:b]; "
        "failed expect_table_thing"
    )
    assert say_failed_checks([], words.get) == ""
