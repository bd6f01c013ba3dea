"""The table `audiomill ingest` ends with: rows that add up to the segments requested."""

from __future__ import annotations

import re

import pytest

from pipelines.ingest import IngestSummary
from workflows.cli import _print_ingest_summary


@pytest.mark.parametrize("interrupted", [0, 2])
def test_failures_of_the_interrupted_run_have_their_own_row(capsys, interrupted: int) -> None:
    summary = IngestSummary(
        run_id="r", requested=7, malformed=[], already_done=2, planned=5 - interrupted,
        committed=3 - interrupted, failed={"not_found": 2}, shards=1, seconds=1.0,
        dataset_clips=5, interrupted_failures=interrupted,
    )  # fmt: skip
    _print_ingest_summary(summary)
    rows = dict(re.findall(r"│ (\w[\w ()]*?) +│ (\d+)", capsys.readouterr().err))
    assert ("failed in the interrupted run" in rows) == bool(interrupted)
    counted = ("already done (skipped)", "processed this run", "failed in the interrupted run")
    assert sum(int(rows.get(key, 0)) for key in counted) == 7
