"""The ingest driver: plan a run, execute it on Beam, commit the results.

Order of work, chosen so that a crash at any point loses nothing and duplicates nothing:

1. take the dataset lock (a second concurrent run is refused);
2. repair: adopt shards committed by an interrupted run, delete uncommitted shard files,
   temporaries and its plan files;
3. parse the segment list, validate it with the segment expectation suite;
4. plan: skip clips already committed or permanently failed, retry transient failures, reuse
   clips staged by an interrupted run;
5. run the Beam pipeline: clips from local files in shards planned here, each decoded, packed
   and committed by one worker; clips from anywhere else fetched, decoded and staged one by
   one, then packed and committed per shard (see ``pipelines.beam_ingest``), in rounds of
   :data:`ROUND_SHARDS` shards' worth of clips, each round's shards adopted into the manifest
   as it ends (so shards appear as a long run goes, and staging holds about a round);
6. adopt the new shards into the manifest, write the failures' ledger part, clear staging.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import heapq
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import decode_ahead, expectations_service, rerun_checks, staging
from pipelines.beam_ingest import (
    CLIPS_PER_PLAN_FILE,
    builds_in_this_process,
    local_parallelism,
    pipeline_options,
    plan_direct_shards,
    run_pipeline,
)
from pipelines.clip_stage import ClipSettings
from pipelines.dataset_state import (
    adopt_commits,
    is_ledger_file_name,
    is_waveform_file_name,
    ledger_parts,
    ledger_state,
    load_manifest,
    record_run,
    remove_orphans,
    save_manifest,
)
from pipelines.fetch import FetchOptions, is_local
from pipelines.heap import release_freed_memory
from pipelines.pack import PackSettings
from pipelines.segment_loading import class_map_from_list, load_segment_list
from pipelines.sources import SourceConfig, index_audio_root, list_folder, resolve
from pipelines.storage import DatasetLock, DatasetStore
from pipelines.validation_reports import save_validation_report
from schemas.classmap import ClassMap
from schemas.dataset import CLASSES, STAGING, DatasetManifest, ledger_dir, shard_index
from schemas.errors import InputFormatError
from schemas.failures import ClipFailure, FailureReason
from schemas.ledger import STATUS_OK, ledger_table
from schemas.segment_checks import describe_failed_checks
from schemas.segments import SEGMENT_SCHEMA, Segment, segments_to_table, split_name_problem
from schemas.shards import audio_name_for

logger = logging.getLogger(__name__)

FORMATS = ("hdf5", "parquet")
SEGMENT_BATCH_ROWS = 50_000
"""Segments validated (and written to the run's segments table) at once. Great Expectations
needs about 3 KB per row while it checks a frame: one batch of a 200,000-segment list took the
validation process from 160 to 770 MB; in batches its memory does not grow with the list."""
ROUND_SHARDS = 2
"""Shards' worth of clips that a round of a run fetches and stages before it packs (see
:func:`_execute`): a batch pipeline packs only once every clip it stages has been fetched, so
one pipeline over a whole list committed nothing for as long as its downloads took (weeks for
AudioSet) and staged the whole dataset first. A round is one pipeline run (worker start-up,
seconds) and ends with its slowest fetch, so it holds a few shards, not one."""
DAMAGE_CHECK_THREADS = 8
"""Threads that read back the clips an interrupted run staged, to find damaged ones (reading
and hashing release the GIL; on an object store each read is a request)."""


@dataclass
class IngestConfig:
    """Everything an ingest run needs; the CLI fills it from its options."""

    segments: str
    out: str
    classes: str | None = None
    source: str = "auto"
    url_template: str | None = None
    audio_root: str | None = None
    precut: bool = False
    sample_rate: int = 32000
    clip_seconds: float = 10.0
    formats: tuple[str, ...] = ("hdf5",)
    shard_clips: int = 1000
    split: str = "train"
    workers: int = 2
    rate_limit: float | None = None
    retries: int = 3
    socket_timeout: float = 30.0
    cookies: str | None = None
    exact_cuts: bool = False
    min_coverage: float = 0.9
    max_clipping: float = 0.01
    max_silence: float = 0.99
    max_segment_seconds: float = 60.0
    retry_reasons: tuple[str, ...] = ()
    storage_options: dict | None = None
    beam_args: list[str] = field(default_factory=list)

    @property
    def row_samples(self) -> int:
        """Samples per shard row (and per staged clip)."""
        return round(self.sample_rate * self.clip_seconds)


@dataclass
class IngestSummary:
    """What a run did."""

    run_id: str
    requested: int
    malformed: list[str]
    already_done: int
    planned: int
    """Segments this run processed: the clips it fetched or decoded, and the segments it failed
    before that (rejected by the validation, or with no media to fetch); ``committed`` and
    ``failed`` add up to it."""
    committed: int
    failed: dict[str, int]
    """This run's failures by reason (not the interrupted run's: ``interrupted_failures``)."""
    shards: int
    seconds: float
    dataset_clips: int
    skipped_failures: dict[str, int] = field(default_factory=dict)
    """Clips not tried again because they failed permanently before, by reason (``already_done``
    counts them too); ``--retry-reason`` tries them again."""
    interrupted_failures: int = 0
    """Permanent failures an interrupted run staged but did not record, recorded by this run
    (in the ledger under its run id); neither ``failed`` nor ``already_done`` counts them, so
    the malformed lines, ``already_done``, ``interrupted_failures``, ``rejected_again`` and
    ``planned`` add up to ``requested``."""
    rejected_again: int = 0
    """Segments the validation rejected as an earlier run did (its ledger row stands; neither
    ``failed`` nor ``already_done`` counts them)."""

    @property
    def usable(self) -> bool:
        """Whether the dataset holds at least one clip."""
        return self.dataset_clips > 0


def _settings(cfg: IngestConfig, class_map: ClassMap) -> dict:
    """The manifest fields a run sets when it makes the dataset."""
    return {
        "class_map_sha256": class_map.sha256,
        "num_classes": len(class_map),
        "sample_rate": cfg.sample_rate,
        "clip_seconds": cfg.clip_seconds,
        "formats": list(cfg.formats),
    }


def _holds_clips(store: DatasetStore, manifest: DatasetManifest) -> bool:
    """Whether the dataset has committed clips or embeddings, or shards an interrupted run
    committed (its settings are the dataset's for good then)."""
    entries = [*manifest.splits.values()]
    entries += [e for model in manifest.embeddings.values() for e in model.values()]
    return any(e.shards for e in entries) or any(
        staging.staged_names(store, split, "commits") for split in _staged_splits(store)
    )


def _shards_and_ledger_parts(store: DatasetStore) -> list[str]:
    """Dataset paths of the waveform and embedding shards and the ledger parts in ``store``."""
    found = [
        f"waveforms/{split}/{name}"
        for split in store.listdir("waveforms")
        for name in store.listdir(f"waveforms/{split}")
        if shard_index(name) is not None
    ]
    found += [
        f"embeddings/{model}/{split}/{name}"
        for model in store.listdir("embeddings")
        for split in store.listdir(f"embeddings/{model}")
        for name in store.listdir(f"embeddings/{model}/{split}")
        if shard_index(name) is not None
    ]
    return found + ledger_parts(store)


def _refuse_lost_manifest(store: DatasetStore) -> None:
    """Refuse a folder that holds shards or ledger parts but no ``manifest.json``.

    Taken for a new dataset, its shards and ledger parts would be orphans, removed by the
    repair step (or overwritten by shards at the same indices): the run stops before it
    writes or removes anything.
    """
    if found := _shards_and_ledger_parts(store):
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise ValueError(
            f"{store.url()}: holds shards or ledger parts ({shown}) but no manifest.json; "
            "ingesting into it would take it for a new dataset and delete them. Restore "
            "manifest.json from a backup, or ingest into a new --out."
        )


def _staged_splits(store: DatasetStore) -> list[str]:
    return [name for name in store.listdir(STAGING) if not name.startswith(".")]


def _forget_other_settings(store: DatasetStore) -> None:
    """Remove what earlier runs with other settings left in a dataset holding no clips: their
    class map, failures and staged clips (decoded at their sample rate and length). In the
    ledger folders only ledger parts and their temporaries go: a user's file there stays."""
    for split in _staged_splits(store):
        for kind in ("clips", "failed"):
            for name in staging.staged_names(store, split, kind):
                store.remove(f"{staging.split_dir(split)}/{kind}/{name}")
    for split in store.listdir("ledger"):
        for name in store.listdir(ledger_dir(split)):
            if is_ledger_file_name(name):
                store.remove(f"{ledger_dir(split)}/{name}")
    store.remove(CLASSES)


def _setting_differences(
    manifest: DatasetManifest, cfg: IngestConfig, class_map: ClassMap
) -> list[str]:
    problems = []
    if manifest.class_map_sha256 != class_map.sha256:
        problems.append("its class map differs from --classes")
    if manifest.sample_rate != cfg.sample_rate:
        problems.append(f"it is at {manifest.sample_rate} Hz, not {cfg.sample_rate}")
    if manifest.clip_seconds != cfg.clip_seconds:
        problems.append(f"its clips are {manifest.clip_seconds} s, not {cfg.clip_seconds}")
    if sorted(manifest.formats) != sorted(cfg.formats):
        problems.append(
            f"its shards are {','.join(manifest.formats)}, not {','.join(cfg.formats)} (--format)"
        )
    return problems


def _check_compatible(manifest: DatasetManifest, cfg: IngestConfig, class_map: ClassMap) -> None:
    if problems := _setting_differences(manifest, cfg, class_map):
        raise ValueError(
            "cannot add to the existing dataset: "
            + "; ".join(problems)
            + ". Use the dataset's own settings or a new --out."
        )


def _save_if_changed(store: DatasetStore, manifest: DatasetManifest) -> None:
    """Save the manifest unless ``manifest.json`` holds it already: a run that changes nothing
    leaves the file as it was (the workflow runner tells a re-made output by its size, time
    and inode)."""
    saved = load_manifest(store)
    if saved is None or saved.to_dict() != manifest.to_dict():
        save_manifest(store, manifest)


def _check_retry_reasons(given: tuple[str, ...]) -> None:
    """Refuse ``--retry-reason`` values that are not failure reasons, listing the reasons."""
    known = {r.value for r in FailureReason}
    if bad := [r for r in dict.fromkeys(given) if r not in known]:
        kinds = {
            kind: ", ".join(r.value for r in FailureReason if r.transient == transient)
            for kind, transient in (("permanent", False), ("transient", True))
        }
        raise ValueError(
            f"--retry-reason {', '.join(bad)}: not a failure reason; the reasons are "
            f"permanent (skipped by a re-run unless given here): {kinds['permanent']}; "
            f"transient (retried by every re-run): {kinds['transient']}"
        )


def _class_map(cfg: IngestConfig, store: DatasetStore | None) -> ClassMap:
    """``--classes``, else the dataset's class map (none given: not looked for), else the
    list's labels."""
    if cfg.classes:
        return ClassMap.load(cfg.classes, cfg.storage_options)
    if store is not None and store.exists(CLASSES):
        return ClassMap.from_csv_text(store.read_text(CLASSES), store.url(CLASSES))
    return class_map_from_list(cfg.segments, cfg.storage_options)


def _failure_row(seg: Segment, reason: FailureReason, detail: str, run_id: str) -> dict:
    return {
        "clip_id": seg.clip_id,
        "split": seg.split,
        "status": "failed",
        "reason": reason.value,
        "detail": detail,
        "transient": reason.transient,
        "attempts": 0,
        "source": seg.source,
        "start_s": seg.start_s,
        "end_s": seg.end_s,
        "origin": seg.origin,
        "line": seg.line,
        "run_id": run_id,
        "recorded_at": time.time(),
    }


def _write_ledger_part(store: DatasetStore, rel: str, rows: list[dict]) -> None:
    with tempfile.TemporaryDirectory(prefix="audiomill-ledger-") as tmp:
        local = os.path.join(tmp, "part.parquet")
        pq.write_table(ledger_table(rows), local)
        store.commit_file(local, rel)


def validate_segments(
    segments: list[Segment],
    store: DatasetStore,
    run_id: str,
    max_duration_s: float,
    reports: Executor,
    batch_rows: int = SEGMENT_BATCH_ROWS,
    record: Callable[[pa.Table], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Segment], dict[int, list[str]], list[Future]]:
    """Run the segment expectation suite, ``batch_rows`` segments at a time.

    Parameters
    ----------
    segments : list of Segment
        Without duplicate clip ids (the suite checks uniqueness within a batch).
    store : DatasetStore
    run_id : str
    max_duration_s : float
        The longest segment the suite accepts.
    reports : Executor
        Saves each batch's report.
    batch_rows : int
        Segments checked at once (:data:`SEGMENT_BATCH_ROWS`).
    record : callable, optional
        Given each batch's normalized table (:func:`schemas.segments.segments_to_table`), the
        one the suite checks, to keep (:func:`_segments_table`).
    progress : callable, optional
        Called after each batch with (segments checked so far, all segments).

    Returns
    -------
    (passing, failures, saving)
        The segments that pass, the failed expectations by segment position, and the savings
        of the reports (JSON and Data Docs HTML; rendering takes a good part of a second)
        submitted to ``reports``, for the caller to wait on: ``segments-<run>``, or with more
        than one batch ``segments-<run>-rows-<first>-<last>`` (1-based positions in
        ``segments``).
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be positive, got {batch_rows}")
    failures: dict[int, list[str]] = {}
    saving = []
    for start in range(0, len(segments), batch_rows):
        batch = segments[start : start + batch_rows]
        table = segments_to_table(batch)
        if record is not None:
            record(table)
        unknown = pa.array([len(s.unknown_labels) for s in batch], pa.int64())
        found, result_json = expectations_service.validate(
            table.append_column("num_unknown_labels", unknown),
            "segments",
            {"max_duration_s": max_duration_s},
            "segments",
        )
        failures.update({start + row: names for row, names in found.items()})
        stem = f"reports/validation/segments-{run_id}"
        if len(segments) > batch_rows:
            stem += f"-rows-{start + 1:07d}-{start + len(batch):07d}"
        saving.append(reports.submit(save_validation_report, store, stem, result_json))
        if progress is not None:
            progress(start + len(batch), len(segments))
    passing = [s for i, s in enumerate(segments) if i not in failures]
    return passing, failures, saving


@dataclass
class _Tally:
    """The clips and shards of a run that the progress poller does not find in the staging
    area, where it counts the rest: those of the shards that earlier rounds adopted, and the
    failures made before the pipeline."""

    clips: int = 0
    shards: int = 0

    def add(self, records: list[dict]) -> None:
        """Count the commit records of shards just adopted."""
        self.clips += sum(len(rec["clip_ids"]) for rec in records)
        self.shards += len(records)


@contextlib.contextmanager
def _polling(
    store: DatasetStore, plan: _RunPlan, report: Callable[[int, int], None] | None
) -> Iterator[_Tally]:
    """Report progress about once a second while the block runs (when ``report`` is given);
    yields the tally the block keeps of what its rounds adopted."""
    # Failures made before the pipeline are done already; those staged before the run, which
    # the poller finds among the staged failures all along, are not this run's.
    tally = _Tally(clips=len(plan.failures) - sum(plan.carried_failures.values()))
    if report is None:
        yield tally
        return
    stop, thread = _progress_poller(store, plan.splits, plan.processed, report, tally)
    try:
        yield tally
    finally:
        stop.set()
        thread.join()


def _progress_poller(
    store: DatasetStore,
    splits: list[str],
    total: int,
    report: Callable[[int, int], None],
    tally: _Tally,
) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    built: dict[str, int] = {}  # commit record -> clips decoded for it without staging
    shown = (0, 0)

    def count_built(split: str, name: str) -> int:
        key = f"{split}/{name}"
        if key not in built:
            rec = staging.read_json(store, f"{staging.split_dir(split)}/commits/{name}")
            built[key] = 0 if rec.get("staged", True) else len(rec["clip_ids"])
        return built[key]

    def poll() -> None:
        nonlocal shown
        while not stop.wait(1.0):
            with contextlib.suppress(OSError, ValueError, KeyError):
                done, shards = tally.clips, tally.shards
                for s in splits:
                    commits = staging.staged_names(store, s, "commits")
                    shards += len(commits)
                    done += sum(count_built(s, name) for name in commits)
                    done += len(staging.staged_names(store, s, "clips"))
                    done += len(staging.staged_names(store, s, "failed"))
                # While a round's shards are adopted, their clips leave the staging area before
                # the tally counts them: never show a count go back.
                shown = (max(shown[0], min(done, total)), max(shown[1], shards))
                report(*shown)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return stop, thread


def run_ingest(
    cfg: IngestConfig,
    *,
    log: Callable[[str], None] = print,
    progress: Callable[[int, int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Ingest ``cfg.segments`` into the dataset at ``cfg.out``.

    Parameters
    ----------
    cfg : IngestConfig
    log : callable
        Receives one-line status messages.
    progress : callable, optional
        Called about once a second with (clips finished, shards committed).
    on_plan : callable, optional
        Called once with the number of clips the run will process.

    Returns
    -------
    IngestSummary
    """
    bad = set(cfg.formats) - set(FORMATS)
    if bad or not cfg.formats:
        raise ValueError(f"--format must be among {', '.join(FORMATS)}; got {sorted(bad)}")
    if cfg.shard_clips < 1:
        raise ValueError("--shard-clips must be at least 1")
    if problem := split_name_problem(cfg.split):
        raise ValueError(f"--split: {problem}")
    _check_retry_reasons(cfg.retry_reasons)
    started = time.time()
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    store = DatasetStore(cfg.out, cfg.storage_options)
    class_map = _class_map(cfg, store)
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "run_id": run_id, "stage": "ingest"}
    with (
        DatasetLock(store, owner),
        ThreadPoolExecutor(1, thread_name_prefix="audiomill-report") as reports,
    ):
        manifest = load_manifest(store)
        if manifest is None:
            _refuse_lost_manifest(store)
            manifest = DatasetManifest(**_settings(cfg, class_map))
        elif _holds_clips(store, manifest):
            _check_compatible(manifest, cfg, class_map)
        else:
            if not cfg.classes:  # the list's labels, not the class map of the old settings
                class_map = _class_map(cfg, None)
            if differences := _setting_differences(manifest, cfg, class_map):
                log(
                    "the dataset holds no clips yet, so this run's settings replace its own ("
                    + "; ".join(differences)
                    + "); clips that failed under its old ones are tried again"
                )
                _forget_other_settings(store)
                for name, value in _settings(cfg, class_map).items():
                    setattr(manifest, name, value)
        try:
            plan = _prepare_run(cfg, class_map, store, manifest, run_id, reports, log)
            # The segment list, the ledger's state and the clips' plans are garbage now (the
            # plans are in plan files): their memory goes back before the pipeline needs its own
            # (at 200,000 segments, 455 MB after planning, 247 MB when the pipeline starts).
            release_freed_memory()
            if on_plan:
                on_plan(plan.processed)
            adopted = (
                _execute(cfg, class_map, store, manifest, run_id, plan, progress)
                if plan.planned
                else []
            )
        finally:
            decode_ahead.discard()
            staging.remove_plans(store)
        splits, failures = plan.splits, list(plan.failures)
        new_shards = 0
        committed = 0
        rejected_clips = Counter()
        for split in splits:
            manifest.split(split)  # listed even when none of its clips made it (dataset info)
            adopted += adopt_commits(store, manifest, split)
            failures += _collect_staged_failures(store, split, run_id)
        for rec in adopted:
            new_shards += rec["entry"] is not None
            committed += rec["entry"]["num_clips"] if rec["entry"] else 0
            rejected_clips["validation"] += len(rec["rejected"])
        recorded = Counter(r["reason"] for r in failures) + rejected_clips
        failed = recorded - plan.carried_failures
        for split in sorted({r["split"] for r in failures}):
            rows = [r for r in failures if r["split"] == split]
            _write_ledger_part(store, f"{ledger_dir(split)}/failures-{run_id}.parquet", rows)
        for split in splits:
            for name in staging.staged_names(store, split, "failed"):
                store.remove(f"{staging.split_dir(split)}/failed/{name}")
        summary = IngestSummary(
            run_id=run_id,
            requested=plan.requested,
            malformed=plan.malformed,
            already_done=sum(plan.already_done.values()),
            planned=plan.processed,
            committed=committed,
            failed=dict(failed),
            shards=new_shards,
            seconds=time.time() - started,
            dataset_clips=sum(s.num_clips for s in manifest.splits.values()),
            skipped_failures={k: n for k, n in plan.already_done.items() if k != STATUS_OK},
            interrupted_failures=plan.interrupted_failures,
            rejected_again=plan.rejected_again,
        )
        for future in plan.saving:
            future.result()
        if plan.recorded or new_shards or recorded:
            run = {"stage": "ingest", **asdict(summary)}
            run["config"] = {k: v for k, v in asdict(cfg).items() if k != "storage_options"}
            record_run(manifest, run)
        _save_if_changed(store, manifest)  # a run that did nothing leaves it as it was
    return summary


