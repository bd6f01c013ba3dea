"""Embed runs that embed shards are recorded in the manifest's runs, as ingest and import runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.embed import EmbedSettings, embed_dataset
from tests.test_embed_frame_count import DIGIT, LIBRI, waveform_dataset
from tests.test_embed_short_clips import fake_vggish
from workflows.cli import app


@pytest.fixture
def vggish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbedSettings:
    return fake_vggish(tmp_path, monkeypatch)


def runs_by_stage(dataset: Path) -> dict[str, int]:
    result = CliRunner().invoke(app, ["dataset", "info", str(dataset), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["runs_by_stage"]


def test_each_embed_run_that_embeds_shards_is_recorded(tmp_path: Path, vggish: EmbedSettings):
    ds = waveform_dataset(tmp_path / "ds", [LIBRI, DIGIT], 16000, 1.92)
    first = embed_dataset(str(ds), vggish, scheduler="synchronous")
    assert runs_by_stage(ds) == {"embed:vggish": 1}
    nothing = embed_dataset(str(ds), vggish, scheduler="synchronous")
    assert nothing.shards_done == 0 and runs_by_stage(ds) == {"embed:vggish": 1}
    shutil.rmtree(ds / "embeddings" / "vggish" / "train")
    again = embed_dataset(str(ds), vggish, scheduler="synchronous")
    assert again.shards_done == 1 and runs_by_stage(ds) == {"embed:vggish": 2}
    runs = json.loads((ds / "manifest.json").read_text())["runs"]
    assert [(r["run_id"], r["shards_done"], r["clips"], r["short_clips"]) for r in runs] == [
        (first.run_id, 1, 2, 1),
        (again.run_id, 1, 2, 1),
    ]
