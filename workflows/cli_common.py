"""Pieces shared by the ``audiomill`` commands: consoles, errors, options, progress bars."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

console = Console(stderr=True)
out = Console()

StorageOptions = Annotated[
    str | None,
    typer.Option(
        "--storage-options",
        help="JSON object passed to fsspec for s3:// and other remote paths, e.g. "
        '\'{"client_kwargs": {"endpoint_url": "http://127.0.0.1:8333"}}\'. '
        "Defaults to $AUDIOMILL_STORAGE_OPTIONS.",
    ),
]


def print_error(message: str) -> None:
    """Print ``error: message`` on stderr, unwrapped and without markup from the message.

    A progress bar still showing ends first (:meth:`_Progress.finish`), so the error is the
    last line and no empty bar follows it.
    """
    for bar in list(_showing):
        bar.finish()
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error and exit with ``code`` (2: bad input or arguments)."""
    print_error(message)
    raise typer.Exit(code)


def local_dir(value: str, command: str) -> Path:
    """``--out`` of ``command`` as a local directory, refusing a URL (``s3://...``): Keras,
    numpy and HTML writers write there with local file calls."""
    if "://" in value:
        fail(
            f"--out {value}: {command} writes to a local directory, not a URL; give a local "
            "path and copy the result to the object store afterwards"
        )
    return Path(value)


def storage_options_from(text: str | None) -> dict | None:
    """Parse ``--storage-options`` (or ``$AUDIOMILL_STORAGE_OPTIONS``) as a JSON object; an
    error names the one the text came from."""
    source = "--storage-options" if text else "$AUDIOMILL_STORAGE_OPTIONS"
    text = text or os.environ.get("AUDIOMILL_STORAGE_OPTIONS")
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc.msg}", param_hint=source) from exc
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object", param_hint=source)
    return value


Formats = Annotated[
    list[str] | None,
    typer.Option(
        "--format",
        help="Shard formats: hdf5 (the default), parquet, or both as hdf5,parquet or by giving "
        "the option twice.",
    ),
]


def parse_formats(values: list[str] | None) -> tuple[str, ...]:
    """The formats of every ``--format`` given (each ``hdf5``, ``parquet`` or ``hdf5,parquet``).

    Parameters
    ----------
    values : list of str or None
        The option's values; None or empty for the default, ``("hdf5",)``.

    Returns
    -------
    tuple of str
        Each format once, in the order first given; exits with an error naming the values when
        one is neither ``hdf5`` nor ``parquet``.
    """
    given = values or ["hdf5"]
    formats = tuple(dict.fromkeys(f.strip() for v in given for f in v.split(",") if f.strip()))
    bad = [f for f in formats if f not in ("hdf5", "parquet")]
    if bad or not formats:
        fail(f"--format must be among hdf5, parquet; got {', '.join(given)!r}")
    return formats


def _rate(task: Task) -> str:
    """``14.2 clips/s`` from the task's recent updates; empty before there are any."""
    return "" if task.speed is None else f"{task.speed:.1f} {task.description}/s"


def _clock(seconds: float) -> str:
    """``1:24``, or ``1:02:03`` from an hour on."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _count(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def progress_line(task: Task) -> str:
    """A task's progress as plain text, e.g. ``clips 1200/3000 (40%), 2 shards, 14.2 clips/s,
    1:24 elapsed, ~2:06 left`` (what is not known yet left out)."""
    done = f"{task.description} {_count(task.completed)}"
    if task.total:
        done += f"/{_count(task.total)} ({task.percentage:.0f}%)"
    fields = [f"{value} {name}" for name, value in task.fields.items()]
    parts = [done, *fields, _rate(task), f"{_clock(task.elapsed or 0.0)} elapsed"]
    if task.total and task.time_remaining is not None:
        parts.append(f"~{_clock(task.time_remaining)} left")
    return ", ".join(part for part in parts if part)


class _RateColumn(ProgressColumn):
    """The bar's rate, as :func:`_rate` words it."""

    def render(self, task: Task) -> Text:
        """The rate of ``task``."""
        return Text(_rate(task))


_showing: list[_Progress] = []
"""The bars of :func:`progress_bar` being shown."""


