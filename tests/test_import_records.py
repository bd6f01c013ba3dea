"""What the importers' readers, checks and run share: the error naming a bad record or row, the
id check, joining blocks of rows."""

from __future__ import annotations

import numpy as np
import pytest

from features.import_records import ImportRecordError, concat_rows, id_problem
from schemas.embeddings import EmbeddingRows


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


def _rows(ids: list[str]) -> EmbeddingRows:
    n = len(ids)
    return EmbeddingRows(
        x=np.arange(n * 10 * 128, dtype=np.uint8).reshape(n, 10, 128),
        y=np.eye(n, 3, dtype=bool),
        video_ids=list(ids),
        clip_ids=[f"{v}_0" for v in ids],
        num_frames=np.arange(1, n + 1, dtype=np.int32),
    )


def test_concat_rows_joins_parts_in_order():
    first, second = _rows(["a", "b"]), _rows(["c"])
    rows = concat_rows([first, second])
    assert rows.clip_ids == ["a_0", "b_0", "c_0"]
    assert rows.video_ids == ["a", "b", "c"]
    assert rows.num_frames.tolist() == [1, 2, 1]
    np.testing.assert_array_equal(rows.x, np.concatenate([first.x, second.x]))
    np.testing.assert_array_equal(rows.y, np.concatenate([first.y, second.y]))


def test_concat_rows_returns_a_single_part_itself():
    only = _rows(["a"])
    assert concat_rows([only]) is only
