"""The dataset directory layout and its ``manifest.json``.

A dataset is a directory or fsspec URL::

    manifest.json   schema version, class map digest, audio format, splits, shards, runs
    classes.csv     the class map the targets use
    ledger/<split>/ Parquet parts, one row per requested clip (see ``schemas.ledger``)
    waveforms/<split>/shard-NNNNN.h5 | .parquet
    embeddings/<model>/<split>/shard-NNNNN.h5 | .parquet   row-aligned with waveforms
    segments/<run>.parquet  the normalized segments each ingest run was asked for
    reports/        Great Expectations results and Data Docs, dataset reports
    .staging/       work in progress of an interrupted or running ingest (never read by users)

The manifest is the commit point: a shard belongs to the dataset once the manifest lists it.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field

DATASET_SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
CLASSES = "classes.csv"
LOCK = ".lock"
STAGING = ".staging"
SHARD_EXTENSIONS = {"hdf5": "h5", "parquet": "parquet"}

_EXTENSIONS = "|".join(SHARD_EXTENSIONS.values())
_SHARD_NAME = re.compile(rf"shard-(\d{{5,}})\.(?:{_EXTENSIONS})")


def shard_name(index: int, fmt: str) -> str:
    """File name of shard ``index`` in format ``fmt`` ('hdf5' or 'parquet')."""
    return f"shard-{index:05d}.{SHARD_EXTENSIONS[fmt]}"


def shard_index(name: str) -> int | None:
    """The index of a shard file named ``name`` (as :func:`shard_name` names them, in any
    format), or None for a name that is not a shard's."""
    match = _SHARD_NAME.fullmatch(name)
    return int(match[1]) if match else None


def waveform_shard_path(split: str, index: int, fmt: str) -> str:
    """Dataset-relative path of a waveform shard."""
    return f"waveforms/{split}/{shard_name(index, fmt)}"


def embedding_shard_path(model: str, split: str, index: int, fmt: str) -> str:
    """Dataset-relative path of an embedding shard (row-aligned with waveform shard ``index``)."""
    return f"embeddings/{model}/{split}/{shard_name(index, fmt)}"


def ledger_dir(split: str) -> str:
    """Dataset-relative directory holding a split's ledger parts."""
    return f"ledger/{split}"


@dataclass
class ShardFile:
    """One committed file of a shard."""

    path: str
    sha256: str
    bytes: int


@dataclass
class ShardEntry:
    """A committed shard: the same rows in one or more formats."""

    index: int
    num_clips: int
    files: dict[str, ShardFile]
    run_id: str
    clip_ids_sha256: str

    @classmethod
    def from_dict(cls, d: dict) -> ShardEntry:
        """Inverse of ``asdict``."""
        return cls(
            index=d["index"],
            num_clips=d["num_clips"],
            files={k: ShardFile(**v) for k, v in d["files"].items()},
            run_id=d["run_id"],
            clip_ids_sha256=d["clip_ids_sha256"],
        )


@dataclass
class SplitEntry:
    """The committed shards of one split."""

    shards: list[ShardEntry] = field(default_factory=list)

    @property
    def num_clips(self) -> int:
        """Clips committed in this split."""
        return sum(s.num_clips for s in self.shards)

    @property
    def next_index(self) -> int:
        """Index for the next shard of this split."""
        return max((s.index for s in self.shards), default=-1) + 1


@dataclass
class DatasetManifest:
    """The contents of ``manifest.json``."""

    class_map_sha256: str
    num_classes: int
    sample_rate: int
    clip_seconds: float
    formats: list[str]
    splits: dict[str, SplitEntry] = field(default_factory=dict)
    embeddings: dict[str, dict[str, SplitEntry]] = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)
    stages: dict[str, dict] = field(default_factory=dict)
    schema_version: int = DATASET_SCHEMA_VERSION
    created: float = field(default_factory=time.time)

    @property
    def num_samples(self) -> int:
        """Samples per clip row (T of the ``waveform`` dataset)."""
        return round(self.sample_rate * self.clip_seconds)

    def split(self, name: str) -> SplitEntry:
        """Return (creating if needed) the entry of split ``name``."""
        return self.splits.setdefault(name, SplitEntry())

    def embedding_split(self, model: str, name: str) -> SplitEntry:
        """Return (creating if needed) the embedding shards of ``model`` for split ``name``."""
        return self.embeddings.setdefault(model, {}).setdefault(name, SplitEntry())

    def to_dict(self) -> dict:
        """JSON-ready form."""
        out = asdict(self)
        out["kind"] = "audiomill-dataset"
        out["splits"] = _splits_to_dict(self.splits)
        out["embeddings"] = {m: _splits_to_dict(s) for m, s in sorted(self.embeddings.items())}
        return out

    @classmethod
    def from_dict(cls, d: dict) -> DatasetManifest:
        """Parse a manifest dict, refusing schema versions this code does not know."""
        version = d.get("schema_version")
        if version != DATASET_SCHEMA_VERSION:
            raise ValueError(
                f"manifest schema version {version!r} is not supported "
                f"(this audiomill reads version {DATASET_SCHEMA_VERSION})"
            )
        return cls(
            class_map_sha256=d["class_map_sha256"],
            num_classes=d["num_classes"],
            sample_rate=d["sample_rate"],
            clip_seconds=d["clip_seconds"],
            formats=list(d["formats"]),
            splits=_splits_from_dict(d.get("splits", {})),
            embeddings={m: _splits_from_dict(s) for m, s in d.get("embeddings", {}).items()},
            runs=list(d.get("runs", [])),
            stages=dict(d.get("stages", {})),
            created=d.get("created", 0.0),
        )


def _splits_to_dict(splits: dict[str, SplitEntry]) -> dict:
    return {
        name: {"num_clips": s.num_clips, "shards": [asdict(x) for x in s.shards]}
        for name, s in sorted(splits.items())
    }


def _splits_from_dict(d: dict) -> dict[str, SplitEntry]:
    return {
        name: SplitEntry([ShardEntry.from_dict(x) for x in s["shards"]]) for name, s in d.items()
    }
