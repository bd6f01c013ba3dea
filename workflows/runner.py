"""Run a workflow: the stages of a YAML file, in order, skipping those already finished.

The file
--------
::

    name: quickstart                  # optional; lowercase, digits, - and _ (default: file stem)
    description: Demo audio to a verified dataset.
    vars:                             # defaults of ${name}; `--set name=value` overrides them
      work: quickstart-out
      workers: 2
      checkpoint: ""
    state: ${work}/workflow-state.json  # optional, see "Completion records"
    stages:
      - name: demo-audio              # unique; lowercase, digits, - and _
        call: workflows.demo:make_demo  # a Python function, called with kwargs
        kwargs: {out_dir: "${work}/demo", clips_per_class: 4}
        outputs: ["${work}/demo/manifest.csv"]
      - name: ingest
        command: ingest               # any audiomill command path: "dataset verify", ...
        options:                      # --key value; true -> --key; false -> --no-key or nothing
          segments: ${work}/demo/manifest.csv   # null or "" -> left out; list -> repeated
          out: ${work}/dataset
          workers: ${workers}
        args: []                      # positional arguments, after the options
      - name: embed
        when: ${checkpoint}           # skipped when empty, false, no, off, 0 or null
        command: embed
        args: ["${work}/dataset"]
        options: {checkpoint: "${checkpoint}"}
        needs: [ingest]               # optional: earlier stages this one depends on
        inputs: ["${checkpoint}"]     # optional: files and folders it reads (see below)

Each stage has exactly one of ``command`` (with ``args`` and ``options``) or ``call`` (with
``kwargs``). A call's module is imported when the file is read, and its function must be there
and take the ``kwargs`` given (no name it has no parameter for, none it requires left out).
``${name}`` takes a variable, ``${env:NAME}`` an environment variable, ``$${`` writes a literal
``${``. A value that is exactly ``${name}`` keeps the variable's type.
Relative paths are relative to the directory ``audiomill run`` is started in. Write values with
``${`` inside flow collections (``[...]``, ``{...}``) in quotes: YAML reads ``{`` there.

Running
-------
Commands run in this process through the ``audiomill`` click tree, exactly as typed on the
command line; a command (or call) that returns a dict has its ``clips`` and ``failures`` (and
``dataset_clips``, the dataset's total beside this run's clips) shown in the summary and its
numbers kept in the record. A stage that exits non-zero or raises stops the
workflow; the stages before it keep their records, so the next run resumes at the failed stage.
An interrupt (Ctrl-C) stops it the same way, recording the stage as interrupted and raising
:class:`StageInterrupted`, which says what running the stage again does (:func:`rerun_note`).

Completion records
------------------
A JSON file, written atomically after every stage, holds per stage the sha256 of its resolved
command (or call and kwargs), when it finished, how long it took, its summary, which run made
the outputs it has now (``made``) and which runs made those of the stages it depends on
(``upstream``), a fingerprint of each of its inputs as they were when it started
(``inputs``) and one of each of its declared outputs as its run left them (``outputs``, kept up
to date with what the workflow's later stages write into them). Its path is ``--state``, else
the file's ``state:``, else ``.audiomill/<name>.state.json`` under the current directory.

A run holds a lock on its records file (an ``flock`` of the hidden file ``.FILE.lock`` beside
it, which the system releases when the run ends, however it ends) and reads the records again
once it holds it: a second run of the workflow with the same records file is refused while one
runs. A dry run takes no lock.

A stage is skipped when its record is finished with the same digest, all its declared
``outputs`` exist and are as the workflow left them (a manual ``audiomill ingest`` into the
dataset whose ``manifest.json`` an ingest stage declares makes that stage and those after it
run again), none of its inputs changed since its last run started, and none of the stages it
depends on has re-made its outputs since. A stage's inputs are the files and folders
of its ``inputs:`` (null or "" left out; ``inputs: []`` for none); a command stage without
``inputs:`` reads the local paths it gives to the options and arguments that name what its
command reads (:data:`workflows.workflow_resolve.COMMAND_INPUTS`: ingest's segments, classes
and audio root, a prepare command's dataset folder, ...); a call stage without ``inputs:`` has
none. A file changes with its size, modification time or inode, a folder when a file below it
(hidden ones left out) is added, removed or changes, see :func:`inputs_fingerprint`. An input the
record holds no fingerprint of (a record from before inputs were looked at, an input declared
since) is taken as it is now, without re-running the stage. A stage
depends on the earlier stages named in ``needs``, on those whose ``outputs`` it mentions (a path
equal to, inside or containing one of them), and on every earlier stage that declares no
``outputs`` at all (write ``outputs: []`` for a stage nothing reads). So changing a ``--set``
value re-runs the stages whose resolved parameters change, and then the stages that read what
they wrote. ``--from STAGE`` re-runs that stage and all after it; ``--only STAGE`` runs just that
one; both record as usual.

A run re-makes its stage's outputs unless it has the parameters of the stage's last successful
run and leaves its declared outputs as it found them (the same files, sizes, modification times
and inodes, see :func:`outputs_fingerprint`), and no run since that success changed them: a
stage that runs again after a failure (or ``--only``) and finds its work done then keeps
``made``, and the stages after it stay skipped. A stage with no (or empty) ``outputs`` re-makes
them every time it runs, and so does an interrupted run.

Earlier outputs
---------------
A command stage that runs again finds in ``ctx.meta[EARLIER_RUN]`` what its last run left:
:data:`RESUMABLE` when that run, with the same parameters and inputs, did not finish, so what it
wrote may be continued; :data:`STALE` when it finished, or was made with other parameters or
inputs, so what it wrote must be replaced; nothing when the records hold no run of the stage.
``train`` continues a resumable run when its ``resume`` option asks, and starts any other run
it has a record of over (the replaced run is kept as ``RUN.previous``, unless it is unfinished
and ``RUN.previous`` holds a finished run, which it then gives way to); ``sweep`` starts all its
runs over after a stale run, and after a resumable one resumes its unfinished runs.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from modeling.process_lock import LockedError, process_lock
from modeling.runs import LOCK_SUFFIX
from pipelines.storage import DatasetStore
from workflows.workflow_resolve import Plan, ResolvedStage, norm_path
from workflows.workflow_schema import Command, WorkflowError, import_call, kwargs_problem

STATE_VERSION = 1
FINISHED, FAILED = "finished", "failed"
INTERRUPTED = "interrupted"
EARLIER_RUN = "audiomill.workflow.earlier_run"
RESUMABLE, STALE = "resumable", "stale"
RAN, SKIPPED, OFF, NOT_RUN, WOULD_RUN = "ran", "skipped", "off", "not run", "would run"


class StageInterrupted(KeyboardInterrupt):
    """An interrupt (Ctrl-C) while a stage ran, after its record says so.

    Attributes
    ----------
    stage : str
        The stage that was running.
    rerun : str
        What running the stage again does with the run it left (:func:`rerun_note`).
    """

    def __init__(self, stage: str, rerun: str = "") -> None:
        super().__init__(stage)
        self.stage, self.rerun = stage, rerun


def rerun_note(stage: ResolvedStage) -> str:
    """What running ``stage`` again with the same parameters does with the run an interrupt left
    unfinished (see "Earlier outputs"): "" for a stage that just runs again.

    ``train`` resumes it when its ``resume`` option asks and starts it over otherwise;
    ``sweep`` resumes its unfinished runs.
    """
    command = stage.stage.command or ()
    if command == ("train",):
        return "its run resumes" if "--resume" in stage.argv else "its run starts over"
    if command == ("sweep",):
        return "its unfinished runs resume"
    return ""


def default_state_path(name: str) -> str:
    """Where a workflow's records go when neither ``--state`` nor ``state:`` says."""
    return str(Path(".audiomill") / f"{name}.state.json")