class _Progress(Progress):
    """A :class:`rich.progress.Progress` that, on a console that is no terminal (output to a
    file, under nohup or CI), where the bar shows only once it ends, prints a
    :func:`progress_line` on an update at least ``line_every`` seconds after the last one."""

    def __init__(self, *columns: str | ProgressColumn, line_every: float, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self.line_every = line_every
        self.last_line = self.get_time()
        self.stopped = False

    def finish(self) -> None:
        """Stop now, as it stands; a bar that counted nothing yet is taken away (erased on a
        terminal, printed nowhere else, nor the blank line after it)."""
        if not any(task.completed for task in self.tasks):
            self.live.transient = True
        self.stop()

    def stop(self) -> None:
        """As :meth:`rich.progress.Progress.stop`, once: later calls do nothing."""
        if self.stopped:
            return
        self.stopped = True
        if self.live.transient:
            self.live.stop()
        else:
            super().stop()

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        """As :meth:`rich.progress.Progress.update`, then the plain line when it is due."""
        super().update(task_id, **kwargs)
        now = self.get_time()
        if not self.console.is_terminal and now - self.last_line >= self.line_every:
            self.last_line = now
            line = progress_line(self._tasks[task_id])
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)


PROJECT_LOGGERS = ("pipelines", "features", "modeling", "schemas", "workflows")
"""The loggers of audiomill's packages, whose warnings :func:`progress_bar` shows as the
commands' own lines."""


class _NoteHandler(logging.Handler):
    """Prints a warning or error record as the commands print theirs: ``warning: message``
    (``error: message``), on ``console``; an exception's type and text follow the message."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.WARNING)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        """Print ``record`` on one line."""
        label = (
            "[bold red]error:[/]" if record.levelno >= logging.ERROR else "[bold yellow]warning:[/]"
        )
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" ({type(exc).__name__}: {exc})"
        self.console.print(f"{label} {escape(text)}", soft_wrap=True, highlight=False)


@contextlib.contextmanager
def _project_logs_shown(console: Console) -> Iterator[None]:
    """Show the warnings of :data:`PROJECT_LOGGERS` on ``console`` as the commands' own lines
    for the time of the block, and only there.

    Without this they reach the root logger, which Beam's ``PipelineOptions`` give
    ``logging.basicConfig``'s handler: a line such as ``WARNING:pipelines.storage:removed
    stale dataset lock ...`` among the command's own, and through a progress bar.
    """
    handler = _NoteHandler(console)
    loggers = [logging.getLogger(name) for name in PROJECT_LOGGERS]
    shown = {
        lg: lg.propagate
        for lg in loggers
        if not any(isinstance(h, _NoteHandler) for h in lg.handlers)
    }
    for logger in shown:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate in shown.items():
            logger.removeHandler(handler)
            logger.propagate = propagate


@contextlib.contextmanager
def progress_bar(
    what: str, *, line_every: float = 30.0, **fields: object
) -> Iterator[tuple[Progress, TaskID]]:
    """A progress bar on stderr with one task counting ``what``.

    Parameters
    ----------
    what : str
        What the task counts (``clips``), also the unit of its rate.
    line_every : float
        Where stderr is no terminal, the least seconds between plain progress lines (printed
        on updates, so never more often than they come).
    **fields
        Further counts shown as ``<value> <name>`` (``shards=0``), updated with the task.

    Notes
    -----
    When the block fails, or prints an error (:func:`print_error`), the bar ends first as it
    stands, or is taken away if it counted nothing yet (a bad argument, a damaged input found
    up front), so the error comes last and no empty ``0/?`` bar follows it. Warnings that
    audiomill's modules log in the block are printed above the bar as ``warning: ...``
    lines, as the commands print theirs.
    """
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(f"{{task.fields[{k}]}} {k}") for k in fields]
    columns += [_RateColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    bar = _Progress(*columns, line_every=line_every, console=console)
    with bar, _project_logs_shown(bar.console):
        task = bar.add_task(what, total=None, **fields)
        _showing.append(bar)
        try:
            yield bar, task
        except BaseException:
            bar.finish()
            raise
        finally:
            _showing.remove(bar)
