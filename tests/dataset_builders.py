"""Small valid datasets written straight with the shard writers (no Beam), for feature tests.

Every clip is a square wave of a known amplitude over its real samples (so its RMS level is
exactly ``20 log10(amplitude / 32768)`` dBFS), zero padded to the clip length.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features.embedding_shards import commit_embedding_shard
from pipelines.dataset_state import load_manifest, save_manifest
from pipelines.shard_writers import HDF5ShardWriter, ParquetShardWriter, ShardRow
from pipelines.storage import DatasetStore
from schemas.classmap import ClassMap
from schemas.dataset import (
    CLASSES,
    DatasetManifest,
    ShardEntry,
    ShardFile,
    ledger_dir,
    waveform_shard_path,
)
from schemas.embeddings import EmbeddingRows
from schemas.ledger import STATUS_FAILED, STATUS_OK, ledger_table
from schemas.segments import Segment, segments_to_table

SR = 8000
CLIP_SECONDS = 0.1
T = round(SR * CLIP_SECONDS)
RUN = "run-1"
MODEL = "vggish"


@dataclass
class Clip:
    """A committed clip as the tests expect to find it."""

    split: str
    shard: int
    row: int
    clip_id: str
    labels: list[int]
    amplitude: int
    num_samples: int
    source_sample_rate: int
    delivered_seconds: float


@dataclass
class Built:
    """What :func:`make_dataset` wrote."""

    root: Path
    num_classes: int
    clips: dict[str, list[Clip]] = field(default_factory=dict)
    failures: dict[str, list[tuple[str, str, list[int]]]] = field(default_factory=dict)

    def targets(self, split: str) -> np.ndarray:
        """The (N, C) bool matrix of a split's committed clips in global row order."""
        out = np.zeros((len(self.clips[split]), self.num_classes), dtype=bool)
        for g, clip in enumerate(self.clips[split]):
            out[g, clip.labels] = True
        return out


def _square(amplitude: int, length: int) -> np.ndarray:
    wave = np.zeros(T, dtype=np.int16)
    wave[:length] = amplitude * np.where(np.arange(length) % 2 == 0, 1, -1)
    return wave


