"""The ``audiomill`` command line."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from features.quiet_tensorflow import quiet_tensorflow_import
from pipelines.process_exit import exit_now
from workflows import cli_features, cli_inference, cli_modeling, cli_recipes, cli_run
from workflows.cli_common import (
    Formats,
    StorageOptions,
    console,
    fail,
    out,
    parse_formats,
    print_error,
    progress_bar,
    storage_options_from,
)
from workflows.help_text import ReflowingGroup
from workflows.import_gc import collection_paused, thawed_on_exit

app = typer.Typer(
    cls=ReflowingGroup,
    help="Turn audio into training-ready datasets and trained classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
segments_app = typer.Typer(help="Look at segment lists before ingesting.", no_args_is_help=True)
dataset_app = typer.Typer(help="Describe and check datasets.", no_args_is_help=True)
app.add_typer(segments_app, name="segments")
app.add_typer(dataset_app, name="dataset")
cli_features.register(app)
cli_inference.register(app)
cli_run.register(app)
cli_recipes.register(app)
cli_modeling.register(app)


@app.command(context_settings={"allow_extra_args": True})
def ingest(
    ctx: typer.Context,
    segments: Annotated[
        str,
        typer.Option(
            help="AudioSet segments CSV, custom manifest (CSV/JSONL with path or url columns), "
            "or a folder of audio files (labels from sub-folder names)."
        ),
    ],
    out_path: Annotated[
        str, typer.Option("--out", help="Dataset directory or URL (s3://bucket/prefix).")
    ],
    classes: Annotated[
        str | None,
        typer.Option(
            help="Class map CSV (index,mid,display_name). Optional for manifests and folders: "
            "their labels make the class map."
        ),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            help="youtube | http | local | auto. auto: manifest rows use their url/path; "
            "AudioSet rows use http with --url-template, local with --audio-root, else youtube."
        ),
    ] = "auto",
    url_template: Annotated[
        str | None,
        typer.Option(
            help="URL for http sources, fields {ytid} {clip_id} {start} {end}, "
            "e.g. 'http://host/{ytid}.wav'. Fetched with yt-dlp; values are URL-quoted."
        ),
    ] = None,
    audio_root: Annotated[
        str | None,
        typer.Option(
            help="Folder of local audio. AudioSet rows look for <clip_id>.*, Y<YTID>.* (cut "
            "already) or <YTID>.* (cut here); manifest paths are relative to it."
        ),
    ] = None,
    precut: Annotated[
        bool, typer.Option(help="Source files already hold just the segment.")
    ] = False,
    sample_rate: Annotated[int, typer.Option(help="Output sample rate in Hz.")] = 32000,
    clip_seconds: Annotated[
        float, typer.Option(help="Clip length in seconds; shorter clips are zero padded.")
    ] = 10.0,
    format: Formats = None,
    shard_clips: Annotated[int, typer.Option(help="Clips per shard.")] = 1000,
    split: Annotated[str, typer.Option(help="Split name (manifest rows may override).")] = "train",
    workers: Annotated[
        int,
        typer.Option(
            help="Cores for the local Beam runner: downloads get one worker process per core; "
            "local files are decoded on threads, up to 4 cores per process, and a run that "
            "needs one process runs in this one (Beam's in_memory mode)."
        ),
    ] = 2,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            help="Clip fetches per second across all workers (each one or more HTTP requests)."
        ),
    ] = None,
    retries: Annotated[int, typer.Option(help="Retries of transient download failures.")] = 3,
    timeout: Annotated[float, typer.Option(help="Network timeout in seconds.")] = 30.0,
    cookies: Annotated[
        str | None, typer.Option(help="Netscape cookies file for yt-dlp (sign-in walls).")
    ] = None,
    exact_cuts: Annotated[
        bool,
        typer.Option(
            help="Re-encode fetched sections losslessly instead of copying their packets "
            "(slower; sections are cut to the sample either way)."
        ),
    ] = False,
    min_coverage: Annotated[
        float, typer.Option(help="Fraction of the requested duration a clip must deliver.")
    ] = 0.9,
    max_silence: Annotated[
        float, typer.Option(help="Largest fraction of silent 100 ms frames accepted.")
    ] = 0.99,
    max_clipping: Annotated[
        float, typer.Option(help="Largest fraction of clipped samples accepted.")
    ] = 0.01,
    retry_reason: Annotated[
        list[str] | None,
        typer.Option(help="Also retry clips that failed permanently for this reason."),
    ] = None,
    storage_options: StorageOptions = None,
) -> dict:
    """Fetch, decode, validate and shard a segment list into a dataset.

    Beam options go after `--`, e.g. `-- --runner=FlinkRunner --flink_master=host:8081`.
    Re-running on the same --out resumes: committed clips and permanent failures are
    skipped, transient failures retried.
    """
    from pipelines.expectations_service import running

    ctx.with_resource(running())  # Great Expectations is imported on another core meanwhile
    with collection_paused():
        from pipelines.ingest import IngestConfig, run_ingest
        from pipelines.storage import DatasetAccessError, DatasetLockedError
        from pipelines.worker_processes import WorkerLeftError
        from schemas.errors import InputFormatError

    beam_args = [a for a in ctx.args if a != "--"]
    cfg = IngestConfig(
        segments=segments,
        out=out_path,
        classes=classes,
        source=source,
        url_template=url_template,
        audio_root=audio_root,
        precut=precut,
        sample_rate=sample_rate,
        clip_seconds=clip_seconds,
        formats=parse_formats(format),
        shard_clips=shard_clips,
        split=split,
        workers=workers,
        rate_limit=rate_limit,
        retries=retries,
        socket_timeout=timeout,
        cookies=cookies,
        exact_cuts=exact_cuts,
        min_coverage=min_coverage,
        max_silence=max_silence,
        max_clipping=max_clipping,
        retry_reasons=tuple(retry_reason or ()),
        storage_options=storage_options_from(storage_options),
        beam_args=beam_args,
    )
    _check_ingest_args(cfg)
    _quiet_beam_access_errors()
    with progress_bar("clips", shards=0) as (bar, task):
        try:
            summary = run_ingest(
                cfg,
                log=lambda m: bar.console.print(m, markup=False, highlight=False, soft_wrap=True),
                progress=lambda done, shards: bar.update(task, completed=done, shards=shards),
                on_plan=lambda n: bar.update(task, total=n),
            )
        except (
            InputFormatError,
            DatasetAccessError,
            DatasetLockedError,
            ValueError,
            FileNotFoundError,
        ) as exc:
            fail(_without_beam_step(exc))
        except WorkerLeftError as exc:
            fail(
                f"{_without_beam_step(exc)}; the shards committed so far are kept: "
                "run the same command again to resume",
                code=1,
            )
        except RuntimeError as exc:  # a worker process's error, as its traceback's text
            if (message := _worker_access_error(str(exc))) is None:
                raise
            fail(message)
        bar.update(task, completed=summary.planned, shards=summary.shards)
    _print_ingest_summary(summary)
    # the interrupted run's failures are recorded under this run too, in a row of their own
    failures = sum(summary.failed.values()) + summary.interrupted_failures
    if failures:
        _print_failures(out_path, cfg.storage_options, summary.run_id, failures)
    if summary.skipped_failures:
        _print_skipped_failures(out_path, summary.skipped_failures)
    if not summary.usable:
        fail("the dataset holds no clips: see the failures above", code=1)
    return {
        "clips": summary.committed,
        "dataset_clips": summary.dataset_clips,
        "failures": failures,
    }


def _check_ingest_args(cfg) -> None:
    from threading import TIMEOUT_MAX

    from pipelines.beam_ingest import unknown_beam_options
    from pipelines.sources import SOURCES

    if cfg.source not in SOURCES:
        fail(f"--source must be one of {', '.join(SOURCES)}, not {cfg.source!r}")
    if cfg.source == "http" and not cfg.url_template:
        fail("--source http needs --url-template, e.g. 'http://host/{ytid}.wav'")
    if cfg.source == "local" and not cfg.audio_root and not Path(cfg.segments).exists():
        fail("--source local needs --audio-root")
    _check_list_format(cfg.segments, cfg.storage_options)
    for name, value in (
        ("--sample-rate", cfg.sample_rate),
        ("--clip-seconds", cfg.clip_seconds),
        ("--workers", cfg.workers),
        ("--shard-clips", cfg.shard_clips),
    ):
        if not value > 0:
            fail(f"{name} must be positive, not {value}")
    _check_clip_args(cfg)
    if cfg.rate_limit is not None and cfg.rate_limit <= 0:
        fail("--rate-limit must be positive")
    if cfg.retries < 0:
        fail(f"--retries must be 0 or more, not {cfg.retries}")
    if not cfg.socket_timeout > 0:
        fail(f"--timeout must be positive, not {cfg.socket_timeout:g}")
    if cfg.socket_timeout > TIMEOUT_MAX:
        fail(
            f"--timeout must be at most {TIMEOUT_MAX:.0f} s (the longest a socket can "
            f"wait), not {cfg.socket_timeout:g}"
        )
    if cfg.cookies:
        from pipelines.fetch import load_cookies

        if not Path(cfg.cookies).is_file():
            fail(f"--cookies {cfg.cookies}: no such file")
        try:
            load_cookies(cfg.cookies)
        except ValueError as exc:
            fail(str(exc))
    if unknown := unknown_beam_options(cfg.beam_args):
        fail(f"Beam does not know the option(s) {', '.join(unknown)} given after --")


BEAM_WORKER_LOGS = "apache_beam.runners.portability.local_job_service"
"""The logger that relays the log records of Beam's worker processes."""


