"""report.html's per-class table: best AP first, classes without a positive (no AP) last."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from modeling.evaluation import evaluate_run
from modeling.evaluation_report import rows_by_ap
from tests.dataset_builders import make_dataset
from tests.inference_fixtures import Served, served_runs
from tests.training_fixtures import separable_embedding, separable_waveform

REPORT_ROW = re.compile(r"<tr><td>(sound \d)</td>")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Served:
    return served_runs(tmp_path_factory, worker_id)


def test_report_lists_classes_by_ap_with_undefined_ap_last(served: Served, tmp_path: Path) -> None:
    # Eval clips of classes 1 and 2 only: class 0 has no positive, so its AP is undefined.
    make_dataset(
        tmp_path / "ds",
        {"eval": [[1 + i % 2] for i in range(12)]},
        num_classes=3,
        shard_clips=16,
        embedding_formats=("hdf5",),
        waveform_of=separable_waveform,
        embedding_of=separable_embedding,
    )
    evaluate_run(served.wave, tmp_path / "ds", "eval", out_dir=tmp_path / "ev")
    with open(tmp_path / "ev" / "per_class.csv", newline="") as fh:
        aps = {r["display_name"]: r["ap"] for r in csv.DictReader(fh)}
    assert aps["sound 0"] == "" and aps["sound 1"] and aps["sound 2"]
    page = (tmp_path / "ev" / "report.html").read_text()
    shown = REPORT_ROW.findall(page.split("<h2>Per class, by AP</h2>", 1)[1])
    best = sorted(["sound 1", "sound 2"], key=lambda name: -float(aps[name]))
    assert shown == [*best, "sound 0"]


def test_rows_by_ap_keeps_class_order_among_equal_aps() -> None:
    aps = [None, 0.5, 1.0, None, 0.5]
    rows = [{"index": i, "ap": ap} for i, ap in enumerate(aps)]
    assert [r["index"] for r in rows_by_ap(rows)] == [2, 1, 4, 0, 3]
