"""VGGish log-mel front end against an independent, reference-style implementation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soxr

from features.mel import banded_mel_weights, hz_to_mel_htk, mel_weights
from features.vggish_frontend import (
    batch_waveform_to_examples,
    example_count,
    frame_count,
    frontend_provenance,
    log_mel,
    periodic_hann,
    waveform_to_examples,
)
from features.vggish_params import FRONTEND_PARAMS

SR = 16000
TOLERANCE = {"exact": 1e-4, "fast": 1e-3}


# --- reference: written straightforwardly, per clip, float64, the way mel_features.py is ---


def ref_mel_matrix() -> np.ndarray:
    """(257, 64) HTK triangles, band by band."""

    def hertz_to_mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    bins_mel = hertz_to_mel(np.linspace(0.0, 8000.0, 257))
    edges = np.linspace(hertz_to_mel(125.0), hertz_to_mel(7500.0), 64 + 2)
    matrix = np.empty((257, 64))
    for i in range(64):
        lower, center, upper = edges[i : i + 3]
        lower_slope = (bins_mel - lower) / (center - lower)
        upper_slope = (upper - bins_mel) / (upper - center)
        matrix[:, i] = np.maximum(0.0, np.minimum(lower_slope, upper_slope))
    matrix[0, :] = 0.0
    return matrix


def ref_log_mel(x: np.ndarray) -> np.ndarray:
    """(frames, 64) log-mel of a float64 16 kHz mono signal."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if len(x) < 400:
        return np.empty((0, 64))
    n_frames = 1 + int(np.floor((len(x) - 400) / 160))
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n_frames, 400), strides=(x.strides[0] * 160, x.strides[0])
    )
    window = 0.5 - (0.5 * np.cos(2 * np.pi / 400 * np.arange(400)))
    magnitude = np.abs(np.fft.rfft(frames * window, 512))
    return np.log(np.dot(magnitude, ref_mel_matrix()) + 0.01)


def ref_examples(x: np.ndarray) -> np.ndarray:
    """(examples, 96, 64) from a float64 16 kHz mono signal."""
    features = ref_log_mel(x)
    n_examples = 1 + int(np.floor((len(features) - 96) / 96)) if len(features) >= 96 else 0
    return features[: n_examples * 96].reshape(n_examples, 96, 64)


# --- signals ---


def noise(n: int, seed: int = 0) -> np.ndarray:
    return 0.3 * np.random.default_rng(seed).standard_normal(n).clip(-3.0, 3.0)


def tones(n: int, freqs=(440.0, 1000.0, 3150.0, 7400.0), sr: float = SR) -> np.ndarray:
    t = np.arange(n) / sr
    return sum(0.2 * np.sin(2 * np.pi * f * t + f) for f in freqs)


def loud_offset(n: int) -> np.ndarray:
    """Near full scale with a DC offset: the worst case for float32 (tiny bins, large frames)."""
    return 0.9 + tones(n, freqs=(1000.0,)) / 4


SIGNALS = {"noise": noise, "tones": tones, "loud_offset": loud_offset}
LENGTHS = [0, 399, 400, 559, 560, 15599, 15600, 16000, 10 * SR]


# --- against the reference ---


@pytest.mark.parametrize("mode", ["exact", "fast"])
@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("length", LENGTHS)
def test_log_mel_matches_reference(mode: str, signal: str, length: int) -> None:
    x = SIGNALS[signal](length)
    ours = log_mel(x, mode=mode)
    expected = ref_log_mel(x)
    assert ours.shape == expected.shape == (frame_count(length), 64)
    assert ours.dtype == (np.float64 if mode == "exact" else np.float32)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=TOLERANCE[mode])


@pytest.mark.parametrize("mode", ["exact", "fast"])
@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("length", LENGTHS)
def test_examples_match_reference(mode: str, signal: str, length: int) -> None:
    x = SIGNALS[signal](length)
    ours = waveform_to_examples(x, SR, mode=mode)
    expected = ref_examples(x)
    assert ours.shape == expected.shape == (example_count(frame_count(length)), 96, 64)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=TOLERANCE[mode])


