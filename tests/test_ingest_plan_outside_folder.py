"""A manifest row whose relative path leads out of the manifest's folder is rejected at
planning like a row the segment validation rejects: the planning line, the progress bar and the
summary count it alike, and the ledger records it with its reason."""

from __future__ import annotations

import re
from pathlib import Path

from tests.ingest_helpers import audiomill, ledger
from tests.media import write_media


def _ingest(lists: Path, out: Path) -> str:
    """Ingest ``lists/m.csv`` into ``out`` from ``lists``; return what it printed."""
    proc = audiomill("ingest", "--segments", "m.csv", "--out", str(out), "--sample-rate", "16000",
                     "--clip-seconds", "1", cwd=lists)  # fmt: skip
    return proc.stdout + proc.stderr


def _row(printed: str, name: str) -> int:
    """The number in the summary table's row ``name``."""
    return int(re.search(rf"│ {re.escape(name)} +│ (\d+)", printed).group(1))


def test_a_path_outside_the_manifests_folder_is_counted_as_rejected(tmp_path: Path):
    write_media(tmp_path / "audio" / "a.wav", 1.0, 16000)
    write_media(tmp_path / "audio" / "b.wav", 1.0, 16000, freq=880.0)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "m.csv").write_text(f"path,labels\n{tmp_path}/audio/a.wav,a\n../audio/b.wav,b\n")
    out = tmp_path / "ds"

    printed = _ingest(lists, out)
    assert "2 segments: 0 already done, 1 rejected, 1 to process" in printed, printed
    assert " 2/2 " in printed, printed  # the progress bar's total: the segments processed
    assert _row(printed, "processed this run") == 2
    assert _row(printed, "committed this run") == 1
    assert _row(printed, "failed: validation") == 1
    [failed] = [row for row in ledger(out).values() if row["status"] == "failed"]
    assert (failed["reason"], failed["line"], failed["transient"]) == ("validation", 3, False)
    assert f"path '../audio/b.wav' is outside the manifest's folder {lists}" in failed["detail"]

    printed = _ingest(lists, out)  # rejected again, as a row the validation rejects is
    assert "2 segments: 1 already done, 1 rejected, 0 to process" in printed, printed
    assert _row(printed, "rejected again (in the ledger)") == 1
    assert _row(printed, "already done (skipped)") == 1
    assert _row(printed, "processed this run") == 0
    assert len(list((out / "ledger" / "train").glob("failures-*.parquet"))) == 1
