"""The summary of a run that resumes an interrupted one counts each requested clip once."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import ingest
from pipelines.ingest import IngestConfig, IngestSummary, run_ingest
from tests.ingest_helpers import ledger
from tests.media import write_media
from tests.test_ingest_driver import local_config

GOOD, BAD, MISSING = ("c0", "c2", "c4", "c5"), ("c1", "c3"), ("c6",)
"""Clip names: shards of two clips, in this order, take c0 c1, c2 c3, c4 c5, c6."""


def _config(tmp_path: Path) -> IngestConfig:
    audio = tmp_path / "audio"
    for i, name in enumerate(GOOD):
        write_media(audio / f"{name}.wav", 1.0, 16000, freq=300 + 50 * i, seed=i)
    for name in BAD:
        (audio / f"{name}.wav").write_bytes(b"RIFF not audio at all" * 50)
    listing = tmp_path / "list.csv"
    names = sorted(GOOD + BAD + MISSING)
    listing.write_text("path,labels\n" + "".join(f"{n}.wav,tone\n" for n in names))
    return local_config(listing, audio, tmp_path / "ds")


def _interrupt_after_two_shards(cfg: IngestConfig, monkeypatch) -> None:
    """Run ``cfg`` until its first two shards (c0 c1, c2 c3) are built, then interrupt it
    before it adopts them and writes its ledger, as Ctrl-C would."""
    real = ingest.run_pipeline

    def interrupted(**kwargs):
        real(**{**kwargs, "shard_plans": kwargs["shard_plans"][:2]})
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest, "run_pipeline", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_ingest(cfg, log=lambda line: None)
    monkeypatch.undo()


def _counted(summary: IngestSummary) -> int:
    return (
        len(summary.malformed)
        + summary.already_done
        + summary.interrupted_failures
        + summary.committed
        + sum(summary.failed.values())
    )


def test_failures_of_the_interrupted_run_count_once_as_this_runs(tmp_path: Path, monkeypatch):
    cfg = _config(tmp_path)
    _interrupt_after_two_shards(cfg, monkeypatch)
    lines = []
    summary = run_ingest(cfg, log=lines.append)
    # c0 and c2 were committed, c1 and c3 failed to decode; c4, c5 and c6 (missing) are left
    assert (summary.requested, summary.already_done, summary.planned, summary.committed) == (
        7,
        2,
        3,
        2,
    )
    assert summary.failed == {"not_found": 1}  # c1 and c3 are counted once, below
    assert summary.interrupted_failures == 2
    assert summary.skipped_failures == {}
    assert _counted(summary) == summary.requested
    assert (
        "7 segments: 2 already done, 0 rejected, 2 failed in the interrupted run, 3 to process"
        in lines
    )
    rows = ledger(Path(cfg.out))
    assert len(rows) == 7
    assert {r["run_id"] for r in rows.values() if r["status"] != "ok"} == {summary.run_id}

    again = run_ingest(cfg, log=lambda line: None)
    assert (again.already_done, again.skipped_failures) == (7, {"decode_error": 2, "not_found": 1})
    assert again.interrupted_failures == 0 and _counted(again) == 7


def test_a_segment_rejected_again_has_its_own_count(tmp_path: Path):
    cfg = _config(tmp_path)
    listing = Path(cfg.segments)
    listing.write_text(
        "path,start_seconds,end_seconds,labels\n"
        + "".join(f"{n}.wav,,,tone\n" for n in GOOD)
        + "c0.wav,0.8,0.2,tone\n"  # ends before it starts
    )
    first = run_ingest(cfg, log=lambda line: None)
    assert (first.failed, first.rejected_again) == ({"validation": 1}, 0)
    assert _counted(first) == first.requested == 5
    again = run_ingest(cfg, log=lambda line: None)
    assert (again.already_done, again.failed, again.rejected_again) == (4, {}, 1)
    assert _counted(again) + again.rejected_again == again.requested
    assert len(ledger(Path(cfg.out))) == 5
