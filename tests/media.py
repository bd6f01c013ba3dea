"""Small real media files made by the tests: tones and noise in every container we ingest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "aiff": ("AIFF", "PCM_16"),
}


def make_signal(
    seconds: float, sample_rate: int, channels: int = 1, freq: float = 440.0, seed: int = 0
) -> np.ndarray:
    """Return a (frames, channels) float32 tone plus a little noise, peak about 0.5.

    Each channel gets a slightly different frequency so downmixing is observable.
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    cols = [
        0.4 * np.sin(2 * np.pi * min(freq * (1 + 0.1 * c), 0.45 * sample_rate) * t)
        + 0.05 * rng.standard_normal(n)
        for c in range(channels)
    ]
    return np.stack(cols, axis=1).astype(np.float32)


def write_media(
    path: Path,
    seconds: float,
    sample_rate: int,
    channels: int = 1,
    freq: float = 440.0,
    seed: int = 0,
) -> Path:
    """Write a tone file; the container is chosen by the file's extension (see ``FORMATS``)."""
    path = Path(path)
    fmt, subtype = FORMATS[path.suffix.lstrip(".").lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(
        path,
        make_signal(seconds, sample_rate, channels, freq, seed),
        sample_rate,
        format=fmt,
        subtype=subtype,
    )
    return path
