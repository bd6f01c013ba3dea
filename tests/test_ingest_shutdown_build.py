"""A worker torn down while BuildShardFn's bundle still builds (the runner stopped it after a run
failed): the builds in flight end before teardown returns, and the bundle ends quietly instead of
failing with 'cannot schedule new futures after shutdown', which Beam logged as an error on top
of the run's own."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pipelines import beam_ingest
from pipelines.beam_ingest import BuildShardFn

CLIPS = 200


def _building(started: threading.Event, ended: threading.Event):
    """A ``build_shard`` that decodes :data:`CLIPS` clips one after the other on its
    executor (a second or so)."""

    def build(*args: object, executor, **kwargs: object) -> dict:
        try:
            started.set()
            for _ in range(CLIPS):
                executor.submit(time.sleep, 0.005).result()
            return {"clip_ids": [], "rejected": []}
        finally:
            ended.set()

    return build


def test_teardown_mid_bundle_ends_the_builds_first_and_the_bundle_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    started, ended = threading.Event(), threading.Event()
    monkeypatch.setattr(beam_ingest, "build_shard", _building(started, ended))
    monkeypatch.setattr(beam_ingest, "prepare_worker", lambda: None)
    fn = BuildShardFn(str(tmp_path), None, None, None, threads=1)
    fn.setup()
    fn.start_bundle()
    errors: list[BaseException] = []
    torn_down = threading.Event()

    def bundle() -> None:
        try:
            fn.process(("train", 0, [{"clip_id": "a"}]))
            torn_down.wait()
            fn.process(("train", 1, [{"clip_id": "b"}]))  # the bundle's next plan
            fn.finish_bundle()
        except BaseException as exc:  # what Beam would log
            errors.append(exc)

    thread = threading.Thread(target=bundle)
    thread.start()
    assert started.wait(30)
    fn.teardown()
    assert ended.is_set(), "teardown returned while a build still ran"
    torn_down.set()
    thread.join(30)
    assert not thread.is_alive()
    assert errors == []
