"""Log-mel spectrogram PNGs of a dataset's clips, for image tools (one picture per clip).

The whale-call recipe can hand its clips to image classifiers and labelling tools this way:
each clip of a split becomes ``OUT/<clip_id>.png`` (time left to right, low frequencies at the
bottom, one pixel per frame and mel band), and ``OUT/labels.csv`` lists ``clip_id,file,labels``
with the labels by display name.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetStore
from schemas.classmap import ClassMap
from schemas.dataset import CLASSES
from schemas.shards import WaveformRow, read_hdf5_rows, read_parquet_rows


def log_mel(
    waveform: np.ndarray,
    sample_rate: int,
    *,
    n_fft: int = 256,
    hop_length: int = 32,
    n_mels: int = 32,
    fmin: float = 20.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Log-mel power spectrogram ``(n_mels, frames)`` of an int16 or float waveform.

    The defaults suit 2 kHz audio (128 ms windows every 16 ms, 32 bands up to Nyquist).
    """
    import librosa

    x = np.asarray(waveform, dtype=np.float32)
    if np.issubdtype(np.asarray(waveform).dtype, np.integer):
        x = x / 32768.0
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    mel = librosa.feature.melspectrogram(
        y=x, sr=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
        fmin=fmin, fmax=fmax if fmax is not None else sample_rate / 2, power=2.0,
    )  # fmt: skip
    return np.log(mel + 1e-10)


def split_rows(dataset: str | os.PathLike[str], split: str) -> Iterator[WaveformRow]:
    """Every clip of ``split``'s waveform shards, in shard order (HDF5 read when there)."""
    store = DatasetStore(dataset)
    manifest = load_manifest(store)
    if manifest is None:
        raise FileNotFoundError(f"{store.url()} is not a dataset (no manifest.json)")
    if split not in manifest.splits:
        raise ValueError(f"no split {split!r} (splits: {', '.join(sorted(manifest.splits))})")
    for shard in manifest.splits[split].shards:
        if "hdf5" in shard.files:
            with store.open(shard.files["hdf5"].path, "rb") as fh:
                yield from read_hdf5_rows(fh)
        else:
            data = store.read_bytes(shard.files["parquet"].path)
            yield from read_parquet_rows(io.BytesIO(data), manifest.num_samples)


def export_spectrograms(
    dataset: str,
    split: str,
    out_dir: str,
    limit: int | None = None,
    *,
    n_fft: int = 256,
    hop_length: int = 32,
    n_mels: int = 32,
    fmin: float = 20.0,
    fmax: float | None = None,
    cmap: str = "magma",
) -> dict:
    """Write one log-mel PNG per clip of ``split``, named by clip id, and ``labels.csv``.

    Parameters
    ----------
    dataset : str
        Dataset directory or URL.
    split : str
    out_dir : str
        Folder for ``<clip_id>.png`` and ``labels.csv``.
    limit : int, optional
        At most this many clips (the first ones of the split); None or 0 for all.
    n_fft, hop_length, n_mels, fmin, fmax
        The spectrogram (see :func:`log_mel`); only the clip's real samples are drawn, not the
        padding.
    cmap : str
        Matplotlib colour map.

    Returns
    -------
    dict
        ``clips`` written and ``out_dir``.
    """
    from matplotlib import image

    store = DatasetStore(dataset)
    manifest = load_manifest(store)
    if manifest is None:
        raise FileNotFoundError(f"{store.url()} is not a dataset (no manifest.json)")
    classes = ClassMap.from_csv_text(store.read_text(CLASSES), store.url(CLASSES))
    names = [c.display_name for c in classes]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for row in split_rows(dataset, split):
        if limit and len(rows) >= limit:
            break
        spec = log_mel(
            row.waveform[: max(row.num_samples, 1)], manifest.sample_rate,
            n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax,
        )  # fmt: skip
        name = f"{row.clip_id}.png"
        image.imsave(out / name, spec, cmap=cmap, origin="lower")
        rows.append((row.clip_id, name, ";".join(names[i] for i in row.labels)))
    with (out / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["clip_id", "file", "labels"])
        writer.writerows(rows)
    return {"clips": len(rows), "out_dir": str(out)}
