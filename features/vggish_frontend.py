"""VGGish log-mel examples, numerically faithful to Google's AudioSet reference.

The chain is the reference's (``vggish_input.waveform_to_examples`` and
``mel_features.log_mel_spectrogram``): int16 samples / 32768 -> mean of channels -> resample to
16 kHz -> 400-sample periodic-Hann frames every 160 samples, no padding or centring -> magnitude of
a 512-point rfft (each frame zero-padded at its end) -> 64 HTK mel bands from 125 to 7500 Hz ->
``log(mel + 0.01)`` -> non-overlapping examples of 96 frames (0.96 s), a partial last one dropped.

Two modes:

``"exact"``
    float64 throughout, resampling with ``resampy.resample(x, sr, 16000, filter="kaiser_best")``
    as the reference does. On the same 16 kHz input the values agree with the reference formula to
    within 1e-4 (in practice below 1e-12).
``"fast"``
    float32 throughout (values move by up to about 1e-3), resampling with soxr ``"HQ"``.

The resampler can be chosen independently of the mode. Any resampler other than resampy's
``kaiser_best`` changes log-mel values by up to about 2 in the top bands and at the clip edges,
so exact reproduction of released VGGish features needs ``resampler="resampy"`` for input that is
not already at 16 kHz.

Frames are processed in blocks of :data:`BLOCK_FRAMES` through buffers allocated once per call:
the int16 scaling is folded into the window, only the FFT bins under a mel band are kept, and the
mel weights are applied as a sparse matrix (each band spans a few bins).
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.fft
import soxr
from numpy.typing import ArrayLike

from features.mel import BandedMel, banded_mel_weights
from features.vggish_params import (
    EXAMPLE_HOP_FRAMES,
    FFT_LENGTH,
    FRONTEND_PARAMS,
    HOP_LENGTH,
    INT16_SCALE,
    LOG_OFFSET,
    MEL_MAX_HZ,
    MEL_MIN_HZ,
    NUM_BANDS,
    NUM_FRAMES,
    SAMPLE_RATE,
    WINDOW_LENGTH,
)

Mode = Literal["exact", "fast"]
Resampler = Literal["resampy", "soxr"]

BLOCK_FRAMES = 256
"""Frames per processing block: the block's buffers stay in the CPU cache."""

_DTYPES: dict[str, type[np.floating]] = {"exact": np.float64, "fast": np.float32}
_DEFAULT_RESAMPLER: dict[str, Resampler] = {"exact": "resampy", "fast": "soxr"}
_RESAMPLER_NAMES = {"resampy": "resampy kaiser_best", "soxr": "soxr HQ"}
_MIN_EXAMPLE_SAMPLES = WINDOW_LENGTH + (NUM_FRAMES - 1) * HOP_LENGTH


def periodic_hann(length: int) -> np.ndarray:
    """Periodic Hann window, ``0.5 - 0.5 cos(2 pi n / length)`` for ``n = 0 .. length - 1``.

    Parameters
    ----------
    length : int
        Window length in samples.

    Returns
    -------
    np.ndarray, shape (length,)
        float64 window; it ends one sample before the zero a symmetric window would end on.
    """
    return 0.5 - 0.5 * np.cos(2.0 * np.pi / length * np.arange(length))


def frame_count(num_samples: int) -> int:
    """Number of complete STFT frames in ``num_samples`` samples at 16 kHz.

    Parameters
    ----------
    num_samples : int
        Signal length in samples.

    Returns
    -------
    int
        ``1 + (num_samples - 400) // 160``, or 0 when ``num_samples < 400``.
    """
    return 0 if num_samples < WINDOW_LENGTH else 1 + (num_samples - WINDOW_LENGTH) // HOP_LENGTH


def example_count(num_frames: int) -> int:
    """Number of complete 96-frame examples in ``num_frames`` STFT frames.

    Parameters
    ----------
    num_frames : int
        Frames of log-mel spectrogram.

    Returns
    -------
    int
        ``1 + (num_frames - 96) // 96``, or 0 when ``num_frames < 96`` (10 for 10 s of audio).
    """
    return 0 if num_frames < NUM_FRAMES else 1 + (num_frames - NUM_FRAMES) // EXAMPLE_HOP_FRAMES


def one_example_samples(sample_rate: float) -> int:
    """Fewest samples at ``sample_rate`` that make one example once at 16 kHz.

    One example needs 15600 samples at 16 kHz (0.975 s: 96 frames of 400 samples every 160);
    one more is asked for, since a resampler may round its output length down.

    Parameters
    ----------
    sample_rate : float
        Hz.

    Returns
    -------
    int
    """
    return math.ceil((_MIN_EXAMPLE_SAMPLES + 1) * sample_rate / SAMPLE_RATE)


