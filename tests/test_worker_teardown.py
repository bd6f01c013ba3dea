"""Beam tears a worker's DoFns down while a clip is still being fetched (a run stopped with
Ctrl-C): the clip in flight is staged as it would have been, not failed for its scratch
folder going away under it, and the folder goes once the clip is done."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pipelines import clip_stage, staging
from pipelines.beam_ingest import StageClipFn
from pipelines.clip_stage import ClipSettings
from pipelines.fetch import FetchOptions
from pipelines.storage import DatasetStore
from tests.http_media_server import MediaServer, Script
from tests.media import write_media


@pytest.mark.parametrize("when", ["waiting for the server", "between download and decode"])
def test_teardown_during_a_fetch_leaves_the_clip_to_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    root = tmp_path / "ds"
    settings = ClipSettings(16000, 1.0, 0.9, FetchOptions(retries=0))
    fn = StageClipFn(str(root), None, settings)
    if when == "between download and decode":
        decode = clip_stage.prepare_clip

        def torn_down_first(*args, **kwargs):
            fn.teardown()
            return decode(*args, **kwargs)

        monkeypatch.setattr(clip_stage, "prepare_clip", torn_down_first)
    with MediaServer(tmp_path / "www") as server:
        write_media(server.root / "slow.wav", 1.0, 16000, 1, 440, 0)
        server.script("/slow.wav", Script(delay=1.0))
        item = {
            "clip_id": "slow", "split": "train", "location": server.url("slow.wav"),
            "precut": False, "start_s": None, "end_s": None, "labels": [0],
            "audio_name": "slow", "origin": "manifest.csv", "line": 2,
        }  # fmt: skip
        fn.setup()
        scratch = Path(fn.scratch.path)
        emitted: list = []
        fetch = threading.Thread(target=lambda: emitted.extend(fn.process(item)))
        fetch.start()
        if when == "waiting for the server":
            time.sleep(0.3)
            fn.teardown()
        fetch.join(30)
    store = DatasetStore(root)
    failed = f"{staging.split_dir('train')}/failed"
    assert [
        staging.read_json(store, f"{failed}/{n}")
        for n in staging.staged_names(store, "train", "failed")
    ] == []
    assert emitted == [("train", "slow")]
    assert staging.read_staged_meta(store, "train", "slow")["num_samples"] == 16000
    assert not scratch.exists(), "removed once the clip in flight finished"
