"""The normalized segments table: one row per requested clip, whatever list it came from.

AudioSet CSVs and custom manifests both parse into :class:`Segment` records; the table form
(Arrow/Parquet, :data:`SEGMENT_SCHEMA`) is what the ingest pipeline plans from and what
``segments inspect`` reports on.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from schemas.errors import MalformedLine

SOURCE_KINDS = ("youtube", "url", "path")
CLIP_ID_PATTERN = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,199}$")
MAX_CLIP_ID = 200
SPLIT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
"""Split names: they name directories of a dataset (``waveforms/<split>/``)."""


def split_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a split name, or ``None`` if it can.

    Parameters
    ----------
    name : str
        A split name from a manifest row or a ``--split`` option.

    Returns
    -------
    str or None
        The reason, naming the value; ``None`` for 1-64 characters of letters, digits, ``_``,
        ``-`` and ``.`` that start with a letter or digit.
    """
    if SPLIT_PATTERN.fullmatch(name):
        return None
    return (
        f"split {name[:80]!r} is not a valid split name (1-64 letters, digits, '_', '-' or '.', "
        "starting with a letter or digit)"
    )


@dataclass(frozen=True, slots=True)
class Segment:
    """One requested clip.

    Attributes
    ----------
    clip_id : str
        Stable unique id (``<YTID>_<start_ms>`` for AudioSet; sanitized path plus offset for
        custom audio).
    source : str
        The YouTube id, URL or path exactly as given.
    source_kind : {"youtube", "url", "path"}
        How ``source`` is fetched.
    start_s, end_s : float or None
        The segment within the source, in seconds; None for "the whole file".
    labels : tuple of int
        Class indices in the dataset's class map.
    label_mids : tuple of str
        The same labels as mids.
    unknown_labels : tuple of str
        Labels that matched no class (such a segment fails validation).
    split : str
        Dataset split the clip belongs to.
    origin : str
        The list file the segment came from; for a file of a folder, the file itself.
    line : int
        1-based line number in ``origin``; 0 where ``origin`` is no list (a folder's file).
    """

    clip_id: str
    source: str
    source_kind: str
    start_s: float | None
    end_s: float | None
    labels: tuple[int, ...] = ()
    label_mids: tuple[str, ...] = ()
    unknown_labels: tuple[str, ...] = ()
    split: str = "train"
    origin: str = ""
    line: int = 0

    @property
    def duration_s(self) -> float | None:
        """Requested duration, or None for whole-file clips."""
        if self.start_s is None or self.end_s is None:
            return None
        return self.end_s - self.start_s


@dataclass
class SegmentList:
    """Result of parsing a segment list: the good rows, the malformed lines, header facts."""

    segments: list[Segment] = field(default_factory=list)
    malformed: list[MalformedLine] = field(default_factory=list)
    header: dict[str, int] = field(default_factory=dict)


def audioset_clip_id(ytid: str, start_s: float) -> str:
    """Return ``<YTID>_<start_ms>``; YTIDs may contain ``_`` and ``-``, so never split on ``_``."""
    return f"{ytid}_{round(start_s * 1000)}"


def sanitize_clip_id(name: str, start_s: float | None = None) -> str:
    """Make a clip id from a relative path or URL path plus an offset.

    Characters outside ``[A-Za-z0-9_.-]`` become ``_``; when anything had to change (or the
    result is too long), 8 hex digits of the original's sha1 are appended so that distinct
    names never collide. The start offset in milliseconds is appended as ``_<ms>``.

    Parameters
    ----------
    name : str
        Relative path or URL path.
    start_s : float or None
        Start of the segment in the file (None or 0 for the whole file).
    """
    clean = re.sub(r"[^A-Za-z0-9_.\-]", "_", name).lstrip("._")
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    if clean != name or len(clean) > MAX_CLIP_ID - 30 or not clean:
        clean = f"{clean[: MAX_CLIP_ID - 40]}-{digest}"
    offset = 0 if start_s is None else round(start_s * 1000)
    return f"{clean}_{offset}"


SEGMENT_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_kind", pa.string(), nullable=False),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("labels", pa.list_(pa.int32()), nullable=False),
        pa.field("label_mids", pa.list_(pa.string()), nullable=False),
        pa.field("unknown_labels", pa.list_(pa.string()), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("line", pa.int32(), nullable=False),
    ],
    metadata={b"audiomill.table": b"segments", b"audiomill.schema_version": b"1"},
)


def segments_to_table(segments: Sequence[Segment]) -> pa.Table:
    """Return the segments as an Arrow table with :data:`SEGMENT_SCHEMA`."""
    cols = {name: [] for name in SEGMENT_SCHEMA.names}
    for s in segments:
        cols["clip_id"].append(s.clip_id)
        cols["source"].append(s.source)
        cols["source_kind"].append(s.source_kind)
        cols["start_s"].append(s.start_s)
        cols["end_s"].append(s.end_s)
        cols["labels"].append(list(s.labels))
        cols["label_mids"].append(list(s.label_mids))
        cols["unknown_labels"].append(list(s.unknown_labels))
        cols["split"].append(s.split)
        cols["origin"].append(s.origin)
        cols["line"].append(s.line)
    return pa.table(cols, schema=SEGMENT_SCHEMA)


def table_to_segments(table: pa.Table) -> list[Segment]:
    """Inverse of :func:`segments_to_table`."""

    def opt(v: float | None) -> float | None:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    return [
        Segment(
            clip_id=r["clip_id"],
            source=r["source"],
            source_kind=r["source_kind"],
            start_s=opt(r["start_s"]),
            end_s=opt(r["end_s"]),
            labels=tuple(r["labels"]),
            label_mids=tuple(r["label_mids"]),
            unknown_labels=tuple(r["unknown_labels"]),
            split=r["split"],
            origin=r["origin"],
            line=r["line"],
        )
        for r in table.to_pylist()
    ]