def test_exact_mode_is_much_tighter_than_required() -> None:
    x = tones(3 * SR) + noise(3 * SR) * 1e-3
    assert np.abs(waveform_to_examples(x, SR) - ref_examples(x)).max() < 1e-9


# --- mel matrix ---


def test_mel_weights_equal_reference_and_properties() -> None:
    weights = mel_weights(64, 512, SR, 125.0, 7500.0)
    np.testing.assert_array_equal(weights, ref_mel_matrix())
    assert weights.shape == (257, 64)
    assert not weights[0].any(), "DC bin must not contribute"
    assert weights.min() == 0.0 and weights.max() <= 1.0
    bins_hz = np.arange(257) * SR / 512
    outside = (bins_hz <= 125.0) | (bins_hz >= 7500.0)
    assert not weights[outside].any()
    assert weights.any(axis=0).all(), "every band has support"
    edges = np.linspace(hz_to_mel_htk(125.0), hz_to_mel_htk(7500.0), 66)
    bins_mel = hz_to_mel_htk(bins_hz)
    for band in range(64):
        support = np.flatnonzero(weights[:, band])
        assert edges[band] < bins_mel[support].min() and bins_mel[support].max() < edges[band + 2]
        nearest_center = np.argmin(np.abs(bins_mel - edges[band + 1]))
        assert weights[:, band].argmax() == nearest_center
    # Triangles are complementary between the first and the last band centre.
    inner = (bins_mel >= edges[1]) & (bins_mel <= edges[-2])
    np.testing.assert_allclose(weights[inner].sum(axis=1), 1.0, atol=1e-12)


def test_mel_weights_peak_is_one_on_a_bin_at_the_centre() -> None:
    # With 1 Hz bins, every band centre lies within a fraction of a bin of some bin.
    weights = mel_weights(10, 2 * 8000, SR, 125.0, 7500.0)
    np.testing.assert_allclose(weights.max(axis=0), 1.0, atol=1e-2)


def test_hz_to_mel_htk_values() -> None:
    np.testing.assert_allclose(
        hz_to_mel_htk([0.0, 700.0, 1000.0]), [0.0, 1127 * np.log(2), 1000.0], atol=0.05
    )


def test_banded_mel_equals_dense() -> None:
    for dtype in (np.float64, np.float32):
        dense = mel_weights(64, 512, SR, 125.0, 7500.0, dtype)
        banded = banded_mel_weights(64, 512, SR, 125.0, 7500.0, dtype)
        assert not dense[: banded.bin_start].any() and not dense[banded.bin_stop :].any()
        assert banded.weights_t.nnz == np.count_nonzero(dense)
        magnitude = np.abs(np.random.default_rng(1).standard_normal((50, 257))).astype(dtype)
        mel_t = banded.apply_t(
            np.ascontiguousarray(magnitude[:, banded.bin_start : banded.bin_stop].T)
        )
        assert mel_t.dtype == dtype
        np.testing.assert_allclose(
            mel_t.T, magnitude @ dense, rtol=1e-5 if dtype == np.float32 else 1e-12
        )


@pytest.mark.parametrize(("fmin", "fmax"), [(-1.0, 7500.0), (7500.0, 7500.0), (125.0, 8001.0)])
def test_mel_weights_rejects_bad_edges(fmin: float, fmax: float) -> None:
    with pytest.raises(ValueError, match="fmin"):
        mel_weights(64, 512, SR, fmin, fmax)


# --- behaviour ---


def test_periodic_hann() -> None:
    window = periodic_hann(400)
    assert window[0] == 0.0 and window[200] == 1.0
    np.testing.assert_allclose(window[1:200], window[399:200:-1], atol=1e-15)


