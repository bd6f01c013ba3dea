"""The ingest pipeline in Apache Beam.

The clips and shards to process are written to plan files in the staging area
(:func:`pipelines.staging.write_plans`); the pipeline starts from their paths.

Clips from slow or rate-limited sources (YouTube, http, object stores) are staged::

    todo (plan files) -> Reshuffle -> StageClip (fetch, decode, stage)
        -> (split, clip_id) -> GroupByKey -> plan shards -> Reshuffle -> PackShard

Only small records cross a shuffle: waveforms go through the staging area of the dataset, so
memory stays bounded by one shard per worker whatever the number of clips, and an interrupted
run resumes from what is staged without downloading anything again. The grouping waits for
every clip of the pipeline, so the driver runs it in rounds of a few shards' worth of clips
(:func:`run_pipeline`): shards are committed as a run goes, and the staging area holds about
a round of audio.

Clips from local files are cheaper to decode again than to stage, so their shards are planned
by the driver and each is built by one worker, with no staging round trip and no barrier
between decoding and packing (``pipelines.shard_build``)::

    shard plans (plan files) -> Reshuffle -> BuildShard (decode on threads, pack, commit)

Heavy objects (the dataset's filesystem, a scratch directory, a thread pool) are made once per
worker in ``setup``; Great Expectations, which only packing needs, is imported there in the
background while the worker decodes.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import shutil
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor

from pipelines import beam_import  # noqa: F401  (Beam's import, without its root-logger warning)

# isort: split
import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.portability.portable_runner import JobServiceHandle
from apache_beam.runners.runner import PipelineRunner
from apache_beam.runners.worker import statesampler

from pipelines import staging
from pipelines.clip_stage import ClipSettings, stage_clip
from pipelines.heap import retain_freed_memory
from pipelines.pack import PackSettings, pack_shard, warm_up
from pipelines.process_exit import exit_without_collecting
from pipelines.shard_build import build_shard
from pipelines.storage import DatasetStore
from pipelines.worker_dirs import ScratchDir, worker_dir
from pipelines.worker_processes import WorkerEnvironment

DEFAULT_RUNNER_ARGS = ("--runner=DirectRunner", "--direct_running_mode=multi_processing")
"""The local default; with a single worker process the running mode is ``in_memory`` instead
(see :func:`pipeline_options`)."""
CLIPS_PER_PLAN_FILE = 1000
"""Clips to stage per plan file (a shard plan has a file of its own)."""
SHARDS_IN_FLIGHT = 2
"""Shards a worker builds at once (see ``BuildShardFn``)."""
THREADS_PER_PROCESS = 4
"""Decoding threads a local worker process runs before another process is worth starting:
decoding releases the GIL, and every process costs an interpreter, imports and memory."""
DIRECT_RUNNER_NAMES = frozenset(
    {"direct", "directrunner", "apache_beam.runners.direct.direct_runner.directrunner"}
)
"""``--runner`` values (lower-cased) that Beam resolves to its DirectRunner."""
WORKER_MODULE = "pipelines.beam_worker"
"""The module the local runner's worker processes run (Beam's harness, without its start-up
lines)."""
BEAM_DOFN_LOGGER = "apache_beam.runners.common"
"""The logger Beam reports an exception raised in a DoFn on."""
STATE_SAMPLING_MS = 20
"""Period of Beam's state sampler in ingest's processes (Beam's default is 200 ms)."""
WARM_UP_JOIN_S = 60.0
"""How long a worker's teardown waits for its background import of Great Expectations (an
interpreter should not exit in the middle of an import)."""


def sample_states_often() -> None:
    """Make the state samplers of bundles that this process runs sample every
    :data:`STATE_SAMPLING_MS` instead of Beam's 200 ms.

    The end of every bundle joins its sampler thread, which sleeps up to one period between
    samples: each bundle ended up to 0.2 s after its last element was done, and a local run
    ends with its last bundle. A sample is a few loads and stores, so a shorter period costs
    nothing measurable. Beam offers no option for it; a default other than the one this
    version has (a Beam that changed it) is left as it is.
    """
    init = statesampler.StateSampler.__init__
    if init.__defaults__ == (statesampler.DEFAULT_SAMPLING_PERIOD_MS,):
        init.__defaults__ = (STATE_SAMPLING_MS,)


def prepare_worker() -> None:
    """What every ingest DoFn does in ``setup``: start importing Great Expectations in the
    background, skip the collection at exit, and keep freed arrays in the heap (decoding a
    clip allocates several MB; fresh pages for each would double its cost)."""
    warm_up()
    exit_without_collecting()
    retain_freed_memory()


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
        self.scratch = ScratchDir("fetch")
        prepare_worker()

    def process(self, item: dict) -> Iterator[tuple[str, str]]:
        with self.scratch.use() as workdir:
            result = stage_clip(item, self.store, self.settings, workdir)
        if result["status"] == "ok":
            self.ok.inc()
            yield item["split"], item["clip_id"]
        else:
            self.failed.inc()
            Metrics.counter("audiomill", f"failed_{result['record']['reason']}").inc()

    def teardown(self) -> None:
        if getattr(self, "scratch", None) is not None:
            self.scratch.close()
        warm_up().join(WARM_UP_JOIN_S)


class PackShardFn(beam.DoFn):
    """Beam wrapper of :func:`pipelines.pack.pack_shard`; reads clips and encodes Parquet FLAC
    on ``threads`` threads."""

    def __init__(
        self, root: str, storage_options: dict | None, settings: PackSettings, threads: int = 1
    ) -> None:
        self.root = root
        self.storage_options = storage_options
        self.settings = settings
        self.threads = threads
        self.shards = Metrics.counter("audiomill", "shards_committed")

    def setup(self) -> None:
        self.store = DatasetStore(self.root, self.storage_options)
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="audiomill-pack")
        prepare_worker()

    def process(self, plan: tuple[str, int, list[str]]) -> Iterator[dict]:
        split, index, clip_ids = plan
        record = pack_shard(split, index, clip_ids, self.store, self.settings, executor=self.pool)
        self.shards.inc()
        yield record

    def teardown(self) -> None:
        if getattr(self, "pool", None) is not None:
            self.pool.shutdown()


