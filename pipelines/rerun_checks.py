"""Checks of a (re-)run's segment list against the clips the dataset already holds.

A clip id names one clip of the dataset: a list that gives a committed clip another split,
other labels or another source is refused; the same audio is not ingested twice under two ids;
a committed clip whose local file changed since keeps its audio as ingested, with a warning.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import urllib.parse
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.dataset_state import unledgered_note
from pipelines.fetch import is_local
from pipelines.pack import ledger_part_path, read_committed_labels
from pipelines.sources import SourceConfig, resolve
from pipelines.storage import DatasetStore
from schemas.classmap import NAMES_SEP, ClassMap
from schemas.dataset import DatasetManifest, ledger_dir
from schemas.errors import MalformedLine
from schemas.failures import ClipFailure
from schemas.ledger import LEDGER_SCHEMA, STATUS_OK
from schemas.segments import Segment


def dedupe(segments: list[Segment]) -> tuple[list[Segment], list[MalformedLine]]:
    """Keep the first segment of each clip id; later ones become malformed lines."""
    seen: dict[str, Segment] = {}
    out, dupes = [], []
    for s in segments:
        first = seen.setdefault(s.clip_id, s)
        if first is s:
            out.append(s)
        else:
            reason = f"duplicate clip id {s.clip_id!r} (first on line {first.line})"
            dupes.append(MalformedLine(s.origin, s.line, s.source[:200], reason))
    return out, dupes


def _local_path(location: str | None) -> str | None:
    """The file a resolved location or ledger ``source`` names on this machine (a plain path or
    a ``file:`` URL); None for a URL of anything else, or no location."""
    if location is None or not is_local(location):
        return None
    parts = urllib.parse.urlsplit(location)
    return urllib.parse.unquote(parts.path) if parts.scheme else location


def _stat(path: str, known: dict[str, os.stat_result | None]) -> os.stat_result | None:
    """``os.stat(path)``, once a path (kept in ``known``); None when nothing is there."""
    if path not in known:
        try:
            known[path] = os.stat(path)
        except OSError:
            known[path] = None
    return known[path]


def _change_since_ingest(info: os.stat_result, row: dict) -> str | None:
    """How the file ``info`` describes changed since committed ledger ``row`` was ingested
    from it: another size than its ``media_bytes``, or modified after it was recorded; None
    when neither (or the row lacks them)."""
    if row.get("media_bytes") is not None and info.st_size != row["media_bytes"]:
        return f"{info.st_size} bytes, {row['media_bytes']} when ingested"
    if row.get("recorded_at") is not None and info.st_mtime > row["recorded_at"]:
        when = dt.datetime.fromtimestamp(info.st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        return f"modified {when} UTC, after it was ingested"
    return None


def _audio_key(info: os.stat_result, start_s: float | None, end_s: float | None) -> tuple:
    """What a local file's segment may be the same as: its file's device and inode (a relative
    path, an absolute one and a link to the file share them), start (none is 0) and end."""
    return info.st_dev, info.st_ino, start_s or 0.0, end_s


def same_audio(
    segments: list[Segment],
    state: dict[str, dict],
    sources: tuple[SourceConfig, dict[str, str] | None],
) -> tuple[list[Segment], list[MalformedLine]]:
    """Keep the segments that are not the audio of another clip: a segment of a local file
    with the start and end of a clip committed from that file, unchanged since, under another
    id, or of an earlier segment of the list under another path, becomes a malformed line
    naming that clip. The same audio under two ids would be two clips, even one in each split
    (a leak between them). A file is its real path (links resolved; a hard link is a file of
    its own): one ``stat`` a file, only when the list has a new segment of a local file, and
    real paths only of files with the same device and inode.

    Parameters
    ----------
    segments : list of Segment
        Without duplicate clip ids (:func:`dedupe`).
    state : dict
        The ledger's row of each clip (:func:`pipelines.dataset_state.ledger_state`).
    sources : tuple
        Where media is looked for: :func:`pipelines.sources.resolve`'s source settings and
        audio root index.

    Returns
    -------
    (kept, repeats)
        The segments kept, in order, and the malformed lines of the others.
    """
    known: dict[str, os.stat_result | None] = {}
    keys: dict[int, tuple[tuple, str]] = {}
    for pos, seg in enumerate(segments):
        prev = state.get(seg.clip_id)
        if seg.source_kind != "path" or (prev is not None and prev["status"] == STATUS_OK):
            continue
        path = _local_path(_new_source(seg, sources))
        info = None if path is None else _stat(path, known)
        if info is not None:
            keys[pos] = (_audio_key(info, seg.start_s, seg.end_s), path)
    if not keys:
        return segments, []
    committed: dict[tuple, list[tuple[str, dict]]] = {}
    for row in state.values():
        path = _local_path(row.get("source")) if row["status"] == STATUS_OK else None
        info = None if path is None else _stat(path, known)
        if info is not None and _change_since_ingest(info, row) is None:
            key = _audio_key(info, row.get("start_s"), row.get("end_s"))
            committed.setdefault(key, []).append((path, row))
    real = functools.cache(os.path.realpath)
    earlier: dict[tuple, list[tuple[str, Segment]]] = {}
    kept, repeats = [], []
    for pos, seg in enumerate(segments):
        key, path = keys.get(pos, (None, ""))
        row = next((r for p, r in committed.get(key, []) if real(p) == real(path)), None)
        first = next((s for p, s in earlier.get(key, []) if real(p) == real(path)), None)
        if row is not None:
            reason = (
                f"the same audio as clip {row['clip_id']!r}, committed in split "
                f"'{row['split']}' from {row['source']}: not ingested again under another id"
            )
        elif first is not None:
            where = f"line {first.line}" if first.line else first.origin  # line 0: a folder's
            reason = (
                f"the same audio as {where} (clip {first.clip_id!r}, split '{first.split}') by "
                "another path: not ingested twice"
            )
        else:
            kept.append(seg)
            if key is not None:
                earlier.setdefault(key, []).append((path, seg))
            continue
        repeats.append(MalformedLine(seg.origin, seg.line, seg.source[:200], reason))
    return kept, repeats


def warn_changed_sources(
    segments: list[Segment], state: dict[str, dict], logger: logging.Logger
) -> None:
    """Warn about the committed clips of ``segments`` whose local source file changed since
    they were ingested (:func:`_change_since_ingest`). The dataset keeps their audio as
    ingested (a warning, not a refusal: the dataset is whole and consistent, only no longer
    what the file holds). One ``stat`` a committed clip with a local source; a URL is not
    fetched to compare it; the warning goes to ``logger``, the ingest command's."""
    changed = []
    known: dict[str, os.stat_result | None] = {}
    for seg in segments:
        prev = state.get(seg.clip_id)
        if prev is None or prev["status"] != STATUS_OK:
            continue
        path = _local_path(prev.get("source"))
        info = None if path is None else _stat(path, known)  # none: moved, as in _same_source
        if info is not None and (how := _change_since_ingest(info, prev)) is not None:
            changed.append(f"{seg.clip_id} ({path}: {how})")
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        logger.warning(
            "%d committed clip(s) come from local files that changed since they were "
            "ingested: %s%s. The dataset keeps their audio as ingested; to ingest the new audio, "
            "give those rows a clip_id of their own (a clip_id column) or use a new --out",
            len(changed),
            ", ".join(changed[:3]),
            more,
        )