def test_one_khz_tone_peaks_in_its_band() -> None:
    examples = waveform_to_examples(0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(2 * SR) / SR), SR)
    peak = examples.mean(axis=(0, 1)).argmax()
    edges_hz = 700.0 * (
        np.exp(np.linspace(hz_to_mel_htk(125.0), hz_to_mel_htk(7500.0), 66) / 1127) - 1
    )
    assert edges_hz[peak] < 1000.0 < edges_hz[peak + 2]
    assert abs(edges_hz[peak + 1] - 1000.0) < abs(edges_hz[peak + 2] - 1000.0)


@pytest.mark.parametrize(
    ("seconds", "expected"), [(10.0, 10), (0.95, 0), (0.975, 1), (1.92, 1), (1.935, 2)]
)
def test_number_of_examples(seconds: float, expected: int) -> None:
    x = noise(round(seconds * SR))
    assert waveform_to_examples(x, SR, mode="fast").shape == (expected, 96, 64)


def test_frame_and_example_counts() -> None:
    assert [frame_count(n) for n in (0, 399, 400, 559, 560, 160000)] == [0, 0, 1, 1, 2, 998]
    assert [example_count(n) for n in (0, 95, 96, 191, 192, 998)] == [0, 0, 1, 1, 2, 10]


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_int16_and_float_input_agree(mode: str) -> None:
    x16 = np.round(noise(2 * SR) * 20000).astype(np.int16)
    as_int = waveform_to_examples(x16, SR, mode=mode)
    as_float = waveform_to_examples(x16 / 32768.0, SR, mode=mode)
    np.testing.assert_array_equal(as_int, as_float)
    np.testing.assert_allclose(as_int, ref_examples(x16 / 32768.0), atol=TOLERANCE[mode], rtol=0)


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_stereo_is_downmixed_by_mean(mode: str) -> None:
    stereo = np.round(np.stack([noise(2 * SR, 1), tones(2 * SR)], axis=1) * 15000).astype(np.int16)
    ours = waveform_to_examples(stereo, SR, mode=mode)
    np.testing.assert_array_equal(
        ours, waveform_to_examples((stereo / 32768.0).mean(axis=1), SR, mode=mode)
    )
    expected = ref_examples((stereo / 32768.0).mean(axis=1))
    np.testing.assert_allclose(ours, expected, atol=TOLERANCE[mode], rtol=0)


def test_resampy_path() -> None:
    # One test, so that one xdist worker pays for resampy's numba compilation.
    import resampy

    x44 = tones(int(1.5 * 44100), sr=44100) + 0.1 * noise(int(1.5 * 44100))
    ours = waveform_to_examples(x44, 44100, resampler="resampy")
    x16 = resampy.resample(x44, 44100, SR, filter="kaiser_best")
    np.testing.assert_array_equal(ours, waveform_to_examples(x16, SR))
    np.testing.assert_allclose(ours, ref_examples(x16), atol=1e-4, rtol=0)
    np.testing.assert_array_equal(ours, waveform_to_examples(x44, 44100))  # exact's default

    by_soxr = waveform_to_examples(x44, 44100, resampler="soxr")
    assert by_soxr.shape == ours.shape
    assert 0.0 < np.abs(ours - by_soxr).max() < 3.0, "other resamplers move values by up to ~2"

    clips = np.round(np.stack([noise(int(1.3 * 32000), s) for s in range(3)]) * 9000)
    clips = clips.astype(np.int16)
    batched = batch_waveform_to_examples(clips, 32000, workers=2, clips_per_chunk=2)
    np.testing.assert_array_equal(
        batched, np.stack([waveform_to_examples(c, 32000) for c in clips])
    )


def test_soxr_is_the_fast_default() -> None:
    x32 = noise(int(1.2 * 32000), 3)
    ours = waveform_to_examples(x32, 32000, mode="fast")
    x16 = soxr.resample(x32.astype(np.float32), 32000, SR, quality="HQ")
    np.testing.assert_array_equal(ours, waveform_to_examples(x16, SR, mode="fast"))


