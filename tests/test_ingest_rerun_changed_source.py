"""A re-run warns about committed clips whose local source file changed since they were
ingested (another size, or modified after the clip was recorded), naming clips and files; the
dataset keeps their audio as ingested. Checking costs one ``stat`` a local clip, none a URL."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipelines import ingest, rerun_checks
from schemas.ledger import STATUS_OK
from schemas.segments import Segment
from tests.ingest_helpers import audiomill, ledger
from tests.shared_data import FSDD_RECORDINGS

RECORDINGS = FSDD_RECORDINGS


def _ingest(work: Path):
    return audiomill(
        "ingest", "--segments", str(work / "m.csv"), "--out", str(work / "ds"),
        "--sample-rate", "8000", "--clip-seconds", "1", "--workers", "1",
    )  # fmt: skip


@pytest.mark.slow
def test_a_rerun_warns_about_changed_local_sources_and_keeps_the_clips(tmp_path: Path) -> None:
    for name, recording in (("a", "0_jackson_0"), ("b", "1_jackson_0"), ("c", "2_jackson_0")):
        shutil.copyfile(RECORDINGS / f"{recording}.wav", tmp_path / f"{name}.wav")
    (tmp_path / "m.csv").write_text("path,labels\na.wav,zero\nb.wav,one\nc.wav,two\n")
    _ingest(tmp_path)
    before = ledger(tmp_path / "ds")
    unchanged = _ingest(tmp_path)
    assert "warning" not in unchanged.stderr, unchanged.stderr

    shutil.copyfile(RECORDINGS / "1_theo_3.wav", tmp_path / "a.wav")  # another size
    later = before["b.wav_0"]["recorded_at"] + 60  # the same bytes, modified after ingest
    os.utime(tmp_path / "b.wav", (later, later))
    again = _ingest(tmp_path)
    assert "3 already done" in again.stderr, again.stderr
    warning = next(line for line in again.stderr.splitlines() if line.startswith("warning:"))
    size = (tmp_path / "a.wav").stat().st_size
    assert "2 committed clip(s) come from local files that changed" in warning, warning
    assert f"a.wav_0 ({tmp_path / 'a.wav'}: {size} bytes, " in warning, warning
    assert f"{before['a.wav_0']['media_bytes']} when ingested)" in warning, warning
    assert f"b.wav_0 ({tmp_path / 'b.wav'}: modified " in warning, warning
    assert "c.wav" not in warning, warning
    assert "keeps their audio as ingested" in warning and "new --out" in warning, warning
    after = ledger(tmp_path / "ds")
    assert {c: r["waveform_sha256"] for c, r in after.items()} == {
        c: r["waveform_sha256"] for c, r in before.items()
    }


def _committed(n: int, source: str) -> tuple[list[Segment], dict[str, dict]]:
    segments = [Segment(f"c{i}", f"c{i}.wav", "path", None, None) for i in range(n)]
    row = {"status": STATUS_OK, "media_bytes": 100, "recorded_at": 1.0e9}
    state = {s.clip_id: {**row, "source": source.format(i=i)} for i, s in enumerate(segments)}
    return segments, state


def test_the_check_stats_each_local_source_once_and_no_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_stat = os.stat

    def counting_stat(path, *args, **kwargs):
        calls.append(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(rerun_checks.os, "stat", counting_stat)
    rerun_checks.warn_changed_sources(
        *_committed(20_000, "https://host/audio/c{i}.wav"), ingest.logger
    )
    assert calls == []
    rerun_checks.warn_changed_sources(
        *_committed(20_000, str(tmp_path / "c{i}.wav")), ingest.logger
    )
    assert len(calls) == 20_000
