"""``audiomill embed``: VGGish embeddings for every waveform shard of a dataset, on Dask.

One Dask task per waveform shard. Each worker process loads the model once (a module-level
cache keyed by the checkpoint) and writes an embedding shard row-aligned with its waveform
shard (same index, same clip order), committed atomically; the driver records each finished
shard in the manifest at once, so an interrupted run resumes with the shards not yet embedded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging
import math
import multiprocessing
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import distributed
import h5py
import numpy as np

from features.class_index import (
    check_committed_sizes,
    committed_size_problems,
    reading_shard,
)
from features.dask_runtime import dask_client, map_shards
from features.embedding_shards import commit_embedding_shard, remove_uncommitted_shards
from features.quiet_tensorflow import quiet_tensorflow_import
from features.tensorflow_device import default_device
from features.vggish_checkpoint import check_checkpoint
from features.vggish_frontend import (
    batch_waveform_to_examples,
    example_count,
    frame_count,
    frontend_options,
    frontend_provenance,
    one_example_samples,
)
from features.vggish_params import SAMPLE_RATE
from features.vggish_postprocess import VGGishPostprocessor, pca_sha256
from pipelines.dataset_state import load_manifest, save_manifest
from pipelines.heap import retain_freed_memory
from pipelines.process_exit import exit_without_collecting
from pipelines.storage import DatasetLock, DatasetStore
from schemas.dataset import DatasetManifest, ShardEntry
from schemas.embeddings import EMBEDDING_DIM, EmbeddingRows
from schemas.shards import read_parquet_rows

log = logging.getLogger(__name__)

MODEL = "vggish"
EXAMPLE_SECONDS = 0.96
WIDTH_KEY = "frames_per_clip"
"""The stage entry's record of the example slots per clip (F) of the shards embed made."""
CHUNK_CLIPS = 32

_EMBEDDERS: dict[tuple, object] = {}


@dataclass(frozen=True)
class EmbedSettings:
    """How embeddings are computed and stored.

    Attributes
    ----------
    checkpoint, pca_params : str
        Google's ``vggish_model.ckpt`` and ``vggish_pca_params.npz``.
    batch_size : int
        Examples per forward pass.
    mode : {'fast', 'exact'}
        Front-end precision (float32 or float64).
    resampler : {'soxr', 'resampy'} or None
        ``resampy`` is what the reference uses (exact); ``soxr`` is much faster. None: the
        mode's default (resampy for exact, soxr for fast).
    formats : tuple of str
        Shard formats to write.
    threads : int
        TensorFlow intra-op threads per worker (0: TensorFlow's default).
    """

    checkpoint: str
    pca_params: str
    batch_size: int = 64
    mode: str = "fast"
    resampler: str | None = None
    formats: tuple[str, ...] = ("hdf5",)
    threads: int = 0


@dataclass
class EmbedSummary:
    """What an embed run did."""

    run_id: str
    shards_done: int
    shards_skipped: int
    clips: int
    seconds: float
    checkpoint_sha256: str
    pca_sha256: str
    devices: dict[str, int] = dataclasses.field(default_factory=dict)
    """Shards embedded this run by where the model ran: ``{"CPU": 3, "GPU:0": 5}``."""
    short_clips: int = 0
    """Clips embedded this run with some audio but less than one example's 0.975 s: one
    zero-padded example each."""
    dropped_shards: int = 0
    """Embedding shards the manifest listed whose files were gone or not at their committed
    size (or whose model folder was deleted), or that embed made with another number of example
    slots per clip: dropped from the manifest, embedded again."""
    dropped: list[str] = dataclasses.field(default_factory=list)
    """What was dropped from the manifest at the start, one line each (also logged)."""

    def describe_devices(self) -> str:
        """``devices`` for a summary table: ``"GPU:0 (5 shards), CPU (3 shards)"``."""
        return ", ".join(
            f"{device} ({n} shard{'s' if n > 1 else ''})"
            for device, n in sorted(self.devices.items(), key=lambda kv: (-kv[1], kv[0]))
        )