def frontend_provenance(mode: Mode = "exact", resampler: Resampler | None = None) -> dict:
    """Front-end parameters plus the mode, dtype and resampler, for feature-shard attributes.

    Parameters
    ----------
    mode : {"exact", "fast"}
    resampler : {"resampy", "soxr"}, optional
        Defaults to the mode's resampler.

    Returns
    -------
    dict
        JSON-serialisable: :data:`~features.vggish_params.FRONTEND_PARAMS` and ``mode``,
        ``dtype``, ``resampler``.
    """
    dtype, resampler = _resolve(mode, resampler)
    return {
        **FRONTEND_PARAMS,
        "mode": mode,
        "dtype": np.dtype(dtype).name,
        "resampler": _RESAMPLER_NAMES[resampler],
    }


def frontend_options(frontend: dict) -> str:
    """The options that make a :func:`frontend_provenance`, for messages.

    Returns
    -------
    str
        ``"--mode fast --resampler soxr"``; a resampler that no option names is given as
        recorded.
    """
    name = frontend.get("resampler")
    option = _resampler_option(name) or name
    return f"--mode {frontend.get('mode')} --resampler {option}"


def frontend_settings(frontend: dict) -> tuple[Mode, Resampler] | None:
    """The ``mode`` and ``resampler`` that make a :func:`frontend_provenance`.

    Returns
    -------
    tuple of str or None
        ``("exact", "resampy")``; None when ``frontend`` records a mode or resampler that
        this front end does not make.
    """
    mode, resampler = frontend.get("mode"), _resampler_option(frontend.get("resampler"))
    if mode not in _DTYPES or resampler is None:
        return None
    return mode, resampler


def _resampler_option(name: str | None) -> Resampler | None:
    """The resampler option of a recorded resampler name (``"soxr HQ"`` -> ``"soxr"``)."""
    return next((k for k, v in _RESAMPLER_NAMES.items() if v == name), None)


def log_mel(x16k: ArrayLike, *, mode: Mode = "exact", workers: int = 1) -> np.ndarray:
    """Log-mel spectrogram of a mono 16 kHz waveform, as ``mel_features.log_mel_spectrogram``.

    Parameters
    ----------
    x16k : array_like, shape (n_samples,)
        int16 samples (scaled by 1/32768) or float samples in [-1, 1], at 16 kHz.
    mode : {"exact", "fast"}
        float64 or float32 arithmetic; see the module docstring.
    workers : int
        Threads sharing the frame blocks.

    Returns
    -------
    np.ndarray, shape (n_frames, 64)
        ``log(mel + 0.01)`` per 10 ms frame, ``n_frames = 1 + (n_samples - 400) // 160``
        (0 if shorter than 400 samples); float64 (exact) or float32 (fast).
    """
    x = _check_samples(x16k, (1,))
    dtype, _ = _resolve(mode, None)
    clips, scale = _to_16k(x[np.newaxis], SAMPLE_RATE, dtype, None)
    frames = _frame(clips)
    out = np.empty((1, frames.shape[1], NUM_BANDS), dtype)
    _log_mel_into(frames, _plan(mode, scale), out, workers)
    return out[0]


def waveform_to_examples(
    waveform: ArrayLike,
    sample_rate: float,
    *,
    mode: Mode = "exact",
    resampler: Resampler | None = None,
    workers: int = 1,
) -> np.ndarray:
    """VGGish input examples of one clip, as ``vggish_input.waveform_to_examples``.

    Parameters
    ----------
    waveform : array_like, shape (n_samples,) or (n_samples, n_channels)
        int16 samples (scaled by 1/32768) or float samples in [-1, 1]; channels are averaged.
    sample_rate : float
        Sample rate of ``waveform``, Hz; other rates than 16 kHz are resampled.
    mode : {"exact", "fast"}
        float64 or float32 arithmetic; see the module docstring.
    resampler : {"resampy", "soxr"}, optional
        Defaults to ``"resampy"`` (kaiser_best, as the reference) in exact mode and ``"soxr"``
        (HQ) in fast mode. Other resamplers than resampy change values by up to ~2 near the top
        bands and the clip edges.
    workers : int
        Threads sharing the frame blocks.

    Returns
    -------
    np.ndarray, shape (n_examples, 96, 64)
        Log-mel examples of 0.96 s, frames x bands; ``n_examples = n_frames // 96`` (10 for
        10 s, 0 below 0.975 s); float64 (exact) or float32 (fast).
    """
    x = _check_samples(waveform, (1, 2))
    if x.ndim == 2:
        x = _as_float(x, _resolve(mode, None)[0]).mean(axis=1)
    return batch_waveform_to_examples(
        x[np.newaxis], sample_rate, mode=mode, resampler=resampler, workers=workers
    )[0]


