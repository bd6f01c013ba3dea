"""``dataset failures`` filters: one that can match nothing is an error naming what exists,
not '0 failed clips'."""

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
        ({"reason": "not_found"}, r"has reason 'not_found'; its reasons: timeout, validation$"),
        ({"reason": "not_found", "split": "eval"}, r"; its reasons: timeout, validation$"),
        ({"reason": "not_found", "run_id": RUN}, r"; its reasons: timeout, validation$"),
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
        ({"reason": "timeout", "split": "eval"}, 0),
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
    proc = audiomill("dataset", "failures", str(root), "--reason", "not_found", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: no failed clip of {root} has reason 'not_found'; its reasons: timeout, validation"
    ]
    proc = audiomill("dataset", "failures", str(root), "--reason", "timeout", "--split", "eval")
    assert proc.returncode == 0
    assert "0 failed clip(s)" in proc.stdout + proc.stderr


def test_reason_of_failures_committed_since_is_refused(root: Path):
    """The reasons named are those of the clips that failed and were not committed since."""
    row = {"clip_id": "train-clip0000_0", "split": "train", "status": STATUS_FAILED}
    rows = [{**row, "reason": "unavailable", "run_id": "r0", "recorded_at": 1.0}]
    pq.write_table(ledger_table(rows), root / "ledger" / "train" / "failures-r0.parquet")
    with pytest.raises(ValueError, match=r"'unavailable'; its reasons: timeout, validation$"):
        dataset_failures(str(root), reason="unavailable")


def test_reason_of_a_dataset_without_failures_is_refused(tmp_path: Path):
    make_dataset(tmp_path, {"train": [[0], [1]]}, num_classes=2)
    with pytest.raises(ValueError, match=r"has reason 'timeout': it has no failed clips$"):
        dataset_failures(str(tmp_path), reason="timeout")
