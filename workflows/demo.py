"""Demo audio made by the project itself, so the quickstart needs no download.

Five synthetic sound classes, each mapped to an AudioSet class, in every container the ingest
stage reads (WAV, FLAC, OGG, MP3, AIFF), at several sample rates and channel counts.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

DEMO_CLASSES = (
    ("/m/01v_m0", "Sine wave"),
    ("/m/0hdsk", "Chirp tone"),
    ("/m/0chx_", "White noise"),
    ("/m/07qc9xj", "Clicking"),
    ("/m/01jnbd", "Echo"),
)
_FORMATS = (
    ("wav", "WAV", "PCM_16", 44100, 2),
    ("flac", "FLAC", "PCM_16", 48000, 1),
    ("ogg", "OGG", "VORBIS", 22050, 2),
    ("mp3", "MP3", "MPEG_LAYER_III", 16000, 1),
    ("aiff", "AIFF", "PCM_16", 8000, 1),
)


def synthesize(kind: int, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Return a mono float32 signal of demo class ``kind`` (index into :data:`DEMO_CLASSES`)."""
    t = np.arange(round(seconds * sr)) / sr
    if kind == 0:
        x = np.sin(2 * np.pi * rng.uniform(200, 1000) * t)
    elif kind == 1:
        f0, f1 = rng.uniform(200, 600), rng.uniform(1500, min(3500, 0.4 * sr))
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))
    elif kind == 2:
        x = rng.standard_normal(len(t))
    elif kind == 3:
        x = np.zeros(len(t))
        x[:: max(1, int(sr * rng.uniform(0.1, 0.3)))] = 1.0
    else:
        base = np.sin(2 * np.pi * rng.uniform(300, 800) * t) * np.exp(-3 * t)
        delay = int(sr * 0.25)
        x = base.copy()
        x[delay:] += 0.6 * base[:-delay]
    return (0.3 * x / max(np.abs(x).max(), 1e-9)).astype(np.float32)


def make_demo(out_dir: str | Path, clips_per_class: int = 4, seconds: float = 4.0) -> Path:
    """Write demo audio, ``classes.csv`` and ``manifest.csv`` under ``out_dir``.

    Returns
    -------
    Path
        The manifest, whose rows name the files by path relative to ``out_dir`` with labels by
        display name; the last clip of each class goes to the ``eval`` split.
    """
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(out / "classes.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "mid", "display_name"])
        for i, (mid, name) in enumerate(DEMO_CLASSES):
            w.writerow([i, mid, name])
    rows = []
    for kind, (_, name) in enumerate(DEMO_CLASSES):
        for n in range(clips_per_class):
            ext, fmt, subtype, sr, channels = _FORMATS[(kind + n) % len(_FORMATS)]
            mono = synthesize(kind, seconds, sr, rng)
            data = np.stack([mono] * channels, axis=1) if channels > 1 else mono
            rel = f"audio/{name.lower().replace(' ', '_')}_{n}.{ext}"
            sf.write(out / rel, data, sr, format=fmt, subtype=subtype)
            split = "eval" if n == clips_per_class - 1 else "train"
            rows.append({"path": rel, "labels": name, "split": split})
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "labels", "split"])
        w.writeheader()
        w.writerows(rows)
    return manifest
