"""The table `audiomill ingest` ends with: rows that add up to the segments requested."""

from __future__ import annotations

import re

import pytest

from pipelines.ingest import IngestSummary
from workflows.cli import _print_ingest_summary


@pytest.mark.parametrize(("interrupted", "rejected"), [(0, 0), (2, 0), (0, 1)])
def test_failures_of_the_interrupted_run_and_rejections_recorded_before_have_their_own_rows(
    capsys, interrupted: int, rejected: int
) -> None:
    summary = IngestSummary(
        run_id="r", requested=7, malformed=[], already_done=2,
        planned=5 - interrupted - rejected, committed=3 - interrupted, failed={"not_found": 2},
        shards=1, seconds=1.0, dataset_clips=5, interrupted_failures=interrupted,
        rejected_again=rejected,
    )  # fmt: skip
    _print_ingest_summary(summary)
    rows = dict(re.findall(r"│ (\w[\w ()]*?) +│ (\d+)", capsys.readouterr().err))
    assert ("failed in the interrupted run" in rows) == bool(interrupted)
    assert ("rejected again (in the ledger)" in rows) == bool(rejected)
    counted = (
        "already done (skipped)",
        "processed this run",
        "failed in the interrupted run",
        "rejected again (in the ledger)",
    )
    assert sum(int(rows.get(key, 0)) for key in counted) == 7