@dataclass
class _RunPlan:
    """What a run keeps of its segment list once the clips to process are in plan files."""

    splits: list[str]
    requested: int
    malformed: list[str]
    already_done: Counter
    """Clips skipped as done before: ``"ok"`` for committed ones, else their failure reason."""
    interrupted_failures: int
    """Clips skipped as failed permanently by an interrupted run (staged, collected again)."""
    carried_failures: Counter
    """Failures by reason staged before this run that it collects but did not make: the
    interrupted run's failures of clips it does not try again (``interrupted_failures``)
    and of clips its list does not name."""
    rejected_again: int
    """Segments the validation rejects again, whose rejection the ledger holds already."""
    planned: int
    failures: list[dict]
    saving: list[Future]
    shard_plans: list[str]
    clip_plans: list[str]
    round_files: int
    """Clip plan files a round of the run stages (:func:`_execute`)."""
    next_index: dict[str, int]
    processes: int
    threads: int
    recorded: bool = True
    """Whether the run records itself: False when it has nothing to process, no failure to
    record and no shard recovered (it then leaves the dataset as it found it)."""

    @property
    def processed(self) -> int:
        """Segments the run processes: its clips to process (``planned``), and the segments
        that failed before they could be (``failures``: rejected by the validation, or with
        no media to fetch)."""
        return self.planned + len(self.failures)


