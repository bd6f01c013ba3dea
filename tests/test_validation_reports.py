"""GE validation results stored in a dataset as JSON and Data Docs HTML."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pandas as pd
import pytest

from pipelines.storage import DatasetStore
from pipelines.validation_reports import save_validation_report
from schemas.expectations import segment_suite, validate_frame


def _outcome():
    frame = pd.DataFrame(
        {
            "clip_id": ["good_0", "../../etc/passwd_0"],
            "source": ["good", "../../etc/passwd"],
            "start_s": [0.0, 0.0],
            "end_s": [10.0, 10.0],
            "labels": [[0], [1]],
            "num_unknown_labels": [0, 0],
            "split": ["train", "train"],
        }
    )
    return validate_frame(frame, segment_suite(), asset_name="segments")


def test_report_written_locally_and_replaced(tmp_path: Path):
    outcome = _outcome()
    store = DatasetStore(str(tmp_path / "ds"))
    paths = save_validation_report(store, "reports/validation/segments-r1", outcome.result_json)
    assert paths == ("reports/validation/segments-r1.json", "reports/validation/segments-r1.html")
    reports = tmp_path / "ds" / "reports" / "validation"
    assert json.loads((reports / "segments-r1.json").read_text()) == outcome.result_json
    html = (reports / "segments-r1.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "expect_column_values_to_match_regex:clip_id" in html and "etc/passwd" in html
    save_validation_report(store, "reports/validation/segments-r1", outcome.result_json)
    assert sorted(p.name for p in reports.iterdir()) == ["segments-r1.html", "segments-r1.json"]


def test_report_to_fsspec_store():
    outcome = _outcome()
    store = DatasetStore(f"memory://ds-{uuid.uuid4().hex}")
    save_validation_report(store, "reports/r", outcome.result_json)
    assert json.loads(store.read_text("reports/r.json"))["success"] is False
    assert "<html" in store.read_text("reports/r.html").lower()


@pytest.mark.parametrize("stem", ["../x", "reports/../../x", "/abs/x"])
def test_report_paths_cannot_escape_the_dataset(tmp_path: Path, stem: str):
    store = DatasetStore(str(tmp_path / "ds"))
    with pytest.raises(ValueError, match="unsafe"):
        save_validation_report(store, stem, _outcome().result_json)
    assert not (tmp_path / "x").exists()