class BuildShardFn(beam.DoFn):
    """Beam wrapper of :func:`pipelines.shard_build.build_shard`.

    A worker builds up to :data:`SHARDS_IN_FLIGHT` of its shards at once, decoding their clips
    on one pool of ``threads`` threads, shard after shard: while a shard is validated, written
    and committed (mostly one core's work), the next one is decoded on the others. Builds run
    in background threads; a bundle finishes when all of its builds have committed, and a
    failed build fails the bundle. The commit records are written to the staging area (nothing
    downstream reads an output), so this emits none.

    Beam tears a worker's DoFns down while a bundle still runs when the runner stops the worker
    (a run that failed or was interrupted): teardown then cancels the clips not yet decoded and
    waits for the builds in flight, which end without committing, and the bundle ends quietly,
    building nothing more, where it failed with "cannot schedule new futures after shutdown"
    and Beam logged that error on top of the run's own.
    """

    def __init__(
        self,
        root: str,
        storage_options: dict | None,
        clip_settings: ClipSettings,
        pack_settings: PackSettings,
        threads: int,
    ) -> None:
        self.root = root
        self.storage_options = storage_options
        self.clip_settings = clip_settings
        self.pack_settings = pack_settings
        self.threads = threads
        self.ok = Metrics.counter("audiomill", "clips_ok")
        self.failed = Metrics.counter("audiomill", "clips_failed")
        self.shards = Metrics.counter("audiomill", "shards_committed")

    def setup(self) -> None:
        self.store = DatasetStore(self.root, self.storage_options)
        self.workdir = worker_dir("shard")
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="audiomill-decode")
        self.packers = ThreadPoolExecutor(self.threads, thread_name_prefix="audiomill-pack")
        self.builds = ThreadPoolExecutor(SHARDS_IN_FLIGHT, thread_name_prefix="audiomill-build")
        self.pending: deque = deque()
        self.torn_down = threading.Event()
        self._submitting = threading.Lock()
        prepare_worker()

    def start_bundle(self) -> None:
        self.pending = deque()

    def process(self, plan: tuple[str, int, list[dict]]) -> None:
        while len(self.pending) >= SHARDS_IN_FLIGHT:
            self._finish(*self.pending.popleft())
        split, index, items = plan
        with self._submitting:
            if self.torn_down.is_set():
                return
            build = self.builds.submit(
                build_shard,
                split,
                index,
                items,
                self.store,
                self.clip_settings,
                self.pack_settings,
                workdir=self.workdir,
                executor=self.pool,
                pack_executor=self.packers,
            )
        self.pending.append((build, len(items)))

    def finish_bundle(self) -> None:
        try:
            while self.pending:
                self._finish(*self.pending.popleft())
        finally:
            for build, _ in self.pending:  # after a failure: let the others end first
                build.cancel() or futures.wait([build])
            self.pending.clear()

    def _finish(self, build: futures.Future, planned: int) -> None:
        try:
            record = build.result()
        except Exception:
            if self.torn_down.is_set():  # cut short by teardown: the re-run builds the shard
                return
            raise
        self.ok.inc(len(record["clip_ids"]) - len(record["rejected"]))
        self.failed.inc(planned - len(record["clip_ids"]) + len(record["rejected"]))
        self.shards.inc()

    def teardown(self) -> None:
        if getattr(self, "builds", None) is not None:
            with self._submitting:
                self.torn_down.set()
            for pool in (self.builds, self.pool, self.packers):
                pool.shutdown(wait=False, cancel_futures=True)
            self.builds.shutdown()  # the builds in flight, which fail at their next clip
        shutil.rmtree(getattr(self, "workdir", ""), ignore_errors=True)
        warm_up().join(WARM_UP_JOIN_S)


