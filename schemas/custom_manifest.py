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
    An explicit id; otherwise one is made from the sanitized path plus the offset: a file's
    path, or a URL's path without its host or query, so rows naming different files with the
    same path need one (a later such row is malformed, with a reason that says so).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterator
from urllib.parse import urlparse, urlsplit

import fsspec

from schemas.classmap import ClassMap
from schemas.errors import InputFormatError, MalformedLine
from schemas.segments import Segment, SegmentList, sanitize_clip_id, split_name_problem
from schemas.textio import read_text

SOURCE_COLUMNS = ("path", "url")
OTHER_COLUMNS = ("start_seconds", "end_seconds", "labels", "split", "clip_id")
KNOWN_COLUMNS = {*SOURCE_COLUMNS, *OTHER_COLUMNS}
ACCEPTED_COLUMNS = f"{' or '.join(SOURCE_COLUMNS)}, {', '.join(OTHER_COLUMNS)}"
"""The columns a manifest may have, as an error names them."""
MAX_LINE_SHOWN = 200
"""Characters of a malformed line kept to show with its reason."""
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


def unknown_columns(names: list[str]) -> list[str]:
    """The names, stripped, in their order and each once, that are no manifest column in any
    case (an empty name is none)."""
    stripped = (n.strip() for n in names)
    return list(dict.fromkeys(n for n in stripped if n and n.lower() not in KNOWN_COLUMNS))


def unknown_column_problem(unknown: list[str], what: str = "column") -> str:
    """Why ``unknown`` (:func:`unknown_columns`) cannot be read, naming the accepted ones."""
    names = ", ".join(repr(n) for n in unknown)
    plural = "s" if len(unknown) > 1 else ""
    return f"unknown {what}{plural} {names}; a manifest's {what}s are {ACCEPTED_COLUMNS}"


def header_problem(path: str, line: int, header: list[str]) -> InputFormatError | None:
    """The error for a manifest header, on ``line`` of ``path``, that names a column no
    manifest has (the one error for all its rows), or ``None``."""
    if unknown := unknown_columns(header):
        return InputFormatError(path, f"the header names {unknown_column_problem(unknown)}", line)
    return None


def is_jsonl(path: str) -> bool:
    """Whether a manifest path names a JSON Lines file (``.jsonl``/``.ndjson``)."""
    return os.fspath(path).lower().endswith((".jsonl", ".ndjson"))


LIST_HEAD_BYTES = 65536
"""Bytes of a segment list :func:`check_list_file` reads to tell its format."""


def list_format_problem(text: str, path: str) -> str | None:
    """Why ``text``, a segment list or its start, is in no format a list may have, or ``None``.

    Parameters
    ----------
    text : str
        The list's text, or its first few kilobytes.
    path : str
        Its path or URL: a ``.jsonl``/``.ndjson`` name is JSON Lines.

    Returns
    -------
    str or None
        For JSON under another name (an AudioSet CSV or manifest reading it found one field
        where it expected several on every line), and for a tab-separated first row.
    """
    if is_jsonl(path):
        return None
    if text.lstrip().startswith(("{", "[")):
        return (
            "holds JSON: a segment list is comma-separated CSV, or JSON Lines (one object per "
            "line) in a file named .jsonl or .ndjson"
        )
    first = _first_row(text)
    if first is not None and any("\t" in f for f in first[2]):
        return (
            f"line {first[0]} is tab-separated: a segment list is comma-separated CSV or JSON "
            "Lines (.jsonl)"
        )
    return None


def check_list_file(path: str, storage_options: dict | None = None) -> None:
    """Refuse a segment list file whose start shows it is in no format a list may have, or a
    manifest whose header names a column no manifest has (before a run writes anything).

    Reads :data:`LIST_HEAD_BYTES` of ``path`` (a local path or fsspec URL); a folder, or a
    file that cannot be opened, is left to the reader that opens it for good.

    Raises
    ------
    InputFormatError
        With :func:`list_format_problem`'s reason, naming the file, or
        :func:`header_problem`'s.
    """
    try:
        with fsspec.open(path, "rb", **(storage_options or {})) as fh:
            head = fh.read(LIST_HEAD_BYTES)
    except Exception:  # a folder, a missing file, no access: its reader says why
        return
    text = head.decode("utf-8", errors="ignore").removeprefix("\ufeff")
    if problem := list_format_problem(text, path):
        raise InputFormatError(path, problem)
    first = _first_row(text)
    if is_jsonl(path) or first is None:
        return
    line, offset, header = first
    whole = len(head) < LIST_HEAD_BYTES or "\n" in text[offset:]  # its header line is all read
    manifest = {f.lower() for f in header}.intersection(SOURCE_COLUMNS)
    if whole and manifest and (problem := header_problem(path, line, header)):
        raise problem


