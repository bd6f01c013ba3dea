"""Reading small text inputs (CSV, JSON, JSONL) from local paths or fsspec URLs."""

from __future__ import annotations

import os

import fsspec

from schemas.errors import InputFormatError


def read_text(path: str | os.PathLike[str], storage_options: dict | None = None) -> str:
    """Return the UTF-8 text of ``path`` (a local path or an fsspec URL such as ``s3://b/k``).

    Raises
    ------
    InputFormatError
        If the file does not exist or is not UTF-8 text.
    """
    path = os.fspath(path)
    try:
        with fsspec.open(path, "rb", **(storage_options or {})) as fh:
            data = fh.read()
    except FileNotFoundError as exc:
        raise InputFormatError(path, "file not found") from exc
    except IsADirectoryError as exc:
        raise InputFormatError(path, "is a directory, expected a file") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFormatError(path, f"not UTF-8 text (byte {exc.start})") from exc