def batch_waveform_to_examples(
    waveforms: ArrayLike,
    sample_rate: float,
    *,
    mode: Mode = "exact",
    resampler: Resampler | None = None,
    workers: int = 1,
    clips_per_chunk: int = 16,
) -> np.ndarray:
    """VGGish input examples of equal-length mono clips, vectorised over clips and frames.

    Each chunk of clips is resampled at once (when not at 16 kHz), framed with one strided view,
    and its frames go through batched rffts and one precomputed sparse mel matrix in blocks of
    :data:`BLOCK_FRAMES`. Values equal :func:`waveform_to_examples` clip by clip.

    Parameters
    ----------
    waveforms : array_like, shape (n_clips, n_samples)
        int16 samples (scaled by 1/32768) or float samples in [-1, 1], one mono clip per row.
    sample_rate : float
        Sample rate of the clips, Hz.
    mode : {"exact", "fast"}
        float64 or float32 arithmetic; see the module docstring.
    resampler : {"resampy", "soxr"}, optional
        As in :func:`waveform_to_examples`.
    workers : int
        Threads sharing the frame blocks.
    clips_per_chunk : int
        Clips converted and resampled together; bounds the float copies to
        ``clips_per_chunk * n_samples`` samples at the input and at 16 kHz. int16 clips at
        16 kHz, and float clips of the mode's dtype at 16 kHz, are not copied or chunked.

    Returns
    -------
    np.ndarray, shape (n_clips, n_examples, 96, 64)
        Log-mel examples; float64 (exact) or float32 (fast).
    """
    x = _check_samples(waveforms, (2,))
    dtype, resampler = _resolve(mode, resampler)
    if sample_rate <= 0 or clips_per_chunk < 1:
        raise ValueError("sample_rate and clips_per_chunk must be positive")
    # Too short for one example (with a sample of slack for resampler rounding): no work, and
    # no resampling of inputs too short for resampy.
    if x.shape[1] * SAMPLE_RATE / sample_rate < _MIN_EXAMPLE_SAMPLES - 1 or not len(x):
        return np.empty((len(x), 0, NUM_FRAMES, NUM_BANDS), dtype)
    # Only clips that are converted or resampled need chunking; the others are framed in place.
    copies = sample_rate != SAMPLE_RATE or x.dtype not in (np.int16, dtype)
    step = clips_per_chunk if copies else len(x)
    out = None
    for start in range(0, len(x), step):
        clips, scale = _to_16k(x[start : start + step], sample_rate, dtype, resampler)
        frames = _frame(clips)
        used = example_count(frames.shape[1]) * NUM_FRAMES
        if out is None:
            out = np.empty((len(x), used, NUM_BANDS), dtype)
        rows = out[start : start + len(clips)]
        _log_mel_into(frames[:, :used], _plan(mode, scale), rows, workers)
    # Examples do not overlap (hop == length), so they are a reshape of the used frames.
    return out.reshape(len(x), -1, NUM_FRAMES, NUM_BANDS)


@dataclass(frozen=True)
class _Plan:
    """Per-mode constants: arithmetic dtype, scaled window (400,), banded mel weights."""

    dtype: np.dtype
    window: np.ndarray
    mel: BandedMel


@functools.cache
def _plan(mode: Mode, input_scale: float) -> _Plan:
    dtype = np.dtype(_DTYPES[mode])
    # input_scale is 1 or 2**-15: folding it into the window is exact.
    window = (periodic_hann(WINDOW_LENGTH) * input_scale).astype(dtype)
    mel = banded_mel_weights(NUM_BANDS, FFT_LENGTH, SAMPLE_RATE, MEL_MIN_HZ, MEL_MAX_HZ, dtype)
    return _Plan(dtype, window, mel)


def _resolve(mode: Mode, resampler: Resampler | None) -> tuple[type[np.floating], Resampler]:
    if mode not in _DTYPES:
        raise ValueError(f"mode must be 'exact' or 'fast', got {mode!r}")
    resampler = resampler or _DEFAULT_RESAMPLER[mode]
    if resampler not in _RESAMPLER_NAMES:
        raise ValueError(f"resampler must be 'resampy' or 'soxr', got {resampler!r}")
    return _DTYPES[mode], resampler


def _check_samples(samples: ArrayLike, ndims: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(samples)
    if x.dtype != np.int16 and not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"samples must be int16 or floating point, got {x.dtype}")
    if x.ndim not in ndims:
        expected = " or ".join(map(str, ndims))
        raise ValueError(f"samples must have {expected} dimensions, got shape {x.shape}")
    return x


