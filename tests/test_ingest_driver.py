"""pipelines/ingest.py: the driver hands the pipeline plan files and keeps no segment list."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from pipelines import ingest, staging
from pipelines.ingest import IngestConfig, run_ingest
from pipelines.storage import DatasetStore
from schemas.segments import Segment
from tests.media import write_media


def _config(tmp_path: Path, clips: int) -> IngestConfig:
    audio = tmp_path / "audio"
    for i in range(clips):
        write_media(audio / f"c{i}.wav", 1.0, 16000, freq=300 + 50 * i, seed=i)
    listing = tmp_path / "list.csv"
    rows = [f"c{i}.wav,tone" for i in range(clips)]
    listing.write_text("path,labels\n" + "\n".join(rows) + "\n")
    return local_config(listing, audio, tmp_path / "ds")


def local_config(listing: Path, audio: Path, out: Path) -> IngestConfig:
    """A one-worker ingest of 1 s clips at 16 kHz from local files, two clips a shard."""
    return IngestConfig(
        segments=str(listing),
        out=str(out),
        audio_root=str(audio),
        source="local",
        sample_rate=16000,
        clip_seconds=1.0,
        shard_clips=2,
        workers=1,
    )


def test_pipeline_runs_from_plan_files_with_no_segment_alive(tmp_path: Path, monkeypatch):
    cfg = _config(tmp_path, clips=5)
    seen = {}
    real = ingest.run_pipeline

    def observing(**kwargs):
        gc.collect()
        # type(), not isinstance(): isinstance reads __class__, which raises ReferenceError on
        # a weak proxy to a dead object (earlier tests in the same worker can leave some).
        seen["segments_alive"] = sum(
            type(o) is Segment and o.origin == cfg.segments for o in gc.get_objects()
        )
        seen["plan_files"] = sorted(DatasetStore(cfg.out).listdir(staging.PLANS))
        seen["planned_clips"] = sum(
            len(staging.read_plan(DatasetStore(cfg.out), rel)[0][2])
            for rel in kwargs["shard_plans"]
        )
        return real(**kwargs)

    monkeypatch.setattr(ingest, "run_pipeline", observing)
    summary = run_ingest(cfg, log=lambda line: None)
    assert seen == {
        "segments_alive": 0,
        "plan_files": [f"shards-{n:06d}.jsonl" for n in range(3)],
        "planned_clips": 5,
    }
    assert (summary.planned, summary.committed, summary.shards) == (5, 5, 3)
    assert DatasetStore(cfg.out).listdir(staging.PLANS) == []


def test_plan_files_go_when_the_pipeline_fails(tmp_path: Path, monkeypatch):
    cfg = _config(tmp_path, clips=2)

    def failing(**kwargs):
        assert kwargs["shard_plans"]
        raise RuntimeError("worker lost")

    monkeypatch.setattr(ingest, "run_pipeline", failing)
    with pytest.raises(RuntimeError, match="worker lost"):
        run_ingest(cfg, log=lambda line: None)
    assert DatasetStore(cfg.out).listdir(staging.PLANS) == []
    monkeypatch.undo()
    assert run_ingest(cfg, log=lambda line: None).committed == 2  # lock released, re-run works


def test_a_list_of_several_validation_batches_reports_each(tmp_path: Path, monkeypatch):
    cfg = _config(tmp_path, clips=5)
    monkeypatch.setattr(ingest, "SEGMENT_BATCH_ROWS", 2)
    lines = []
    run_ingest(cfg, log=lines.append)
    assert lines[:4] == [
        "validating 5 segments in 3 batches",
        "validated 2/5 segments",
        "validated 4/5 segments",
        "validated 5/5 segments",
    ]
    one_batch = []
    monkeypatch.setattr(ingest, "SEGMENT_BATCH_ROWS", 10)
    run_ingest(cfg, log=one_batch.append)
    assert not [line for line in one_batch if line.startswith("validat")]


def test_an_unknown_retry_reason_is_refused_before_anything_is_written(tmp_path: Path):
    cfg = _config(tmp_path, clips=1)
    cfg.retry_reasons = ("not_found", "bogus")
    with pytest.raises(ValueError) as refused:
        run_ingest(cfg, log=lambda line: None)
    message = str(refused.value)
    assert message.startswith("--retry-reason bogus: not a failure reason;")
    assert "permanent (skipped by a re-run unless given here): unavailable, private," in message
    assert "transient (retried by every re-run): rate_limited, timeout," in message
    assert "\n" not in message
    assert not Path(cfg.out).exists()