Row = tuple[int, dict | str, str]
"""A manifest row: its 1-based line number, its fields (lower-case names) or why it is
malformed, and its text as the file has it."""


def _csv_rows(text: str, path: str) -> Iterator[Row]:
    """The CSV's data rows by line number, each with its text; blank lines and ``#`` comments
    before its header are skipped.

    Raises
    ------
    InputFormatError
        For an empty text, or a header naming neither ``path`` nor ``url`` or naming a column no
        manifest has: one error about the header's line, before any row is read.
    """
    first = _first_row(text)
    if first is None:
        raise InputFormatError(path, "empty manifest")
    header_line, offset, _ = first
    taken: list[str] = []  # the lines the reader took for the row it gives next

    def lines() -> Iterator[str]:
        for line in io.StringIO(text[offset:] if offset else text, newline=""):
            taken.append(line)
            yield line

    reader = csv.DictReader(lines(), skipinitialspace=True)
    header = [f.strip() for f in reader.fieldnames or []]
    if not {f.lower() for f in header if f}.intersection(SOURCE_COLUMNS):
        raise missing_source_column(path, header_line, header)
    if problem := header_problem(path, header_line, header):
        raise problem
    taken.clear()
    for row in reader:
        line = header_line - 1 + reader.line_num
        raw = "".join(taken).rstrip("\r\n")
        taken.clear()
        if None in row:
            extra = len(row[None])
            yield line, f"{len(row) - 1 + extra} fields, header has {len(row) - 1}", raw
            continue
        yield line, {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}, raw


_TEXT_FIELDS = ("path", "url", "split", "clip_id")
_NUMBER_FIELDS = ("start_seconds", "end_seconds")


def _json_kind(value: object) -> str:
    """How a JSON value is called in an error: ``a number``, ``a list``, ``true`` ..."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _json_field_problem(obj: dict) -> str | None:
    """Why a JSONL row's values cannot be read as a manifest row (a field of the wrong JSON
    type), or ``None``; ``null`` stands for an absent field."""
    for key in _TEXT_FIELDS:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            return f"{key!r} must be a string, not {_json_kind(value)}"
    for key in _NUMBER_FIELDS:
        value = obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{key!r} must be a number of seconds, not {_json_kind(value)}"
    labels = obj.get("labels")
    if labels is None or isinstance(labels, str):
        return None
    what = _json_kind(labels)
    if isinstance(labels, list):
        bad = [x for x in labels if not isinstance(x, str)]
        if not bad:
            return None
        what = f"a list holding {_json_kind(bad[0])}"
    return f"'labels' must be a string or a list of strings, not {what}"


def _jsonl_rows(text: str) -> Iterator[Row]:
    """The JSON Lines rows by line number, each with its text; blank lines are skipped. A line
    that is no JSON object, has a key no manifest has, or whose fields have the wrong JSON
    types, is malformed: each object has keys of its own, so a key is a problem of its line."""
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        raw = line.rstrip("\r")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, f"invalid JSON ({exc.msg})", raw
            continue
        if not isinstance(obj, dict):
            yield lineno, "expected a JSON object", raw
            continue
        fields = {str(k).strip().lower(): v for k, v in obj.items()}
        if unknown := unknown_columns([str(k) for k in obj]):
            yield lineno, unknown_column_problem(unknown, "key"), raw
            continue
        yield lineno, _json_field_problem(fields) or fields, raw


def _seconds(value) -> float | None:
    if value is None or value == "":
        return None
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{value!r} is not finite")
    return out


_UNREQUESTABLE = re.compile(r"[\x00-\x20\x7f-\x9f]|\s")
"""Characters a URL cannot hold as written: whitespace and control characters."""


def url_problem(url: str) -> str | None:
    """Why a manifest's ``url`` cannot be requested as it is written, or ``None``.

    Parameters
    ----------
    url : str
        A ``url`` value of a manifest row.

    Returns
    -------
    str or None
        For a space or control character in it (to be percent-encoded), no scheme, a scheme
        that is neither http(s) nor an fsspec protocol (``s3``, ``gs``, ``file`` ...), no host
        (or bucket), or a port that is no port number. ``None`` when it can be requested.
    """
    shown = repr(url[:80])
    if found := _UNREQUESTABLE.search(url):
        char = found.group()
        what = "a space" if char == " " else f"whitespace or a control character ({char!r})"
        return f"url {shown} holds {what}: percent-encode it (a space as %20)"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme or "://" not in url:
        return f"url {shown} is no URL (scheme://host/...): a local file goes in the 'path' column"
    if scheme not in fsspec.available_protocols():
        return f"url {shown}: scheme {scheme!r} is not supported (http, https, s3, gs, file ...)"
    if scheme != "file" and not (parts.hostname if scheme in ("http", "https") else parts.netloc):
        return f"url {shown} names no host"
    try:
        parts.port  # noqa: B018 - reading the port checks it
    except ValueError:
        return f"url {shown}: its port is no port number"
    return None


def _row_to_segment(
    row: dict, class_map: ClassMap, split: str, path: str, lineno: int
) -> Segment | str:
    file_path, url = row.get("path") or "", row.get("url") or ""
    if bool(file_path) == bool(url):
        return "exactly one of 'path' or 'url' must be set"
    if url and (problem := url_problem(url)):
        return problem
    try:
        start = _seconds(row.get("start_seconds"))
        end = _seconds(row.get("end_seconds"))
    except (TypeError, ValueError) as exc:
        return f"start/end seconds not numbers ({exc})"
    if (start is None) != (end is None):
        return "give both start_seconds and end_seconds, or neither"
    labels = row.get("labels") or ""
    if isinstance(labels, list):
        labels = ";".join(labels)
    known, unknown = class_map.split_labels(labels)
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


def _same_path_problem(seg: Segment, first: Segment, url: bool) -> str:
    """Why ``seg``, whose clip id was made from its path, repeats ``first``'s clip id though
    its source differs: the id leaves out a URL's host and query."""
    a, b = urlsplit(seg.source), urlsplit(first.source)
    query_only = a.query != b.query and a._replace(query="") == b._replace(query="")
    differ = "differ only in the query" if query_only else "differ"
    return (
        f"duplicate clip id {seg.clip_id!r} (first on line {first.line}): {seg.source!r} and "
        f"line {first.line}'s {first.source!r} {differ}, but a row without a clip_id gets its "
        f"id from its {'URL' if url else 'file'}'s path: give rows naming different files with "
        "the same path a clip_id column"
    )