def _quiet_beam_access_errors() -> None:
    """Keep Beam from logging a step that failed to write the dataset
    (:class:`_QuietAccessErrors`)."""
    from pipelines.beam_ingest import BEAM_DOFN_LOGGER

    for name in (BEAM_DOFN_LOGGER, BEAM_WORKER_LOGS):
        errors = logging.getLogger(name)
        if not any(isinstance(f, _QuietAccessErrors) for f in errors.filters):
            errors.addFilter(_QuietAccessErrors())


def _check_list_format(path: str, storage_options: dict | None) -> None:
    """Refuse (exit 2) a segment list whose first lines show a format no list may have: JSON
    not named .jsonl, tab-separated text (:func:`schemas.custom_manifest.check_list_file`)."""
    from schemas.custom_manifest import check_list_file
    from schemas.errors import InputFormatError

    try:
        check_list_file(path, storage_options)
    except InputFormatError as exc:
        fail(str(exc))


def _check_clip_args(cfg) -> None:
    """Refuse, with exit 2 and before anything is written, a clip length, output rate or clip
    check threshold that no clip could be made or pass with (a clip of no sample among them),
    and an --audio-root that is no folder; each error names the option, its range or the
    problem, and the value."""
    from pipelines.audio import MAX_TARGET_SAMPLE_RATE, MIN_TARGET_SAMPLE_RATE
    from pipelines.sources import audio_root_problem

    if cfg.clip_seconds > cfg.max_segment_seconds:
        fail(
            f"--clip-seconds must be at most {cfg.max_segment_seconds:g} s (the longest segment "
            f"allowed), not {cfg.clip_seconds:g}"
        )
    if not MIN_TARGET_SAMPLE_RATE <= cfg.sample_rate <= MAX_TARGET_SAMPLE_RATE:
        fail(
            f"--sample-rate must be {MIN_TARGET_SAMPLE_RATE} to {MAX_TARGET_SAMPLE_RATE} Hz, "
            f"not {cfg.sample_rate}"
        )
    if cfg.row_samples < 1:  # the rounding of the shards' rows (PackSettings.num_samples)
        fail(
            f"--clip-seconds {cfg.clip_seconds:g} at --sample-rate {cfg.sample_rate} is "
            f"{cfg.sample_rate * cfg.clip_seconds:g} samples, which rounds to 0: a clip must "
            "hold at least one sample"
        )
    if not 0 < cfg.min_coverage <= 1:
        fail("--min-coverage must be in (0, 1]")
    for name, value in (("--max-silence", cfg.max_silence), ("--max-clipping", cfg.max_clipping)):
        if not 0 <= value <= 1:
            fail(f"{name} must be in [0, 1], not {value:g}")
    if cfg.audio_root and (problem := audio_root_problem(cfg.audio_root, cfg.storage_options)):
        fail(f"--audio-root {cfg.audio_root}: {problem}")