def make_dataset(
    root: Path,
    splits: dict[str, list[list[int]]],
    *,
    num_classes: int,
    shard_clips: int = 4,
    formats: tuple[str, ...] = ("hdf5",),
    waveforms: bool = True,
    embedding_formats: tuple[str, ...] = (),
    failures: dict[str, list[tuple[str, list[int]]]] | None = None,
    segments: bool = True,
    ledger: bool = True,
    waveform_of: Callable[[Clip], np.ndarray] | None = None,
    embedding_of: Callable[[Clip], np.ndarray] | None = None,
) -> Built:
    """Write a dataset whose splits hold clips with the given label lists.

    Parameters
    ----------
    root : Path
    splits : dict
        Labels of each committed clip, by split.
    num_classes : int
    shard_clips : int
        Clips per shard (the last shard of a split may hold fewer).
    formats : tuple of str
        Waveform shard formats.
    waveforms : bool
        Write waveform shards (False: an embeddings-only dataset).
    embedding_formats : tuple of str
        Write ``vggish`` embedding shards in these formats, row-aligned with the waveforms.
    failures : dict, optional
        ``(reason, labels)`` of each failed clip, by split (ledger and segments only).
    segments, ledger : bool
        Write the segments table and the ledger.
    waveform_of : callable, optional
        The (T,) int16 waveform of a clip; a square wave of its amplitude by default.
    embedding_of : callable, optional
        The (10, 128) uint8 embedding of a clip; filled with the shard index by default.
    """
    store = DatasetStore(root)
    cmap = ClassMap.from_names([f"sound {i}" for i in range(num_classes)])
    store.write_bytes_atomic(CLASSES, cmap.to_csv_text().encode())
    manifest = DatasetManifest(
        class_map_sha256=cmap.sha256,
        num_classes=num_classes,
        sample_rate=SR,
        clip_seconds=CLIP_SECONDS,
        formats=list(formats) if waveforms else [],
    )
    built = Built(root=root, num_classes=num_classes)
    requested: list[Segment] = []
    now = time.time()
    for split, label_lists in splits.items():
        built.clips[split] = []
        for index, start in enumerate(range(0, len(label_lists), shard_clips)):
            chunk = label_lists[start : start + shard_clips]
            clips = [
                Clip(
                    split=split,
                    shard=index,
                    row=row,
                    clip_id=f"{split}-clip{start + row:04d}_{(start + row) * 1000}",
                    labels=sorted(set(labels)),
                    amplitude=1000 * (1 + (start + row) % 7),
                    num_samples=T - 50 * ((start + row) % 3),
                    source_sample_rate=(44100, 48000, 16000)[(start + row) % 3],
                    delivered_seconds=CLIP_SECONDS + 0.01 * ((start + row) % 4),
                )
                for row, labels in enumerate(chunk)
            ]
            built.clips[split].extend(clips)
            if waveforms:
                manifest.split(split).shards.append(
                    _write_waveform_shard(
                        store, split, index, clips, formats, num_classes, waveform_of
                    )
                )
            if embedding_formats:
                rows = EmbeddingRows(
                    x=np.stack([embedding_of(c) for c in clips])
                    if embedding_of
                    else np.full((len(clips), 10, 128), index, dtype=np.uint8),
                    y=built.targets(split)[start : start + len(clips)],
                    video_ids=[c.clip_id for c in clips],
                    clip_ids=[c.clip_id for c in clips],
                    num_frames=np.full(len(clips), 10, dtype=np.int32),
                )
                entry = commit_embedding_shard(
                    store, MODEL, split, index, rows, {"model": MODEL}, embedding_formats, RUN
                )
                manifest.embedding_split(MODEL, split).shards.append(entry)
            if ledger:
                rows = [_ok_row(c, now) for c in clips]
                _write_ledger(store, f"{ledger_dir(split)}/shard-{index:05d}.parquet", rows)
            requested += [_segment(c.clip_id, c.labels, split) for c in clips]
    for split, failed in (failures or {}).items():
        built.failures[split] = [
            (f"{split}-failed{i:03d}_0", reason, labels)
            for i, (reason, labels) in enumerate(failed)
        ]
        requested += [_segment(cid, labels, split) for cid, _, labels in built.failures[split]]
        if ledger:
            rows = [
                {
                    "clip_id": cid,
                    "split": split,
                    "status": STATUS_FAILED,
                    "reason": reason,
                    "transient": False,
                    "run_id": RUN,
                    "recorded_at": now,
                }
                for cid, reason, _ in built.failures[split]
            ]
            _write_ledger(store, f"{ledger_dir(split)}/failures-{RUN}.parquet", rows)
    if segments:
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "segments.parquet")
            pq.write_table(segments_to_table(requested), local)
            store.commit_file(local, f"segments/{RUN}.parquet")
    save_manifest(store, manifest)
    return built


def _ok_row(c: Clip, now: float) -> dict:
    return {
        "clip_id": c.clip_id,
        "split": c.split,
        "status": STATUS_OK,
        "run_id": RUN,
        "recorded_at": now,
        "shard": c.shard,
        "row": c.row,
        "num_samples": c.num_samples,
        "delivered_seconds": c.delivered_seconds,
        "source_sample_rate": c.source_sample_rate,
    }


def _segment(clip_id: str, labels: list[int], split: str) -> Segment:
    return Segment(
        clip_id=clip_id,
        source=clip_id,
        source_kind="path",
        start_s=0.0,
        end_s=CLIP_SECONDS,
        labels=tuple(labels),
        label_mids=tuple(f"sound {i}" for i in labels),
        split=split,
        origin="test.csv",
        line=1,
    )


def _write_ledger(store: DatasetStore, rel: str, rows: list[dict]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "ledger.parquet")
        pq.write_table(ledger_table(rows), local)
        store.commit_file(local, rel)