def parse_manifest_text(
    text: str, class_map: ClassMap, *, path: str = "<manifest>", split: str = "train"
) -> SegmentList:
    """Parse a custom manifest (CSV, or JSONL when ``path`` ends in ``.jsonl``/``.ndjson``).

    A row without a ``clip_id`` whose id, made from its path, is that of an earlier row with
    another source is malformed, with a reason saying why (rows repeating a source are kept:
    ingest and ``segments inspect`` report them as plain duplicates).
    """
    rows = _jsonl_rows(text) if is_jsonl(path) else _csv_rows(text, path)
    result = SegmentList()
    first: dict[str, Segment] = {}
    for lineno, row, raw in rows:
        if isinstance(row, str):
            parsed: Segment | str = row
        else:
            parsed = _row_to_segment(row, class_map, split, path, lineno)
            if isinstance(parsed, Segment):
                seen = first.setdefault(parsed.clip_id, parsed)
                if seen.source != parsed.source and not row.get("clip_id"):
                    parsed = _same_path_problem(parsed, seen, bool(row.get("url")))
        if isinstance(parsed, Segment):
            result.segments.append(parsed)
        else:
            result.malformed.append(MalformedLine(path, lineno, raw[:MAX_LINE_SHOWN], parsed))
    return result


def manifest_labels(path: str | os.PathLike[str], storage_options: dict | None = None) -> list[str]:
    """Return the distinct labels used by a manifest, sorted, to build a class map from.

    Raises
    ------
    InputFormatError
        If the manifest has a header and no rows, or every row is malformed (naming the first
        with its line, reason and text): there is no label to make a class map of then.
    """
    path = os.fspath(path)
    text = read_text(path, storage_options)
    rows = _jsonl_rows(text) if is_jsonl(path) else _csv_rows(text, path)
    names: set[str] = set()
    good, malformed = 0, []
    for lineno, row, raw in rows:
        if isinstance(row, str):
            malformed.append(MalformedLine(path, lineno, raw[:MAX_LINE_SHOWN], row))
            continue
        good += 1
        labels = row.get("labels") or ""
        items = labels if isinstance(labels, list) else labels.replace(";", ",").split(",")
        names.update(x.strip() for x in items if x.strip())
    if not good and not malformed:
        raise InputFormatError(
            path, "the list holds no segments (no rows), so no labels found to make a class map"
        )
    if not good:
        first = malformed[0]
        raise InputFormatError(
            path,
            f"every row is malformed ({len(malformed)}), so no labels found to make a class map; "
            f"the first: {first.reason}: {first.text!r}",
            line=first.line,
        )
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
