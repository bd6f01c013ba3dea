"""The summary's rows add up: to the segments requested, and what a run processed to what it
committed and what failed (a resumed run counts the interrupted run's failures once)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from pipelines.ingest import IngestSummary, run_ingest
from tests.test_ingest_summary_resume import _config, _interrupt_after_two_shards
from workflows.cli import _print_ingest_summary, app


def _table(summary: IngestSummary, capsys) -> dict[str, int]:
    """The rows of the table `audiomill ingest` prints for ``summary``."""
    _print_ingest_summary(summary)
    return {k: int(v) for k, v in re.findall(r"│ (\w[\w ():]*?) +│ (\d+)", capsys.readouterr().err)}


def _assert_adds_up(summary: IngestSummary, capsys) -> None:
    rows = _table(summary, capsys)
    failed = sum(n for key, n in rows.items() if key.startswith("failed: "))
    assert rows["processed this run"] == rows["committed this run"] + failed
    parts = (
        "malformed lines",
        "already done (skipped)",
        "failed in the interrupted run",
        "rejected again (in the ledger)",
        "processed this run",
    )
    assert sum(rows.get(key, 0) for key in parts) == rows["segments requested"]


def test_a_resumed_run_counts_the_interrupted_runs_failures_in_their_own_row_only(
    tmp_path: Path, monkeypatch, capsys
):
    cfg = _config(tmp_path)
    _interrupt_after_two_shards(cfg, monkeypatch)
    summary = run_ingest(cfg, log=lambda line: None)
    # c0 and c2 committed and c1, c3 failed to decode in the interrupted run; c4 and c5
    # are committed now and c6 (missing) fails
    assert (summary.already_done, summary.interrupted_failures) == (2, 2)
    assert (summary.planned, summary.committed, summary.failed) == (3, 2, {"not_found": 1})
    _assert_adds_up(summary, capsys)


def test_segments_failed_before_fetching_are_processed_by_the_run(tmp_path: Path, capsys):
    cfg = _config(tmp_path)
    Path(cfg.segments).write_text(
        "path,start_seconds,end_seconds,labels\n"
        "c0.wav,,,tone\nc2.wav,,,tone\n"
        "c4.wav,0.8,0.2,tone\n"  # ends before it starts: the validation rejects it
        "/nowhere/c9.wav,,,tone\n"  # no such file
    )
    summary = run_ingest(cfg, log=lambda line: None)
    assert summary.committed == 2
    assert summary.failed == {"validation": 1, "not_found": 1}
    assert summary.planned == 4
    _assert_adds_up(summary, capsys)


def test_the_failure_list_after_a_resume_counts_the_interrupted_runs_failures(
    tmp_path: Path, monkeypatch
):
    cfg = _config(tmp_path)
    _interrupt_after_two_shards(cfg, monkeypatch)
    args = ["ingest", "--segments", cfg.segments, "--out", cfg.out, "--audio-root",
            cfg.audio_root, "--source", "local", "--sample-rate", "16000", "--clip-seconds",
            "1", "--shard-clips", "2", "--workers", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    # c1 and c3 failed in the interrupted run, c6 now: all three are this run's to list
    assert "3 clip(s) failed:" in result.output, result.output
