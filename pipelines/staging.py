"""The staging area of an ingest run: per-clip results that are not yet in a committed shard.

``<dataset>/.staging/<split>/`` holds

``clips/<key>.clip``
    a decoded clip, written by the fetch stage: the magic ``AMCLIP1\n``, the length of a
    UTF-8 JSON metadata block as 8 little-endian bytes, that block, then the int16 waveform
    as little-endian bytes (so the metadata can be read without the audio);
``failed/<key>.json``
    a clip that failed, with its reason;
``commits/shard-NNNNN.json``
    a shard that the pack stage committed, waiting to be adopted into the manifest.

``<dataset>/.staging/.plans/`` holds the plans of the running pipeline (JSON lines): the
pipeline carries their paths, not the plans, so its graph stays small however many clips a run
has (Beam pickles and compresses what ``Create`` holds into the graph, and remote runners cap
its size). A split name never starts with a dot, so no split's directory is there.

``key`` is a hash of the clip id, so no user input ever becomes part of a path. Everything here
survives a crash: a re-run reuses staged clips instead of fetching them again and adopts
committed shards instead of packing them again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np

from pipelines.storage import DatasetStore
from schemas.dataset import STAGING

MAGIC = b"AMCLIP1\n"
PLANS = f"{STAGING}/.plans"


def clip_key(clip_id: str) -> str:
    """Path-safe, fixed-length key for a clip id."""
    return hashlib.sha256(clip_id.encode("utf-8")).hexdigest()[:32]


def split_dir(split: str) -> str:
    """Dataset-relative staging directory of ``split``."""
    return f"{STAGING}/{split}"


def staged_clip_path(split: str, clip_id: str) -> str:
    """Where the decoded clip is staged."""
    return f"{split_dir(split)}/clips/{clip_key(clip_id)}.clip"


def failed_path(split: str, clip_id: str) -> str:
    """Where a clip's failure is staged."""
    return f"{split_dir(split)}/failed/{clip_key(clip_id)}.json"


def commit_record_path(split: str, index: int) -> str:
    """Where the pack stage records a committed shard."""
    return f"{split_dir(split)}/commits/shard-{index:05d}.json"


def write_staged_clip(store: DatasetStore, split: str, waveform: np.ndarray, meta: dict) -> None:
    """Stage a decoded clip atomically."""
    header = json.dumps(meta, sort_keys=True).encode("utf-8")
    body = np.ascontiguousarray(waveform, dtype="<i2").tobytes()
    data = b"".join([MAGIC, len(header).to_bytes(8, "little"), header, body])
    store.write_bytes_atomic(staged_clip_path(split, meta["clip_id"]), data)


class DamagedStagedClip(ValueError):
    """A staged clip that does not read back whole: cut short (a full disk, a bad copy) or
    with other samples than were staged."""