def plan_shards(
    split_clips: tuple[str, Iterable[str]],
    next_index: dict[str, int],
    shard_clips: int,
    pack_rest: bool = True,
) -> Iterator[tuple[str, int, list[str]]]:
    """Cut a split's staged clips, sorted by id, into shards numbered from ``next_index``.

    Without ``pack_rest`` only full shards are planned: the clips after the last full one stay
    staged for a later round of the run (see :func:`run_pipeline`).
    """
    split, clips = split_clips
    ordered = sorted(set(clips))
    if not pack_rest:
        ordered = ordered[: len(ordered) - len(ordered) % shard_clips]
    first = next_index.get(split, 0)
    for n, start in enumerate(range(0, len(ordered), shard_clips)):
        yield split, first + n, ordered[start : start + shard_clips]


def plan_direct_shards(
    items: list[dict], next_index: dict[str, int], shard_clips: int
) -> list[tuple[str, int, list[dict]]]:
    """Cut each split's planned clips, sorted by id, into shards numbered from ``next_index``."""
    by_split: dict[str, list[dict]] = {}
    for item in items:
        by_split.setdefault(item["split"], []).append(item)
    plans = []
    for split, planned in sorted(by_split.items()):
        planned.sort(key=lambda item: item["clip_id"])
        first = next_index.get(split, 0)
        for n, start in enumerate(range(0, len(planned), shard_clips)):
            plans.append((split, first + n, planned[start : start + shard_clips]))
    return plans


def local_parallelism(workers: int, direct_shards: int, staged_clips: int) -> tuple[int, int]:
    """Worker processes for the local runner, and threads per process (to decode, and to
    encode Parquet FLAC).

    Clips to stage spread over every worker, one process per core (two threads each encode
    FLAC for a shard packed while other workers are idle). Shards built directly decode
    their clips on threads (decoding and resampling release the GIL), so a process serves up
    to :data:`THREADS_PER_PROCESS` cores, and there are never more processes than shards:
    each one more costs an interpreter start, the imports (Great Expectations alone takes
    seconds) and an interpreter exit, all on the critical path of a short run.
    """
    workers = max(1, workers)
    if staged_clips:
        return workers, min(2, workers)
    processes = max(1, min(direct_shards, math.ceil(workers / THREADS_PER_PROCESS)))
    return processes, math.ceil(workers / processes)


def pipeline_options(beam_args: list[str], workers: int) -> PipelineOptions:
    """Beam options: the user's arguments over the defaults (DirectRunner, multi-processing).

    With one worker process the default running mode is ``in_memory``: the same pipeline runs
    in this process, which has imported Beam and Great Expectations already, instead of in a
    worker that starts an interpreter and imports them again (seconds on the critical path).
    """
    args = list(beam_args)
    given = {a.split("=", 1)[0] for a in args}
    defaults = [*DEFAULT_RUNNER_ARGS, f"--direct_num_workers={workers}"]
    if workers == 1:
        defaults[1] = "--direct_running_mode=in_memory"
    args = [a for a in defaults if a.split("=", 1)[0] not in given] + args
    if "--default_sdk_harness_log_level" not in given:
        args.append("--default_sdk_harness_log_level=WARNING")
    return PipelineOptions(args)


