"""``dataset failures`` filters: a typo is an error naming what exists, not '0 failed clips'."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.dataset_tools import dataset_failures
from schemas.ledger import STATUS_FAILED, ledger_table
from tests.dataset_builders import RUN, make_dataset
from tests.ingest_helpers import audiomill


@pytest.fixture
def root(tmp_path: Path) -> Path:
    make_dataset(
        tmp_path,
        {"train": [[0], [1]], "eval": [[1]]},
        num_classes=2,
        failures={"train": [("timeout", [0]), ("validation", [1])]},
    )
    return tmp_path


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"reason": "bogus"}, r"unknown failure reason 'bogus'; the reasons: unavailable, .*, "),
        ({"split": "nope"}, r"has no split 'nope'; its splits: eval, train$"),
        ({"run_id": "nope"}, rf"no ledger row of .* has run id 'nope'; .* first: {RUN}$"),
        ({"run_id": RUN[:3]}, rf"has run id '{RUN[:3]}'; "),  # a run id's prefix is no run id
    ],
)
def test_unknown_filter_is_an_error(root: Path, filters: dict, message: str):
    with pytest.raises(ValueError, match=message):
        dataset_failures(str(root), **filters)


@pytest.mark.parametrize(
    ("filters", "count"),
    [
        ({}, 2),
        ({"reason": "validation"}, 1),
        ({"reason": "not_found"}, 0),
        ({"split": "eval"}, 0),
        ({"run_id": RUN}, 2),
        ({"split": "eval", "run_id": RUN}, 0),
    ],
)
def test_known_filters_may_match_nothing(root: Path, filters: dict, count: int):
    assert len(dataset_failures(str(root), **filters)) == count


def test_unknown_run_names_the_latest_runs(root: Path):
    for n in range(7):
        row = {"clip_id": f"c{n}", "split": "train", "status": STATUS_FAILED, "reason": "timeout"}
        rows = [{**row, "run_id": f"r{n}", "recorded_at": 2e9 - n}]
        pq.write_table(ledger_table(rows), root / "ledger" / "train" / f"failures-r{n}.parquet")
    with pytest.raises(ValueError, match=r"latest first: r0, r1, r2, r3, r4 \(and 3 earlier\)$"):
        dataset_failures(str(root), run_id="nope")


def test_cli_names_the_runs_of_an_unknown_run(root: Path):
    proc = audiomill("dataset", "failures", str(root), "--run", "nope", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: no ledger row of {root} has run id 'nope'; its runs, latest first: {RUN}"
    ]
    proc = audiomill("dataset", "failures", str(root), "--reason", "not_found")
    assert proc.returncode == 0
    assert "0 failed clip(s)" in proc.stdout + proc.stderr
