"""The ``run`` command: execute a workflow YAML file (see :mod:`workflows.runner`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from workflows.cli_common import console, fail

SetValues = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Give a variable of the workflow a value (repeatable), e.g. --set work=/data/qs.",
    ),
]


def builtin_workflows() -> dict[str, Path]:
    """The workflows shipped in the package, by name: ``workflows/*.yaml`` by their stem
    (``quickstart``), the dataset recipes ``workflows/recipes/*.yaml`` as ``recipes/<stem>``."""
    folder = Path(str(resources.files("workflows")))
    found = {p.stem: p for p in sorted(folder.glob("*.yaml"))}
    found.update({f"recipes/{p.stem}": p for p in sorted((folder / "recipes").glob("*.yaml"))})
    return found


def workflow_file(name: str) -> Path:
    """``name`` as a file, or a built-in workflow of that name.

    Raises
    ------
    FileNotFoundError
        Naming the built-in workflows.
    """
    path = Path(name)
    if path.is_file():
        return path
    builtin = builtin_workflows()
    key = name.removesuffix(".yaml")
    if key in builtin:
        return builtin[key]
    raise FileNotFoundError(f"{name}: no such workflow file (built in: {', '.join(builtin)})")


def run(
    ctx: typer.Context,
    file: Annotated[
        str,
        typer.Argument(
            help="Workflow YAML file, or the name of a built-in one: quickstart, or a dataset "
            "recipe recipes/<name> (whale, urbansound8k, fsd2019, folder, audioset, "
            "audioset_embeddings)."
        ),
    ],
    set_: SetValues = None,
    from_stage: Annotated[
        str | None,
        typer.Option("--from", help="Re-run this stage and every later one, finished or not."),
    ] = None,
    only: Annotated[
        str | None, typer.Option(help="Run just this stage, finished or not, and record it.")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print each stage's command and whether it would run; run nothing."
        ),
    ] = False,
    state: Annotated[
        str | None,
        typer.Option(
            help="Completion-record file. Default: the file's 'state:', else "
            ".audiomill/<name>.state.json under the current directory."
        ),
    ] = None,
) -> None:
    """Run a workflow's stages in order, skipping those finished with the same parameters.

    A stage re-runs when its resolved parameters changed, when an output it declares is
    missing, when a file or folder it reads (its 'inputs:', or what its command reads: a
    segment list, an audio folder) changed since it last ran, or when a stage it depends on
    re-made its outputs since (a stage that runs again
    with the parameters of its last success and leaves its outputs as they were re-made
    nothing). A failing stage stops the run; the next run resumes there. See `python -m pydoc
    workflows.runner` for the file format.
    """
    from workflows.runner import StageInterrupted, WorkflowState, default_state_path, run_plan
    from workflows.workflow_resolve import parse_overrides, resolve_workflow
    from workflows.workflow_schema import WorkflowError, load_workflow

    root = ctx.find_root().command
    try:
        workflow = load_workflow(workflow_file(file), root)
        plan = resolve_workflow(workflow, parse_overrides(set_ or []), root)
        state_path = state or plan.state or default_state_path(workflow.name)
        records = WorkflowState.load(state_path, workflow.name)
        console.print(
            f"workflow [bold]{workflow.name}[/] ({workflow.source}), records in {state_path}",
            highlight=False,
            soft_wrap=True,
        )
        outcomes = run_plan(plan, records, root, start_from=from_stage, only=only,
                            dry_run=dry_run, log=_log)  # fmt: skip
    except (WorkflowError, FileNotFoundError) as exc:
        fail(str(exc))
    except StageInterrupted as exc:
        then = f" ({exc.rerun})" if exc.rerun else ""
        _log(f"interrupted during stage {exc.stage!r}, recorded in {state_path}: run again to go "
             f"on from stage {exc.stage!r}{then}")  # fmt: skip
        raise typer.Exit(130) from None
    _print_summary(outcomes, dry_run)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        fail(f"stage {failed[0].name!r} failed ({failed[0].note}); the stages before it are "
             f"recorded in {state_path}: fix the problem and run again to resume",
             code=1)  # fmt: skip


def _log(line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


_STYLES = {"ran": "green", "failed": "bold red", "skipped": "dim", "off": "dim"}


def _print_summary(outcomes: list, dry_run: bool) -> None:
    table = _summary_table()
    total = 0.0
    for o in outcomes:
        style = _STYLES.get(o.status, "")
        total += o.seconds or 0.0
        table.add_row(
            o.name,
            f"[{style}]{o.status}[/]" if style else o.status,
            "" if o.seconds is None else f"{o.seconds:.1f}",
            _clips_cell(o.clips, o.dataset_clips),
            _number(o.failures),
            o.note,
        )
    table.caption = "dry run: nothing ran" if dry_run else f"{total:.1f} s in all"
    console.print(table)


def _summary_table() -> Table:
    """The empty summary table: stage names and statuses are never cut or wrapped (the console
    may be 80 columns wide, as when the output goes to a file); the other columns wrap, folding
    a word too long for their width rather than cutting it."""
    table = Table(title="workflow")
    for name in ("stage", "status"):
        table.add_column(name, no_wrap=True)
    for name in ("seconds", "clips", "failures", "note"):
        table.add_column(name, overflow="fold")
    return table


def _clips_cell(clips: float | None, dataset_clips: float | None) -> str:
    """``"3"``, or ``"0 (50 in dataset)"`` for a stage that adds to a dataset."""
    if dataset_clips is None:
        return _number(clips)
    return f"{_number(clips)} ({_number(dataset_clips)} in dataset)"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def register(app: typer.Typer) -> None:
    """Add the ``run`` command to the ``audiomill`` app."""
    app.command()(run)
