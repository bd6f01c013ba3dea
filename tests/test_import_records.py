"""What the importers' readers share: the error naming a bad record or row, the id check."""

from __future__ import annotations

import pytest

from features.import_records import ImportRecordError, id_problem


def test_import_record_error_names_file_unit_and_index():
    error = ImportRecordError("f.h5", 3, "y holds [2], not only 0/1", unit="row")
    assert error.index == 3
    assert str(error) == "f.h5: row 3 (counting from 0): y holds [2], not only 0/1"


@pytest.mark.parametrize("text", ["-0RWZT-miFs", "--_Oc3z2b_0_30000", "vidé"])
def test_id_problem_accepts_printable_ids(text):
    assert id_problem(text) is None


@pytest.mark.parametrize("text", ["", "two words", "tab\there", "line\n"])
def test_id_problem_names_empty_spaced_or_control_ids(text):
    assert id_problem(text) == f"{text!r} is empty or has spaces or control characters"