def _rejections(
    segments: list[Segment],
    failed_checks: dict[int, list[str]],
    sources: tuple[SourceConfig, dict[str, str] | None],
    max_segment_seconds: float,
) -> dict[int, str]:
    """Why each rejected segment is, by position: the expectations it failed
    (:func:`validate_segments`), or for a path that passed them, a source the run may not
    read (a relative path leading out of the folder it resolves in:
    :func:`pipelines.sources.resolve`'s ``VALIDATION`` failure)."""
    reasons = {
        i: describe_failed_checks(segments[i], names, max_segment_seconds)
        for i, names in failed_checks.items()
    }
    for i, seg in enumerate(segments):
        if i in reasons or seg.source_kind != "path":
            continue
        try:
            resolve(seg, *sources)
        except ClipFailure as exc:
            if exc.reason is FailureReason.VALIDATION:
                reasons[i] = exc.detail
    return dict(sorted(reasons.items()))


def _validation_failures(
    segments: list[Segment], rejected: dict[int, str], state: dict[str, dict], run_id: str
) -> tuple[list[dict], set[int]]:
    """The ledger rows of the rejected segments (:func:`_rejections`), and the positions of
    those whose rejection the ledger holds already (no row for them)."""
    recorded = {
        i
        for i in rejected
        if state.get(segments[i].clip_id, {}).get("reason") == FailureReason.VALIDATION.value
    }
    failures = [
        _failure_row(segments[i], FailureReason.VALIDATION, detail, run_id)
        for i, detail in rejected.items()
        if i not in recorded
    ]
    return failures, recorded