def check_committed(
    segments: list[Segment],
    state: dict[str, dict],
    listing: str,
    sources: tuple[SourceConfig, dict[str, str] | None],
    labels: dict[str, tuple[int, ...]],
    class_map: ClassMap,
) -> None:
    """Refuse a list that gives a committed clip another split, other labels or (custom audio)
    another source than the dataset holds it with: a clip id names one clip of the dataset.

    Parameters
    ----------
    segments : list of Segment
    state : dict
        The ledger's row of each clip (:func:`pipelines.dataset_state.ledger_state`).
    listing : str
        The segment list as the run was given it, which the message names.
    sources : tuple
        Where media is looked for: :func:`pipelines.sources.resolve`'s source settings and
        audio root index.
    labels : dict
        The labels of the committed clips of ``segments`` (:func:`committed_labels`).
    class_map : ClassMap
        Names the labels in the message.

    Raises
    ------
    ValueError
        Naming the list, how many clips differ, the first three of them, and what to do.
    """
    moved, relabelled, elsewhere = [], [], []
    for seg in segments:
        prev = state.get(seg.clip_id)
        if prev is None or prev["status"] != STATUS_OK:
            continue
        if prev["split"] != seg.split:
            moved.append(f"{seg.clip_id} ({prev['split']}, {_teller(seg)} says {seg.split})")
        old = labels.get(seg.clip_id)
        if old is not None and (old != tuple(sorted(set(seg.labels))) or seg.unknown_labels):
            relabelled.append(
                f"{seg.clip_id} (committed as {_label_names(old, class_map)}, {_teller(seg)} "
                f"says {_label_names(seg.labels, class_map, seg.unknown_labels)})"
            )
        new = _new_source(seg, sources)
        if new is not None and not _same_source(prev.get("source"), new):
            elsewhere.append(
                f"{seg.clip_id} (committed from {prev['source']}, {_teller(seg)} names {new})"
            )
    problems = [
        f"{len(found)} clip(s) are committed {what}, e.g. {', '.join(found[:3])}; {remedy}"
        for found, what, remedy in (
            (moved, "in another split than the list now gives them", _MOVED_REMEDY),
            (relabelled, "with other labels than the list now gives them", _RELABEL_REMEDY),
            (elsewhere, "from another source than the list now names", _OTHER_SOURCE_REMEDY),
        )
        if found
    ]
    if problems:
        raise ValueError(f"{listing}: " + "; ".join(problems))


_MOVED_REMEDY = "a dataset cannot move clips between splits: use a new --out"
_RELABEL_REMEDY = "a dataset cannot relabel committed clips: use a new --out"
_OTHER_SOURCE_REMEDY = (
    "a clip id names one clip of the dataset: give these rows ids of their own (a clip_id "
    "column) or use a new --out"
)