def _write_waveform_shard(
    store: DatasetStore,
    split: str,
    index: int,
    clips: list[Clip],
    formats: tuple[str, ...],
    num_classes: int,
    waveform_of: Callable[[Clip], np.ndarray] | None = None,
) -> ShardEntry:
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in formats:
            local = os.path.join(tmp, f"shard.{fmt}")
            if fmt == "hdf5":
                writer = HDF5ShardWriter(
                    local,
                    [ShardRow(c.clip_id, c.clip_id, tuple(c.labels), 0.0) for c in clips],
                    num_samples=T,
                    num_classes=num_classes,
                    sample_rate=SR,
                )
            else:
                writer = ParquetShardWriter(local, sample_rate=SR)
            for c in clips:
                common = {
                    "clip_id": c.clip_id,
                    "audio_name": c.clip_id,
                    "waveform": waveform_of(c)
                    if waveform_of
                    else _square(c.amplitude, c.num_samples),
                    "labels": c.labels,
                    "num_samples": c.num_samples,
                    "start_s": 0.0,
                }
                if fmt == "hdf5":
                    writer.add(common["waveform"], c.num_samples)
                else:
                    writer.add(
                        **common,
                        source=c.clip_id,
                        source_sample_rate=c.source_sample_rate,
                        source_channels=1,
                        delivered_seconds=c.delivered_seconds,
                    )
            writer.close()
            rec = store.commit_file(local, waveform_shard_path(split, index, fmt))
            files[fmt] = ShardFile(path=rec.path, sha256=rec.sha256, bytes=rec.bytes)
    ids = "\n".join(c.clip_id for c in clips)
    return ShardEntry(
        index=index,
        num_clips=len(clips),
        files=files,
        run_id=RUN,
        clip_ids_sha256=hashlib.sha256(ids.encode()).hexdigest(),
    )


def record_sizes(root: Path) -> None:
    """Record each shard file's present size in the dataset's manifest, as a commit would: a
    test that rewrites a shard then meets what it wrote when reading, not the size check
    (:func:`features.class_index.check_committed_sizes`)."""
    store = DatasetStore(str(root))
    manifest = load_manifest(store)
    entries = [manifest.splits, *manifest.embeddings.values()]
    for split in (split for splits in entries for split in splits.values()):
        for shard in split.shards:
            for file in shard.files.values():
                file.bytes = (root / file.path).stat().st_size
    save_manifest(store, manifest)


def damage_parquet_audio(path: Path, row: int) -> None:
    """Replace the FLAC of ``row`` in the waveform Parquet shard at ``path`` by bytes that do
    not decode, leaving every other row and column as written."""
    table = pq.read_table(path)
    audio = table.column("audio").combine_chunks()
    data = audio.field("bytes").to_pylist()
    data[row] = b"fLaC" + bytes(64)
    damaged = pa.StructArray.from_arrays(
        [pa.array(data, audio.type.field("bytes").type), audio.field("path")],
        fields=list(audio.type),
    )
    pq.write_table(table.set_column(table.schema.get_field_index("audio"), "audio", damaged), path)


def one_shard_dataset(
    root: Path,
    clips: list[tuple[np.ndarray, int]],
    sample_rate: int,
    clip_seconds: float,
    ids: list[str],
) -> Path:
    """A dataset of classes ``a`` and ``b`` with one HDF5 train shard of ``clips`` (int16
    waveforms of the clip length and their real sample counts), clip ``i`` labelled ``i % 2``.

    The shard is written at ``root``'s side and committed into it, with its manifest entry.
    """
    store = DatasetStore(str(root))
    cmap = ClassMap.from_names(["a", "b"])
    store.write_bytes_atomic(CLASSES, cmap.to_csv_text().encode())
    manifest = DatasetManifest(cmap.sha256, 2, sample_rate, clip_seconds, ["hdf5"])
    rows = [ShardRow(c, c, (i % 2,), 0.0) for i, c in enumerate(ids)]
    local = root.parent / f"{root.name}-shard.h5"
    writer = HDF5ShardWriter(str(local), rows, num_samples=manifest.num_samples, num_classes=2,
                             sample_rate=sample_rate)  # fmt: skip
    for waveform, num_samples in clips:
        writer.add(waveform, num_samples)
    writer.close()
    rec = store.commit_file(str(local), waveform_shard_path("train", 0, "hdf5"))
    manifest.split("train").shards.append(
        ShardEntry(0, len(ids), {"hdf5": ShardFile(rec.path, rec.sha256, rec.bytes)}, "run-1",
                   hashlib.sha256("\n".join(ids).encode()).hexdigest())
    )  # fmt: skip
    save_manifest(store, manifest)
    return root
