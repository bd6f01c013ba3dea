"""An embed with nothing to do leaves manifest.json byte-identical and records no run, as with
ingest, so ``audiomill run`` does not re-run the stages after it; one that drops shards saves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from features.embed import EmbedSettings, embed_dataset
from tests.test_embed_frame_count import DIGIT, LIBRI, waveform_dataset
from tests.test_embed_short_clips import fake_vggish


@pytest.fixture
def vggish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbedSettings:
    return fake_vggish(tmp_path, monkeypatch)


def test_an_embed_with_nothing_to_do_leaves_the_manifest_untouched(
    tmp_path: Path, vggish: EmbedSettings
):
    ds = waveform_dataset(tmp_path / "ds", [LIBRI, DIGIT], 16000, 1.92)
    embed_dataset(str(ds), vggish, scheduler="synchronous")
    before = (ds / "manifest.json").read_bytes()
    nothing = embed_dataset(str(ds), vggish, scheduler="synchronous")
    assert (nothing.shards_done, nothing.shards_skipped) == (0, 1)
    assert (ds / "manifest.json").read_bytes() == before


def test_an_embed_that_drops_lost_shards_still_saves(tmp_path: Path, vggish: EmbedSettings):
    ds = waveform_dataset(tmp_path / "ds", [LIBRI, DIGIT], 16000, 1.92)
    embed_dataset(str(ds), vggish, scheduler="synchronous")
    shutil.rmtree(ds / "embeddings" / "vggish" / "train")
    again = embed_dataset(str(ds), vggish, scheduler="synchronous")
    assert (again.dropped_shards, again.shards_done) == (1, 1)
    runs = json.loads((ds / "manifest.json").read_text())["runs"]
    assert [run["stage"] for run in runs] == ["embed:vggish", "embed:vggish"]
