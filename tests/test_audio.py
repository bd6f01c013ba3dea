"""Tests for pipelines.audio: decoding every container, fallbacks, failures and array transforms."""

from __future__ import annotations

import math
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pipelines import audio
from pipelines.audio import (
    clip_stats,
    decode,
    fix_length,
    float_to_int16,
    int16_to_float,
    int16_waveform,
    prepare_clip,
    resample,
    to_mono,
    trim_early_start,
)
from pipelines.ffmpeg import ffmpeg_executable
from schemas.failures import ClipFailure, FailureReason
from tests.media import make_signal, write_media

FREQ = 300.0
CASES = [  # (extension, sample rate, channels)
    ("aiff", 2000, 1),
    ("wav", 8000, 1),
    ("wav", 16000, 2),
    ("flac", 22050, 6),
    ("ogg", 44100, 2),
    ("mp3", 48000, 2),
    ("flac", 96000, 2),
    ("wav", 44100, 6),
    ("ogg", 8000, 1),
    ("mp3", 16000, 1),
]
LOSSY = {"ogg", "mp3", "m4a", "webm"}


def _tone_levels(x: np.ndarray, sr: int, freqs: list[float]) -> np.ndarray:
    """Spectral magnitude at each of ``freqs`` relative to the median magnitude."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    bins = np.fft.rfftfreq(len(x), 1 / sr)
    return np.array([spectrum[np.argmin(np.abs(bins - f))] for f in freqs]) / np.median(spectrum)


def _channel_freqs(channels: int) -> list[float]:
    return [FREQ * (1 + 0.1 * c) for c in range(channels)]  # as tests.media.make_signal


def _ffmpeg_encode(src: Path, dst: Path, *codec: str) -> Path:
    subprocess.run(
        [ffmpeg_executable(), "-nostdin", "-v", "error", "-y", "-i", str(src), *codec, str(dst)],
        check=True,
    )
    return dst


@pytest.mark.parametrize(("ext", "sr", "channels"), CASES)
def test_decode_every_container(tmp_path: Path, ext: str, sr: int, channels: int) -> None:
    path = write_media(tmp_path / f"tone.{ext}", 1.5, sr, channels, FREQ)
    decoded = decode(path)
    assert decoded.decoder == "soundfile"
    assert decoded.sample_rate == sr
    assert decoded.channels == channels
    assert decoded.samples.shape == (round(1.5 * sr), channels)
    assert decoded.samples.dtype == np.float32
    assert decoded.format.startswith({"aiff": "aiff", "ogg": "ogg"}.get(ext, ext))
    if ext not in LOSSY:
        expected = make_signal(1.5, sr, channels, FREQ)
        np.testing.assert_allclose(decoded.samples, expected, atol=1 / 32768 + 1e-6)


@pytest.mark.parametrize(
    ("subtype", "container"),
    [
        ("PCM_16", "WAV"),
        ("PCM_24", "FLAC"),
        ("PCM_U8", "WAV"),
        ("PCM_S8", "AIFF"),
        ("FLOAT", "WAV"),
    ],
)
def test_decode_gives_libsndfiles_float_values_for_every_pcm_width(
    tmp_path: Path, subtype: str, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    signal = rng.uniform(-1.0, 1.0, (4410, 2)).astype(np.float32)
    signal[:4] = [[-1.0, 1.0], [0.0, -0.0], [2.0**-15, -(2.0**-15)], [0.999, -0.999]]
    path = tmp_path / f"noise.{container.lower()}"
    sf.write(path, signal, 44100, subtype=subtype, format=container)
    want = sf.read(path, dtype="float32", always_2d=True)[0]
    read_as = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, dtype="float64", **kwargs):
        read_as.append(dtype)
        return real_read(self, frames, dtype, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    got = decode(path, 0.01, 0.09)
    assert got.samples.dtype == np.float32
    np.testing.assert_array_equal(got.samples, want[441:3969])
    np.testing.assert_array_equal(decode(path).samples, want)
    integer = {"PCM_24": "int32", "FLOAT": "float32"}.get(subtype, "int16")
    assert read_as == [integer, integer]  # integers are scaled here, floats read as they are


@pytest.mark.parametrize(("ext", "sr", "channels"), CASES)
def test_prepare_clip_keeps_tones(tmp_path: Path, ext: str, sr: int, channels: int) -> None:
    path = write_media(tmp_path / f"tone.{ext}", 1.5, sr, channels, FREQ)
    clip = prepare_clip(path, target_sr=16000, clip_seconds=2.0)
    assert clip.waveform.dtype == np.int16
    assert clip.waveform.shape == (32000,)
    assert clip.num_samples == 24000
    assert not clip.waveform[24000:].any()
    assert (clip.source_sample_rate, clip.source_channels) == (sr, channels)
    assert clip.delivered_seconds == clip.requested_seconds == pytest.approx(1.5)
    real = int16_to_float(clip.waveform[: clip.num_samples])
    assert (_tone_levels(real, 16000, _channel_freqs(channels)) > 50).all()
    assert clip.stats["duration_s"] == pytest.approx(1.5)
    assert 0.2 < clip.stats["peak"] < 1


@pytest.mark.parametrize(("sr", "channels", "target_sr"), [(44100, 2, 16000), (8000, 1, 8000)])
def test_int16_waveform_is_the_clip_ingest_stores_uncut(
    tmp_path: Path, sr: int, channels: int, target_sr: int
) -> None:
    path = write_media(tmp_path / "tone.wav", 1.5, sr, channels, FREQ)
    clip = prepare_clip(path, target_sr=target_sr, clip_seconds=2.0)
    waveform = int16_waveform(decode(path), target_sr)
    assert waveform.dtype == np.int16
    assert len(waveform) == clip.num_samples
    np.testing.assert_array_equal(waveform, clip.waveform[: clip.num_samples])


def test_downmix_is_channel_mean(tmp_path: Path) -> None:
    path = write_media(tmp_path / "six.wav", 0.5, 8000, 6, FREQ)
    decoded = decode(path)
    np.testing.assert_allclose(to_mono(decoded.samples), decoded.samples.mean(axis=1), atol=1e-7)
    assert to_mono(decoded.samples).shape == (4000,)
    mono = np.arange(5.0)
    assert to_mono(mono) is mono
    for channels in (1, 2, 3):
        x = np.random.default_rng(channels).standard_normal((100, channels)).astype(np.float32)
        np.testing.assert_allclose(to_mono(x), x.mean(axis=1), atol=1e-6)
        assert not np.shares_memory(to_mono(x), x)


def test_clip_stats_float32_agrees_with_float64() -> None:
    x = np.random.default_rng(4).standard_normal(32_123) * 0.2
    x[:4000] *= 1e-4  # one silent frame and a bit
    x[10_000] = 1.0  # one clipped sample
    stats32, stats64 = clip_stats(x.astype(np.float32), 8000), clip_stats(x, 8000)
    assert stats32.keys() == stats64.keys()
    for key, value in stats64.items():
        assert stats32[key] == pytest.approx(value, rel=1e-5), key
    assert stats64["clipping_ratio"] == 1 / 32_123
    assert stats64["silence_ratio"] == 5 / 41  # of 40 frames of 800 samples and a short one


def test_start_end_cut_is_sample_exact(tmp_path: Path) -> None:
    sr = 22050
    path = write_media(tmp_path / "tone.wav", 3.0, sr, 2, FREQ)
    whole, _ = sf.read(path, dtype="float32", always_2d=True)
    for start, end in [(0.25, 1.75), (1.0001, 2.9999), (0.0, 0.5), (2.5, 3.0)]:
        cut = decode(path, start, end)
        np.testing.assert_array_equal(cut.samples, whole[round(start * sr) : round(end * sr)])
    np.testing.assert_array_equal(decode(path, 2.0).samples, whole[2 * sr :])
    np.testing.assert_array_equal(decode(path, None, 1.0).samples, whole[:sr])


@pytest.mark.parametrize(
    ("ext", "codec", "src_sr", "sr", "fmt"),
    [
        ("m4a", ["-c:a", "aac"], 44100, 44100, "mov/aac"),
        # Opus from a 16 kHz source: the stream starts at 13 ms, not 0, which cuts must ignore.
        ("webm", ["-c:a", "libopus"], 16000, 48000, "matroska/opus"),
    ],
)
def test_ffmpeg_fallback_for_youtube_containers(
    tmp_path: Path, ext: str, codec: list[str], src_sr: int, sr: int, fmt: str
) -> None:
    src = write_media(tmp_path / "src.wav", 2.0, src_sr, 2, FREQ)
    path = _ffmpeg_encode(src, tmp_path / f"tone.{ext}", *codec)
    with pytest.raises(sf.LibsndfileError):
        sf.info(path)
    decoded = decode(path)
    assert decoded.decoder == "ffmpeg"
    assert decoded.format == fmt
    assert (decoded.sample_rate, decoded.channels) == (sr, 2)
    assert abs(len(decoded.samples) - 2.0 * sr) < 0.05 * sr
    for start, end in [(0.5, 1.5), (0.0101, 1.3337)]:
        cut = decode(path, start, end)
        expected = decoded.samples[round(start * sr) : round(end * sr)]
        np.testing.assert_array_equal(cut.samples, expected)
    clip = prepare_clip(path, target_sr=32000, clip_seconds=1.0, start_s=0.5, end_s=1.5)
    assert clip.decoder == "ffmpeg"
    assert clip.num_samples == 32000
    levels = _tone_levels(int16_to_float(clip.waveform), 32000, _channel_freqs(2))
    assert (levels > 50).all()


def test_ffmpeg_fallback_for_lying_wav_header(tmp_path: Path) -> None:
    sr = 16000
    path = write_media(tmp_path / "tone.wav", 2.0, sr, 2, FREQ)
    whole, _ = sf.read(path, dtype="float32", always_2d=True)
    raw = bytearray(path.read_bytes())
    assert raw[36:40] == b"data"
    raw[4:8] = raw[40:44] = struct.pack("<I", 0)  # as left by a writer that could not seek back
    lying = tmp_path / "lying.wav"
    lying.write_bytes(raw)
    decoded = decode(lying)
    assert decoded.decoder == "ffmpeg"
    assert (decoded.sample_rate, decoded.channels) == (sr, 2)
    np.testing.assert_allclose(decoded.samples, whole, atol=1e-6)
    for start, end in [(0.5, 1.5), (1.0001, 1.9999)]:
        cut = decode(lying, start, end)
        assert cut.decoder == "ffmpeg"
        expected = whole[round(start * sr) : round(end * sr)]
        np.testing.assert_allclose(cut.samples, expected, atol=1e-6)


def test_truncated_file_decodes_what_is_there(tmp_path: Path) -> None:
    path = write_media(tmp_path / "tone.wav", 2.0, 8000, 1, FREQ)
    whole, _ = sf.read(path, dtype="float32", always_2d=True)
    path.write_bytes(path.read_bytes()[: 44 + 2 * 8000])  # header still claims 2 s
    decoded = decode(path)
    np.testing.assert_array_equal(decoded.samples, whole[:8000])
    with pytest.raises(ClipFailure) as info:
        prepare_clip(path, target_sr=8000, clip_seconds=2.0, start_s=0.0, end_s=2.0)
    assert info.value.reason is FailureReason.TOO_SHORT


@pytest.mark.parametrize(
    "content",
    [b"", b"not audio at all\n" * 100, b"RIFF\x00\x00\x00\x00WAVEfmt garbage" + bytes(300)],
    ids=["empty", "text", "corrupt-wav"],
)
def test_unreadable_files_are_decode_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad clip.wav"
    path.write_bytes(content)
    with pytest.raises(ClipFailure) as info:
        decode(path)
    assert info.value.reason is FailureReason.DECODE_ERROR
    assert str(path) in info.value.detail


def test_header_only_wav_is_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros((0, 1), np.float32), 16000, subtype="PCM_16")
    with pytest.raises(ClipFailure) as info:
        decode(path)
    assert info.value.reason is FailureReason.DECODE_ERROR
    assert "0 frames" in info.value.detail


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ClipFailure) as info:
        decode(tmp_path / "nope.flac")
    assert info.value.reason is FailureReason.NOT_FOUND


def test_ffmpeg_timeout_is_decode_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "junk.bin"
    path.write_bytes(b"junk" * 100)
    monkeypatch.setattr(audio, "FFMPEG_TIMEOUT_S", 1e-6)
    with pytest.raises(ClipFailure, match="ffmpeg took over") as info:
        decode(path)
    assert info.value.reason is FailureReason.DECODE_ERROR


def test_invalid_bounds_raise(tmp_path: Path) -> None:
    path = write_media(tmp_path / "tone.wav", 1.0, 8000)
    for start, end in [(-1.0, 0.5), (0.5, 0.5), (0.6, 0.2)]:
        with pytest.raises(ValueError, match="start_s < end_s"):
            decode(path, start, end)
    with pytest.raises(ValueError, match="needs end_s"):
        prepare_clip(path, target_sr=8000, clip_seconds=1.0, precut=True)


def test_too_short_and_start_past_end(tmp_path: Path) -> None:
    path = write_media(tmp_path / "five.flac", 5.0, 16000, 2, FREQ)
    with pytest.raises(ClipFailure) as info:
        prepare_clip(path, target_sr=16000, clip_seconds=10.0, start_s=0.0, end_s=10.0)
    assert info.value.reason is FailureReason.TOO_SHORT
    assert "5.000 s" in info.value.detail and "10.000 s" in info.value.detail
    for start in (5.0, 8.0):
        with pytest.raises(ClipFailure) as info:
            prepare_clip(path, target_sr=16000, clip_seconds=2.0, start_s=start, end_s=start + 2)
        assert info.value.reason is FailureReason.TOO_SHORT
    clip = prepare_clip(path, target_sr=16000, clip_seconds=10.0, start_s=0.5, end_s=5.0)
    assert clip.num_samples == 4.5 * 16000
    assert clip.requested_seconds == clip.delivered_seconds == pytest.approx(4.5)


def test_without_end_reads_at_most_one_clip(tmp_path: Path) -> None:
    path = write_media(tmp_path / "long.wav", 3.0, 8000, 1, FREQ)
    clip = prepare_clip(path, target_sr=16000, clip_seconds=1.0, start_s=0.5)
    assert clip.delivered_seconds == clip.requested_seconds == pytest.approx(1.0)
    assert clip.num_samples == 16000
    short = prepare_clip(path, target_sr=16000, clip_seconds=10.0)
    assert short.requested_seconds == pytest.approx(3.0)
    assert short.num_samples == 48000


def test_trim_early_start() -> None:
    x = np.arange(1130.0)
    y, trimmed = trim_early_start(x, 100, 10.0)
    np.testing.assert_array_equal(y, x[130:])
    assert trimmed == pytest.approx(1.3)
    same, zero = trim_early_start(x[:1004], 100, 10.0)
    assert len(same) == 1004 and zero == 0.0
    stereo, _ = trim_early_start(np.ones((1200, 2)), 100, 10.0)
    assert stereo.shape == (1000, 2)


def test_precut_clip_that_started_early(tmp_path: Path) -> None:
    sr = 16000
    path = write_media(tmp_path / "section.wav", 11.3, sr, 1, FREQ)
    whole, _ = sf.read(path, dtype="float32")
    clip = prepare_clip(
        path, target_sr=sr, clip_seconds=10.0, start_s=30.0, end_s=40.0, precut=True
    )
    assert clip.early_start_trimmed_s == pytest.approx(1.3)
    assert clip.delivered_seconds == pytest.approx(11.3)
    assert clip.requested_seconds == pytest.approx(10.0)
    np.testing.assert_array_equal(clip.waveform, float_to_int16(whole[-10 * sr :]))
    late = write_media(tmp_path / "late.wav", 8.0, sr, 1, FREQ)
    with pytest.raises(ClipFailure) as info:
        prepare_clip(late, target_sr=sr, clip_seconds=10.0, start_s=30, end_s=40, precut=True)
    assert info.value.reason is FailureReason.TOO_SHORT


def test_clip_stats() -> None:
    sr = 1000
    t = np.arange(2 * sr) / sr
    sine = np.sin(2 * np.pi * 50 * t)
    stats = clip_stats(sine, sr)
    assert stats["peak"] == pytest.approx(1.0, abs=1e-9)
    assert stats["rms_dbfs"] == pytest.approx(-3.0103, abs=1e-3)
    assert stats["silence_ratio"] == 0.0
    assert stats["duration_s"] == 2.0
    assert stats["clipping_ratio"] == pytest.approx(0.1)  # 2 of every 20 samples within 0.1%
    half = np.concatenate([np.full(sr, 0.5), np.full(sr, 1e-4)])
    assert clip_stats(half, sr)["silence_ratio"] == 0.5
    assert clip_stats(np.ones(250), sr)["clipping_ratio"] == 1.0
    zeros = clip_stats(np.zeros(150), sr)
    assert zeros["silence_ratio"] == 1.0 and zeros["rms_dbfs"] == -200.0
    with pytest.raises(ValueError):
        clip_stats(np.zeros(0), sr)


def test_float_to_int16_extremes() -> None:
    x = np.array([-2.0, -1.0, -0.25, 0.0, 0.7 / 32767, 1.0, 3.0, np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(
        float_to_int16(x), [-32767, -32767, -8192, 0, 1, 32767, 32767, 0, 32767, -32767]
    )


def test_clip_stats_measure_peak_and_clipping_on_the_source_when_given() -> None:
    sr = 1000
    x = np.full(1000, 0.5)
    source = np.zeros((500, 2))
    source[:10, 1] = -1.0
    stats = clip_stats(x, sr, source=source)
    assert stats["peak"] == 1.0 and stats["clipping_ratio"] == 10 / 1000
    assert stats["rms_dbfs"] == pytest.approx(20 * np.log10(0.5))
    assert stats["silence_ratio"] == 0.0 and stats["duration_s"] == 1.0


@pytest.mark.parametrize(
    ("subtype", "container", "dtype", "scale"),
    [
        ("PCM_16", "WAV", np.int16, 2.0**-15),
        ("PCM_U8", "WAV", np.int16, 2.0**-15),
        ("PCM_S8", "AIFF", np.int16, 2.0**-15),
        ("PCM_24", "FLAC", np.int32, 2.0**-31),
    ],
)
def test_integer_files_measure_peak_and_clipping_as_their_floats(
    tmp_path: Path, subtype: str, container: str, dtype: type, scale: float
) -> None:
    sr = 8000
    t = np.arange(2 * sr) / sr
    loud = np.clip(1.3 * np.sin(2 * np.pi * 200 * t), -1, 1)  # a tenth of the samples clip
    for name, signal in (("loud", loud), ("quiet", 0.25 * loud), ("negative", loud.clip(-1, 0))):
        stereo = np.stack([signal, -0.5 * signal], axis=1)
        path = tmp_path / f"{name}-{subtype}.{container.lower()}"
        sf.write(path, stereo, sr, subtype=subtype, format=container)
        decoded = decode(path)
        assert decoded.integers is not None and decoded.integers.dtype == dtype
        assert decoded.integer_scale == scale
        np.testing.assert_array_equal(
            decoded.integers.astype(np.float32) * np.float32(scale), decoded.samples
        )
        clip = prepare_clip(path, target_sr=16000, clip_seconds=2.0)
        mono = resample(to_mono(decoded.samples), sr, 16000)
        assert clip.stats == clip_stats(mono, 16000, source=decoded.samples)
        assert (clip.stats["clipping_ratio"] > 0.01) == (name != "quiet")


def test_the_integer_clipping_level_is_the_float_one() -> None:
    every_int16 = np.arange(-32768, 32768, dtype=np.int16)[:, None]
    floats = every_int16.astype(np.float32) * np.float32(2.0**-15)
    level = audio._clipping_integer(2.0**-15)
    assert np.array_equal(
        np.abs(floats) >= audio.CLIPPING_LEVEL, np.abs(every_int16.astype(int)) >= level
    )
    near = np.arange(-(2**31), -(2**31) + 2**24, 256, dtype=np.int64)
    near = np.concatenate([near, -near - 256, np.arange(2**31 - 2**22, 2**31 - 255, 1 << 8)])
    ints = near.astype(np.int32)[:, None]
    peak, ratio = audio._integer_peak_and_clipping(ints, 2.0**-31)
    assert (peak, ratio) == audio._peak_and_clipping(ints.astype(np.float32) * np.float32(2.0**-31))
    assert ratio > 0


def test_a_float_file_has_no_integers(tmp_path: Path) -> None:
    path = tmp_path / "float.wav"
    sf.write(path, np.zeros(800, np.float32), 8000, subtype="FLOAT")
    decoded = decode(path)
    assert decoded.integers is None and decoded.integer_scale == 0.0


def test_loud_audio_is_not_clipped_by_the_resampler_overshoot(tmp_path: Path) -> None:
    sr = 44100
    t = np.arange(3 * sr) / sr
    square = 0.9 * np.sign(np.sin(2 * np.pi * 440 * t))
    path = tmp_path / "square.wav"
    sf.write(path, square.astype(np.float32), sr, subtype="PCM_16")
    clip = prepare_clip(path, target_sr=32000, clip_seconds=3.0)
    assert abs(clip.stats["peak"] - 0.9) < 1e-4
    assert clip.stats["clipping_ratio"] == 0.0
    assert np.abs(clip.waveform.astype(np.int32)).max() == 32767  # the overshoot is clipped


def test_resample_identity_and_channels() -> None:
    x = np.random.default_rng(0).standard_normal((1000, 2)).astype(np.float32)
    assert resample(x, 16000, 16000) is x
    y = resample(x, 16000, 32000)
    assert y.shape == (2000, 2)
    np.testing.assert_allclose(y[:, 1], resample(x[:, 1], 16000, 32000), atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.float32, st.integers(0, 300), elements=st.floats(-1, 1, width=32)),
    n=st.integers(0, 400),
)
def test_fix_length_property(x: np.ndarray, n: int) -> None:
    y, true_length = fix_length(x, n)
    assert y.shape == (n,)
    assert true_length == min(len(x), n)
    np.testing.assert_array_equal(y[:true_length], x[:true_length])
    assert not y[true_length:].any()


RATES = st.sampled_from([2000, 8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000])


@settings(max_examples=40, deadline=None)
@given(
    orig=RATES,
    target=RATES,
    n=st.integers(1, 5000),
    level=st.floats(-0.9, 0.9),
)
def test_resample_length_and_dc_property(orig: int, target: int, n: int, level: float) -> None:
    y = resample(np.full(n, level, np.float32), orig, target)
    assert abs(len(y) - round(n * target / orig)) <= 1
    edge = math.ceil(60 * target / min(orig, target))  # HQ settles in ~44 samples at the lower rate
    if len(y) > 2 * edge:
        np.testing.assert_allclose(y[edge:-edge], level, atol=1e-3)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 200), elements=st.floats(-4, 4)))
def test_int16_round_trip_property(x: np.ndarray) -> None:
    q = float_to_int16(x)
    assert q.dtype == np.int16
    assert (np.abs(q.astype(np.int32)) <= 32767).all()
    error = np.abs(int16_to_float(q) - np.clip(x, -1, 1))
    assert (error <= 0.5 / 32767 + 1e-7).all()  # rounding, plus float32 precision