def examples_in(num_samples: int, sample_rate: int) -> int:
    """Whole VGGish examples that the front end makes of ``num_samples`` samples.

    Parameters
    ----------
    num_samples : int
    sample_rate : int
        Hz; the samples are counted as they are once at 16 kHz.

    Returns
    -------
    int
        Examples of 0.975 s every 0.96 s: 0 below 0.975 s, 10 for 10 s.
    """
    return example_count(frame_count(round(num_samples * SAMPLE_RATE / sample_rate)))


def frames_per_clip(clip_seconds: float) -> int:
    """Example slots per clip (F): the front end's examples in ``clip_seconds`` (10 for 10 s
    clips), or one (a short clip's zero-padded example) when the clip is shorter than 0.975 s."""
    return max(1, examples_in(round(clip_seconds * SAMPLE_RATE), SAMPLE_RATE))


def load_embedder(settings: EmbedSettings):
    """Return this process's VGGish embedder for ``settings``, building it on first use."""
    key = (settings.checkpoint, settings.pca_params, settings.batch_size)
    if key not in _EMBEDDERS:
        retain_freed_memory()  # blocks of 32 clips and their log-mel arrays, over and over
        if _in_local_worker_process():
            exit_without_collecting()  # each task commits its shard before it returns
        quiet_tensorflow_import()
        import tensorflow as tf

        if settings.threads:
            tf.config.threading.set_intra_op_parallelism_threads(settings.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        from features.vggish_model import VGGishEmbedder

        _EMBEDDERS[key] = VGGishEmbedder(
            settings.checkpoint, settings.pca_params, batch_size=settings.batch_size
        )
    return _EMBEDDERS[key]


def _in_local_worker_process() -> bool:
    """Whether this is a Dask worker process that a local cluster started (a child process):
    one that exits when the cluster closes and holds nothing of the user's."""
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return multiprocessing.parent_process() is not None


def embed_waveforms(
    waveforms: np.ndarray,
    num_samples: np.ndarray,
    sample_rate: int,
    frames: int,
    embedder,
    settings: EmbedSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantized embeddings of a block of clips.

    Parameters
    ----------
    waveforms : np.ndarray [shape=(N, T), dtype=int16]
        Zero-padded clips at ``sample_rate``.
    num_samples : np.ndarray [shape=(N,)]
        Real samples per clip. A clip keeps the examples made of its real samples alone
        (:func:`examples_in`, at most ``frames``); the frames past them are zero. A clip with
        some audio but less than one example (0.975 s) keeps one: its audio zero-padded, as
        ``embed-files`` pads a short file.
    sample_rate : int
    frames : int
        Frames per clip to keep (F).
    embedder : VGGishEmbedder
    settings : EmbedSettings

    Returns
    -------
    x : np.ndarray [shape=(N, F, 128), dtype=uint8]
    num_frames : np.ndarray [shape=(N,), dtype=int32]
        Frames computed from each clip's audio; the rest are zero.
    padded : np.ndarray [shape=(N,), dtype=bool]
        Clips under one example kept as one zero-padded example.
    """
    n = len(waveforms)
    x = np.zeros((n, frames, EMBEDDING_DIM), dtype=np.uint8)
    if n == 0:
        return x, np.zeros(0, np.int32), np.zeros(0, bool)
    num_samples = np.asarray(num_samples)
    examples = batch_waveform_to_examples(
        _padded_to_one_example(waveforms, sample_rate),
        sample_rate,
        mode=settings.mode,
        resampler=settings.resampler,
    )
    usable = min(frames, examples.shape[1])
    whole = np.array([examples_in(k, sample_rate) for k in num_samples], np.int32)
    padded = (whole == 0) & (num_samples > 0) & (usable > 0)
    real = np.minimum(np.where(padded, 1, whole), usable).astype(np.int32)
    flat = examples[:, :usable].reshape(-1, *examples.shape[2:])
    _, quantized = embedder.embed(flat)
    x[:, :usable] = quantized.reshape(n, usable, EMBEDDING_DIM)
    x[np.arange(frames)[None, :] >= real[:, None]] = 0
    return x, real, padded


def _padded_to_one_example(waveforms: np.ndarray, sample_rate: int) -> np.ndarray:
    """``waveforms`` (N, T), zero-padded at their end to one example's samples when shorter."""
    missing = one_example_samples(sample_rate) - waveforms.shape[1]
    return np.pad(waveforms, ((0, 0), (0, missing))) if missing > 0 else waveforms


def _video_id(audio_name: str, clip_id: str) -> str:
    if audio_name.startswith("Y") and audio_name.endswith(".wav") and len(audio_name) == 16:
        return audio_name[1:-4]
    return clip_id


def _read_waveform_shard(store: DatasetStore, shard: ShardEntry, num_samples: int):
    """Yield (waveforms, num_samples, targets, clip_ids, audio_names) blocks of a shard.

    Raises
    ------
    ValueError
        If the shard file cannot be read (damaged, missing), naming it and the reason.
    """
    fmt = "hdf5" if "hdf5" in shard.files else "parquet"
    with reading_shard(store.url(shard.files[fmt].path)):
        if fmt == "hdf5":
            with store.open(shard.files["hdf5"].path, "rb") as fh, h5py.File(fh, "r") as hf:
                total = hf["waveform"].shape[0]
                for start in range(0, total, CHUNK_CLIPS):
                    stop = min(total, start + CHUNK_CLIPS)
                    yield (
                        hf["waveform"][start:stop],
                        hf["num_samples"][start:stop],
                        hf["target"][start:stop],
                        list(hf["clip_id"].asstr()[start:stop]),
                        [a.decode() for a in hf["audio_name"][start:stop]],
                    )
            return
        data = store.read_bytes(shard.files["parquet"].path)
        block: list = []
        for row in read_parquet_rows(io.BytesIO(data), num_samples):
            block.append(row)
            if len(block) == CHUNK_CLIPS:
                yield _rows_block(block)
                block = []
        if block:
            yield _rows_block(block)


def _rows_block(rows: list):
    return (
        np.stack([r.waveform for r in rows]),
        np.array([r.num_samples for r in rows]),
        [r.labels for r in rows],
        [r.clip_id for r in rows],
        [r.audio_name for r in rows],
    )


def embed_shard(
    root: str,
    storage_options: dict | None,
    split: str,
    shard: dict,
    manifest_facts: dict,
    settings: EmbedSettings,
    attrs: dict,
    run_id: str,
) -> dict:
    """Dask task: embed one waveform shard and commit the matching embedding shard.

    Returns
    -------
    dict
        ``entry``: the embedding shard's manifest entry; ``device``: where the model ran
        (:func:`features.tensorflow_device.default_device`); ``short_clips``: clips with less
        audio than one example, kept as one zero-padded example.

    Raises
    ------
    FileNotFoundError
        If the worker does not see the checkpoint or PCA file that the command found.
    """
    if missing := _missing_weights(settings):
        raise FileNotFoundError(
            f"{missing} is not on Dask worker {socket.gethostname()}, only where embed "
            "runs: workers need the weights at the same path (a shared folder)"
        )
    store = DatasetStore(root, storage_options)
    entry = ShardEntry.from_dict(shard)
    embedder = load_embedder(settings)
    sr, num_classes = manifest_facts["sample_rate"], manifest_facts["num_classes"]
    frames = frames_per_clip(manifest_facts["clip_seconds"])
    xs, ys, ids, vids, nfs, short = [], [], [], [], [], 0
    for waves, lengths, targets, clip_ids, names in _read_waveform_shard(
        store, entry, manifest_facts["num_samples"]
    ):
        x, nf, padded = embed_waveforms(waves, lengths, sr, frames, embedder, settings)
        short += int(np.count_nonzero(padded))
        if isinstance(targets, list):
            y = np.zeros((len(targets), num_classes), dtype=bool)
            for i, labels in enumerate(targets):
                y[i, labels] = True
            targets = y
        xs.append(x)
        ys.append(np.asarray(targets, dtype=bool))
        ids += clip_ids
        vids += [_video_id(a, c) for a, c in zip(names, clip_ids, strict=True)]
        nfs.append(nf)
    rows = EmbeddingRows(
        x=np.concatenate(xs) if xs else np.zeros((0, frames, EMBEDDING_DIM), np.uint8),
        y=np.concatenate(ys) if ys else np.zeros((0, num_classes), bool),
        video_ids=vids,
        clip_ids=ids,
        num_frames=np.concatenate(nfs) if nfs else np.zeros(0, np.int32),
    )
    out = commit_embedding_shard(
        store, MODEL, split, entry.index, rows, attrs, settings.formats, run_id
    )
    return {"entry": dataclasses.asdict(out), "device": default_device(), "short_clips": short}


def _missing_weights(settings: EmbedSettings) -> str | None:
    """``"checkpoint PATH"`` or ``"PCA file PATH"``, the first not in this process's filesystem;
    None when both are there."""
    for what, path in (("checkpoint", settings.checkpoint), ("PCA file", settings.pca_params)):
        if not (os.path.exists(path) or os.path.exists(f"{path}.index")):
            return f"{what} {path}"
    return None


def _provenance(settings: EmbedSettings) -> dict:
    from features.vggish_checkpoint import checkpoint_sha256

    return {
        "model": MODEL,
        "checkpoint_sha256": checkpoint_sha256(settings.checkpoint),
        "pca_sha256": pca_sha256(settings.pca_params),
        "frontend": frontend_provenance(settings.mode, settings.resampler),
    }


def _check_provenance(manifest: DatasetManifest, prov: dict) -> None:
    """Refuse other weights or another front end (mode, resampler) than those of the model's
    embedding shards, when an embed run made any: a run that committed none (one that failed)
    binds nothing, nor do embeddings imported into splits without waveforms."""
    prev = manifest.stages.get(f"embed:{MODEL}", {}).get("provenance")
    embedded = manifest.embeddings.get(MODEL, {})
    if not prev or not any(
        embedded[name].shards for name, entry in manifest.splits.items()
        if entry.shards and name in embedded
    ):  # fmt: skip
        return
    for key in ("checkpoint_sha256", "pca_sha256"):
        if prev[key] != prov[key]:
            raise ValueError(
                f"the dataset's {MODEL} embeddings were made with another {key.split('_')[0]} "
                f"({prev[key][:12]}..., now {prov[key][:12]}...); embeddings from different "
                "weights cannot share shards: delete embeddings/vggish or use a copy"
            )
    had, want = prev.get("frontend") or {}, prov["frontend"]
    if any(key in had and had[key] != want.get(key) for key in ("mode", "resampler")):
        raise ValueError(
            f"the dataset's {MODEL} embeddings were made with {frontend_options(had)} "
            f"({had.get('resampler')}), not {frontend_options(want)} ({want.get('resampler')}); "
            "embeddings of different front ends cannot share shards: give "
            f"{frontend_options(had)} to keep them, or embed into a copy of the dataset, or "
            f"delete embeddings/{MODEL}"
        )


def _drop_lost_embeddings(
    store: DatasetStore, manifest: DatasetManifest, splits: list[str]
) -> tuple[int, list[str]]:
    """Drop from ``manifest`` the embedding shards whose files are no longer there.

    Embedding shards are derived data, so deleting them is how a dataset's embeddings are made
    again: when ``embeddings/<model>`` is gone altogether, the model's whole manifest entry (its
    shards, imported ones included, and the weights its last embed run recorded) is dropped,
    so embed starts afresh with the weights it is given; otherwise a shard of ``splits`` with a
    file missing or not at its committed size is dropped, so it is embedded again.

    Parameters
    ----------
    store : DatasetStore
    manifest : DatasetManifest
        Changed in place; the caller saves it.
    splits : list of str
        The waveform splits being embedded.

    Returns
    -------
    int
        Shards dropped.
    list of str
        One line per model folder or split that lost shards, saying what was dropped and why.
    """
    model_dir = f"embeddings/{MODEL}"
    listed = manifest.embeddings.get(MODEL, {})
    if not store.exists(model_dir):
        gone = {name: len(entry.shards) for name, entry in sorted(listed.items()) if entry.shards}
        manifest.embeddings.pop(MODEL, None)
        stage = manifest.stages.pop(f"embed:{MODEL}", None)
        if not gone:
            return 0, []
        count = sum(gone.values())
        weights = " and the weights they were made with" if stage else ""
        return count, [
            f"{store.url(model_dir)} is gone: dropped its {count} shard(s) (splits "
            f"{', '.join(f'{name}: {n}' for name, n in gone.items())}){weights} from the "
            "manifest"
        ]
    count, lines = 0, []
    for split in splits:
        entry = listed.get(split)
        if entry is None or not entry.shards:
            continue
        found = dict(
            committed_size_problems(
                store, [(f.path, f.bytes) for shard in entry.shards for f in shard.files.values()]
            )
        )
        folder = f"{model_dir}/{split}"
        keep, problems = [], []
        for shard in entry.shards:
            bad = [
                f"{f.path.rpartition('/')[2]} is {found[f.path]}"
                for f in shard.files.values()
                if f.path in found
            ]
            if bad:
                problems.append("; ".join(bad))
            else:
                keep.append(shard)
        if problems:
            entry.shards = keep
            count += len(problems)
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            lines.append(
                f"dropped {len(problems)} shard(s) of {store.url(folder)} from the manifest, to "
                f"embed again: {'; '.join(problems[:3])}{more}"
            )
    return count, lines


def _width_to_replace(manifest: DatasetManifest, frames: int) -> int | None:
    """Example slots per clip of the shards the model's embed runs made, when they are to be
    embedded afresh at ``frames``: the width the stage entry records when it is not ``frames``,
    or, for runs before widths were recorded, ``floor(seconds / 0.96)`` when that is more than
    ``frames`` (its extra slot an all-zero frame counted as real); None otherwise."""
    stage = manifest.stages.get(f"embed:{MODEL}")
    if stage is None:
        return None
    if WIDTH_KEY in stage:
        return None if stage[WIDTH_KEY] == frames else stage[WIDTH_KEY]
    before = math.floor(manifest.clip_seconds / EXAMPLE_SECONDS + 1e-9)
    return before if before > frames else None


def _drop_other_width_embeddings(
    store: DatasetStore, manifest: DatasetManifest, frames: int
) -> tuple[dict[str, list[ShardEntry]], list[str]]:
    """Drop from ``manifest`` the model's embedding shards of waveform splits when embed made
    them with another number of example slots per clip than ``frames``
    (:func:`_width_to_replace`).

    Before embed followed the front end's count, it kept ``floor(seconds / 0.96)`` slots, one
    more than the front end makes at clip lengths at or just above a multiple of 0.96 s: an
    all-zero frame counted as real. Such shards cannot share the model's embeddings with new
    ones, so they are all embedded afresh; imported embeddings (splits without waveforms) stay.

    Parameters
    ----------
    store : DatasetStore
    manifest : DatasetManifest
        Changed in place; the caller saves it, then removes the dropped shards' files.
    frames : int
        The slots per clip embed keeps now (:func:`frames_per_clip`).

    Returns
    -------
    dict
        The dropped shards by split; empty when there are none to replace.
    list of str
        One line saying what was dropped and why; empty when nothing was.
    """
    had = _width_to_replace(manifest, frames)
    if had is None:
        return {}, []
    dropped = {}
    for name, entry in sorted(manifest.embeddings.get(MODEL, {}).items()):
        if entry.shards and name in manifest.splits and manifest.splits[name].shards:
            dropped[name], entry.shards = entry.shards, []
    if not dropped:
        return {}, []
    count = sum(len(shards) for shards in dropped.values())
    return dropped, [
        f"the dataset's {MODEL} embeddings keep {had} example slots per clip, not the {frames} "
        f"the front end makes of {manifest.clip_seconds:g} s clips: dropped their {count} "
        f"shard(s) (splits {', '.join(f'{name}: {len(s)}' for name, s in dropped.items())}) "
        f"from {store.url(f'embeddings/{MODEL}')} and the manifest, to embed afresh"
    ]


def _remove_shard_files(store: DatasetStore, shards: dict[str, list[ShardEntry]]) -> None:
    """Delete the files of ``shards`` (by split), once the manifest no longer lists them."""
    for entries in shards.values():
        for shard in entries:
            for f in shard.files.values():
                store.remove(f.path)


def _absolute(path: str) -> str:
    """``path`` as workers in any working directory find it, as the dataset's is: a local path
    made absolute here, an fsspec URL as it is."""
    return path if "://" in path else os.path.abspath(path)


def _check_formats(manifest: DatasetManifest, formats: tuple[str, ...]) -> None:
    """Refuse other formats than those of the model's embedding shards: a resumed or repeated
    run would skip the shards already done, leaving them without the new formats."""
    have = sorted(
        {fmt for entry in manifest.embeddings.get(MODEL, {}).values()
         for shard in entry.shards for fmt in shard.files}
    )  # fmt: skip
    if have and set(have) != set(formats):
        raise ValueError(
            f"the dataset's {MODEL} embeddings are in {','.join(have)}, not "
            f"{','.join(sorted(formats))} (--format); all shards of a model share their formats: "
            f"give --format {','.join(have)}, or delete embeddings/{MODEL} or use a copy"
        )


def embed_dataset(
    dataset: str,
    settings: EmbedSettings,
    *,
    splits: list[str] | None = None,
    scheduler: str | None = None,
    workers: int = 2,
    storage_options: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EmbedSummary:
    """Embed every waveform shard of ``splits`` (all when None) that has no embedding shard yet.

    Embedding shards whose files were deleted (or are not at their committed size) are first
    dropped from the manifest and embedded again; when ``embeddings/vggish`` is gone altogether
    the model's embeddings start afresh, with ``settings``' weights (see
    :func:`_drop_lost_embeddings`), as they do when embed made them with another number of
    example slots per clip than it keeps now (:func:`_drop_other_width_embeddings`); the number
    it keeps is recorded in the stage entry. Then what an interrupted run left in the embedding
    folders of ``splits`` is removed: shard files the manifest does not list and shard
    temporaries (:func:`features.embedding_shards.remove_uncommitted_shards`). A run that embeds
    or drops shards is recorded in the manifest's ``runs`` (stage ``embed:vggish``); one with
    nothing to do records none and leaves ``manifest.json`` as it was, as with ingest.

    Parameters
    ----------
    dataset : str
        Dataset directory or URL.
    settings : EmbedSettings
        Local checkpoint and PCA paths are made absolute here, before any task is sent, so
        workers in another working directory find them.
    splits : list of str, optional
    scheduler : str, optional
        A ``distributed`` scheduler address (``tcp://host:port``) or ``"synchronous"``; by
        default a ``LocalCluster`` of ``workers`` processes with one thread each is started.
    workers : int
        Local worker processes.
    storage_options : dict, optional
        fsspec options for remote datasets.
    progress : callable, optional
        Called with (shards done, shards to do).

    Raises
    ------
    ValueError
        If the dataset's embeddings were made with other weights or another front end or are in
        other formats than ``settings.formats``, or a split is unknown.
    FileNotFoundError
        If the checkpoint or PCA file is not there (before any cluster starts).
    CheckpointError
        If ``settings.checkpoint`` is no TensorFlow checkpoint (before any cluster starts).
    """
    started = time.time()
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    settings = dataclasses.replace(
        settings,
        checkpoint=_absolute(settings.checkpoint),
        pca_params=_absolute(settings.pca_params),
    )
    if missing := _missing_weights(settings):
        raise FileNotFoundError(f"{missing} does not exist")
    check_checkpoint(settings.checkpoint)  # as for the PCA file: here, not in every task
    VGGishPostprocessor(settings.pca_params)  # a bad file fails here, not in every task
    store = DatasetStore(dataset, storage_options)
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "run_id": run_id, "stage": "embed"}
    with DatasetLock(store, owner):
        manifest = load_manifest(store)
        if manifest is None:
            raise FileNotFoundError(f"{store.url()} is not an audiomill dataset (no manifest)")
        names = splits or sorted(manifest.splits)
        unknown = [s for s in names if s not in manifest.splits]
        if unknown:
            raise ValueError(
                f"no waveform split(s) {unknown}; the dataset has {sorted(manifest.splits)}"
            )
        dropped_shards, dropped = _drop_lost_embeddings(store, manifest, names)
        frames = frames_per_clip(manifest.clip_seconds)
        other_width, width_lines = _drop_other_width_embeddings(store, manifest, frames)
        dropped_shards += sum(len(shards) for shards in other_width.values())
        dropped += width_lines
        prov = _provenance(settings)
        _check_provenance(manifest, prov)
        _check_formats(manifest, settings.formats)
        todo, skipped = _shards_to_embed(manifest, names)
        changes = bool(todo or dropped_shards)
        stage = {"run_id": run_id, "provenance": prov, WIDTH_KEY: frames, "completed": None}
        if changes:
            manifest.stages[f"embed:{MODEL}"] = stage
            save_manifest(store, manifest)
        _remove_shard_files(store, other_width)
        for line in dropped:
            log.warning("%s", line)
        for split in names:
            entry = manifest.embedding_split(MODEL, split)
            for rel in remove_uncommitted_shards(store, entry, f"embeddings/{MODEL}/{split}"):
                log.warning("removed %s, left uncommitted by an interrupted run", store.url(rel))
        check_committed_sizes(
            store, [(f.path, f.bytes) for _, shard in todo for f in shard.files.values()]
        )
        facts = {
            "sample_rate": manifest.sample_rate,
            "clip_seconds": manifest.clip_seconds,
            "num_samples": manifest.num_samples,
            "num_classes": manifest.num_classes,
        }
        attrs = {**prov, "class_map_sha256": manifest.class_map_sha256}
        threads = max(1, (os.cpu_count() or 1) // max(1, workers))
        task_settings = dataclasses.replace(settings, threads=threads)
        clips, short, devices = 0, 0, {}
        if todo:
            args = [
                (store.url(), storage_options, split, dataclasses.asdict(shard), facts,
                 task_settings, attrs, run_id)
                for split, shard in todo
            ]  # fmt: skip
            with dask_client(scheduler, processes=True, workers=workers) as client:
                for n, (pos, result) in enumerate(map_shards(embed_shard, args, client), 1):
                    entry = ShardEntry.from_dict(result["entry"])
                    devices[result["device"]] = devices.get(result["device"], 0) + 1
                    target = manifest.embedding_split(MODEL, todo[pos][0])
                    target.shards.append(entry)
                    target.shards.sort(key=lambda s: s.index)
                    save_manifest(store, manifest)
                    clips += entry.num_clips
                    short += result["short_clips"]
                    if progress:
                        progress(n, len(todo))
        stage["completed"] = time.time()
        summary = EmbedSummary(
            run_id=run_id,
            shards_done=len(todo),
            shards_skipped=skipped,
            clips=clips,
            seconds=time.time() - started,
            checkpoint_sha256=prov["checkpoint_sha256"],
            pca_sha256=prov["pca_sha256"],
            devices=devices,
            short_clips=short,
            dropped_shards=dropped_shards,
            dropped=dropped,
        )
        if changes:
            manifest.runs.append(_run_record(summary, settings, names))
            save_manifest(store, manifest)
    return summary


def _shards_to_embed(
    manifest: DatasetManifest, splits: list[str]
) -> tuple[list[tuple[str, ShardEntry]], int]:
    """The waveform shards of ``splits`` without an embedding shard, as (split, shard), and the
    number of those with one; ``manifest`` is left as it is."""
    todo, skipped = [], 0
    for split in splits:
        embedded = manifest.embeddings.get(MODEL, {}).get(split)
        done = {s.index for s in embedded.shards} if embedded else set()
        for shard in manifest.splits[split].shards:
            if shard.index in done:
                skipped += 1
            else:
                todo.append((split, shard))
    return todo, skipped


def _run_record(summary: EmbedSummary, settings: EmbedSettings, splits: list[str]) -> dict:
    """The manifest's record of an embed run, as ingest and import record theirs (``stage``,
    the summary, the settings). Not :func:`pipelines.dataset_state.record_run`: the stage entry
    it would write in place of embed's would lose the weights the embeddings were made with."""
    return {
        "stage": f"embed:{MODEL}",
        **dataclasses.asdict(summary),
        "splits": splits,
        "config": dataclasses.asdict(settings),
    }
