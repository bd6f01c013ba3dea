"""On-disk layout of the per-class index used for balanced sampling.

An index is built from the committed shards of one split, either its waveform shards or the
embedding shards of one model, and lives in its own directory::

    index/<split>/waveforms/               built from waveforms/<split>/
    index/<split>/embeddings/<model>/      built from embeddings/<model>/<split>/

Each directory holds:

=====================  ==========================================================================
file                   contents
=====================  ==========================================================================
``positions.parquet``  :data:`POSITIONS_SCHEMA`: one row per (class, positive clip), sorted by
                       class, then shard, then row: the positions of class ``c`` are the rows
                       ``start[c] : start[c] + count[c]``
``classes.parquet``    :data:`CLASSES_SCHEMA`: one row per class of the class map, in class
                       order: ``count`` (positive clips) and ``start`` (first row in
                       ``positions.parquet``)
``weights.parquet``    :data:`WEIGHTS_SCHEMA`: one row per clip in global row order (shards in
                       manifest order, rows in shard order): ``clip_id``, ``num_labels`` and
                       ``weight`` = sum over the clip's labels of 1 / count (0 without labels)
``index.json``         :class:`ClassIndexMeta`: what the index was built from (class map digest,
                       every shard's checksums and row offset) and the sha256 of each file above
=====================  ==========================================================================

``shard`` is a shard's index (the number in its file name), ``row`` a row within that shard; the
*global row* of a clip is its shard's ``offset`` (recorded in ``index.json``) plus its row.

``index.json`` is written last and is the commit point: a reader trusts the three tables only
when their sha256 match it (a build interrupted between files is detected), and trusts the index
only while the shards it records are still those of the manifest (a stale index is detected).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pyarrow as pa

CLASS_INDEX_SCHEMA_VERSION = 1
INDEX_META = "index.json"
POSITIONS = "positions.parquet"
CLASSES_TABLE = "classes.parquet"
WEIGHTS = "weights.parquet"
INDEX_TABLES = (POSITIONS, CLASSES_TABLE, WEIGHTS)
SOURCES = ("waveforms", "embeddings")

_META = {b"audiomill.schema_version": str(CLASS_INDEX_SCHEMA_VERSION).encode()}

POSITIONS_SCHEMA = pa.schema(
    [
        pa.field("class", pa.int32(), nullable=False),
        pa.field("shard", pa.int32(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
    ],
    metadata={b"audiomill.table": b"class_index.positions", **_META},
)

CLASSES_SCHEMA = pa.schema(
    [
        pa.field("class", pa.int32(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("start", pa.int64(), nullable=False),
    ],
    metadata={b"audiomill.table": b"class_index.classes", **_META},
)

WEIGHTS_SCHEMA = pa.schema(
    [
        pa.field("shard", pa.int32(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("num_labels", pa.int32(), nullable=False),
        pa.field("weight", pa.float64(), nullable=False),
    ],
    metadata={b"audiomill.table": b"class_index.weights", **_META},
)


def class_index_dir(split: str, source: str = "waveforms", model: str | None = None) -> str:
    """Dataset-relative directory of the index of ``split`` built from ``source``.

    Parameters
    ----------
    split : str
    source : {"waveforms", "embeddings"}
    model : str, optional
        Embedding model; required when ``source`` is ``"embeddings"``, ignored otherwise.
    """
    if source == "waveforms":
        return f"index/{split}/waveforms"
    if source == "embeddings":
        if not model:
            raise ValueError("an index built from embeddings needs the embedding model's name")
        return f"index/{split}/embeddings/{model}"
    raise ValueError(f"unknown index source {source!r}: expected one of {SOURCES}")


@dataclass
class IndexedShard:
    """A shard as it was when the index was built.

    Attributes
    ----------
    index : int
        The shard's index (its file number).
    num_clips : int
    offset : int
        Global row of the shard's first row.
    clip_ids_sha256 : str
        The manifest's digest of the shard's clip ids.
    files : dict of str to str
        sha256 of each committed file of the shard, by format.
    """

    index: int
    num_clips: int
    offset: int
    clip_ids_sha256: str
    files: dict[str, str]


@dataclass
class ClassIndexMeta:
    """The contents of ``index.json``.

    Attributes
    ----------
    split, source : str
    model : str or None
        Embedding model for an index built from embeddings.
    class_map_sha256 : str
    num_classes, num_clips, num_positions : int
        Width of the targets, clips indexed, (class, clip) positions.
    shards : list of IndexedShard
        In global row order.
    files : dict of str to dict
        ``{"sha256": ..., "bytes": ...}`` of each table, by file name.
    created, build_seconds : float
    """

    split: str
    source: str
    model: str | None
    class_map_sha256: str
    num_classes: int
    num_clips: int
    num_positions: int
    shards: list[IndexedShard]
    files: dict[str, dict] = field(default_factory=dict)
    created: float = 0.0
    build_seconds: float = 0.0
    schema_version: int = CLASS_INDEX_SCHEMA_VERSION

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"kind": "audiomill-class-index", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> ClassIndexMeta:
        """Parse ``index.json``, refusing schema versions this code does not know."""
        version = d.get("schema_version")
        if d.get("kind") != "audiomill-class-index" or version != CLASS_INDEX_SCHEMA_VERSION:
            raise ValueError(
                f"not a class index this audiomill reads (kind {d.get('kind')!r}, "
                f"schema version {version!r}; expected version {CLASS_INDEX_SCHEMA_VERSION})"
            )
        return cls(
            split=d["split"],
            source=d["source"],
            model=d.get("model"),
            class_map_sha256=d["class_map_sha256"],
            num_classes=d["num_classes"],
            num_clips=d["num_clips"],
            num_positions=d["num_positions"],
            shards=[IndexedShard(**s) for s in d["shards"]],
            files=dict(d.get("files", {})),
            created=d.get("created", 0.0),
            build_seconds=d.get("build_seconds", 0.0),
        )