def unknown_beam_options(beam_args: list[str]) -> list[str]:
    """The options among ``beam_args`` that no Beam options class defines, as ``--name``.

    Beam drops such an option with a logged warning and runs on: a misspelt ``--runer`` runs
    the pipeline on the local DirectRunner. The warning is not logged here.
    """
    options = PipelineOptions(beam_args)
    logger = logging.getLogger(PipelineOptions.__module__)
    was_disabled, logger.disabled = logger.disabled, True
    try:
        known = options.get_all_options()
        given = options.get_all_options(retain_unknown_options=True)
    finally:
        logger.disabled = was_disabled
    return sorted(f"--{name}" for name in set(given) - set(known))


def builds_in_this_process(beam_args: list[str], workers: int) -> bool:
    """Whether a run with these Beam arguments and ``workers`` builds the shards of local clips
    in this process: the DirectRunner in ``in_memory`` mode, which :func:`pipeline_options`
    chooses for the one worker process of up to :data:`THREADS_PER_PROCESS` workers
    (:func:`local_parallelism`) unless the arguments say otherwise."""
    options = pipeline_options(beam_args, math.ceil(max(1, workers) / THREADS_PER_PROCESS))
    runner = (options.view_as(StandardOptions).runner or "").lower()
    mode = options.view_as(DirectOptions).direct_running_mode
    return runner in DIRECT_RUNNER_NAMES and mode == "in_memory"


def direct_runner(options: PipelineOptions) -> PipelineRunner | None:
    """The runner for ``--runner=DirectRunner``: Beam's FnApiRunner, without trying Prism first.

    Since Beam 2.6x, ``DirectRunner`` first hands a batch pipeline to the Prism runner, whose
    binary it downloads from GitHub at run time: a network request on every offline run (it
    failed after 0.1-0.15 s here, and where connections hang rather than fail, it would hang),
    and on a machine that reaches GitHub a different engine that ignores
    ``--direct_running_mode``. The FnApiRunner is what ``DirectRunner`` falls back to, set up
    the same way (the pipeline options provisioned to its workers); ``--runner=PrismRunner``
    still chooses Prism. In ``multi_processing`` mode its workers run :data:`WORKER_MODULE`,
    started and stopped by :mod:`pipelines.worker_processes`.

    Parameters
    ----------
    options : PipelineOptions

    Returns
    -------
    PipelineRunner or None
        An FnApiRunner when the runner option names ``DirectRunner`` (any of
        :data:`DIRECT_RUNNER_NAMES`); ``None`` otherwise, for Beam to make the runner the
        option names.
    """
    if (options.view_as(StandardOptions).runner or "").lower() not in DIRECT_RUNNER_NAMES:
        return None
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    info = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    )
    if options.view_as(DirectOptions).direct_running_mode != "multi_processing":
        return fn_runner.FnApiRunner(provision_info=info)
    command = shlex.join([sys.executable, "-m", WORKER_MODULE])
    return _OwnWorkersRunner(
        default_environment=WorkerEnvironment.from_command_string(command),
        provision_info=info,
    )


class _OwnWorkersRunner(fn_runner.FnApiRunner):
    """An FnApiRunner whose worker processes run the command of its default environment (a
    :class:`~pipelines.worker_processes.WorkerEnvironment`).

    In ``multi_processing`` mode the FnApiRunner replaces its default environment with Beam's
    own worker command. With no running mode it keeps the environment it was given, and still
    starts ``direct_num_workers`` workers of it (``in_memory`` would too, with a warning that
    the workers do not run in parallel). The option is the only thing the runner reads the
    mode from, so it is unset for the run and restored afterwards.
    """

    def run_pipeline(self, pipeline: beam.Pipeline, options: PipelineOptions):
        direct = options.view_as(DirectOptions)
        mode = direct.direct_running_mode
        direct.direct_running_mode = None
        try:
            return super().run_pipeline(pipeline, options)
        finally:
            direct.direct_running_mode = mode


