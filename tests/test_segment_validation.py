"""pipelines/ingest.py: a segment list is validated and recorded in batches of bounded size."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.ingest import _segments_table, validate_segments
from pipelines.storage import DatasetStore
from schemas.segments import Segment, table_to_segments


def segment(i: int, start: float = 0.0, end: float = 10.0, unknown: tuple = ()) -> Segment:
    return Segment(
        clip_id=f"clip{i}",
        source=f"clip{i}.wav",
        source_kind="path",
        start_s=start,
        end_s=end,
        labels=(i % 2,),
        label_mids=(f"/m/{i % 2}",),
        unknown_labels=unknown,
        split="train",
        origin="list.csv",
        line=i + 2,
    )


SEGMENTS = [
    segment(0, unknown=("/m/nope",)),
    segment(1),
    segment(2),
    segment(3, start=5.0, end=2.0),
    segment(4),
]


def validated(store: DatasetStore, run_id: str, batch_rows: int):
    with ThreadPoolExecutor(1) as reports:
        passing, failures, saving = validate_segments(
            SEGMENTS, store, run_id, 60.0, reports, batch_rows=batch_rows
        )
        for future in saving:
            future.result()
    return passing, failures, len(saving)


def test_progress_is_reported_after_each_batch(tmp_path: Path):
    calls = []
    with ThreadPoolExecutor(1) as reports:
        validate_segments(
            SEGMENTS,
            DatasetStore(str(tmp_path / "ds")),
            "r",
            60.0,
            reports,
            batch_rows=2,
            progress=lambda done, total: calls.append((done, total)),
        )
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_batches_fail_the_same_segments_as_one_frame_with_a_report_each(tmp_path: Path):
    store = DatasetStore(str(tmp_path / "ds"))
    passing, failures, reports = validated(store, "r1", batch_rows=2)
    whole_passing, whole_failures, whole_reports = validated(store, "r2", batch_rows=100)
    assert (reports, whole_reports) == (3, 1)
    assert failures == whole_failures and set(failures) == {0, 3}
    assert passing == whole_passing == [SEGMENTS[i] for i in (1, 2, 4)]
    names = sorted(p.name for p in (tmp_path / "ds" / "reports" / "validation").iterdir())
    stems = ["r1-rows-0000001-0000002", "r1-rows-0000003-0000004", "r1-rows-0000005-0000005"]
    assert names == sorted(
        f"segments-{s}.{ext}" for s in [*stems, "r2"] for ext in ("html", "json")
    )
    second = json.loads(
        (tmp_path / "ds/reports/validation/segments-r1-rows-0000003-0000004.json").read_text()
    )
    assert not second["success"]  # the batch holding segment 3 (start after end)


def test_segments_table_written_in_batches_holds_every_segment(tmp_path: Path):
    store = DatasetStore(str(tmp_path / "ds"))
    with _segments_table(store, "r1") as record, ThreadPoolExecutor(1) as reports:
        validate_segments(SEGMENTS, store, "r1", 60.0, reports, batch_rows=2, record=record)
    table = pq.read_table(tmp_path / "ds" / "segments" / "r1.parquet")
    assert table_to_segments(table) == SEGMENTS
