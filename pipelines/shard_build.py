"""The per-shard transform of ingest for cheap sources: decode a shard's clips and pack them.

For local files, decoding a clip again costs less than staging it: writing each decoded clip
durably into the dataset (atomic write, fsync, rename), reading it back to pack it and deleting
it afterwards costs more than the decode itself. So for such sources the pipeline plans shards
before anything is decoded (the sorted planned clips of a split cut into ``--shard-clips``),
and :func:`build_shard` decodes one shard's clips on a thread pool and packs them with
:func:`pipelines.pack.pack_metas`: same validation, same files, same ledger part and commit
record as for staged clips. What differs:

* nothing is staged, so a crash loses the decoding of the shards in progress, and the re-run
  decodes their clips again; committed shards and failures are kept exactly as for staged
  clips (failures are staged, durably, before the shard is committed);
* a clip that fails to decode or validate leaves its shard one clip short instead of being
  replaced by the next clip of the split, so shards can hold fewer than ``--shard-clips``
  clips when some fail (with no failure the shards are byte for byte those of the staged path).

Each decoded waveform is written straight into its row of the shard's HDF5 file (allocated for
every planned clip, under a temporary name): when every clip is kept that file is the shard,
and nothing is written twice; otherwise the kept rows are copied into a new file. A shard
without HDF5 keeps its waveforms in a scratch file. Either way memory stays bounded by a
few clips per thread whatever the shard size. Clips that an interrupted run staged are read
from the staging area instead of being fetched again, and those decoded while the run's segment
list was validated are taken from :mod:`pipelines.decode_ahead`.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import Executor

import numpy as np

from pipelines import decode_ahead, staging
from pipelines.clip_stage import ClipSettings, prepare_item
from pipelines.dataset_state import SCRATCH_SUFFIX
from pipelines.file_io import pread_into, pwrite_all
from pipelines.pack import (
    PackSettings,
    Prefilled,
    ordered_map,
    pack_metas,
    shard_attrs,
    shard_file,
)
from pipelines.shard_writers import HDF5ShardWriter, ShardRow, creating
from pipelines.storage import DatasetStore
from schemas.dataset import waveform_shard_path


def build_shard(
    split: str,
    index: int,
    items: list[dict],
    store: DatasetStore,
    clip_settings: ClipSettings,
    pack_settings: PackSettings,
    *,
    workdir: str,
    executor: Executor | None = None,
    pack_executor: Executor | None = None,
) -> dict:
    """Fetch and decode the planned clips of one shard, then validate, write and commit it.

    Parameters
    ----------
    split, index, store
        As for :func:`pipelines.pack.pack_metas`.
    items : list of dict
        Planned clips, as for ``pipelines.clip_stage.prepare_item``, plus the flags ``staged``
        (the clip is in the staging area already: read it from there) and ``stale_failure``
        (an interrupted run staged a failure for it: remove it once the clip decodes).
    clip_settings : ClipSettings
    pack_settings : PackSettings
    workdir : str
        Local scratch directory (downloads, and files on their way to a remote dataset).
    executor : concurrent.futures.Executor, optional
        Threads that decode the clips, in order (decoding, resampling, hashing and file I/O
        release the GIL). Builds sharing it decode one shard after the other.
    pack_executor : concurrent.futures.Executor, optional
        Threads that load and FLAC-encode the kept clips for Parquet (see
        :func:`pipelines.pack.pack_metas`); best not shared with decoding, or the last
        steps of a shard would wait behind the decoding of the next.

    Returns
    -------
    dict
        The commit record of :func:`pipelines.pack.pack_metas` (``staged`` false). Clips that
        failed are not in it: their failures are in the staging area, as from
        ``pipelines.clip_stage.stage_clip``.
    """
    items = sorted(items, key=lambda item: item["clip_id"])
    os.makedirs(workdir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="audiomill-shard-", dir=workdir) as tmp:
        if "hdf5" in pack_settings.formats:
            sink: _Sink = _HDF5Sink(tmp, split, index, items, store, pack_settings)
        else:
            scratch = f"{waveform_shard_path(split, index, 'hdf5')}{SCRATCH_SUFFIX}"
            sink = _ScratchSink(shard_file(tmp, store, scratch), pack_settings.num_samples)
        owned = True  # until pack_metas takes the HDF5 file over
        try:

            def decode(slot: int) -> dict | None:
                item = items[slot]
                clip_id = item["clip_id"]
                if item.get("staged") and store.exists(staging.staged_clip_path(split, clip_id)):
                    waveform, meta = staging.read_staged_clip(store, split, clip_id)
                else:
                    result = decode_ahead.take(item, clip_settings) or prepare_item(
                        item, clip_settings, workdir
                    )
                    if result["status"] != "ok":
                        rel = staging.failed_path(split, clip_id)
                        store.write_json_atomic(rel, result["record"])
                        return None
                    waveform, meta = result["waveform"], result["meta"]
                if waveform.shape != (pack_settings.num_samples,):
                    raise ValueError(
                        f"{clip_id}: {waveform.shape} samples, shard rows have "
                        f"{pack_settings.num_samples}"
                    )
                sink.write(slot, waveform, meta["num_samples"])
                if item.get("stale_failure"):
                    store.remove(staging.failed_path(split, clip_id))
                return meta

            # Every clip submitted at once, in order; if one fails, the others are cancelled or
            # waited for before the error propagates (they write into files about to go).
            decoded = list(ordered_map(decode, range(len(items)), executor, len(items)))
            metas = [meta for meta in decoded if meta is not None]
            slot_of = {item["clip_id"]: slot for slot, item in enumerate(items)}

            def load(meta: dict) -> np.ndarray:
                return sink.read(slot_of[meta["clip_id"]])

            prefilled = sink.prefilled()
            owned = prefilled is None
            return pack_metas(
                split,
                index,
                metas,
                load,
                store,
                pack_settings,
                staged=False,
                executor=pack_executor,
                prefilled=prefilled,
            )
        finally:
            if owned:
                sink.close()


class _Sink:
    """Where decoded waveforms wait, by slot, until the shard is packed."""

    def write(self, slot: int, waveform: np.ndarray, num_samples: int) -> None:
        raise NotImplementedError

    def read(self, slot: int) -> np.ndarray:
        raise NotImplementedError

    def prefilled(self) -> Prefilled | None:
        return None

    def close(self) -> None:
        raise NotImplementedError


class _HDF5Sink(_Sink):
    """The shard's own HDF5 file, allocated for every planned clip: when all of them are kept
    it is committed as it is; otherwise ``pack_metas`` copies the kept rows out of it."""

    def __init__(
        self,
        tmp: str,
        split: str,
        index: int,
        items: list[dict],
        store: DatasetStore,
        settings: PackSettings,
    ) -> None:
        self.path = shard_file(tmp, store, waveform_shard_path(split, index, "hdf5"))
        self.writer = HDF5ShardWriter(
            self.path,
            [ShardRow.of(item) for item in items],
            num_samples=settings.num_samples,
            num_classes=settings.num_classes,
            sample_rate=settings.sample_rate,
            attrs=shard_attrs(split, index, settings),
            uncached=store.is_local,
        )

    def write(self, slot: int, waveform: np.ndarray, num_samples: int) -> None:
        self.writer.write_waveform(slot, waveform, num_samples)

    def read(self, slot: int) -> np.ndarray:
        return self.writer.read_waveform(slot)

    def prefilled(self) -> Prefilled | None:
        return Prefilled(self.writer, self.path)

    def close(self) -> None:
        Prefilled(self.writer, self.path).remove()


class _ScratchSink(_Sink):
    """A raw int16 file (for shards without HDF5), next to the shard's files in a local
    dataset (as a temporary, so a crash leaves nothing the next run does not remove)."""

    def __init__(self, path: str, num_samples: int) -> None:
        self.row_bytes = num_samples * 2
        self.path = path
        with creating(path):
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)

    def write(self, slot: int, waveform: np.ndarray, num_samples: int) -> None:
        pwrite_all(self.fd, np.ascontiguousarray(waveform, dtype="<i2"), slot * self.row_bytes)

    def read(self, slot: int) -> np.ndarray:
        out = np.empty(self.row_bytes // 2, dtype="<i2")
        got = pread_into(self.fd, out, slot * self.row_bytes)
        if got < self.row_bytes:
            raise OSError(f"scratch file ends {self.row_bytes - got} bytes early")
        return out.astype(np.int16, copy=False)

    def close(self) -> None:
        os.close(self.fd)
        os.remove(self.path)