def _print_ingest_summary(summary) -> None:
    table = Table(title=f"ingest {summary.run_id}", show_header=False)
    table.add_row("segments requested", str(summary.requested))
    table.add_row("malformed lines", str(len(summary.malformed)))
    table.add_row("already done (skipped)", str(summary.already_done))
    if summary.interrupted_failures:
        table.add_row("failed in the interrupted run", str(summary.interrupted_failures))
    if summary.rejected_again:
        table.add_row("rejected again (in the ledger)", str(summary.rejected_again))
    table.add_row("processed this run", str(summary.planned))
    table.add_row("committed this run", str(summary.committed))
    for reason, n in sorted(summary.failed.items()):
        table.add_row(f"failed: {reason}", str(n))
    table.add_row("shards written", str(summary.shards))
    table.add_row("clips in dataset", str(summary.dataset_clips))
    rate = summary.planned / summary.seconds if summary.seconds else 0.0
    table.add_row("time", f"{summary.seconds:.1f} s ({rate:.1f} clips/s)")
    console.print(table)


FAILURES_SHOWN = 10
"""Failed clips an ingest lists after its summary; ``dataset failures`` lists them all."""


def _failure_line(row: dict) -> str:
    """A failed clip as ``WHERE: CLIP_ID: REASON: DETAIL``, where WHERE is the list file as the
    run was given it and its line, or the clip's own file (a folder's clip, line 0), or nothing
    when unknown."""
    return f"{_failure_origin(row)}{row['clip_id']}: {row['reason']}: {row['detail']}"


