"""The lock an ingest holds names its stage, as embed's and import's do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines import ingest
from pipelines.storage import DatasetLock, describe_holder
from tests.media import write_media


class _Held(Exception):
    """Raised where the ingest would hold the lock, carrying its record."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__("held")
        self.record = record


class _RecordingLock(DatasetLock):
    def acquire(self) -> None:
        raise _Held(self.record)


def test_the_lock_of_an_ingest_names_the_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_media(tmp_path / "a.wav", 1.0, 8000)
    (tmp_path / "m.csv").write_text("path,labels\na.wav,x\n")
    monkeypatch.setattr(ingest, "DatasetLock", _RecordingLock)
    cfg = ingest.IngestConfig(segments=str(tmp_path / "m.csv"), out=str(tmp_path / "ds"))

    with pytest.raises(_Held) as held:
        ingest.run_ingest(cfg, log=lambda _: None)

    record = held.value.record
    assert f"(ingest run {record['owner']['run_id']})" in describe_holder(record)