def _teller(seg: Segment) -> str:
    """What gives ``seg`` its split, labels and source in a message: its line of the list, or
    for a file of a folder (line 0) the run's own options and the file's folder."""
    return f"line {seg.line}" if seg.line else "this run"


def _label_names(
    labels: tuple[int, ...], class_map: ClassMap, unknown: tuple[str, ...] = ()
) -> str:
    """Labels (class indices, then labels the class map lacks) as their display names, quoted
    and separated by semicolons (AudioSet's names hold commas), or 'no label'."""
    names = [class_map[i].display_name for i in sorted(set(labels))] + list(unknown)
    return repr(NAMES_SEP.join(names)) if names else "no label"


def committed_labels(
    store: DatasetStore, manifest: DatasetManifest, state: dict[str, dict], segments: list[Segment]
) -> dict[str, tuple[int, ...]]:
    """The labels (sorted class indices) that each committed clip of ``segments`` has in the
    dataset: from the segments table of the run that committed it (one file a run, two
    columns), else from its shard (a table lost, or a clip whose ledger row is lost, which
    :func:`add_unledgered_shards` read from its shard already)."""
    labels: dict[str, tuple[int, ...]] = {}
    by_run: dict[str, set[str]] = {}
    for seg in segments:
        prev = state.get(seg.clip_id)
        if prev is None or prev["status"] != STATUS_OK:
            continue
        if "labels" in prev:
            labels[seg.clip_id] = prev["labels"]
        else:
            by_run.setdefault(prev["run_id"], set()).add(seg.clip_id)
    for run_id, ids in by_run.items():
        labels.update(_run_labels(store, run_id, ids))
        for split, index in {(state[c]["split"], state[c]["shard"]) for c in ids - labels.keys()}:
            entry = manifest.splits.get(split)
            shard = next((s for s in entry.shards if s.index == index), None) if entry else None
            if shard is not None:
                found = read_committed_labels(store, shard)
                labels.update((c, found[c]) for c in ids & found.keys())
    return labels


def _run_labels(store: DatasetStore, run_id: str, ids: set[str]) -> dict[str, tuple[int, ...]]:
    """The labels of clips ``ids`` in run ``run_id``'s segments table (none when it is gone)."""
    rel = f"segments/{run_id}.parquet"
    if not store.exists(rel):
        return {}
    with store.open(rel) as stream:
        table = pq.read_table(stream, columns=["clip_id", "labels"])
    table = table.filter(pc.is_in(table.column("clip_id"), value_set=pa.array(sorted(ids))))
    ids_found, labels = table.column("clip_id").to_pylist(), table.column("labels").to_pylist()
    return {c: tuple(sorted(set(lab))) for c, lab in zip(ids_found, labels, strict=True)}


def add_unledgered_shards(
    store: DatasetStore, manifest: DatasetManifest, state: dict[str, dict], log: Callable
) -> None:
    """Count as committed (in ``state``, with their labels) the clips of the committed shards
    whose ledger part is missing, read from the shards: without it a re-run would ingest them
    again, into a second shard."""
    missing = []
    for split, entry in sorted(manifest.splits.items()):
        parts = set(store.listdir(ledger_dir(split)))
        for shard in entry.shards:
            rel = ledger_part_path(split, shard.index, shard.run_id, committed=True)
            if rel.rsplit("/", 1)[-1] in parts:
                continue
            missing.append(rel)
            for clip_id, labels in read_committed_labels(store, shard).items():
                if state.get(clip_id, {}).get("status") != STATUS_OK:
                    state[clip_id] = {
                        **dict.fromkeys(LEDGER_SCHEMA.names),
                        **{"clip_id": clip_id, "split": split, "status": STATUS_OK},
                        **{"run_id": shard.run_id, "shard": shard.index, "labels": labels},
                    }
    if missing:
        log(unledgered_note(store, missing))


def _new_source(seg: Segment, sources: tuple[SourceConfig, dict[str, str] | None]) -> str | None:
    """Where a custom-audio segment (a path or URL, whose clip id comes from it) resolves to;
    None for an AudioSet id (any mirror of the video serves the same clip) or a segment that
    does not resolve (it fails as it would unplanned)."""
    if seg.source_kind not in ("path", "url"):
        return None
    try:
        return resolve(seg, *sources).location
    except ClipFailure:
        return None


def _same_source(committed: str | None, new: str) -> bool:
    """Whether a committed clip's ledger ``source`` and a segment's resolved location name the
    same media: the same string, or local paths to the same file. A committed local file that
    is no longer where the ledger says (its folder moved, or, in a ledger written before sources
    were recorded as absolute paths, a path relative to another working directory) cannot be
    compared, so it counts as the same: the clip stays as committed."""
    if committed is None or committed == new:
        return True  # None: a clip whose ledger row is lost, its source unknown
    if "://" in committed or "://" in new:
        return False
    if not os.path.exists(committed):
        return True
    return os.path.exists(new) and os.path.samefile(committed, new)
