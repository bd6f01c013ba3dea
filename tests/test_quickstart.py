"""The README's first command: the embedded default job, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ingest_helpers import audiomill, manifest


@pytest.mark.slow
def test_quickstart_runs_offline_and_verifies(tmp_path: Path):
    proc = audiomill("quickstart", "--out", str(tmp_path / "qs"), cwd=tmp_path)
    assert "OK" in proc.stdout
    ds = tmp_path / "qs" / "dataset"
    m = manifest(ds)
    assert m["splits"]["train"]["num_clips"] == 15
    assert m["splits"]["eval"]["num_clips"] == 5
    assert m["formats"] == ["hdf5", "parquet"]
    info = json.loads(audiomill("dataset", "info", str(ds), "--json").stdout)
    assert info["clips"] == 20
    assert all(s["failed"] == 0 for s in info["splits"].values())
