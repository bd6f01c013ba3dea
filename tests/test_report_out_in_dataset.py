"""``report --out`` refuses a dataset's folder and folders inside a dataset, as train's --out does,
but for the dataset's reports/ folder (not reports/validation/), where reports belong."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.dataset_builders import make_dataset
from workflows.cli import app


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report_out") / "ds"
    make_dataset(root, {"train": [[0], [1], [], [0, 1]]}, num_classes=2, shard_clips=2)
    return root


@pytest.mark.parametrize(
    "inside", ["waveforms/train", "ledger/train", "reports/validation", "new", ""]
)
def test_report_refuses_an_out_in_the_dataset_but_its_reports(dataset: Path, inside: str) -> None:
    before = sorted(dataset.rglob("*"))
    out = dataset / inside if inside else dataset
    result = CliRunner().invoke(app, ["report", str(dataset), "--out", str(out)])
    assert result.exit_code == 2, result.output
    where = "is a dataset" if not inside else f"is inside the dataset {dataset}"
    assert result.output.splitlines() == [
        f"error: --out {out} {where} (it has manifest.json): report would write its files among "
        "the dataset's; choose a folder outside the dataset, or in its reports/ folder (the "
        f"default: {dataset / 'reports' / 'dataset'})"
    ]
    assert sorted(dataset.rglob("*")) == before


def test_report_writes_into_the_datasets_reports_folder(dataset: Path) -> None:
    out = dataset / "reports" / "snapshot"
    result = CliRunner().invoke(app, ["report", str(dataset), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "index.html").is_file() and (out / "summary.json").is_file()
    verify = CliRunner().invoke(app, ["dataset", "verify", str(dataset)])
    assert "not written by audiomill" not in verify.output
