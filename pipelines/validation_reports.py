"""Great Expectations results kept in the dataset: JSON plus a Data Docs HTML page."""

from __future__ import annotations

import json

from pipelines import expectations_service
from pipelines.storage import DatasetStore


def save_validation_report(
    store: DatasetStore, rel_stem: str, result_json: dict
) -> tuple[str, str]:
    """Write ``<rel_stem>.json`` (GE's result) and ``<rel_stem>.html`` atomically.

    Parameters
    ----------
    store : DatasetStore
        The dataset (local or remote); paths escaping it are refused by the store.
    rel_stem : str
        Dataset-relative path without extension, e.g. ``reports/validation/segments-<run>``.
    result_json : dict
        ``ValidationOutcome.result_json``.

    Returns
    -------
    tuple of str
        The dataset-relative paths written: JSON first, then HTML.
    """
    json_rel, html_rel = f"{rel_stem}.json", f"{rel_stem}.html"
    store.write_bytes_atomic(json_rel, json.dumps(result_json, indent=1, allow_nan=False).encode())
    store.write_bytes_atomic(html_rel, expectations_service.render_html(result_json).encode())
    return json_rel, html_rel