def _failure_origin(row: dict) -> str:
    if not row["origin"]:
        return ""
    if not row["line"]:
        return f"{row['origin']}: "
    return f"{row['origin']}:{row['line']}: "


def _print_failures(dataset: str, storage_options: dict | None, run_id: str, total: int) -> None:
    from pipelines.dataset_tools import dataset_failures

    rows = dataset_failures(dataset, run_id=run_id, storage_options=storage_options)
    shown = rows[:FAILURES_SHOWN]
    console.print(
        f"{total} clip(s) failed" + (f", the first {len(shown)}:" if total > len(shown) else ":"),
        highlight=False,
    )
    for row in shown:
        console.print(f"  {_failure_line(row)}", markup=False, highlight=False, soft_wrap=True)
    if total > len(shown):
        console.print(
            f"all of them: audiomill dataset failures {dataset} --run {run_id}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _print_skipped_failures(dataset: str, skipped: dict[str, int]) -> None:
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(skipped.items()))
    commonest = max(sorted(skipped), key=skipped.__getitem__)
    console.print(
        f"{sum(skipped.values())} clip(s) not tried again, failed permanently in earlier runs "
        f"({reasons}): `audiomill dataset failures {dataset}` lists them, "
        f"`--retry-reason {commonest}` tries them again",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@segments_app.command("inspect")
def segments_inspect(
    file: Annotated[str, typer.Argument(help="Segment list (AudioSet CSV or manifest).")],
    classes: Annotated[str | None, typer.Option(help="Class map CSV.")] = None,
    audio_root: Annotated[
        str | None,
        typer.Option(help="As for ingest: the folder a manifest's relative paths are under."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    top: Annotated[int, typer.Option(help="Classes to list in the table.")] = 20,
    storage_options: StorageOptions = None,
) -> None:
    """Count segments and labels and list every malformed line with its number and reason.

    Local files a manifest names that ingest would not find count as problems too. Exits 1
    when any line has a problem.
    """
    from pipelines.segment_report import inspect_segments
    from pipelines.sources import audio_root_problem
    from schemas.errors import InputFormatError

    if audio_root and (
        problem := audio_root_problem(audio_root, storage_options_from(storage_options))
    ):
        fail(f"--audio-root {audio_root}: {problem}")
    _check_list_format(file, storage_options_from(storage_options))
    try:
        rep = inspect_segments(
            file,
            classes,
            audio_root=audio_root,
            storage_options=storage_options_from(storage_options),
        )
    except (InputFormatError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        out.print_json(json.dumps(rep.to_dict()))
    else:
        t = Table(title=file, show_header=False)
        t.add_row("segments", str(rep.segments))
        t.add_row("unique sources", str(rep.unique_sources))
        t.add_row("positive labels", str(rep.positive_labels))
        t.add_row("classes used", f"{rep.classes_used} of {rep.num_classes}")
        for key, value in rep.header.items():
            t.add_row(f"header {key}", str(value))
        out.print(t)
        pc = Table(title=f"top {top} classes")
        pc.add_column("class")
        pc.add_column("segments", justify="right")
        for name, n in list(rep.per_class.items())[:top]:
            pc.add_row(name, str(n))
        out.print(pc)
        for line, reason in rep.problems:  # line 0: a folder's file, which the reason names
            where = f"{file}:{line}: " if line else ""
            out.print(where + reason, markup=False, highlight=False, soft_wrap=True)
        for note in rep.notes:
            out.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
        out.print(f"{len(rep.problems)} problem line(s)")
    if rep.problems:
        raise typer.Exit(1)


@dataset_app.command("info")
def dataset_info_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset directory or URL.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    storage_options: StorageOptions = None,
) -> None:
    """Splits, shards, clip counts, failures by reason and bytes of a dataset; the clips, shards
    and bytes of its embeddings, by model and split."""
    with collection_paused():
        from pipelines.dataset_tools import dataset_info

    try:
        info = dataset_info(dataset, storage_options_from(storage_options))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        out.print_json(json.dumps(info))
        return
    embeddings = info["embeddings"]
    totals = [f"{info['clips']} clips, {info['bytes'] / 1e6:.1f} MB"] if info["splits"] else []
    for model, splits in embeddings.items():
        clips = sum(s["clips"] for s in splits.values())
        size = sum(s["bytes"] for s in splits.values())
        totals.append(f"{model} embeddings of {clips} clips, {size / 1e6:.1f} MB")
    waves = (
        f"{info['sample_rate']} Hz x {info['clip_seconds']} s, {info['num_classes']} classes, "
        f"formats {','.join(info['formats'])}"
        if info["formats"] is not None
        else f"no waveforms, {info['num_classes']} classes"
    )
    out.print(
        f"{info['dataset']}: {'; '.join(totals) or '0 clips, 0.0 MB'}; {waves}", soft_wrap=True
    )
    if info["splits"] or not embeddings:
        t = Table("split", "clips", "shards", "MB", "requested", "failed", "failures by reason")
        for name, s in info["splits"].items():
            reasons = ", ".join(f"{k}: {v}" for k, v in s["failures_by_reason"].items())
            t.add_row(
                name,
                str(s["clips"]),
                str(s["shards"]),
                f"{s['bytes'] / 1e6:.1f}",
                str(s["requested"]),
                str(s["failed"]),
                reasons,
            )
        out.print(t)
    if embeddings:
        t = Table("model", "split", "clips", "shards", "MB", title="embeddings")
        for model, splits in embeddings.items():
            for name, s in splits.items():
                t.add_row(model, name, str(s["clips"]), str(s["shards"]), f"{s['bytes'] / 1e6:.1f}")
        out.print(t)
    for note in info["notes"]:
        out.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


@dataset_app.command("failures")
def dataset_failures_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset directory or URL.")],
    split: Annotated[str | None, typer.Option(help="Only this split.")] = None,
    reason: Annotated[
        str | None, typer.Option(help="Only this reason, e.g. validation, unavailable.")
    ] = None,
    run: Annotated[str | None, typer.Option(help="Only failures of this ingest run id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    storage_options: StorageOptions = None,
) -> None:
    """Every clip that failed and was not committed since: list file and line (a folder's clip:
    its file), reason, detail."""
    with collection_paused():
        from pipelines.dataset_tools import dataset_failures

    try:
        rows = dataset_failures(
            dataset,
            split=split,
            reason=reason,
            run_id=run,
            storage_options=storage_options_from(storage_options),
        )
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    for row in rows:
        text = json.dumps(row) if as_json else f"{row['split']}: {_failure_line(row)}"
        out.print(text, markup=False, highlight=False, soft_wrap=True)
    if not as_json:
        console.print(f"{len(rows)} failed clip(s)", highlight=False)


@dataset_app.command("verify")
def dataset_verify_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset directory or URL.")],
    storage_options: StorageOptions = None,
) -> None:
    """Check checksums, row counts, readability and ledger agreement; exit 1 on any mismatch."""
    with collection_paused():
        from pipelines.dataset_tools import verify_dataset

    with progress_bar("files") as (bar, task):
        try:
            rep = verify_dataset(
                dataset,
                storage_options_from(storage_options),
                progress=lambda d, n: bar.update(task, completed=d, total=n),
            )
        except (FileNotFoundError, ValueError) as exc:
            fail(str(exc))
    for kind, lines in (("problem", rep.problems), ("hint", rep.hints), ("note", rep.notes)):
        for line in lines:
            out.print(f"{kind}: {line}", markup=False, highlight=False, soft_wrap=True)
    out.print(
        f"{rep.files_checked} files, {rep.clips_checked} clips checked: "
        + ("OK" if rep.ok else f"{len(rep.problems)} problem(s)")
    )
    if not rep.ok:
        raise typer.Exit(1)


@app.command()
def quickstart(
    ctx: typer.Context,
    out: Annotated[str, typer.Option(help="Folder for everything the job writes.")] = (
        "quickstart-out"
    ),
    clips_per_class: Annotated[int, typer.Option(help="Demo clips per class.")] = 8,
    workers: Annotated[int, typer.Option(help="Beam worker processes and Dask workers.")] = 2,
    checkpoint: Annotated[
        str | None, typer.Option(help="Google's vggish_model.ckpt (else seeded stand-in weights).")
    ] = None,
    pca_params: Annotated[
        str | None, typer.Option(help="Google's vggish_pca_params.npz, with --checkpoint.")
    ] = None,
    set_: cli_run.SetValues = None,
) -> None:
    """The embedded default job, offline: demo audio -> ingest over HTTP through yt-dlp ->
    verify -> VGGish -> index + report -> two models -> evaluation -> OUT/summary.html.

    Runs the built-in workflow `audiomill run quickstart`; re-running resumes, skipping
    finished stages.
    """
    if bool(checkpoint) != bool(pca_params):
        fail("give --checkpoint and --pca-params together, or neither")
    values = [f"work={out}", f"workers={workers}", f"clips_per_class={clips_per_class}"]
    if checkpoint:
        values += [f"checkpoint={checkpoint}", f"pca_params={pca_params}"]
    cli_run.run(ctx, "quickstart", set_=values + list(set_ or []), from_stage=None, only=None,
                dry_run=False, state=None)  # fmt: skip
    console.print(f"[bold green]done:[/] open {Path(out) / 'summary.html'}", highlight=False)


def _ended_by_ctrl_c(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is among the causes of ``exc``: Typer turns Ctrl-C in a
    command into a silent exit with status 130. A command that said itself how to go on ends
    with ``raise typer.Exit(130) from None``, which hides the interrupt from this search."""
    seen = _cause_of(exc)
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = _cause_of(seen)
    return False


def _cause_of(exc: BaseException) -> BaseException | None:
    """The exception ``exc`` was raised from or during, unless raised ``from None``."""
    return exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def _resume_hint(args: list[str]) -> str:
    """How to go on after Ctrl-C in the command ``args``: a run of ``train`` continues only
    with ``--resume``; every other command resumes when run again as it was."""
    command = next((a for a in args if not a.startswith("-")), "")
    if command == "train" and "--resume" not in args:
        return "interrupted: re-run the same command with --resume to continue the run"
    return "interrupted: re-run the same command to resume"


_BEAM_STEP = re.compile(r"( \[while running '[^']*'\])+$")
"""What Beam adds to the message of an error it raises again from a pipeline's step."""


def _without_beam_step(exc: BaseException) -> str:
    """The message of ``exc`` without the step Beam names in it (:data:`_BEAM_STEP`)."""
    return _BEAM_STEP.sub("", str(exc))


def _worker_access_error(text: str) -> str | None:
    """Why a step in a Beam worker process could not write the dataset, read from ``text``
    holding its traceback (Beam raises a ``RuntimeError`` of that text in this process), or
    ``None`` when it holds no `DatasetAccessError`; without the step Beam names in it."""
    from pipelines.storage import ACCESS_ERROR_LINE

    found = re.search(rf"^{re.escape(ACCESS_ERROR_LINE)}(.+)$", text, re.MULTILINE)
    return _BEAM_STEP.sub("", found.group(1)) if found else None


class _QuietAccessErrors(logging.Filter):
    """Drop Beam's log records of a step that could not write the dataset: Beam logs its error
    with its whole traceback (made again of its type, or relayed from a worker process), before
    the command says in one line why it failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pipelines.storage import ACCESS_ERROR_LINE, DatasetAccessError

        if record.exc_info and isinstance(record.exc_info[1], DatasetAccessError):
            return False
        return ACCESS_ERROR_LINE not in record.getMessage()  # a worker's, its lines escaped


def main() -> None:
    """Console-script entry point; ends the process with the command's exit status
    (:func:`pipelines.process_exit.exit_now`)."""
    quiet_tensorflow_import()
    try:
        with thawed_on_exit():
            app()
        status = 0
    except SystemExit as done:
        status = done.code
        if _ended_by_ctrl_c(done):
            console.print(_resume_hint(sys.argv[1:]))
    except RuntimeError as exc:
        if (status := _runtime_error_status(exc)) is None:
            raise
        print_error(str(exc))
    exit_now(status)


def _runtime_error_status(exc: RuntimeError) -> int | None:
    """The exit status of a command that raised ``exc``, whose message says it all: a dataset on
    unreachable or forbidden storage (2), from whichever command touched it first, or Dask
    workers that died running a shard's task (1); None for any other error. Imported here so
    that a command that never opens a dataset does not pay for it."""
    from features.dask_runtime import WorkerDiedError
    from pipelines.storage import DatasetAccessError

    if isinstance(exc, DatasetAccessError):
        return 2
    if isinstance(exc, WorkerDiedError):
        return 1
    return None
