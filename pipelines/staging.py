"""The staging area of an ingest run: per-clip results that are not yet in a committed shard.

``<dataset>/.staging/<split>/`` holds

``clips/<key>.npz``
    a decoded clip (``waveform`` int16 and a JSON ``meta`` string), written by the fetch stage;
``failed/<key>.json``
    a clip that failed, with its reason;
``commits/shard-NNNNN.json``
    a shard that the pack stage committed, waiting to be adopted into the manifest.

``key`` is a hash of the clip id, so no user input ever becomes part of a path. Everything here
survives a crash: a re-run reuses staged clips instead of fetching them again and adopts
committed shards instead of packing them again.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np

from pipelines.storage import DatasetStore
from schemas.dataset import STAGING


def clip_key(clip_id: str) -> str:
    """Path-safe, fixed-length key for a clip id."""
    return hashlib.sha256(clip_id.encode("utf-8")).hexdigest()[:32]


def split_dir(split: str) -> str:
    """Dataset-relative staging directory of ``split``."""
    return f"{STAGING}/{split}"


def staged_clip_path(split: str, clip_id: str) -> str:
    """Where the decoded clip is staged."""
    return f"{split_dir(split)}/clips/{clip_key(clip_id)}.npz"


def failed_path(split: str, clip_id: str) -> str:
    """Where a clip's failure is staged."""
    return f"{split_dir(split)}/failed/{clip_key(clip_id)}.json"


def commit_record_path(split: str, index: int) -> str:
    """Where the pack stage records a committed shard."""
    return f"{split_dir(split)}/commits/shard-{index:05d}.json"


def write_staged_clip(store: DatasetStore, split: str, waveform: np.ndarray, meta: dict) -> None:
    """Stage a decoded clip atomically."""
    buf = io.BytesIO()
    np.savez(buf, waveform=waveform, meta=np.array(json.dumps(meta, sort_keys=True)))
    store.write_bytes_atomic(staged_clip_path(split, meta["clip_id"]), buf.getvalue())


def read_staged_clip(store: DatasetStore, split: str, clip_id: str) -> tuple[np.ndarray, dict]:
    """Load a staged clip: (waveform, meta)."""
    with np.load(io.BytesIO(store.read_bytes(staged_clip_path(split, clip_id)))) as npz:
        return npz["waveform"], json.loads(str(npz["meta"]))


def read_staged_meta(store: DatasetStore, split: str, clip_id: str) -> dict:
    """Load only the metadata of a staged clip."""
    with np.load(io.BytesIO(store.read_bytes(staged_clip_path(split, clip_id)))) as npz:
        return json.loads(str(npz["meta"]))


def staged_names(store: DatasetStore, split: str, kind: str) -> list[str]:
    """File names staged under ``clips``, ``failed`` or ``commits``."""
    return [n for n in store.listdir(f"{split_dir(split)}/{kind}") if ".tmp-" not in n]


def read_json(store: DatasetStore, rel: str) -> dict:
    """Read a JSON file of the staging area."""
    return json.loads(store.read_text(rel))