def _as_float(x: np.ndarray, dtype: type[np.floating]) -> np.ndarray:
    """int16 / 32768 or float samples, as ``dtype``."""
    if x.dtype == np.int16:
        return np.multiply(x, 1.0 / INT16_SCALE, dtype=dtype)
    return x.astype(dtype, copy=False)


def _to_16k(
    clips: np.ndarray, sample_rate: float, dtype: type[np.floating], resampler: Resampler | None
) -> tuple[np.ndarray, float]:
    """Clips (n_clips, n_samples) at 16 kHz, and the factor that scales them to [-1, 1].

    int16 clips already at 16 kHz are passed through; the window applies their 1/32768.
    """
    if sample_rate == SAMPLE_RATE and clips.dtype == np.int16:
        return clips, 1.0 / INT16_SCALE
    samples = _as_float(clips, dtype)
    if sample_rate != SAMPLE_RATE:
        samples = _resample(samples, sample_rate, resampler)
    return samples, 1.0


def _resample(samples: np.ndarray, sample_rate: float, resampler: Resampler) -> np.ndarray:
    """Resample (n_clips, n_samples) float clips to 16 kHz along the last axis."""
    if resampler == "resampy":
        import resampy  # optional: needed for exact reproduction, pulls in numba

        return resampy.resample(samples, sample_rate, SAMPLE_RATE, filter="kaiser_best", axis=-1)
    resampled = soxr.resample(samples.T, sample_rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(resampled.T)


def _frame(clips: np.ndarray) -> np.ndarray:
    """Strided view (n_clips, n_frames, 400) of 400-sample frames every 160 samples."""
    if clips.shape[-1] < WINDOW_LENGTH:
        return np.empty((*clips.shape[:-1], 0, WINDOW_LENGTH), clips.dtype)
    windows = np.lib.stride_tricks.sliding_window_view(clips, WINDOW_LENGTH, axis=-1)
    return windows[..., ::HOP_LENGTH, :]


def _log_mel_into(frames: np.ndarray, plan: _Plan, out: np.ndarray, workers: int) -> None:
    """Fill ``out`` (n_clips, n_frames, 64) with the log-mel of ``frames`` (n_clips, n_frames, 400).

    Blocks are whole clips (short clips) or runs of one clip's frames (long clips), dealt out to
    ``workers`` threads that each own their buffers and write disjoint parts of ``out``.
    """
    if workers < 1:
        raise ValueError(f"workers must be positive, got {workers}")
    n_clips, n_frames = frames.shape[:2]
    if not n_clips or not n_frames:
        return
    if n_frames >= BLOCK_FRAMES:
        blocks = [
            (slice(c, c + 1), slice(f, f + BLOCK_FRAMES))
            for c in range(n_clips)
            for f in range(0, n_frames, BLOCK_FRAMES)
        ]
        max_rows = BLOCK_FRAMES
    else:
        step = BLOCK_FRAMES // n_frames
        blocks = [(slice(c, c + step), slice(None)) for c in range(0, n_clips, step)]
        max_rows = step * n_frames
    if workers == 1 or len(blocks) < 2:
        _log_mel_blocks(frames, plan, out, blocks, max_rows)
        return
    with ThreadPoolExecutor(workers) as pool:
        parts = [
            pool.submit(_log_mel_blocks, frames, plan, out, blocks[i::workers], max_rows)
            for i in range(min(workers, len(blocks)))
        ]
        for part in parts:
            part.result()


def _log_mel_blocks(
    frames: np.ndarray,
    plan: _Plan,
    out: np.ndarray,
    blocks: list[tuple[slice, slice]],
    max_rows: int,
) -> None:
    """Fill ``out[block]`` for each block of at most ``max_rows`` frames, reusing buffers."""
    lo, hi = plan.mel.bin_start, plan.mel.bin_stop
    padded = np.zeros((max_rows, FFT_LENGTH), plan.dtype)  # the tail past 400 stays zero
    magnitude = np.empty((hi - lo) * max_rows, plan.dtype)
    for clips, span in blocks:
        block, target = frames[clips, span], out[clips, span]
        n_clips, n_frames = block.shape[:2]
        rows = n_clips * n_frames
        windowed = padded[:rows].reshape(n_clips, n_frames, FFT_LENGTH)[..., :WINDOW_LENGTH]
        np.multiply(block, plan.window, out=windowed)
        magnitude_t = magnitude[: (hi - lo) * rows].reshape(hi - lo, rows)
        spectrum = scipy.fft.rfft(padded[:rows], axis=-1)
        np.abs(spectrum[:, lo:hi].T, out=magnitude_t)
        mel_t = plan.mel.apply_t(magnitude_t)
        np.add(mel_t.T.reshape(n_clips, n_frames, NUM_BANDS), LOG_OFFSET, out=target)
        np.log(target, out=target)
