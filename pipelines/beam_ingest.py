"""The ingest pipeline in Apache Beam.

::

    todo (JSON lines) -> Reshuffle -> StageClip (fetch, decode, stage)
        -> (split, clip_id) -> GroupByKey -> plan shards -> Reshuffle -> PackShard

Only small records cross a shuffle: waveforms go through the staging area of the dataset, so
memory stays bounded by one shard per worker whatever the number of clips, and an interrupted
run resumes from what is staged. Heavy objects (the dataset's filesystem, a scratch directory)
are made once per worker in ``setup``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.clip_stage import ClipSettings, stage_clip
from pipelines.pack import PackSettings, pack_shard
from pipelines.storage import DatasetStore

DEFAULT_RUNNER_ARGS = ("--runner=DirectRunner", "--direct_running_mode=multi_processing")


class StageClipFn(beam.DoFn):
    """Beam wrapper of :func:`pipelines.clip_stage.stage_clip`; emits ``(split, clip_id)``."""

    def __init__(self, root: str, storage_options: dict | None, settings: ClipSettings) -> None:
        self.root = root
        self.storage_options = storage_options
        self.settings = settings
        self.ok = Metrics.counter("audiomill", "clips_ok")
        self.failed = Metrics.counter("audiomill", "clips_failed")

    def setup(self) -> None:
        self.store = DatasetStore(self.root, self.storage_options)
        self.workdir = tempfile.mkdtemp(prefix="audiomill-fetch-")

    def process(self, item: dict) -> Iterator[tuple[str, str]]:
        result = stage_clip(item, self.store, self.settings, self.workdir)
        if result["status"] == "ok":
            self.ok.inc()
            yield item["split"], item["clip_id"]
        else:
            self.failed.inc()
            Metrics.counter("audiomill", f"failed_{result['record']['reason']}").inc()

    def teardown(self) -> None:
        shutil.rmtree(getattr(self, "workdir", ""), ignore_errors=True)


class PackShardFn(beam.DoFn):
    """Beam wrapper of :func:`pipelines.pack.pack_shard`."""

    def __init__(self, root: str, storage_options: dict | None, settings: PackSettings) -> None:
        self.root = root
        self.storage_options = storage_options
        self.settings = settings
        self.shards = Metrics.counter("audiomill", "shards_committed")

    def setup(self) -> None:
        self.store = DatasetStore(self.root, self.storage_options)

    def process(self, plan: tuple[str, int, list[str]]) -> Iterator[dict]:
        split, index, clip_ids = plan
        record = pack_shard(split, index, clip_ids, self.store, self.settings)
        self.shards.inc()
        yield record


def plan_shards(
    split_clips: tuple[str, Iterable[str]], next_index: dict[str, int], shard_clips: int
) -> Iterator[tuple[str, int, list[str]]]:
    """Cut a split's staged clips, sorted by id, into shards numbered from ``next_index``."""
    split, clips = split_clips
    ordered = sorted(set(clips))
    first = next_index.get(split, 0)
    for n, start in enumerate(range(0, len(ordered), shard_clips)):
        yield split, first + n, ordered[start : start + shard_clips]


def pipeline_options(beam_args: list[str], workers: int) -> PipelineOptions:
    """Beam options: the user's arguments over the defaults (DirectRunner, multi-processing)."""
    args = list(beam_args)
    given = {a.split("=", 1)[0] for a in args}
    defaults = [*DEFAULT_RUNNER_ARGS, f"--direct_num_workers={workers}"]
    args = [a for a in defaults if a.split("=", 1)[0] not in given] + args
    if "--default_sdk_harness_log_level" not in given:
        args.append("--default_sdk_harness_log_level=WARNING")
    return PipelineOptions(args)


def run_pipeline(
    todo: list[dict],
    *,
    root: str,
    storage_options: dict | None,
    clip_settings: ClipSettings,
    pack_settings: PackSettings,
    next_index: dict[str, int],
    shard_clips: int,
    options: PipelineOptions,
) -> None:
    """Build and run the ingest pipeline over the planned clips; returns when it finishes."""
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    # Local runners start one worker process per core: nested BLAS/OpenMP thread pools in each
    # would only oversubscribe the cores. Workers inherit this; a user's own setting wins.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    lines = [json.dumps(item, sort_keys=True) for item in todo]
    with beam.Pipeline(options=options) as p:
        staged = (
            p
            | "Todo" >> beam.Create(lines, reshuffle=False)
            | "Parse" >> beam.Map(json.loads)
            | "Spread" >> beam.Reshuffle()
            | "StageClip" >> beam.ParDo(StageClipFn(root, storage_options, clip_settings))
        )
        _ = (
            staged
            | "BySplit" >> beam.GroupByKey()
            | "PlanShards" >> beam.FlatMap(plan_shards, next_index, shard_clips)
            | "SpreadShards" >> beam.Reshuffle()
            | "PackShard" >> beam.ParDo(PackShardFn(root, storage_options, pack_settings))
        )
