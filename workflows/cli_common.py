"""Pieces shared by the ``audiomill`` commands: consoles, errors, options, progress bars."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

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


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error and exit with ``code`` (2: bad input or arguments)."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def storage_options_from(text: str | None) -> dict | None:
    """Parse ``--storage-options`` (or ``$AUDIOMILL_STORAGE_OPTIONS``) as a JSON object."""
    text = text or os.environ.get("AUDIOMILL_STORAGE_OPTIONS")
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc.msg}", param_hint="--storage-options") from exc
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--storage-options")
    return value


def parse_formats(text: str) -> tuple[str, ...]:
    """Split ``--format`` (``hdf5``, ``parquet`` or ``hdf5,parquet``), refusing others."""
    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in formats if f not in ("hdf5", "parquet")]
    if bad or not formats:
        fail(f"--format must be among hdf5, parquet; got {text!r}")
    return formats


@contextlib.contextmanager
def progress_bar(what: str, **fields: object) -> Iterator[tuple[Progress, TaskID]]:
    """A progress bar on stderr with one task counting ``what``."""
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(f"{{task.fields[{k}]}} {k}") for k in fields]
    bar = Progress(*columns, TimeElapsedColumn(), console=console)
    with bar:
        yield bar, bar.add_task(what, total=None, **fields)
