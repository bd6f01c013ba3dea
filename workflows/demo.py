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


BROKEN_FILES = (
    ("broken/truncated.wav", "a WAV whose header promises more data than it holds"),
    ("broken/empty.flac", "a zero-length file"),
    ("broken/not_audio.mp3", "text with an audio extension"),
    ("broken/missing.ogg", "a file that does not exist (404 over HTTP)"),
)


def _slug(name: str) -> str:
    return name.lower().replace(" ", "_")


def _write_clip(out: Path, rel: str, mono: np.ndarray, fmt_index: int) -> None:
    _, fmt, subtype, sr, channels = _FORMATS[fmt_index % len(_FORMATS)]
    data = np.stack([mono] * channels, axis=1) if channels > 1 else mono
    sf.write(out / rel, data, sr, format=fmt, subtype=subtype)


def _write_broken(out: Path) -> None:
    (out / "broken").mkdir(parents=True, exist_ok=True)
    sr = 16000
    sf.write(out / "broken/truncated.wav", np.zeros(sr * 2, dtype=np.float32), sr)
    full = (out / "broken/truncated.wav").read_bytes()
    (out / "broken/truncated.wav").write_bytes(full[:600])
    (out / "broken/empty.flac").write_bytes(b"")
    (out / "broken/not_audio.mp3").write_text("this is not audio\n")


def make_demo(
    out_dir: str | Path,
    clips_per_class: int = 4,
    seconds: float = 4.0,
    mixtures: int = 0,
    broken: bool = False,
) -> Path:
    """Write demo audio, ``classes.csv`` and ``manifest.csv`` under ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
    clips_per_class : int
        Single-class clips of each class; the second of every four (``n % 4 == 1``) goes to the
        ``eval`` split, so any count from 2 holds clips of every class out.
    seconds : float
        Length of every clip.
    mixtures : int
        Extra multi-label clips, each the sum of two classes (pairs taken in turn); every
        fourth goes to ``eval``.
    broken : bool
        Also list the files of :data:`BROKEN_FILES` (truncated, empty, not audio, missing),
        which ingest must record as failures.

    Returns
    -------
    Path
        The manifest, whose rows name the files by path relative to ``out_dir`` with labels by
        display name (``;`` between the labels of a mixture). Files are deterministic, and a
        clip's file and split are the same whatever the counts: a demo made again with other
        counts fits the dataset ingested from the first.
    """
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    with open(out / "classes.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "mid", "display_name"])
        for i, (mid, name) in enumerate(DEMO_CLASSES):
            w.writerow([i, mid, name])
    rows = []
    for kind, (_, name) in enumerate(DEMO_CLASSES):
        for n in range(clips_per_class):
            fmt_index = kind + n
            sr = _FORMATS[fmt_index % len(_FORMATS)][3]
            rel = f"audio/{_slug(name)}_{n}.{_FORMATS[fmt_index % len(_FORMATS)][0]}"
            rng = np.random.default_rng([0, kind, n])
            _write_clip(out, rel, synthesize(kind, seconds, sr, rng), fmt_index)
            split = "eval" if n % 4 == 1 else "train"
            rows.append({"path": rel, "labels": name, "split": split})
    pairs = [(a, b) for a in range(len(DEMO_CLASSES)) for b in range(a + 1, len(DEMO_CLASSES))]
    for m in range(mixtures):
        a, b = pairs[m % len(pairs)]
        sr = _FORMATS[m % len(_FORMATS)][3]
        rng = np.random.default_rng([1, m])
        mono = synthesize(a, seconds, sr, rng) + synthesize(b, seconds, sr, rng)
        names = (DEMO_CLASSES[a][1], DEMO_CLASSES[b][1])
        rel = f"audio/mix_{_slug(names[0])}+{_slug(names[1])}_{m}.{_FORMATS[m % len(_FORMATS)][0]}"
        _write_clip(out, rel, (0.7 * mono).astype(np.float32), m)
        rows.append(
            {"path": rel, "labels": ";".join(names), "split": "eval" if m % 4 == 3 else "train"}
        )
    if broken:
        _write_broken(out)
        for i, (rel, _) in enumerate(BROKEN_FILES):
            rows.append(
                {"path": rel, "labels": DEMO_CLASSES[i % len(DEMO_CLASSES)][1], "split": "train"}
            )
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "labels", "split"])
        w.writeheader()
        w.writerows(rows)
    return manifest
