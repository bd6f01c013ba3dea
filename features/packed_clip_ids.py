"""Clip ids of packed rows that have no ``clip_id`` dataset, found before anything is written.

An AudioSet clip id is ``<YTID>_<start_ms>``, and a packed file (``x``, ``y``, ``video_id_list``)
records no start time. A row's clip id comes from, in order:

- AudioSet segment lists given with the import: the start of its video's one segment there. A
  video the lists do not hold, or hold at several starts, is refused.
- Without lists, the dataset: the one clip it holds of the video (any split, waveform or
  embeddings), so a re-import is recognized as such and a clip of another split as leakage. A
  video it holds as several clips (sections of one video) is refused.
- Otherwise ``<YTID>_0``, counted (:attr:`PackedClipIds.unknown_starts`) and warned about.
"""

from __future__ import annotations

import io
import itertools
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from features.import_records import ImportRecordError
from features.packed_embeddings import check_packed, open_packed, read_strings
from schemas.audioset import parse_segments_text
from schemas.classmap import ClassMap
from schemas.errors import InputFormatError
from schemas.textio import read_text

log = logging.getLogger(__name__)

VIDEO_READ_ROWS = 65536
SEGMENT_CHUNK_LINES = 65536  # lines of a segment list parsed at a time (the full list has 2M)
AUDIOSET_CLIP_ID = re.compile(r"(.+)_([0-9]+)")
"""A clip id ``<YTID>_<start_ms>``: its video id and start."""

VideoRows = dict[str, tuple[str, int]]
"""Each video id of the input mapped to its first row: (file, row)."""


@dataclass
class PackedClipIds:
    """The clip id of each video of the packed files without ``clip_id``.

    Attributes
    ----------
    by_video : dict
        Video id -> clip id.
    unknown_starts : int
        Videos whose start time nothing gave: their clip id is ``<YTID>_0``.
    """

    by_video: dict[str, str]
    unknown_starts: int = 0


def packed_clip_ids(
    files: Sequence[str],
    segments: Sequence[str] | None,
    class_map: ClassMap,
    held: Iterable[str],
    storage_options: dict | None,
) -> PackedClipIds:
    """Name the clips of the packed ``files`` that have no ``clip_id`` dataset.

    Parameters
    ----------
    files : sequence of str
        The packed files (local paths or fsspec URLs).
    segments : sequence of str or None
        AudioSet segment lists (local paths or fsspec URLs); None names clips from the dataset.
    class_map : ClassMap
        The class map of ``y`` (each file's layout is checked) and of the segment lists.
    held : iterable of str
        The clip ids the dataset holds.
    storage_options : dict, optional
        fsspec options of the files and lists.

    Raises
    ------
    ImportRecordError
        For the first row whose video the lists do not hold or hold at several starts, or,
        without lists, that the dataset holds as several clips.
    InputFormatError
        For a segment list that cannot be read or holds a malformed line.
    """
    videos = _unnamed_videos(files, len(class_map), storage_options)
    if segments:
        return PackedClipIds(_from_segments(videos, segments, class_map, storage_options))
    named = _from_dataset(videos, held)
    if named.unknown_starts:
        log.warning(
            "%d clip(s) of the input have no known start time: imported as <YTID>_0; "
            "--segments (AudioSet segment lists) gives their clip ids <YTID>_<start_ms>",
            named.unknown_starts,
        )
    return named


def _unnamed_videos(
    files: Sequence[str], num_classes: int, storage_options: dict | None
) -> VideoRows:
    """The video ids of the files without ``clip_id``, each with its first row."""
    videos: VideoRows = {}
    for path in files:
        with open_packed(path, storage_options) as hf:
            total = check_packed(hf, path, num_classes)
            if "clip_id" in hf:
                continue
            for start in range(0, total, VIDEO_READ_ROWS):
                stop = min(start + VIDEO_READ_ROWS, total)
                for k, video in enumerate(read_strings(hf, "video_id_list", path, start, stop)):
                    videos.setdefault(video, (path, start + k))
    return videos


def _from_dataset(videos: VideoRows, held: Iterable[str]) -> PackedClipIds:
    """Each video's clip id: the dataset's one clip of it, else ``<YTID>_0``."""
    clips: dict[str, set[str]] = {}
    for clip_id in held:
        if (found := AUDIOSET_CLIP_ID.fullmatch(clip_id)) and found[1] in videos:
            clips.setdefault(found[1], set()).add(clip_id)
    for video, (path, row) in videos.items():
        if len(several := clips.get(video, ())) > 1:
            raise ImportRecordError(
                path,
                row,
                f"the dataset holds video {video} as {len(several)} clips "
                f"({', '.join(sorted(several))}) and a packed row has no start time to say "
                "which it is; pass --segments (AudioSet segment lists) to give the rows their "
                "clip ids. Nothing was written.",
                unit="row",
            )
    by_video = {v: next(iter(clips[v])) if v in clips else f"{v}_0" for v in videos}
    return PackedClipIds(by_video, unknown_starts=len(videos) - len(clips))


def _from_segments(
    videos: VideoRows, segments: Sequence[str], class_map: ClassMap, storage_options: dict | None
) -> dict[str, str]:
    """Each video's clip id from its one segment in the lists."""
    listed = _listed_clips(segments, class_map, videos, storage_options)
    for video, (path, row) in videos.items():
        clips = listed.get(video, {})
        if not clips:
            reason = (
                f"video {video} is in none of the segment lists ({', '.join(segments)}), so its "
                "start time, and clip id <YTID>_<start_ms>, is unknown"
            )
        elif len(clips) > 1:
            reason = (
                f"video {video} has segments at {len(clips)} start times in the segment lists "
                f"({', '.join(clips.values())}), and a packed row has no start time to say "
                "which it is"
            )
        else:
            continue
        raise ImportRecordError(path, row, f"{reason}. Nothing was written.", unit="row")
    return {video: next(iter(listed[video])) for video in videos}


def _listed_clips(
    segments: Sequence[str], class_map: ClassMap, videos: VideoRows, storage_options: dict | None
) -> dict[str, dict[str, str]]:
    """The clip ids of the segments of ``videos`` in the lists, by video, each with its start
    and where it was first listed (``30 s at <list> line <n>``); a chunk of lines parsed at a
    time."""
    listed: dict[str, dict[str, str]] = {}
    for path in segments:
        lines = io.StringIO(read_text(path, storage_options))
        offset = 0
        while chunk := list(itertools.islice(lines, SEGMENT_CHUNK_LINES)):
            parsed = parse_segments_text("".join(chunk), class_map, path=path)
            if parsed.malformed:
                bad = parsed.malformed[0]
                raise InputFormatError(path, f"not an AudioSet segment list: {bad.reason}",
                                       line=offset + bad.line)  # fmt: skip
            for segment in parsed.segments:
                if segment.source in videos:
                    at = f"{segment.start_s:g} s at {path} line {offset + segment.line}"
                    listed.setdefault(segment.source, {}).setdefault(segment.clip_id, at)
            offset += len(chunk)
    return listed