class WorkflowState:
    """The completion records of one workflow, one per stage, in a local JSON file.

    Parameters
    ----------
    path : str
        The JSON file.
    workflow : str
        The workflow's name (written into the file for people reading it).
    stages : dict
        Records by stage name.
    """

    def __init__(self, path: str, workflow: str, stages: dict[str, dict] | None = None) -> None:
        self.path, self.workflow = path, workflow
        self.stages: dict[str, dict] = stages or {}

    @classmethod
    def load(cls, path: str, workflow: str) -> WorkflowState:
        """Read the records at ``path`` (none when the file does not exist yet).

        Raises
        ------
        WorkflowError
            When the path is a folder, the file cannot be read (no permission, a failing disk)
            or is not a records file.
        """
        p = Path(path)
        try:
            if not p.exists():
                return cls(path, workflow)
            if p.is_dir():
                raise WorkflowError(
                    f"state file {path} is a folder, not a file: give a file with --state, "
                    f"e.g. --state {p / f'{workflow}.state.json'}"
                )
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise WorkflowError(
                f"state file {path} cannot be read ({exc.strerror or exc}): make it readable "
                "or pick another with --state"
            ) from None
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WorkflowError(
                f"state file {path} is not JSON ({exc}): delete it to start over"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
            raise WorkflowError(f"state file {path} holds no stage records: delete it or pick "
                                "another with --state")  # fmt: skip
        for name, record in data["stages"].items():
            problem = _record_problem(record)
            if problem:
                raise WorkflowError(f"state file {path} is malformed: the record of stage "
                                    f"{name!r} {problem}: delete it to start over")  # fmt: skip
        return cls(path, workflow, data["stages"])

    def finished(self, name: str) -> dict | None:
        """The record of ``name`` if its last run finished, else None."""
        record = self.stages.get(name)
        return record if record and record.get("status") == FINISHED else None

    def made(self, name: str) -> str | None:
        """The run that made the outputs of ``name``'s last finished run (None: none finished)."""
        record = self.finished(name)
        return None if record is None else made_by(record)

    def last_success(self, name: str) -> dict | None:
        """``digest`` and ``made`` of ``name``'s last successful run, if no run since changed its
        outputs."""
        record = self.stages.get(name)
        if record is None:
            return None
        if record.get("status") == FINISHED:
            last = {"digest": record.get("digest"), "made": made_by(record)}
            return {**last, **({"outputs": record["outputs"]} if "outputs" in record else {})}
        return record.get("last_success")

    def record(self, name: str, record: dict) -> None:
        """Replace the record of ``name`` and write the file atomically.

        Raises
        ------
        WorkflowError
            When the file cannot be written (its folder is a file, no permission, a full disk).
        """
        self.stages[name] = record
        p = Path(self.path).absolute()
        body = {"version": STATE_VERSION, "workflow": self.workflow, "stages": self.stages}
        try:
            DatasetStore(p.parent).write_json_atomic(p.name, body)
        except OSError as exc:
            blocker = next((f for f in p.parents if f.exists()), None)
            reason = (
                f"{blocker} is a file, not a folder"
                if blocker is not None and not blocker.is_dir()
                else exc.strerror or exc
            )
            raise WorkflowError(
                f"cannot write state file {self.path} ({reason}), so the record "
                f"of stage {name!r} is lost and the next run runs it again: fix that or pick "
                "another file with --state"
            ) from None


def made_by(record: dict) -> str | None:
    """The run that made a finished record's outputs (its own in records written without
    ``made``)."""
    return record.get("made", record.get("run_id"))


def _record_problem(record: Any) -> str | None:
    """What keeps ``record`` from being read as a stage record, if anything."""
    if not isinstance(record, dict):
        return "is not a JSON object"
    for key in ("upstream", "summary", "last_success", "inputs", "outputs"):
        if not isinstance(record.get(key, {}), dict):
            return f"has {key!r} that is not a JSON object"
    return None


@dataclass
class StageOutcome:
    """What happened to one stage in this run.

    Attributes
    ----------
    name : str
    status : str
        ran, skipped, off (``when`` false), failed, not run (after a failure), would run.
    note : str
        Why (e.g. "parameters changed", "exit 2").
    seconds : float, optional
        Time taken this run.
    summary : dict
        Numbers the stage reported (this run, or the recorded run when skipped).
    command : str
        The resolved command line or call.
    exit_code : int, optional
    """

    name: str
    status: str
    note: str = ""
    seconds: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    exit_code: int | None = None

    @property
    def clips(self) -> float | None:
        """``clips`` from the summary, if the stage reported it."""
        return _count(self.summary.get("clips"))

    @property
    def dataset_clips(self) -> float | None:
        """``dataset_clips`` from the summary: the clips of the dataset a stage added to, if
        the stage reported them (``ingest`` does; its ``clips`` are this run's)."""
        return _count(self.summary.get("dataset_clips"))

    @property
    def failures(self) -> float | None:
        """``failures`` from the summary (a count, or the sum of counts by reason)."""
        return _count(self.summary.get("failures"))


def select_stages(
    plan: Plan, start_from: str | None = None, only: str | None = None
) -> tuple[list[ResolvedStage], set[str]]:
    """The stages to consider and those forced to run, for ``--from`` / ``--only``.

    Raises
    ------
    WorkflowError
        For an unknown stage name (listing the names) or both options at once.
    """
    names = [s.name for s in plan.stages]
    if start_from and only:
        raise WorkflowError("--from and --only do not go together", plan.workflow.source)
    for flag, name in (("--from", start_from), ("--only", only)):
        if name is not None and name not in names:
            raise WorkflowError(
                f"{flag} {name}: no such stage (stages: {', '.join(names)})", plan.workflow.source
            )
    if only:
        return [plan.stages[names.index(only)]], {only}
    if start_from:
        chosen = list(plan.stages[names.index(start_from) :])
        return chosen, {s.name for s in chosen}
    return list(plan.stages), set()


def run_plan(
    plan: Plan,
    state: WorkflowState,
    root: Command,
    *,
    start_from: str | None = None,
    only: str | None = None,
    dry_run: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> list[StageOutcome]:
    """Run the stages of ``plan`` that are not up to date, recording each in ``state``.

    Parameters
    ----------
    plan : Plan
        From `workflows.workflow_resolve.resolve_workflow`.
    state : WorkflowState
    root : Command
        The ``audiomill`` command tree (``typer.main.get_command(app)``).
    start_from, only : str, optional
        ``--from`` and ``--only``.
    dry_run : bool
        Decide and print, run nothing, write nothing.
    log : callable
        Receives one line of progress at a time.

    Returns
    -------
    list of StageOutcome
        One per considered stage, in order; stops being "ran" after the first failure.

    Raises
    ------
    WorkflowError
        When another run holds the lock of ``state``'s file (:func:`state_locked`).
    """
    selected, forced = select_stages(plan, start_from, only)
    with contextlib.nullcontext() if dry_run else state_locked(state):
        return _run_stages(plan, state, root, selected, forced, bool(only), dry_run, log)


@contextlib.contextmanager
def state_locked(state: WorkflowState) -> Iterator[None]:
    """Keep other runs off ``state``'s file while the block runs, with its records read again
    under the lock (a run that finished meanwhile may have added some).

    A file whose lock cannot be made (its folder is a file, no permission) is not locked: its
    first record says why it cannot be written.

    Raises
    ------
    WorkflowError
        When another run holds the lock.
    """
    path = Path(state.path).absolute()
    busy = f"another `audiomill run` is running this workflow (state {state.path})"
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(process_lock(path.with_name(f".{path.name}{LOCK_SUFFIX}"), busy))
        except LockedError as exc:
            raise WorkflowError(str(exc)) from None
        except OSError:
            pass  # the file cannot be written either: its first record says why
        else:
            state.stages = WorkflowState.load(state.path, state.workflow).stages
        yield


def _run_stages(
    plan: Plan,
    state: WorkflowState,
    root: Command,
    selected: list[ResolvedStage],
    forced: set[str],
    only: bool,
    dry_run: bool,
    log: Callable[[str], None],
) -> list[StageOutcome]:
    """:func:`run_plan` of the stages ``select_stages`` chose (``forced`` by ``--only`` when
    ``only``, else by ``--from``)."""
    outcomes: list[StageOutcome] = []
    ran: set[str] = set()  # re-made their outputs (or, in a dry run, would run)
    skip = workflow_paths(plan, state)
    for n, stage in enumerate(selected, 1):
        head = f"[{n}/{len(selected)}] {stage.name}"
        if not stage.enabled:
            log(f"{head}: off (its 'when' is false)")
            outcomes.append(StageOutcome(stage.name, OFF, "'when' is false"))
            continue
        now = inputs_fingerprint(stage.inputs, skip)
        made_now = outputs_fingerprint(stage.outputs)
        if stage.name in forced:
            reason = "forced by --only" if only else "forced by --from"
        else:
            reason = stale_reason(stage, plan.depends[stage.name], state, ran, now, made_now)
        if reason is None:
            if not dry_run:
                _adopt_fingerprints(state, stage.name, now, made_now)
            record = state.finished(stage.name) or {}
            finished = str(record.get("finished", "?"))[:16].replace("T", " ")
            note = f"up to date ({finished} UTC)"
            log(f"{head}: skipped, {note}")
            if dry_run:
                log(f"    {stage.describe()}")
            outcomes.append(
                StageOutcome(stage.name, SKIPPED, note, summary=record.get("summary", {}))
            )
            continue
        log(f"{head}: {'would run' if dry_run else 'running'} ({reason})")
        log(f"    {stage.describe()}")
        if dry_run:
            ran.add(stage.name)
            outcomes.append(StageOutcome(stage.name, WOULD_RUN, reason, command=stage.describe()))
            continue
        earlier = earlier_run(stage, plan.depends[stage.name], state, ran, now)
        watched = _unchanged_outputs(plan, state, stage.name)
        try:
            outcome = _run_stage(stage, plan.depends[stage.name], state, root, reason, earlier, now)
        finally:  # an interrupted stage too may have written into other stages' outputs
            _follow_outputs(plan, state, watched)
        outcomes.append(outcome)
        if outcome.status == FAILED:
            log(f"{head}: failed after {outcome.seconds:.1f} s: {outcome.note}")
            outcomes += [StageOutcome(s.name, NOT_RUN, f"{stage.name!r} failed")
                         for s in selected[n:]]  # fmt: skip
            break
        record = state.stages[stage.name]
        if made_by(record) == record["run_id"]:
            ran.add(stage.name)
            log(f"{head}: done in {outcome.seconds:.1f} s")
        else:
            log(f"{head}: done in {outcome.seconds:.1f} s, outputs unchanged")
    return outcomes


def stale_reason(
    stage: ResolvedStage,
    depends: tuple[str, ...],
    state: WorkflowState,
    ran: set[str],
    now: dict[str, str | None] | None = None,
    made_now: dict[str, str] | None = None,
) -> str | None:
    """Why ``stage`` must run, or None when its record says it is up to date.

    Parameters
    ----------
    stage : ResolvedStage
    depends : tuple of str
        The stages it depends on.
    state : WorkflowState
    ran : set of str
        Stages that re-made their outputs (or, in a dry run, would run) earlier in this
        invocation.
    now : dict, optional
        :func:`inputs_fingerprint` of the stage's inputs as they are now (None: not looked at).
    made_now : dict, optional
        :func:`outputs_fingerprint` of the stage's declared outputs as they are now (None: not
        looked at, or none declared).
    """
    record = state.stages.get(stage.name)
    if record is None:
        return "not run before"
    if record.get("status") != FINISHED:
        if record.get("error") == INTERRUPTED:
            return f"{INTERRUPTED} last time"
        return f"{record.get('status', 'unfinished')} last time"
    if record.get("digest") != stage.digest:
        return "parameters changed"
    missing = [o for o in stage.outputs or () if not output_exists(o)]
    if missing:
        return f"output {missing[0]} is missing"
    remade = fingerprints_changed(record.get("outputs"), made_now or {})
    if remade:
        return f"outputs changed: {_first_paths(remade)}"
    upstream = _upstream_change(record, depends, state, ran)
    changed = inputs_changed(record, now or {})
    if upstream is None and changed:
        return f"inputs changed: {_first_paths(changed)}"
    return upstream


def _first_paths(paths: list[str]) -> str:
    """The first three of ``paths`` and how many more there are."""
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return f"{', '.join(paths[:3])}{more}"


def earlier_run(
    stage: ResolvedStage,
    depends: tuple[str, ...],
    state: WorkflowState,
    ran: set[str],
    now: dict[str, str | None] | None = None,
) -> str | None:
    """What the last recorded run of ``stage`` left for the run about to start.

    Parameters are as for :func:`stale_reason`.

    Returns
    -------
    str or None
        :data:`RESUMABLE`: it did not finish, and had the same parameters and inputs;
        :data:`STALE`: it finished, or had other parameters or inputs; None: no record.
    """
    record = state.stages.get(stage.name)
    if record is None:
        return None
    if (
        record.get("status") != FINISHED
        and record.get("digest") == stage.digest
        and _upstream_change(record, depends, state, ran) is None
        and not inputs_changed(record, now or {})
    ):
        return RESUMABLE
    return STALE


def _upstream_change(
    record: dict, depends: tuple[str, ...], state: WorkflowState, ran: set[str]
) -> str | None:
    """Which stage ``record``'s stage depends on re-made its outputs since that record, if any."""
    upstream = record.get("upstream") or {}
    for dep in depends:
        if dep in ran:
            return f"{dep!r} runs before it"
        if upstream.get(dep) != state.made(dep):
            return f"{dep!r} ran since"
    return None


def inputs_changed(record: dict, now: dict[str, str | None]) -> list[str]:
    """The inputs whose fingerprint in ``now`` differs from the one ``record`` holds.

    An input the record has no fingerprint of (a record written before inputs were looked at,
    or an input declared since) is not counted as changed: see :func:`_adopt_fingerprints`.
    """
    return fingerprints_changed(record.get("inputs"), now)


def fingerprints_changed(recorded: Any, now: dict[str, str | None]) -> list[str]:
    """The paths whose fingerprint in ``now`` differs from the one in ``recorded`` (a path
    ``recorded`` does not hold, or a ``recorded`` that is not a dict, counts as unchanged)."""
    if not isinstance(recorded, dict):
        return []
    return [path for path, digest in now.items() if path in recorded and recorded[path] != digest]


def _adopt_fingerprints(
    state: WorkflowState, name: str, now: dict[str, str | None], made_now: dict[str, str] | None
) -> None:
    """Add to the record of a skipped stage the fingerprints of inputs and outputs it holds
    none of (a record written before they were kept, a path declared since), so their changes
    from now on make the stage stale."""
    record = state.stages.get(name)
    if record is None:
        return
    updated = dict(record)
    for key, current in (("inputs", now), ("outputs", made_now or {})):
        recorded = record.get(key) if isinstance(record.get(key), dict) else {}
        new = {path: digest for path, digest in current.items() if path not in recorded}
        if new:
            updated[key] = {**recorded, **new}
    if updated != record:
        state.record(name, updated)


def _unchanged_outputs(plan: Plan, state: WorkflowState, running: str) -> dict[str, dict[str, str]]:
    """The declared outputs of the stages other than ``running`` whose finished records hold
    them as they are now, by stage: :func:`_follow_outputs` takes what ``running`` does to them
    as the workflow's own doing."""
    watched = {}
    for stage in plan.stages:
        record = state.finished(stage.name)
        if stage.name == running or record is None or not record.get("outputs"):
            continue
        current = outputs_fingerprint(stage.outputs) or {}
        if not fingerprints_changed(record["outputs"], current):
            watched[stage.name] = current
    return watched


def _follow_outputs(plan: Plan, state: WorkflowState, watched: dict[str, dict[str, str]]) -> None:
    """Record in the finished records of the ``watched`` stages what a stage of the workflow
    that ran since changed in their outputs (``embed`` rewrites the dataset's manifest that
    ``ingest`` declares), so only changes made outside the workflow make them stale."""
    for stage in plan.stages:
        record = state.finished(stage.name)
        if stage.name not in watched or record is None:
            continue
        current = outputs_fingerprint(stage.outputs) or {}
        if current != watched[stage.name]:
            state.record(stage.name, {**record, "outputs": {**record["outputs"], **current}})


MAX_INPUT_FILES = 100_000
_WILDCARD = re.compile(r"[*?\[]")


def workflow_paths(plan: Plan, state: WorkflowState) -> frozenset[str]:
    """What the workflow itself writes: every stage's declared outputs and the records file
    (as :func:`workflows.workflow_resolve.norm_path` gives them). A walk of an input folder
    leaves them out, so a work folder inside an input folder does not make it change."""
    paths = [o for s in plan.stages for o in s.outputs or ()]
    return frozenset(norm_path(p) for p in [*paths, state.path])


def inputs_fingerprint(
    inputs: tuple[str, ...], skip: frozenset[str] = frozenset()
) -> dict[str, str | None]:
    """sha256 of what each input holds now, by path (None for one that does not exist).

    A file counts with its size, modification time and inode. A folder counts with the same of
    each file below it, by relative path, found by a walk that leaves out hidden entries (names
    starting with ``.``), the paths in ``skip``, and folders holding one of them, and stops after
    :data:`MAX_INPUT_FILES` files (in sorted order), so its cost is at most that many ``stat``
    calls: a change past them is not seen. A glob pattern (``bal_train/*.tfrecord``) counts
    with the same of each file it matches (the first :data:`MAX_INPUT_FILES`). An fsspec URL
    counts as an output does (see :func:`outputs_fingerprint`). Files are not read, so a
    rewrite that keeps a file's size, time and inode is not seen either.

    Parameters
    ----------
    inputs : tuple of str
        Files and folders.
    skip : frozenset of str
        Absolute paths the workflow writes itself (see :func:`workflow_paths`).
    """
    return {path: _input_digest(path, skip) for path in inputs}


def _input_digest(path: str, skip: frozenset[str]) -> str | None:
    if "://" in path:
        listing: Any = _url_files(path) if output_exists(path) else None
    elif _WILDCARD.search(path):
        matches = sorted(glob.glob(path, recursive=True))[:MAX_INPUT_FILES]
        listing = [[m, *row] for m in matches if (row := _stat_row(m)) is not None]
    elif os.path.isdir(path):
        listing = _folder_listing(path, skip)
    else:
        listing = _stat_row(path)
    if listing is None:
        return None
    return hashlib.sha256(json.dumps(listing, default=str).encode()).hexdigest()


def _stat_row(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _folder_listing(root: str, skip: frozenset[str]) -> list[list]:
    """``[relative path, size, mtime, inode]`` of the files below ``root``, as
    :func:`inputs_fingerprint` describes."""
    out: list[list] = []
    for here, dirs, files in os.walk(root):
        base = os.path.abspath(here)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not _holds(os.path.join(base, d), skip))  # fmt: skip
        for name in sorted(f for f in files if not f.startswith(".")):
            full = os.path.join(base, name)
            row = None if full in skip else _stat_row(full)
            if row is not None:
                out.append([os.path.relpath(full, os.path.abspath(root)), *row])
            if len(out) >= MAX_INPUT_FILES:
                return [*out, ["...", "more files not looked at"]]
    return out


def _holds(folder: str, paths: frozenset[str]) -> bool:
    """Whether ``folder`` is one of ``paths`` or holds one of them."""
    return any(p == folder or p.startswith(folder + "/") for p in paths)


def output_exists(path: str) -> bool:
    """Whether a declared output exists (a local path, or an fsspec URL)."""
    if "://" not in path:
        return Path(path).exists()
    import fsspec

    fs, rel = fsspec.core.url_to_fs(path)
    return fs.exists(rel)


def outputs_fingerprint(outputs: tuple[str, ...] | None) -> dict[str, str] | None:
    """sha256 of what each declared output holds now, by path; None when there are none.

    Each file (an output, or a file under an output folder) counts with its path, size,
    modification time and inode (for an fsspec URL: its size, times and ETag where the file
    system gives them), so a file added, removed, rewritten or replaced changes the digest.
    """
    if not outputs:
        return None
    return {path: _output_digest(path) for path in outputs}


def _output_digest(path: str) -> str:
    listing = _url_files(path) if "://" in path else _local_files(path)
    return hashlib.sha256(json.dumps(listing, default=str).encode()).hexdigest()


def _local_files(path: str) -> list[list]:
    if os.path.isfile(path):
        found = [path]
    else:
        found = sorted(os.path.join(d, f) for d, _, files in os.walk(path) for f in files)
    rows = ((name, _stat_row(name)) for name in found)
    return [[os.path.relpath(name, path), *row] for name, row in rows if row is not None]


_URL_KEYS = ("size", "mtime", "created", "LastModified", "ETag")


def _url_files(path: str) -> list[list]:
    import fsspec

    fs, rel = fsspec.core.url_to_fs(path)
    fs.invalidate_cache(rel)  # the stage may have written through this cached instance
    infos = {rel: fs.info(rel)} if fs.isfile(rel) else fs.find(rel, detail=True)
    return [[name, *(info.get(k) for k in _URL_KEYS)] for name, info in sorted(infos.items())]


def _run_stage(
    stage: ResolvedStage,
    depends: tuple[str, ...],
    state: WorkflowState,
    root: Command,
    reason: str,
    earlier: str | None,
    now: dict[str, str | None],
) -> StageOutcome:
    last = state.last_success(stage.name)
    before = outputs_fingerprint(stage.outputs)
    if last is not None and last.get("outputs", before) != before:
        last = None  # changed since that success: they are not what it left
    started = time.time()
    base = {
        "digest": stage.digest,
        "run_id": uuid.uuid4().hex[:12],
        "command": stage.describe(),
        "started": _iso(started),
        "upstream": {d: state.made(d) for d in depends},
        "inputs": now,
    }
    try:
        code, value, error = execute(stage, root, earlier)
    except KeyboardInterrupt:
        state.record(stage.name, {**base, "status": FAILED, "error": INTERRUPTED})
        raise StageInterrupted(stage.name, rerun_note(stage)) from None
    seconds = time.time() - started
    base["seconds"] = round(seconds, 3)
    after = outputs_fingerprint(stage.outputs)
    if before is None or after != before:
        last = None  # this run changed the outputs: they are not what the last success left
    if code != 0:
        state.record(stage.name, {**base, "status": FAILED, "exit_code": code, "error": error,
                                  **({"last_success": last} if last else {})})  # fmt: skip
        return StageOutcome(stage.name, FAILED, error, seconds, command=base["command"],
                            exit_code=code)  # fmt: skip
    summary = summarize(value)
    same = last is not None and last.get("digest") == stage.digest and last.get("made")
    made = last["made"] if same else base["run_id"]
    state.record(stage.name, {**base, "status": FINISHED, "finished": _iso(time.time()),
                              "made": made, "summary": summary,
                              **({"outputs": after} if after else {})})  # fmt: skip
    return StageOutcome(stage.name, RAN, reason, seconds, summary, base["command"], 0)


def execute(
    stage: ResolvedStage, root: Command, earlier: str | None = None
) -> tuple[int, Any, str]:
    """Run one stage in this process.

    Parameters
    ----------
    stage : ResolvedStage
    root : Command
    earlier : str, optional
        :func:`earlier_run` of the stage, given to a command as ``ctx.meta[EARLIER_RUN]``.

    Returns
    -------
    code : int
        0 on success, else the command's exit code (1 for an exception).
    value : object
        What the command or function returned.
    error : str
        What went wrong, for the record and the summary.
    """
    try:
        with _root_logging_restored():
            if stage.stage.call:
                value = call_function(stage.stage.call, stage.kwargs)
            else:
                value = invoke_command(root, stage.argv, {EARLIER_RUN: earlier})
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return code, None, f"exit {code}"
    except typer.Abort:
        return 1, None, "aborted"
    except CallError as exc:
        return 1, None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        code = getattr(exc, "exit_code", None)
        if not isinstance(code, int):
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f" (at {frame.filename}:{frame.lineno})"
            return 1, None, f"{type(exc).__name__}: {exc}{where}"
        if callable(getattr(exc, "show", None)):
            exc.show()  # a usage error: the command's own message and usage line
            return code, None, f"exit {code}: {exc}"
        return code, None, f"exit {code}" if code else ""
    return 0, value, ""


@contextlib.contextmanager
def _root_logging_restored() -> Iterator[None]:
    """Undo a stage's changes to the root logger (e.g. the handler an implicit
    ``logging.basicConfig`` adds), so later stages log as they do when run alone."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def invoke_command(root: Command, argv: tuple[str, ...], meta: dict | None = None) -> Any:
    """Run ``audiomill ARGV`` in this process and return what the command returned.

    Exits (``typer.Exit``, usage errors) propagate as exceptions, so a failure is never mistaken
    for a return value. ``meta`` is put into the commands' shared ``ctx.meta``.
    """
    with root.make_context("audiomill", list(argv)) as ctx:
        ctx.meta.update(meta or {})
        return root.invoke(ctx)


def invoke_audiomill(*argv: str) -> Any:
    """:func:`invoke_command` on the ``audiomill`` command tree, for workflow steps written in
    Python that run a command or two."""
    import typer

    from workflows.cli import app  # here: the command tree imports this module

    return invoke_command(typer.main.get_command(app), argv)


class CallError(TypeError):
    """A call stage's function cannot be found, or cannot take the stage's ``kwargs``.

    Raised before the function runs, so the message says what is wrong rather than where in
    the runner it was found.
    """


def call_function(spec: str, kwargs: dict[str, Any]) -> Any:
    """Import ``module:function`` and call it with ``kwargs``.

    Raises
    ------
    CallError
        When the module or function is not there, or the function's signature does not take
        ``kwargs`` (a name it has no parameter for, a required one left out); the function does
        not run then.
    """
    try:
        function = import_call(spec)
    except LookupError as exc:
        raise CallError(f"{spec}: {exc}") from None
    problem = kwargs_problem(function, kwargs)
    if problem is not None:
        raise CallError(f"{spec}: {problem[0]}")
    return function(**kwargs)


def summarize(value: Any) -> dict[str, Any]:
    """The recordable part of a stage's return value: plain values, and dicts of numbers."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, Any] = {}
    for key, v in value.items():
        if isinstance(v, str | int | float | bool) or v is None:
            out[str(key)] = v
        elif isinstance(v, dict) and all(_count(x) is not None for x in v.values()):
            out[str(key)] = {str(k): x for k, x in v.items()}
    return out


def _count(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, dict):
        counts = [_count(v) for v in value.values()]
        return sum(counts) if all(c is not None for c in counts) else None
    return None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
