"""Manifests of the user's own audio: CSV or JSON Lines, one clip per row.

Columns (CSV header or JSON keys, in any case):

``path`` or ``url`` (exactly one per row)
    A local path (relative to the audio root when one is given), an fsspec URL (``s3://``)
    or an http(s) URL.
``start_seconds``, ``end_seconds`` (optional)
    The segment within the file; both absent means the whole file.
``labels`` (optional)
    Mids or display names, separated by ``;`` or ``,`` (a JSON list also works).
``split`` (optional)
    Overrides the default split for that row.
``clip_id`` (optional)
    An explicit id; otherwise one is made from the sanitized path plus the offset.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterator
from urllib.parse import urlparse

from schemas.classmap import ClassMap
from schemas.errors import InputFormatError, MalformedLine
from schemas.segments import Segment, SegmentList, sanitize_clip_id, split_name_problem
from schemas.textio import read_text

SOURCE_COLUMNS = ("path", "url")
OTHER_COLUMNS = ("start_seconds", "end_seconds", "labels", "split", "clip_id")
KNOWN_COLUMNS = {*SOURCE_COLUMNS, *OTHER_COLUMNS}
_COLUMN_NAME = re.compile(r"[^\W\d][\w .\-]*")


def first_csv_row(text: str) -> tuple[int, list[str]] | None:
    """The 1-based number and stripped fields of the first line that is neither blank nor a
    ``#`` comment."""
    found = _first_row(text)
    return None if found is None else (found[0], found[2])


def _first_row(text: str) -> tuple[int, int, list[str]] | None:
    """:func:`first_csv_row`'s line number and fields, and the offset where its line starts.

    Lines are read one at a time: a list of millions of lines is not split into lines for the
    sake of its first few.
    """
    offset = 0
    for lineno, line in enumerate(io.StringIO(text, newline=""), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            return lineno, offset, [f.strip() for f in next(csv.reader([line]))]
        offset += len(line)
    return None


def is_column_header(fields: list[str]) -> bool:
    """Whether CSV fields read as column names: each empty or a name (a letter or ``_``, then
    letters, digits, spaces, ``_``, ``.`` or ``-``), at least one a name; a number is none."""
    return any(fields) and all(not f or _COLUMN_NAME.fullmatch(f) for f in fields)


def missing_source_column(path: str, line: int, columns: list[str]) -> InputFormatError:
    """The error for a manifest header, on ``line`` of ``path``, naming neither ``path`` nor
    ``url``."""
    found = ", ".join(repr(c) for c in columns if c) or "no column"
    return InputFormatError(
        path,
        f"the header names {found}; a manifest needs a 'path' or 'url' column "
        f"(its other columns: {', '.join(OTHER_COLUMNS)})",
        line=line,
    )


def is_jsonl(path: str) -> bool:
    """Whether a manifest path names a JSON Lines file (``.jsonl``/``.ndjson``)."""
    return os.fspath(path).lower().endswith((".jsonl", ".ndjson"))


def _csv_rows(text: str, path: str) -> Iterator[tuple[int, dict | str]]:
    """The CSV's data rows by line number; blank lines and ``#`` comments before its header
    are skipped."""
    first = _first_row(text)
    if first is None:
        raise InputFormatError(path, "empty manifest")
    header_line, offset, _ = first
    reader = csv.DictReader(io.StringIO(text[offset:] if offset else text), skipinitialspace=True)
    header = [f.strip() for f in reader.fieldnames or []]
    if not {f.lower() for f in header if f}.intersection(SOURCE_COLUMNS):
        raise missing_source_column(path, header_line, header)
    for row in reader:
        line = header_line - 1 + reader.line_num
        if None in row:
            extra = len(row[None])
            yield line, f"{len(row) - 1 + extra} fields, header has {len(row) - 1}"
            continue
        yield line, {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}


def _jsonl_rows(text: str) -> Iterator[tuple[int, dict | str]]:
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, f"invalid JSON ({exc.msg})"
            continue
        if not isinstance(obj, dict):
            yield lineno, "expected a JSON object"
            continue
        yield lineno, {str(k).strip().lower(): v for k, v in obj.items()}


def _seconds(value) -> float | None:
    if value is None or value == "":
        return None
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{value!r} is not finite")
    return out


def _row_to_segment(
    row: dict, class_map: ClassMap, split: str, path: str, lineno: int
) -> Segment | str:
    unknown_cols = set(row) - KNOWN_COLUMNS
    if unknown_cols:
        return f"unknown columns {sorted(unknown_cols)}"
    file_path, url = row.get("path") or "", row.get("url") or ""
    if bool(file_path) == bool(url):
        return "exactly one of 'path' or 'url' must be set"
    try:
        start = _seconds(row.get("start_seconds"))
        end = _seconds(row.get("end_seconds"))
    except (TypeError, ValueError) as exc:
        return f"start/end seconds not numbers ({exc})"
    if (start is None) != (end is None):
        return "give both start_seconds and end_seconds, or neither"
    labels = row.get("labels") or ""
    if isinstance(labels, list):
        labels = ";".join(str(x) for x in labels)
    known, unknown = class_map.split_labels(str(labels))
    source = str(url or file_path)
    kind = "url" if url and urlparse(source).scheme in ("http", "https") else "path"
    name = urlparse(source).path.lstrip("/") if url else source
    clip_id = str(row.get("clip_id") or sanitize_clip_id(name, start))
    row_split = str(row.get("split") or split)
    if problem := split_name_problem(row_split):
        return problem
    return Segment(
        clip_id=clip_id,
        source=source,
        source_kind=kind,
        start_s=start,
        end_s=end,
        labels=tuple(c.index for c in known),
        label_mids=tuple(c.mid for c in known),
        unknown_labels=tuple(unknown),
        split=row_split,
        origin=path,
        line=lineno,
    )


def parse_manifest_text(
    text: str, class_map: ClassMap, *, path: str = "<manifest>", split: str = "train"
) -> SegmentList:
    """Parse a custom manifest (CSV, or JSONL when ``path`` ends in ``.jsonl``/``.ndjson``)."""
    rows = _jsonl_rows(text) if is_jsonl(path) else _csv_rows(text, path)
    result = SegmentList()
    for lineno, row in rows:
        if isinstance(row, str):
            parsed: Segment | str = row
        else:
            parsed = _row_to_segment(row, class_map, split, path, lineno)
        if isinstance(parsed, Segment):
            result.segments.append(parsed)
        else:
            raw = json.dumps(row) if isinstance(row, dict) else ""
            result.malformed.append(MalformedLine(path, lineno, raw[:200], parsed))
    return result


def manifest_labels(path: str | os.PathLike[str], storage_options: dict | None = None) -> list[str]:
    """Return the distinct labels used by a manifest, sorted, to build a class map from."""
    text = read_text(path, storage_options)
    rows = _jsonl_rows(text) if is_jsonl(os.fspath(path)) else _csv_rows(text, os.fspath(path))
    names: set[str] = set()
    for _, row in rows:
        if isinstance(row, dict):
            labels = row.get("labels") or ""
            items = labels if isinstance(labels, list) else str(labels).replace(";", ",").split(",")
            names.update(str(x).strip() for x in items if str(x).strip())
    return sorted(names)


def load_manifest(
    path: str | os.PathLike[str],
    class_map: ClassMap,
    *,
    split: str = "train",
    storage_options: dict | None = None,
) -> SegmentList:
    """Read and parse a custom manifest from a local path or fsspec URL."""
    return parse_manifest_text(
        read_text(path, storage_options), class_map, path=os.fspath(path), split=split
    )