class _HeldReports(Executor):
    """Holds the savings of a run's validation reports until the run knows whether it records
    anything: a run that does nothing leaves no report behind."""

    def __init__(self) -> None:
        self._calls: list[tuple[Callable[[], object], Future]] = []

    def submit(self, fn: Callable, /, *args: object, **kwargs: object) -> Future:
        """Hold ``fn(*args, **kwargs)``; the future returned settles once it is released."""
        future: Future = Future()
        self._calls.append((functools.partial(fn, *args, **kwargs), future))
        return future

    def release(self, executor: Executor) -> list[Future]:
        """Submit the held calls to ``executor``; return their futures."""
        out = []
        for call, future in self._calls:
            done = executor.submit(call)
            done.add_done_callback(functools.partial(_settle, future))
            out.append(done)
        return out

    def drop(self) -> list[Future]:
        """Forget the held calls (their futures settle with None); return no futures."""
        for _, future in self._calls:
            future.set_result(None)
        return []


def _settle(future: Future, done: Future) -> None:
    """Give ``future`` the outcome of ``done``."""
    if (exc := done.exception()) is not None:
        future.set_exception(exc)
    else:
        future.set_result(done.result())


def _prepare_run(
    cfg: IngestConfig,
    class_map: ClassMap,
    store: DatasetStore,
    manifest: DatasetManifest,
    run_id: str,
    reports: Executor,
    log: Callable[[str], None],
) -> _RunPlan:
    """Steps 2 to 4 of a run: parse, repair, validate and plan, then write the plan files.

    Everything that grows with the segment list (the segments, the ledger's state, the clips'
    plans) lives only in this call; the pipeline reads the plans back from their files.
    """
    seglist = load_segment_list(cfg.segments, class_map, cfg.split, cfg.storage_options)
    if not seglist.segments and not seglist.malformed:
        raise InputFormatError(cfg.segments, "the list holds no segments")
    if not store.exists(CLASSES):
        store.write_bytes_atomic(CLASSES, class_map.to_csv_text().encode())
    segments, dupes = rerun_checks.dedupe(seglist.segments)
    seglist.malformed.extend(dupes)
    for bad_line in seglist.malformed:
        log(f"malformed: {bad_line}")
    # The default split only when some row falls back to it: a manifest naming every row's
    # split leaves no empty default split behind, and neither does a duplicate line.
    splits = sorted({s.split for s in segments} or {cfg.split})
    staging.remove_plans(store)
    recovered = 0
    for split in splits:
        store.remove_temporaries(f"waveforms/{split}", is_waveform_file_name)
        store.remove_temporaries(ledger_dir(split), is_ledger_file_name)
        adopted = adopt_commits(store, manifest, split)
        recovered += len(adopted)
        if adopted:
            log(f"recovered {len(adopted)} shard(s) of '{split}' from an interrupted run")
        remove_orphans(store, manifest, split)
    _save_if_changed(store, manifest)

    batches = -(-len(segments) // SEGMENT_BATCH_ROWS)
    validated: Callable[[int, int], None] | None = None
    if batches > 1:  # a long list takes seconds per batch: say what is going on
        log(f"validating {len(segments):,} segments in {batches} batches")

        def validated(done: int, total: int) -> None:
            log(f"validated {done:,}/{total:,} segments")

    # Every split's ledger, a committed row first: a clip id names one clip of the dataset,
    # whichever split a list puts it in.
    state: dict[str, dict] = {}
    for split in sorted(set(splits) | set(manifest.splits)):
        for clip_id, row in ledger_state(store, split).items():
            if state.get(clip_id, {}).get("status") != STATUS_OK:
                state[clip_id] = row
    sources = _sources(cfg, segments)
    segments, repeats = rerun_checks.same_audio(segments, state, sources)
    for bad_line in repeats:
        log(f"malformed: {bad_line}")
    seglist.malformed.extend(repeats)
    splits = sorted({s.split for s in segments} or {cfg.split})
    staged_failures = []  # (clip id, reason) of every failure staged before this run
    for split in splits:
        for name in staging.staged_names(store, split, "failed"):
            rec = staging.read_json(store, f"{staging.split_dir(split)}/failed/{name}")
            staged_failures.append((rec["clip_id"], rec["reason"]))
            if state.get(rec["clip_id"], {}).get("status") != STATUS_OK:
                state[rec["clip_id"]] = rec | {"interrupted": True}
    rerun_checks.add_unledgered_shards(store, manifest, state, log)
    rerun_checks.warn_changed_sources(segments, state, logger)
    labels = rerun_checks.committed_labels(store, manifest, state, segments)
    rerun_checks.check_committed(segments, state, cfg.segments, sources, labels, class_map)
    if builds_in_this_process(cfg.beam_args, cfg.workers):
        # The validation waits for Great Expectations' import on another core: meanwhile
        # this one decodes the clips the first shard starts with.
        ahead = _first_local_clips(segments, state, cfg, sources)
        decode_ahead.start(ahead, _clip_settings(cfg, store), threads=cfg.workers - 1)
    held = _HeldReports()
    work = False  # whether the run has anything to do or record (else it leaves no trace)
    with _segments_table(store, run_id, commit=lambda: work) as record:
        try:
            _, failed_checks, _ = validate_segments(
                segments,
                store,
                run_id,
                cfg.max_segment_seconds,
                held,
                batch_rows=SEGMENT_BATCH_ROWS,
                record=record,
                progress=validated,
            )
        finally:
            decode_ahead.stop()
        rejected = _rejections(segments, failed_checks, sources, cfg.max_segment_seconds)
        failures, recorded = _validation_failures(segments, rejected, state, run_id)
        passing = [s for i, s in enumerate(segments) if i not in rejected]
        not_found: list[dict] = []  # no file under --audio-root
        todo, already, interrupted = _plan(passing, state, cfg, sources, run_id, not_found)
        failures += not_found
        work = bool(todo or failures or interrupted or recovered)
    saving = held.release(reports) if work else held.drop()
    log(
        f"{len(segments)} segments: {sum(already.values())} already done, {len(rejected)} "
        "rejected, "
        + (f"{interrupted} failed in the interrupted run, " if interrupted else "")
        + (f"{len(not_found)} not found, " if not_found else "")
        + f"{len(todo)} to process"
    )
    retried = {item["clip_id"] for item in todo}  # their staged failures are replaced or removed
    carried = Counter(reason for clip_id, reason in staged_failures if clip_id not in retried)
    next_index = {s: manifest.split(s).next_index for s in splits}
    direct_items, todo_staged = _route(todo, store, splits, cfg.row_samples, log)
    decode_ahead.keep(item for item in direct_items if not item["staged"])  # staged: read back
    direct = plan_direct_shards(direct_items, next_index, cfg.shard_clips)
    for split, index, _ in direct:
        next_index[split] = max(next_index[split], index + 1)
    processes, threads = local_parallelism(cfg.workers, len(direct), len(todo_staged))
    round_clips = ROUND_SHARDS * cfg.shard_clips
    per_file = min(CLIPS_PER_PLAN_FILE, round_clips)
    return _RunPlan(
        splits=splits,
        requested=len(segments) + len(seglist.malformed),  # duplicates are malformed lines
        malformed=[str(m) for m in seglist.malformed],
        already_done=already,
        interrupted_failures=interrupted,
        carried_failures=carried,
        rejected_again=len(recorded),
        planned=len(todo),
        failures=failures,
        saving=saving,
        recorded=work,
        shard_plans=staging.write_plans(store, "shards", direct, 1),
        clip_plans=staging.write_plans(store, "clips", todo_staged, per_file),
        round_files=-(-round_clips // per_file),
        next_index=next_index,
        processes=processes,
        threads=threads,
    )


def _execute(
    cfg: IngestConfig,
    class_map: ClassMap,
    store: DatasetStore,
    manifest: DatasetManifest,
    run_id: str,
    plan: _RunPlan,
    progress: Callable[[int, int], None] | None,
) -> list[dict]:
    """Step 5 of a run: the Beam pipeline over the plan files, in rounds, with a progress poller.

    Each round is one pipeline over :attr:`_RunPlan.round_files` clip plan files and the clips
    earlier rounds staged but did not pack (the first round also builds the shards of local
    files). A round packs its splits' full shards only, the last one every clip left, and its
    shards are adopted into the manifest when it ends: a crash loses no more than a round, and
    the staging area holds a round's clips and fewer than a shard's more per split.

    Returns
    -------
    list of dict
        The commit records adopted, in order.
    """
    pack_settings = PackSettings(
        formats=tuple(cfg.formats),
        sample_rate=cfg.sample_rate,
        clip_seconds=cfg.clip_seconds,
        num_classes=len(class_map),
        class_map_sha256=class_map.sha256,
        run_id=run_id,
        min_coverage=cfg.min_coverage,
        max_clipping=cfg.max_clipping,
        max_silence=cfg.max_silence,
    )
    if plan.processes > 1:
        decode_ahead.discard()  # worker processes decode their clips themselves
    step = plan.round_files
    rounds = [plan.clip_plans[i : i + step] for i in range(0, len(plan.clip_plans), step)]
    next_index = dict(plan.next_index)
    adopted: list[dict] = []
    carried: list[dict] = []  # staged by an earlier round, not packed yet
    with _polling(store, plan, progress) as tally:
        for n, files in enumerate(rounds or [[]]):
            last = n + 1 >= len(rounds)
            carried_plans = staging.write_plans(store, "carried", carried, max(1, len(carried)))
            run_pipeline(
                shard_plans=plan.shard_plans if n == 0 else (),
                clip_plans=[*carried_plans, *files],
                pack_rest=last,
                threads=plan.threads,
                root=store.url(),
                storage_options=cfg.storage_options,
                clip_settings=_clip_settings(cfg, store),
                pack_settings=pack_settings,
                next_index=next_index,
                shard_clips=cfg.shard_clips,
                options=pipeline_options(cfg.beam_args, plan.processes),
            )
            records = [r for split in plan.splits for r in adopt_commits(store, manifest, split)]
            tally.add(records)
            adopted += records
            for rec in records:  # an index used by a shard all rejected is not used again
                next_index[rec["split"]] = max(next_index[rec["split"]], rec["index"] + 1)
            if not last:
                round_items = [item for rel in files for item in staging.read_plan(store, rel)]
                carried = _still_staged(store, carried + round_items)
    return adopted


def _still_staged(store: DatasetStore, items: list[dict]) -> list[dict]:
    """The planned clips of ``items`` that are in the staging area (staged, not packed)."""
    present = {
        (split, name)
        for split in {item["split"] for item in items}
        for name in staging.staged_names(store, split, "clips")
    }
    return [i for i in items if (i["split"], f"{staging.clip_key(i['clip_id'])}.clip") in present]


def _clip_settings(cfg: IngestConfig, store: DatasetStore) -> ClipSettings:
    """How the run fetches and decodes each clip."""
    fetch = FetchOptions(
        rate_limit=cfg.rate_limit,
        retries=cfg.retries,
        socket_timeout=cfg.socket_timeout,
        cookies=cfg.cookies,
        exact_cuts=cfg.exact_cuts,
        limiter_state=_limiter_state(store),
        storage_options=cfg.storage_options,
    )
    return ClipSettings(cfg.sample_rate, cfg.clip_seconds, cfg.min_coverage, fetch)


def _route(
    todo: list[dict],
    store: DatasetStore,
    splits: list[str],
    row_samples: int,
    log: Callable[[str], None],
) -> tuple[list[dict], list[dict]]:
    """Split planned clips into those built into shards directly (local files) and those to
    stage, these with the clips an interrupted run staged first (the first round packs them
    without fetching anything); flag the direct ones (in place) that an interrupted run left
    staged or failed. A staged clip that does not read back whole (cut short by a full disk,
    say) is removed, saying so, and its clip fetched again."""
    staged_names, failed_names = set(), set()
    for split in splits:
        staged_names |= {(split, n) for n in staging.staged_names(store, split, "clips")}
        failed_names |= {(split, n) for n in staging.staged_names(store, split, "failed")}
    was_staged = [item for item in todo if _staged_name(item) in staged_names]
    staged_names -= {_staged_name(i) for i in _remove_damaged(was_staged, store, row_samples, log)}
    direct, restaged, staged = [], [], []
    for item in todo:
        if not is_local(item["location"]):
            (restaged if _staged_name(item) in staged_names else staged).append(item)
            continue
        item["staged"] = _staged_name(item) in staged_names
        failed = f"{staging.clip_key(item['clip_id'])}.json"
        item["stale_failure"] = (item["split"], failed) in failed_names
        direct.append(item)
    return direct, restaged + staged


def _staged_name(item: dict) -> tuple[str, str]:
    """The split and file name of a planned clip's staged clip."""
    return item["split"], f"{staging.clip_key(item['clip_id'])}.clip"


def _remove_damaged(
    items: list[dict], store: DatasetStore, row_samples: int, log: Callable[[str], None]
) -> list[dict]:
    """Remove the staged clips of ``items`` that do not read back whole, saying so; return
    those items."""

    def problem(item: dict) -> str | None:
        return staging.staged_clip_problem(store, item["split"], item["clip_id"], row_samples)

    removed = []
    with ThreadPoolExecutor(DAMAGE_CHECK_THREADS, thread_name_prefix="audiomill-check") as pool:
        for item, found in zip(items, pool.map(problem, items), strict=True):
            if found is not None:
                store.remove(staging.staged_clip_path(item["split"], item["clip_id"]))
                removed.append(item)
                log(f"{found}; removed from staging, the clip is fetched again")
    return removed


@contextlib.contextmanager
def _segments_table(
    store: DatasetStore, run_id: str, commit: Callable[[], bool] = lambda: True
) -> Iterator[Callable[[pa.Table], None]]:
    """Keep the normalized table of what this run was asked for (for reports, audits and the
    labels of the clips it commits): yields a function that appends a batch of it, and commits
    ``segments/<run>.parquet`` when the block ends, if ``commit()`` says so then."""
    with tempfile.TemporaryDirectory(prefix="audiomill-segments-") as tmp:
        local = os.path.join(tmp, "segments.parquet")
        with pq.ParquetWriter(local, SEGMENT_SCHEMA) as writer:
            yield writer.write_table
        if commit():
            store.commit_file(local, f"segments/{run_id}.parquet")


def _limiter_state(store: DatasetStore) -> str:
    """Rate-limiter state shared by every worker process on this machine for this dataset."""
    name = uuid.uuid5(uuid.NAMESPACE_URL, store.url()).hex
    return os.path.join(tempfile.gettempdir(), f"audiomill-rate-{name}")


def _sources(
    cfg: IngestConfig, segments: list[Segment]
) -> tuple[SourceConfig, dict[str, str] | None]:
    """Where the list's media is looked for: the source settings, and the audio root's index
    when YouTube ids are looked up in it (:func:`pipelines.sources.resolve`)."""
    src = SourceConfig(
        source=cfg.source,
        url_template=cfg.url_template,
        audio_root=cfg.audio_root,
        precut=cfg.precut,
        manifest_dir=list_folder(cfg.segments),
    )
    root_index = None
    if (
        cfg.audio_root
        and cfg.source in ("local", "auto")
        and any(s.source_kind == "youtube" for s in segments)
    ):
        root_index = index_audio_root(cfg.audio_root, cfg.storage_options)
    return src, root_index


def _first_local_clips(
    segments: list[Segment],
    state: dict[str, dict],
    cfg: IngestConfig,
    sources: tuple[SourceConfig, dict[str, str] | None],
) -> list[dict]:
    """The planned local clips the first direct shard begins with (its split and clip ids
    first, as :func:`pipelines.beam_ingest.plan_direct_shards` orders them), as many as
    :func:`pipelines.decode_ahead.clips_ahead` allows, supposing every segment passes its
    validation; none where the plan would refuse the list (it says why after validation)."""
    limit = decode_ahead.clips_ahead(round(cfg.sample_rate * cfg.clip_seconds))
    first = heapq.nsmallest(limit, segments, key=lambda s: (s.split, s.clip_id))
    try:
        todo, _, _ = _plan(first, state, cfg, sources, "", [])
    except ValueError:
        return []
    return [item for item in todo if is_local(item["location"])]


def _plan(
    segments: list[Segment],
    state: dict[str, dict],
    cfg: IngestConfig,
    sources: tuple[SourceConfig, dict[str, str] | None],
    run_id: str,
    failures: list[dict],
) -> tuple[list[dict], Counter, int]:
    """The clips of ``segments`` to process, those done before by status or failure reason,
    and how many of these failed permanently in an interrupted run (not counted among them:
    their staged failures are collected as this run's); resolving failures go to ``failures``.
    """
    src, root_index = sources
    todo, already, interrupted = [], Counter(), 0
    for seg in segments:
        prev = state.get(seg.clip_id)
        if prev is not None:
            retry = prev["status"] != STATUS_OK and (
                prev.get("transient") or prev.get("reason") in cfg.retry_reasons
            )
            if not retry and prev.get("interrupted"):
                interrupted += 1
                continue
            if not retry:
                already[STATUS_OK if prev["status"] == STATUS_OK else prev["reason"]] += 1
                continue
        try:
            where = resolve(seg, src, root_index)
        except ClipFailure as exc:
            failures.append(_failure_row(seg, exc.reason, exc.detail, run_id))
            continue
        todo.append(
            {
                "clip_id": seg.clip_id,
                "split": seg.split,
                "location": where.location,
                "precut": where.precut,
                "start_s": seg.start_s,
                "end_s": seg.end_s,
                "labels": list(seg.labels),
                "audio_name": audio_name_for(seg.clip_id, seg.source_kind, seg.source),
                "origin": seg.origin,
                "line": seg.line,
            }
        )
    return todo, already, interrupted


def _collect_staged_failures(store: DatasetStore, split: str, run_id: str) -> list[dict]:
    return [
        staging.read_json(store, f"{staging.split_dir(split)}/failed/{name}") | {"run_id": run_id}
        for name in staging.staged_names(store, split, "failed")
    ]
