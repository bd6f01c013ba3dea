"""``audiomill segments inspect``: what a segment list holds and which of its lines are bad."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from pipelines.segment_loading import class_map_from_list, load_segment_list
from pipelines.sources import SourceConfig, list_folder, resolve
from schemas.classmap import ClassMap
from schemas.expectations import segment_suite, validate_frame
from schemas.failures import ClipFailure
from schemas.segment_checks import describe_failed_checks
from schemas.segments import Segment, segments_to_table


@dataclass
class SegmentInspection:
    """Counts and problems of one segment list."""

    path: str
    segments: int
    unique_sources: int
    positive_labels: int
    classes_used: int
    num_classes: int
    per_class: dict[str, int]
    header: dict[str, int]
    problems: list[tuple[int, str]] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """Facts worth a look that are no line's problem (a header's counts the list does not
    match)."""

    def to_dict(self) -> dict:
        """JSON-ready form (problems as ``{"line", "reason"}``)."""
        out = dict(self.__dict__)
        out["problems"] = [{"line": n, "reason": r} for n, r in self.problems]
        return out


def inspect_segments(
    path: str,
    classes: str | None = None,
    *,
    audio_root: str | None = None,
    max_duration_s: float = 60.0,
    storage_options: dict | None = None,
) -> SegmentInspection:
    """Parse and validate a segment list without fetching anything.

    Every malformed line (parse errors, duplicates, rows failing the segment expectation
    suite: bad ids, start >= end, overlong segments, unknown labels) is reported with its
    line number and reason, and so is every local file a manifest names that ingest would not
    find: missing, or a relative path leading out of ``audio_root`` (or, without one, out of
    the list's folder).
    """
    cmap = (
        ClassMap.load(classes, storage_options)
        if classes
        else class_map_from_list(path, storage_options)
    )
    seglist = load_segment_list(path, cmap, "train", storage_options)
    problems = [(m.line, m.reason) for m in seglist.malformed]
    if not seglist.segments and not seglist.malformed:
        problems.append((1, "the list holds no segments"))
    first_line: dict[str, int] = {}
    unique = []
    for s in seglist.segments:
        if s.clip_id in first_line:
            problems.append((s.line, f"duplicate clip id (first on line {first_line[s.clip_id]})"))
        else:
            first_line[s.clip_id] = s.line
            unique.append(s)
    if unique:
        frame = segments_to_table(unique).to_pandas()
        frame["labels"] = [list(s.labels) for s in unique]
        frame["num_unknown_labels"] = [len(s.unknown_labels) for s in unique]
        outcome = validate_frame(frame, segment_suite(max_duration_s), asset_name="inspect")
        for pos, names in outcome.failures.items():
            seg = unique[pos]
            problems.append(_problem(seg, describe_failed_checks(seg, names, max_duration_s)))
    problems += _missing_files(unique, path, audio_root)
    per_class = Counter(cmap[i].display_name for s in seglist.segments for i in s.labels)
    return SegmentInspection(
        path=path,
        segments=len(seglist.segments),
        unique_sources=len({s.source for s in seglist.segments}),
        positive_labels=sum(len(s.labels) + len(s.unknown_labels) for s in seglist.segments),
        classes_used=len(per_class),
        num_classes=len(cmap),
        per_class=dict(per_class.most_common()),
        header=seglist.header,
        problems=sorted(problems),
        splits=dict(Counter(s.split for s in seglist.segments)),
        notes=_header_notes(seglist.header, len(seglist.segments) + len(seglist.malformed)),
    )


def _header_notes(header: dict[str, int], rows: int) -> list[str]:
    """A note when an AudioSet header's segment count is not the list's number of rows (a list
    cut short or edited after it was published)."""
    said = header.get("num_segs")
    if said is None or said == rows:
        return []
    return [f"the header says {said} segments, the list has {rows} rows: cut short or edited?"]


def _problem(seg: Segment, reason: str) -> tuple[int, str]:
    """(line, reason) of a segment's problem; a folder's file has no line (0), so its reason
    starts with the file."""
    return (seg.line, reason) if seg.line else (0, f"{seg.origin}: {reason}")


def _missing_files(segments, path: str, audio_root: str | None) -> list[tuple[int, str]]:
    """(line, reason) of each manifest path ingest would not find; remote files are not checked."""
    config = SourceConfig(audio_root=audio_root, manifest_dir=list_folder(path))
    problems = []
    for seg in segments:
        if seg.source_kind != "path":
            continue
        try:
            location = resolve(seg, config, None).location
        except ClipFailure as exc:
            problems.append((seg.line, exc.detail))
            continue
        if "://" not in location and not os.path.isfile(location):
            problems.append((seg.line, f"no such file: {location}"))
    return problems