@pytest.mark.parametrize(
    ("mode", "rate"),
    [("exact", SR), ("fast", SR), ("exact", 32000), ("fast", 32000), ("fast", 22050)],
)
def test_batched_equals_per_clip(mode: str, rate: int) -> None:
    clips = np.round(np.stack([noise(int(1.3 * rate), s) for s in range(5)]) * 9000)
    clips = clips.astype(np.int16)
    kwargs = {"mode": mode, "resampler": "soxr"}  # resampy: see test_resampy_path
    batched = batch_waveform_to_examples(clips, rate, workers=2, clips_per_chunk=3, **kwargs)
    per_clip = np.stack([waveform_to_examples(c, rate, **kwargs) for c in clips])
    assert batched.shape == (5, 1, 96, 64)
    np.testing.assert_array_equal(batched, per_clip)


def test_batched_long_clips_across_blocks_and_threads() -> None:
    clips = np.stack([tones(4 * SR), noise(4 * SR, 1), noise(4 * SR, 2)])
    expected = np.stack([ref_examples(c) for c in clips])
    for workers in (3, 1):
        ours = batch_waveform_to_examples(clips, SR, workers=workers)
        np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(
        batch_waveform_to_examples(clips, SR, workers=3), batch_waveform_to_examples(clips, SR)
    )
    # float64 clips are converted for fast mode, in chunks
    fast = batch_waveform_to_examples(clips, SR, mode="fast", workers=2, clips_per_chunk=2)
    np.testing.assert_array_equal(fast, [waveform_to_examples(c, SR, mode="fast") for c in clips])


def test_too_short_or_empty_batches() -> None:
    assert batch_waveform_to_examples(np.zeros((3, 100), np.int16), 44100).shape == (3, 0, 96, 64)
    assert batch_waveform_to_examples(np.zeros((0, 20000)), SR).shape == (0, 0, 96, 64)
    assert log_mel(np.zeros(399)).shape == (0, 64)
    assert waveform_to_examples(np.zeros(1, np.int16), 8000).shape == (0, 96, 64)


def test_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="int16"):
        waveform_to_examples(np.zeros(20000, np.int32), SR)
    with pytest.raises(ValueError, match="dimensions"):
        waveform_to_examples(np.zeros((2, 2, 20000)), SR)
    with pytest.raises(ValueError, match="dimensions"):
        batch_waveform_to_examples(np.zeros(20000), SR)
    with pytest.raises(ValueError, match="mode"):
        waveform_to_examples(np.zeros(20000), SR, mode="slow")
    with pytest.raises(ValueError, match="resampler"):
        waveform_to_examples(np.zeros(20000), 44100, resampler="librosa")
    with pytest.raises(ValueError, match="positive"):
        waveform_to_examples(np.zeros(20000), SR, workers=0)
    with pytest.raises(ValueError, match="positive"):
        log_mel(np.zeros(400), workers=0)
    with pytest.raises(ValueError, match="positive"):
        waveform_to_examples(np.zeros(20000), 0)


def test_provenance() -> None:
    exact = frontend_provenance()
    assert exact["mode"] == "exact" and exact["resampler"] == "resampy kaiser_best"
    assert exact["dtype"] == "float64"
    fast = frontend_provenance("fast")
    assert fast["resampler"] == "soxr HQ" and fast["dtype"] == "float32"
    assert json.loads(json.dumps(fast)) == fast
    assert {k: fast[k] for k in FRONTEND_PARAMS} == FRONTEND_PARAMS
    assert (FRONTEND_PARAMS["window_length"], FRONTEND_PARAMS["hop_length"]) == (400, 160)
    assert (FRONTEND_PARAMS["fft_length"], FRONTEND_PARAMS["num_bands"]) == (512, 64)
