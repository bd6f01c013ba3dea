"""Parsers for AudioSet's published metadata: segment CSVs and the ontology.

Segment CSVs look like::

    # Segments csv created Sun Mar  5 10:54:31 2017
    # num_ytids=22160, num_segs=22160, num_unique_labels=527, num_positive_labels=52882
    # YTID, start_seconds, end_seconds, positive_labels
    --PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"

Fields are separated by ``", "`` and the label list is one quoted, comma-separated field.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass

from schemas.classmap import ClassMap
from schemas.errors import InputFormatError, MalformedLine
from schemas.segments import Segment, SegmentList, audioset_clip_id
from schemas.textio import read_text

_HEADER_COUNT = re.compile(r"(\w+)=(\d+)")


def parse_segments_text(
    text: str, class_map: ClassMap, *, path: str = "<segments>", split: str = "train"
) -> SegmentList:
    """Parse the text of an AudioSet segments CSV.

    Lines starting with ``#`` are comments (their ``key=N`` pairs are kept as header facts);
    blank lines are skipped. Structural problems (wrong field count, non-numeric times, empty
    id or label field) make a :class:`~schemas.errors.MalformedLine`; semantic problems
    (start >= end, unknown labels, hostile ids) are kept on the segment and caught by the
    segment expectation suite, so they reach the ledger with the rest of the run.

    Parameters
    ----------
    text : str
        The file's contents.
    class_map : ClassMap
        Used to turn mids into class indices.
    path : str
        Reported in errors.
    split : str
        The split every segment is assigned to.
    """
    result = SegmentList()
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            result.header.update({k: int(v) for k, v in _HEADER_COUNT.findall(line)})
            continue
        problem = _parse_row(line, class_map, path, lineno, split)
        if isinstance(problem, Segment):
            result.segments.append(problem)
        else:
            result.malformed.append(MalformedLine(path, lineno, raw[:200], problem))
    return result


def _parse_row(line: str, class_map: ClassMap, path: str, lineno: int, split: str):
    try:
        fields = next(csv.reader(io.StringIO(line), skipinitialspace=True))
    except csv.Error as exc:
        return f"unreadable CSV ({exc})"
    if len(fields) != 4:
        return f"expected 4 fields (YTID, start, end, labels), found {len(fields)}"
    ytid, start_text, end_text, label_text = (f.strip() for f in fields)
    if not ytid:
        return "empty YTID"
    try:
        start, end = float(start_text), float(end_text)
    except ValueError:
        return f"start/end not numbers: {start_text!r}, {end_text!r}"
    if not (math.isfinite(start) and math.isfinite(end)):
        return "start/end not finite"
    mids = [m.strip() for m in label_text.split(",") if m.strip()]
    if not mids:
        return "no labels"
    known, unknown = [], []
    for mid in mids:
        info = class_map.by_mid(mid)
        if info is None:
            unknown.append(mid)
        elif info.index not in known:
            known.append(info.index)
    return Segment(
        clip_id=audioset_clip_id(ytid, start),
        source=ytid,
        source_kind="youtube",
        start_s=start,
        end_s=end,
        labels=tuple(known),
        label_mids=tuple(class_map[i].mid for i in known),
        unknown_labels=tuple(unknown),
        split=split,
        origin=path,
        line=lineno,
    )


def load_segments(
    path: str | os.PathLike[str],
    class_map: ClassMap,
    *,
    split: str = "train",
    storage_options: dict | None = None,
) -> SegmentList:
    """Read and parse an AudioSet segments CSV from a local path or fsspec URL."""
    return parse_segments_text(
        read_text(path, storage_options), class_map, path=os.fspath(path), split=split
    )


@dataclass(frozen=True)
class OntologyNode:
    """One entry of AudioSet's ``ontology.json``."""

    id: str
    name: str
    description: str
    child_ids: tuple[str, ...]
    restrictions: tuple[str, ...]


def parse_ontology(text: str, path: str = "<ontology>") -> dict[str, OntologyNode]:
    """Parse ``ontology.json`` into nodes keyed by mid.

    Raises
    ------
    InputFormatError
        If the JSON is invalid, not a list of objects, or a node lacks ``id``/``name``.
    """
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFormatError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from exc
    if not isinstance(raw, list):
        raise InputFormatError(path, "expected a JSON list of ontology nodes")
    nodes: dict[str, OntologyNode] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or "id" not in item or "name" not in item:
            raise InputFormatError(path, f"node {i} lacks 'id' or 'name'")
        nodes[item["id"]] = OntologyNode(
            id=item["id"],
            name=item["name"],
            description=item.get("description", ""),
            child_ids=tuple(item.get("child_ids", ())),
            restrictions=tuple(item.get("restrictions", ())),
        )
    return nodes


def load_ontology(
    path: str | os.PathLike[str], storage_options: dict | None = None
) -> dict[str, OntologyNode]:
    """Read ``ontology.json`` from a local path or fsspec URL."""
    return parse_ontology(read_text(path, storage_options), os.fspath(path))


def ancestors(nodes: dict[str, OntologyNode], mid: str) -> set[str]:
    """Return every ancestor mid of ``mid`` in the ontology graph (a DAG)."""
    parents: dict[str, list[str]] = {}
    for node in nodes.values():
        for child in node.child_ids:
            parents.setdefault(child, []).append(node.id)
    seen: set[str] = set()
    stack = list(parents.get(mid, ()))
    while stack:
        p = stack.pop()
        if p not in seen:
            seen.add(p)
            stack.extend(parents.get(p, ()))
    return seen