class ReadPlanFn(beam.DoFn):
    """Emit the records of plan files (:func:`pipelines.staging.read_plan`), given their paths."""

    def __init__(self, root: str, storage_options: dict | None) -> None:
        self.root = root
        self.storage_options = storage_options

    def setup(self) -> None:
        self.store = DatasetStore(self.root, self.storage_options)

    def process(self, rel: str) -> Iterator:
        yield from staging.read_plan(self.store, rel)


def _spread(
    p: beam.Pipeline, name: str, plan_files: Sequence[str], read: ReadPlanFn
) -> beam.PCollection:
    """The records of ``plan_files`` as a PCollection spread over the workers."""
    return (
        p
        | name >> beam.Create(plan_files, reshuffle=False)
        | f"Read{name}" >> beam.ParDo(read)
        | f"Spread{name}" >> beam.Reshuffle()
    )


def run_pipeline(
    *,
    root: str,
    storage_options: dict | None,
    clip_settings: ClipSettings,
    pack_settings: PackSettings,
    next_index: dict[str, int],
    shard_clips: int,
    options: PipelineOptions,
    shard_plans: Sequence[str] = (),
    clip_plans: Sequence[str] = (),
    threads: int = 1,
    pack_rest: bool = True,
) -> None:
    """Build and run the ingest pipeline over plan files; returns when it finishes.

    ``shard_plans`` are files of one shard plan each (:func:`plan_direct_shards`), built
    straight from their sources on ``threads`` threads each; ``clip_plans`` files of clips to
    stage (up to :data:`CLIPS_PER_PLAN_FILE` each), packed into shards numbered from
    ``next_index``. Both are dataset-relative paths written by
    :func:`pipelines.staging.write_plans`; either may be empty. The caller removes them.

    Packing waits for every clip of ``clip_plans`` to be staged (a batch pipeline groups them
    by split), so a long run is run as rounds, one pipeline each, over a few shards' worth of
    clip plans (``pipelines.ingest``): all but the last round leave ``pack_rest`` False, which
    packs only full shards and leaves the rest of each split's clips staged for the next
    round to pack with its own.
    """
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    dofn_errors = logging.getLogger(BEAM_DOFN_LOGGER)
    if not any(isinstance(f, QuietInterrupts) for f in dofn_errors.filters):
        dofn_errors.addFilter(QuietInterrupts())
    # Local runners start one worker process per core: nested BLAS/OpenMP thread pools in each
    # would only oversubscribe the cores. Workers inherit this; a user's own setting wins.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    exit_without_collecting()
    sample_states_often()
    read = ReadPlanFn(root, storage_options)
    try:
        with beam.Pipeline(runner=direct_runner(options), options=options) as p:
            if shard_plans:
                _ = (
                    p
                    | "ShardPlans" >> beam.Create(shard_plans)
                    | "ReadShardPlans" >> beam.ParDo(read)
                    | "BuildShard"
                    >> beam.ParDo(
                        BuildShardFn(root, storage_options, clip_settings, pack_settings, threads)
                    )
                )
            if clip_plans:
                _ = (
                    _spread(p, "Todo", clip_plans, read)
                    | "StageClip" >> beam.ParDo(StageClipFn(root, storage_options, clip_settings))
                    | "BySplit" >> beam.GroupByKey()
                    | "PlanShards" >> beam.FlatMap(plan_shards, next_index, shard_clips, pack_rest)
                    | "SpreadShards" >> beam.Reshuffle()
                    | "PackShard"
                    >> beam.ParDo(PackShardFn(root, storage_options, pack_settings, threads))
                )
    except RuntimeError as exc:
        if caused_by_interrupt(exc):  # Beam wraps a Ctrl-C in a DoFn in a RuntimeError
            raise KeyboardInterrupt from exc
        raise


class QuietInterrupts(logging.Filter):
    """Drop log records of errors caused by a ``KeyboardInterrupt``: Beam logs a Ctrl-C in a
    DoFn with its whole traceback, before the command says it was interrupted."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return exc is None or not caused_by_interrupt(exc)


def caused_by_interrupt(exc: BaseException) -> bool:
    """Whether a ``KeyboardInterrupt`` is in the cause or context chain of ``exc``."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False