def _parse_header(data: bytes) -> tuple[dict, int]:
    """The metadata of a staged clip's bytes and where its samples start; raises
    :class:`DamagedStagedClip` with the problem when the header does not read back."""
    if data[: len(MAGIC)] != MAGIC:
        raise DamagedStagedClip("no staged-clip header")
    start = len(MAGIC) + 8
    size = int.from_bytes(data[len(MAGIC) : start], "little")
    if len(data) < start or len(data) - start < size:
        raise DamagedStagedClip(f"cut short in its header ({len(data)} bytes)")
    try:
        meta = json.loads(data[start : start + size].decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DamagedStagedClip(f"unreadable header ({exc})") from exc
    if not isinstance(meta, dict):
        raise DamagedStagedClip("unreadable header (not a JSON object)")
    return meta, start + size


def _samples(body: memoryview, meta: dict, row_samples: int | None) -> np.ndarray:
    """The samples of a staged clip, checked against its header and the row length; raises
    :class:`DamagedStagedClip` with the problem when they are not the samples staged."""
    if len(body) % 2:
        raise DamagedStagedClip(f"{len(body)} bytes of samples, not whole 16-bit samples")
    samples = np.frombuffer(body, dtype="<i2").astype(np.int16)
    if row_samples is not None and len(samples) != row_samples:
        raise DamagedStagedClip(f"{len(samples)} samples, rows hold {row_samples}")
    if len(samples) < meta.get("num_samples", 0):
        raise DamagedStagedClip(
            f"{len(samples)} samples, its header says {meta['num_samples']} were decoded"
        )
    digest = meta.get("waveform_sha256")
    if digest is not None and hashlib.sha256(samples).hexdigest() != digest:
        raise DamagedStagedClip("its samples do not match the sha256 its header records")
    return samples


def _damaged(
    store: DatasetStore, rel: str, clip_id: str, exc: DamagedStagedClip
) -> DamagedStagedClip:
    return DamagedStagedClip(f"staged clip {clip_id}: {store.url(rel)} is damaged: {exc}")


def read_staged_clip(
    store: DatasetStore, split: str, clip_id: str, row_samples: int | None = None
) -> tuple[np.ndarray, dict]:
    """Load a staged clip: (waveform int16, meta).

    Parameters
    ----------
    store : DatasetStore
    split, clip_id : str
    row_samples : int, optional
        The samples of a shard row, which a staged waveform holds (padded).

    Raises
    ------
    DamagedStagedClip
        Naming the clip, its file and the problem, when the clip does not read back whole:
        a header cut short or unreadable, samples that are not whole, not ``row_samples``
        or fewer than its ``num_samples``, or whose sha256 is not its ``waveform_sha256``.
    """
    rel = staged_clip_path(split, clip_id)
    data = store.read_bytes(rel)
    try:
        meta, offset = _parse_header(data)
        return _samples(memoryview(data)[offset:], meta, row_samples), meta
    except DamagedStagedClip as exc:
        raise _damaged(store, rel, clip_id, exc) from None


def staged_clip_problem(
    store: DatasetStore, split: str, clip_id: str, row_samples: int
) -> str | None:
    """Why the staged clip of ``clip_id`` does not read back whole (as
    :func:`read_staged_clip` says it), or None when it does or none is staged."""
    try:
        read_staged_clip(store, split, clip_id, row_samples)
    except FileNotFoundError:
        return None
    except DamagedStagedClip as exc:
        return str(exc)
    return None


def read_staged_meta(store: DatasetStore, split: str, clip_id: str) -> dict:
    """Load only the metadata of a staged clip (the audio is not read); raises
    :class:`DamagedStagedClip`, naming the clip and its file, when it does not read back."""
    rel = staged_clip_path(split, clip_id)
    with store.open(rel, "rb") as fh:
        head = fh.read(len(MAGIC) + 8)
        size = int.from_bytes(head[len(MAGIC) :], "little") if len(head) == len(MAGIC) + 8 else 0
        try:
            meta, _ = _parse_header(head + fh.read(size))
        except DamagedStagedClip as exc:
            raise _damaged(store, rel, clip_id, exc) from None
    return meta


def staged_names(store: DatasetStore, split: str, kind: str) -> list[str]:
    """File names staged under ``clips``, ``failed`` or ``commits``."""
    return [n for n in store.listdir(f"{split_dir(split)}/{kind}") if ".tmp-" not in n]


def read_json(store: DatasetStore, rel: str) -> dict:
    """Read a JSON file of the staging area."""
    return json.loads(store.read_text(rel))


def write_plans(store: DatasetStore, kind: str, records: Sequence, per_file: int) -> list[str]:
    """Write ``records`` to plan files of ``per_file`` records each; return their paths.

    Parameters
    ----------
    store : DatasetStore
    kind : str
        File name prefix, such as ``"shards"``; files are ``<kind>-NNNNNN.jsonl`` in
        :data:`PLANS`, replacing any of those names.
    records : sequence
        JSON-serialisable records, in order.
    per_file : int
        Records per file (positive).

    Returns
    -------
    list of str
        Dataset-relative paths, in record order; empty for no records.
    """
    if per_file < 1:
        raise ValueError(f"per_file must be positive, got {per_file}")
    rels = []
    for n, start in enumerate(range(0, len(records), per_file)):
        rel = f"{PLANS}/{kind}-{n:06d}.jsonl"
        lines = (json.dumps(r, sort_keys=True) + "\n" for r in records[start : start + per_file])
        with store.open(rel, "wb") as fh:
            fh.write("".join(lines).encode("utf-8"))
        rels.append(rel)
    return rels


def read_plan(store: DatasetStore, rel: str) -> list:
    """The records of one plan file written by :func:`write_plans`."""
    return [json.loads(line) for line in store.read_text(rel).splitlines()]


def remove_plans(store: DatasetStore) -> None:
    """Delete every plan file (a run's own when it ends, an interrupted run's when the next
    one starts; the caller holds the dataset lock)."""
    for name in store.listdir(PLANS):
        store.remove(f"{PLANS}/{name}")
