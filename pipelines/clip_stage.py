"""The per-clip transform of ingest: fetch, decode, resample, fix length, stage.

A plain function so it runs the same under Beam, in a thread pool or in a unit test; the Beam
``DoFn`` in ``pipelines.beam_ingest`` only wraps it.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

import numpy as np

from pipelines import staging
from pipelines.audio import prepare_clip
from pipelines.fetch import FetchOptions, FetchRequest, fetch_media
from pipelines.storage import DatasetStore
from schemas.failures import ClipFailure


@dataclass(frozen=True)
class ClipSettings:
    """What every clip of a run is turned into."""

    sample_rate: int
    clip_seconds: float
    min_coverage: float
    fetch: FetchOptions


def _failure_record(item: dict, exc: ClipFailure, started: float) -> dict:
    return {
        **_ledger_base(item),
        "status": "failed",
        "reason": exc.reason.value,
        "detail": exc.detail[:2000],
        "transient": exc.transient,
        "attempts": exc.attempts,
        "fetch_seconds": time.time() - started,
        "recorded_at": time.time(),
    }


def _ledger_base(item: dict) -> dict:
    return {
        "clip_id": item["clip_id"],
        "split": item["split"],
        "source": item["location"],
        "start_s": item["start_s"],
        "end_s": item["end_s"],
        "origin": item["origin"],
        "line": item["line"],
    }


def prepare_item(item: dict, settings: ClipSettings, workdir: str) -> dict:
    """Fetch and prepare one planned clip, writing nothing to the dataset.

    Parameters
    ----------
    item : dict
        A planned clip: ``clip_id``, ``split``, ``location``, ``precut``, ``start_s``,
        ``end_s``, ``labels``, ``audio_name``, ``origin``, ``line``.
    settings : ClipSettings
    workdir : str
        Local scratch directory for downloads.

    Returns
    -------
    dict
        ``{"status": "ok", "meta": ..., "waveform": ...}`` with the clip's metadata and its
        int16 waveform of ``sample_rate * clip_seconds`` samples, or
        ``{"status": "failed", "record": ...}`` with its ledger record.
    """
    started = time.time()
    precut = item["precut"]
    request = FetchRequest(
        clip_id=item["clip_id"],
        source=item["location"],
        start_s=None if precut else item["start_s"],
        end_s=None if precut else item["end_s"],
    )
    media = None
    try:
        media = fetch_media(request, workdir, settings.fetch)
        fetched = time.time()
        clip = prepare_clip(
            media.path,
            target_sr=settings.sample_rate,
            clip_seconds=settings.clip_seconds,
            start_s=item["start_s"],
            end_s=item["end_s"],
            precut=precut and item["end_s"] is not None,
            timestamped=media.sectioned,
            min_coverage=settings.min_coverage,
        )
    except ClipFailure as exc:
        if media is not None and exc.attempts <= 1:
            exc.attempts = media.attempts
        if media is not None and not media.local and exc.detail.startswith(f"{media.path}:"):
            # the decoder names the file it read: for a download, name where it came from
            exc.detail = item["location"] + exc.detail[len(media.path) :]
        return {"status": "failed", "record": _failure_record(item, exc, started)}
    finally:
        if media is not None and not media.local and os.path.exists(media.path):
            os.remove(media.path)
    meta = {
        **_ledger_base(item),
        "labels": item["labels"],
        "audio_name": item["audio_name"],
        "attempts": media.attempts,
        "fetch_seconds": fetched - started,
        "decode_seconds": time.time() - fetched,
        "num_samples": clip.num_samples,
        "sample_rate": settings.sample_rate,
        "channels": 1,
        "requested_seconds": clip.requested_seconds,
        "delivered_seconds": clip.delivered_seconds,
        "early_start_trimmed_s": clip.early_start_trimmed_s,
        "source_sample_rate": clip.source_sample_rate,
        "source_channels": clip.source_channels,
        "source_format": clip.source_format,
        "media_bytes": media.bytes,
        "waveform_sha256": hashlib.sha256(np.ascontiguousarray(clip.waveform)).hexdigest(),
        **{k: float(v) for k, v in clip.stats.items()},
    }
    return {"status": "ok", "meta": meta, "waveform": clip.waveform}


def stage_clip(item: dict, store: DatasetStore, settings: ClipSettings, workdir: str) -> dict:
    """Fetch and prepare one clip, staging the result (clip or failure) in the dataset.

    A clip already staged by an earlier, interrupted run is not fetched again. Staged clips
    are durable (written atomically and fsynced), so a download is never repeated after a
    crash; the pipeline uses this path for sources that are slow or rate-limited to fetch.

    ``item``, ``settings`` and ``workdir`` are as for :func:`prepare_item`; ``store`` is the
    dataset being written. Returns ``{"status": "ok", "meta": ...}`` with the staged clip's
    metadata, or ``{"status": "failed", "record": ...}`` with its ledger record.
    """
    split, clip_id = item["split"], item["clip_id"]
    staged = staging.staged_clip_path(split, clip_id)
    if store.exists(staged):
        return {"status": "ok", "meta": staging.read_staged_meta(store, split, clip_id)}
    result = prepare_item(item, settings, workdir)
    if result["status"] != "ok":
        store.write_json_atomic(staging.failed_path(split, clip_id), result["record"])
        return result
    staging.write_staged_clip(store, split, result["waveform"], result["meta"])
    failed = staging.failed_path(split, clip_id)
    if store.exists(failed):
        store.remove(failed)
    return {"status": "ok", "meta": result["meta"]}
