"""pipelines/ingest.py: the driver hands the pipeline plan files and keeps no segment list."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

from pipelines import ingest, staging
from pipelines.dataset_state import load_manifest
from pipelines.ingest import IngestConfig, run_ingest
from pipelines.storage import DatasetStore
from schemas.dataset import CLASSES
from schemas.segments import Segment
from tests.ingest_helpers import ledger
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


def test_a_dataset_without_clips_takes_the_settings_of_the_next_run(tmp_path: Path):
    cfg = _config(tmp_path, clips=2)
    cfg.beam_args = ["--runner=FooRunner"]
    with pytest.raises(ValueError, match="FooRunner"):
        run_ingest(cfg, log=lambda line: None)
    assert load_manifest(DatasetStore(cfg.out)).sample_rate == 16000
    listing = Path(cfg.segments)
    listing.write_text(listing.read_text().replace(",tone", ",beep"))
    cfg.beam_args, cfg.sample_rate, cfg.formats = [], 8000, ("parquet",)
    lines = []
    assert run_ingest(cfg, log=lines.append).committed == 2
    assert lines[0] == (
        "the dataset holds no clips yet, so this run's settings replace its own (its class map "
        "differs from --classes; it is at 16000 Hz, not 8000; its shards are hdf5, not parquet "
        "(--format)); clips that failed under its old ones are tried again"
    )
    saved = load_manifest(DatasetStore(cfg.out))
    assert (saved.sample_rate, saved.formats, saved.num_classes) == (8000, ["parquet"], 1)
    assert "beep" in (Path(cfg.out) / CLASSES).read_text()
    cfg.sample_rate = 16000
    with pytest.raises(ValueError, match="it is at 8000 Hz, not 16000"):
        run_ingest(cfg, log=lambda line: None)


def test_failures_and_staged_clips_under_other_settings_do_not_hold_for_new_ones(
    tmp_path: Path,
):
    cfg = _config(tmp_path, clips=1)
    good = (tmp_path / "audio" / "c0.wav").read_bytes()
    (tmp_path / "audio" / "c0.wav").write_bytes(b"RIFF not audio at all" * 50)
    failed = run_ingest(cfg, log=lambda line: None)
    assert (failed.failed, failed.dataset_clips) == ({"decode_error": 1}, 0)
    (tmp_path / "audio" / "c0.wav").write_bytes(good)
    assert run_ingest(cfg, log=lambda line: None).skipped_failures == {"decode_error": 1}
    store = DatasetStore(cfg.out)
    clip_id = next(iter(ledger(Path(cfg.out))))
    old_clip = np.zeros(16000, np.int16)  # a clip an interrupted run staged at 16 kHz
    staging.write_staged_clip(store, "train", old_clip, {"clip_id": clip_id})
    cfg.sample_rate = 8000
    summary = run_ingest(cfg, log=lambda line: None)
    assert (summary.committed, summary.failed, summary.skipped_failures) == (1, {}, {})
    assert [r["status"] for r in ledger(Path(cfg.out)).values()] == ["ok"]
