"""Pieces shared by the ``audiomill`` commands: consoles, errors, options, progress bars."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
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


def print_error(message: str) -> None:
    """Print ``error: message`` on stderr, unwrapped and without markup from the message."""
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


@contextlib.contextmanager
def progress_bar(what: str, **fields: object) -> Iterator[tuple[Progress, TaskID]]:
    """A progress bar on stderr with one task counting ``what``."""
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(f"{{task.fields[{k}]}} {k}") for k in fields]
    bar = Progress(*columns, TimeElapsedColumn(), console=console)
    with bar:
        yield bar, bar.add_task(what, total=None, **fields)
