"""An AudioSet row with no file under --audio-root fails at planning: the planning line counts
it, so that its counts add up to the segments as the progress bar and the summary do."""

from __future__ import annotations

import re
from pathlib import Path

from tests.ingest_helpers import audiomill, ledger
from tests.media import write_media


def test_a_segment_with_no_file_under_the_audio_root_is_counted_at_planning(tmp_path: Path):
    write_media(tmp_path / "audio" / "Yabcdefghijk.wav", 1.0, 16000)
    (tmp_path / "classes.csv").write_text("index,mid,display_name\n0,/m/a,A\n")
    rows = tmp_path / "segments.csv"
    rows.write_text(
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        'abcdefghijk, 0.000, 1.000, "/m/a"\n'
        'zzzzzzzzzzz, 0.000, 1.000, "/m/a"\n'
    )
    out = tmp_path / "ds"
    proc = audiomill("ingest", "--segments", str(rows), "--classes", str(tmp_path / "classes.csv"),
                     "--audio-root", str(tmp_path / "audio"), "--out", str(out),
                     "--sample-rate", "16000", "--clip-seconds", "1")  # fmt: skip
    printed = proc.stdout + proc.stderr
    assert "2 segments: 0 already done, 0 rejected, 1 not found, 1 to process" in printed, printed
    assert " 2/2 " in printed, printed  # the progress bar's total: the segments processed
    assert re.search(r"│ processed this run +│ 2 ", printed), printed
    assert re.search(r"│ failed: not_found +│ 1 ", printed), printed
    assert ledger(out)["zzzzzzzzzzz_0"]["reason"] == "not_found"
