"""pipelines/ingest.py: a re-run with nothing to do leaves the dataset as it found it (the
workflow runner tells re-made outputs by their size, modification time and inode)."""

from __future__ import annotations

from pathlib import Path

from pipelines.ingest import run_ingest
from tests.ingest_helpers import manifest
from tests.media import write_media
from tests.test_ingest_driver import local_config
from tests.test_ingest_rerun_conflicts import _snapshot


def _listing(tmp_path: Path, rows: str) -> tuple[Path, Path]:
    audio = tmp_path / "audio"
    for i in range(3):
        write_media(audio / f"c{i}.wav", 1.0, 16000, freq=300 + 100 * i, seed=i)
    listing = tmp_path / "list.csv"
    listing.write_text("path,labels\n" + rows)
    return listing, audio


def test_a_rerun_with_nothing_to_do_rewrites_nothing(tmp_path: Path):
    listing, audio = _listing(tmp_path, "c0.wav,tone\nc1.wav,tone\nc2.wav,tone\nnone.wav,tone\n")
    out = tmp_path / "ds"
    cfg = local_config(listing, audio, out)
    first = run_ingest(cfg, log=lambda line: None)
    assert (first.committed, first.failed) == (3, {"not_found": 1})
    before = _snapshot(out)
    lines: list[str] = []
    again = run_ingest(cfg, log=lines.append)
    assert (again.already_done, again.planned, again.committed, again.failed) == (4, 0, 0, {})
    assert "4 segments: 4 already done, 0 rejected, 0 to process" in lines
    assert _snapshot(out) == before  # manifest, segments tables, ledger, reports
    assert [r["run_id"] for r in manifest(out)["runs"]] == [first.run_id]


def test_a_rerun_that_records_a_failure_records_itself(tmp_path: Path):
    listing, audio = _listing(tmp_path, "c0.wav,tone\n")
    out = tmp_path / "ds"
    cfg = local_config(listing, audio, out)
    first = run_ingest(cfg, log=lambda line: None)
    listing.write_text("path,labels\nc0.wav,tone\nnone.wav,tone\n")
    again = run_ingest(cfg, log=lambda line: None)
    assert again.failed == {"not_found": 1}
    assert [r["run_id"] for r in manifest(out)["runs"]] == [first.run_id, again.run_id]
    assert (out / "segments" / f"{again.run_id}.parquet").exists()
    reports = out / "reports" / "validation"
    assert (reports / f"segments-{again.run_id}.json").exists()
    assert (reports / f"segments-{again.run_id}.html").exists()
