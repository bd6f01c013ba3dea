"""Parameters of the VGGish log-mel front end, as Google's AudioSet reference defines them.

The values follow ``vggish_params.py`` and the derivations of ``mel_features.py`` in
tensorflow/models ``research/audioset/vggish``; the integer sizes are derived from the durations
the same way the reference derives them.
"""

from __future__ import annotations

import math

SAMPLE_RATE = 16000
"""Sample rate of the analysed waveform, Hz."""
INT16_SCALE = 32768.0
"""int16 samples are divided by this to lie in [-1, 1)."""

STFT_WINDOW_SECONDS = 0.025
STFT_HOP_SECONDS = 0.010
WINDOW_LENGTH = round(SAMPLE_RATE * STFT_WINDOW_SECONDS)
"""Samples per STFT frame (400)."""
HOP_LENGTH = round(SAMPLE_RATE * STFT_HOP_SECONDS)
"""Samples between frame starts (160)."""
FFT_LENGTH = 2 ** math.ceil(math.log2(WINDOW_LENGTH))
"""FFT size (512): each 400-sample frame is zero-padded at its end."""
NUM_FFT_BINS = FFT_LENGTH // 2 + 1
"""Non-redundant FFT bins (257), bin ``k`` centred on ``k * SAMPLE_RATE / FFT_LENGTH`` Hz."""

NUM_BANDS = 64
"""Mel bands per frame."""
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
"""Added to the mel magnitudes before the natural log."""

EXAMPLE_WINDOW_SECONDS = 0.96
EXAMPLE_HOP_SECONDS = 0.96
NUM_FRAMES = round(EXAMPLE_WINDOW_SECONDS / STFT_HOP_SECONDS)
"""Frames per example (96)."""
EXAMPLE_HOP_FRAMES = round(EXAMPLE_HOP_SECONDS / STFT_HOP_SECONDS)
"""Frames between example starts (96: examples do not overlap)."""

FRONTEND_PARAMS: dict[str, int | float | str] = {
    "reference": "tensorflow/models research/audioset/vggish (mel_features.py, vggish_input.py)",
    "sample_rate": SAMPLE_RATE,
    "int16_scale": INT16_SCALE,
    "downmix": "mean of channels",
    "window": "periodic hann",
    "window_length": WINDOW_LENGTH,
    "hop_length": HOP_LENGTH,
    "fft_length": FFT_LENGTH,
    "spectrum": "magnitude",
    "mel_scale": "htk",
    "num_bands": NUM_BANDS,
    "mel_min_hz": MEL_MIN_HZ,
    "mel_max_hz": MEL_MAX_HZ,
    "log_offset": LOG_OFFSET,
    "example_frames": NUM_FRAMES,
    "example_hop_frames": EXAMPLE_HOP_FRAMES,
}
"""Every front-end parameter, JSON-serialisable, for provenance attributes of feature shards."""
