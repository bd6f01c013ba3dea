"""Decode, downmix, resample and fix the length of one clip.

Everything the ingest pipeline does to a fetched file between the download and the shard writer is
here, as plain functions on arrays, so a Beam ``DoFn`` and a unit test call the same code.

Decoding tries libsndfile (through ``soundfile``) first: it reads WAV, FLAC, OGG, MP3 and AIFF
in-process and can seek, so a ``[start, end)`` cut reads only the frames it needs. Anything it
cannot read, or reads to nothing, goes to ffmpeg: the containers YouTube serves (m4a, webm, opus)
and files whose header lies about their length, as happens when a section is stream-copied to a
pipe. ffmpeg writes a float WAV to its stdout, which ``soundfile`` reads from memory, so sample
rate and channel count come from a binary header rather than from parsing ffmpeg's log.

libsndfile's MP3 decoder, libmpg123, writes notes about a damaged file to file descriptor 2
(``Note: Illegal Audio-MPEG-Header ...``, ``Note: Trying to resync...``), among the progress bar
and our own messages, although what it says is in the clip's failure already or harmless. Those
lines are dropped while libsndfile decodes (:data:`MPG123_LINE`); every other line passes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

from pipelines.stderr_filter import StderrLineFilter
from schemas.failures import ClipFailure, FailureReason

INT16_SCALE = 32767
"""Full scale used by :func:`float_to_int16` and :func:`int16_to_float`."""

CLIPPING_LEVEL = 0.999
"""Magnitude at or above which a sample counts as clipped."""

SILENCE_DBFS = -60.0
"""RMS level below which a 100 ms frame counts as silent."""

SILENCE_FRAME_S = 0.1
"""Frame length of the silence measure, in seconds."""

RMS_FLOOR = 1e-10
"""RMS used for digital silence so ``rms_dbfs`` stays finite (-200 dBFS)."""

MIN_TARGET_SAMPLE_RATE = 1000
"""Lowest output rate: a 100 ms silence frame still holds 100 samples."""

MAX_TARGET_SAMPLE_RATE = 384000
"""Highest output rate, the highest plausible source rate."""

FFMPEG_TIMEOUT_S = 300.0
"""Longest an ffmpeg decode may run before the clip is failed."""

SECTION_TS_OFFSET_S = 10
"""Seconds added to every timestamp of a fetched section (:func:`decode_section`): NUT stores
no negative timestamp, and the packets before a source's first sample have them (an MP3's
encoder delay, Opus pre-skip, AAC priming: each well under a second)."""

NUT_SYNCPOINT = bytes.fromhex("4e4be4adeeca4569")
"""The start code NUT writes before the first frame (and then every few frames)."""

Decoder = Literal["soundfile", "ffmpeg"]


@dataclass(frozen=True)
class DecodedAudio:
    """Audio as decoded from a file, at its own rate and channel count.

    Attributes
    ----------
    samples : np.ndarray [shape=(frames, channels), dtype=float32]
        Samples in [-1, 1] (a float source may exceed it).
    sample_rate : int
        Frames per second, in Hz.
    channels : int
        Number of channels.
    format : str
        ``"<container>/<codec>"`` in lower case, e.g. ``"flac/pcm_16"``, ``"mov/aac"``;
        the codec is ``"unknown"`` when ffmpeg did not name it.
    decoder : {'soundfile', 'ffmpeg'}
        Which decoder produced the samples.
    integers : np.ndarray [shape=(frames, channels), dtype=int16 or int32], optional
        The integer samples that ``samples`` were scaled from, for a file of integer PCM:
        ``samples == integers * integer_scale`` exactly. Measures that need no float, as the
        peak, read them at half the memory traffic or less.
    integer_scale : float
        The power of two that scales ``integers`` to ``samples`` (0 without ``integers``).
    """

    samples: np.ndarray
    sample_rate: int
    channels: int
    format: str
    decoder: Decoder
    integers: np.ndarray | None = None
    integer_scale: float = 0.0


@dataclass(frozen=True)
class PreparedClip:
    """One clip ready for a shard, with what was measured on the way.

    Attributes
    ----------
    waveform : np.ndarray [shape=(T,), dtype=int16]
        Mono audio at the target rate, zero-padded or trimmed to ``T = target_sr * clip_seconds``.
    num_samples : int
        Real (not padding) samples in ``waveform``.
    source_sample_rate : int
        Sample rate of the decoded file, in Hz.
    source_channels : int
        Channel count of the decoded file.
    source_format : str
        ``DecodedAudio.format`` of the file.
    delivered_seconds : float
        Duration decoded of what was requested (for a precut file: of the whole file, before
        early-start trimming).
    requested_seconds : float
        Duration asked for: ``end_s - start_s``, or the file's own duration capped at the clip
        length.
    early_start_trimmed_s : float
        Seconds dropped from the start of a precut file longer than requested; 0 otherwise.
    stats : dict[str, float]
        :func:`clip_stats` of the resampled audio before padding, its peak and clipping
        measured on the decoded file's samples.
    decoder : {'soundfile', 'ffmpeg'}
        Which decoder read the file.
    """

    waveform: np.ndarray
    num_samples: int
    source_sample_rate: int
    source_channels: int
    source_format: str
    delivered_seconds: float
    requested_seconds: float
    early_start_trimmed_s: float
    stats: dict[str, float]
    decoder: Decoder


def decode(
    path: str | os.PathLike[str], start_s: float | None = None, end_s: float | None = None
) -> DecodedAudio:
    """Decode ``[start_s, end_s)`` of an audio file at its native rate and channel count.

    Parameters
    ----------
    path : str or PathLike
        A local audio file.
    start_s, end_s : float or None
        Bounds of the cut, in seconds; ``None`` means the start or the end of the file. The cut
        is sample-exact: frames ``round(start_s * sr)`` up to ``round(end_s * sr)`` counted from
        the first decoded frame. ``soundfile`` seeks to them; ffmpeg decodes what precedes them
        and drops it.

    Returns
    -------
    DecodedAudio
        At least one frame of audio.

    Raises
    ------
    ClipFailure
        ``NOT_FOUND`` if ``path`` does not exist; ``TOO_SHORT`` if the audio ends before
        ``start_s``; ``DECODE_ERROR`` if the file is empty, not audio, corrupt, or yields no
        frames. The detail names the file.
    ValueError
        If the bounds are negative or ``end_s <= start_s``.
    """
    if (start_s is not None and start_s < 0) or (end_s is not None and end_s <= (start_s or 0)):
        raise ValueError(f"need 0 <= start_s < end_s, got start_s={start_s}, end_s={end_s}")
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ClipFailure(FailureReason.NOT_FOUND, f"{path}: no such file") from None
    if size == 0:
        raise ClipFailure(FailureReason.DECODE_ERROR, f"{path}: file is empty (0 bytes)")
    try:
        audio = _decode_soundfile(path, start_s, end_s)
    except (RuntimeError, ValueError):  # soundfile.LibsndfileError is a RuntimeError
        pass
    else:
        if len(audio.samples):
            return audio
    audio = _decode_ffmpeg(path, start_s, end_s)
    if len(audio.samples):
        return audio
    raise _no_frames(path, start_s)


def decode_section(path: str | os.PathLike[str], start_s: float, end_s: float) -> DecodedAudio:
    """Decode ``[start_s, end_s)`` of a fetched section, on its source's timeline.

    Parameters
    ----------
    path : str or PathLike
        A NUT file of packets stream-copied from the source with their timestamps, shifted
        by :data:`SECTION_TS_OFFSET_S` (as :func:`pipelines.fetch.fetch_media` writes one),
        from before ``start_s`` (which primes a lossy decoder) to past ``end_s``.
    start_s, end_s : float
        Bounds of the cut, in seconds of the source. The cut is that of :func:`decode` on the
        whole source: frames ``round(start_s * sr)`` up to ``round(end_s * sr)``.

    Returns
    -------
    DecodedAudio
        At least one frame of audio; fewer than asked where the source ends before ``end_s``.

    Raises
    ------
    ClipFailure
        As :func:`decode`: ``TOO_SHORT`` when the source has no audio at or after ``start_s``.
    """
    path = Path(path)
    if not holds_nut_frames(path):
        raise _no_frames(path, start_s)
    bounds = f"start={start_s + SECTION_TS_OFFSET_S:.6f}:end={end_s + SECTION_TS_OFFSET_S:.6f}"
    audio = _run_ffmpeg(path, ["-copyts"], f"atrim={bounds}")
    if len(audio.samples):
        return audio
    raise _no_frames(path, start_s)


def holds_nut_frames(path: str | os.PathLike[str]) -> bool:
    """Whether the NUT file ``path`` holds a frame (a section past the source's end holds none,
    and ffmpeg cannot open it)."""
    tail = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            if NUT_SYNCPOINT in tail + chunk:
                return True
            tail = chunk[1 - len(NUT_SYNCPOINT) :]
    return False


def _no_frames(path: Path, start_s: float | None) -> ClipFailure:
    """The failure of a decode of ``path`` from ``start_s`` that gave no frame."""
    if start_s:
        return ClipFailure(
            FailureReason.TOO_SHORT, f"{path}: no audio at or after start_s={start_s:.3f} s"
        )
    return ClipFailure(FailureReason.DECODE_ERROR, f"{path}: decoded to 0 frames")


_INTEGER_READS = {
    "PCM_U8": ("int16", 2.0**-15),
    "PCM_S8": ("int16", 2.0**-15),
    "PCM_16": ("int16", 2.0**-15),
    "PCM_24": ("int32", 2.0**-31),
}
"""Integer PCM subtypes read as integers and scaled to [-1, 1) here: libsndfile converts them to
float one sample at a time (1.0-1.3 ms for 10 s of 44.1 kHz stereo, a fifth of decoding and
resampling it), numpy in a tenth of that. The values are the same: libsndfile's scale is the
same power of two, and these integers are exact in float32."""


MPG123_LINE = re.compile(
    rb"(?:Note|Warning): "  # Note: Trying to resync...
    rb"|\[src/libmpg123/[\w.]+:\w+\(\):\d+\] (?:error|warning): "  # [src/libmpg123/a.c:f():9]
)
"""The lines libmpg123 writes to stderr: its notes, warnings and errors (as its build inside
libsndfile names its sources)."""

_QUIET_DECODE = StderrLineFilter(MPG123_LINE)

NOT_MPEG_SUFFIXES = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".au", ".snd"}
    | {".caf", ".w64", ".rf64"}
)
"""File name suffixes of formats libsndfile reads without libmpg123: their decodes run without
the stderr filter (and a run of them never starts its process)."""


def _quiet_decode(path: Path) -> contextlib.AbstractContextManager[None]:
    """The stderr filter for decoding ``path``, unless its name says it is not MPEG audio."""
    if path.suffix.lower() in NOT_MPEG_SUFFIXES:
        return contextlib.nullcontext()
    return _QUIET_DECODE


def _decode_soundfile(path: Path, start_s: float | None, end_s: float | None) -> DecodedAudio:
    with _quiet_decode(path), sf.SoundFile(path) as f:
        sr = f.samplerate
        first = round(start_s * sr) if start_s else 0
        count = round(end_s * sr) - first if end_s is not None else -1
        if first:
            f.seek(first)
        integer_read = _INTEGER_READS.get(f.subtype)
        fmt = f"{f.format}/{f.subtype}".lower()
        if integer_read is None:
            samples = _finite(f.read(count, dtype="float32", always_2d=True), path)
            return DecodedAudio(samples, sr, f.channels, fmt, "soundfile")
        dtype, scale = integer_read
        integers = f.read(count, dtype=dtype, always_2d=True)
        samples = integers.astype(np.float32)
        samples *= np.float32(scale)
        return DecodedAudio(samples, sr, f.channels, fmt, "soundfile", integers, scale)


def _finite(samples: np.ndarray, path: Path) -> np.ndarray:
    """Return float ``samples`` of ``path`` when every one is finite.

    Raises
    ------
    ClipFailure
        ``DECODE_ERROR`` naming the file and how many samples are NaN or infinite: no level,
        clipping or silence measure means anything then, nor does a cast to int16.
    """
    if samples.size and not np.isfinite(samples).all():
        bad = samples.size - np.count_nonzero(np.isfinite(samples))
        raise ClipFailure(
            FailureReason.DECODE_ERROR,
            f"{path}: the audio holds NaN or infinite samples ({bad} of {samples.size})",
        )
    return samples


_INPUT_RE = re.compile(r"^Input #0, ([^,\s]+)", re.MULTILINE)
_AUDIO_RE = re.compile(r"Stream #0:\d+\S*: Audio: (\w+)")


def _decode_ffmpeg(path: Path, start_s: float | None, end_s: float | None) -> DecodedAudio:
    if not start_s and end_s is None:
        return _run_ffmpeg(path, [], None)
    # Not ``-ss``: in mp4/aac its seek lands up to a packet late. Decoding from the first
    # sample and trimming in the filter graph is sample-exact and stops at ``end_s``.
    bounds = [f"start={start_s:.6f}"] if start_s else []
    bounds += [f"end={end_s:.6f}"] if end_s is not None else []
    return _run_ffmpeg(path, [], f"asetpts=PTS-STARTPTS,atrim={':'.join(bounds)}")


def _run_ffmpeg(path: Path, input_options: list[str], audio_filter: str | None) -> DecodedAudio:
    """Decode the first audio stream of ``path`` with ffmpeg, opened with ``input_options`` and
    filtered by ``audio_filter``."""
    from pipelines.ffmpeg import ffmpeg_executable

    # "file:" stops a hostile name (``concat:...``, ``-x``) from being read as a protocol or option.
    cmd = [ffmpeg_executable(), "-nostdin", "-hide_banner", "-nostats", "-v", "info"]
    cmd += [*input_options, "-i", f"file:{path.resolve()}", "-map", "0:a:0"]
    if audio_filter is not None:
        cmd += ["-af", audio_filter]
    cmd += ["-c:a", "pcm_f32le", "-f", "wav", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ClipFailure(
            FailureReason.DECODE_ERROR, f"{path}: ffmpeg took over {FFMPEG_TIMEOUT_S:g} s"
        ) from None
    log = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        last = [line.strip() for line in log.splitlines() if line.strip()][-1:] or ["no message"]
        raise ClipFailure(
            FailureReason.DECODE_ERROR,
            f"{path}: not readable by soundfile or ffmpeg (exit {proc.returncode}: {last[0]})",
        )
    try:
        samples, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError) as exc:
        raise ClipFailure(FailureReason.DECODE_ERROR, f"{path}: ffmpeg output: {exc}") from None
    _finite(samples, path)
    container = _INPUT_RE.search(log)
    codec = _AUDIO_RE.search(log)
    fmt = f"{container[1] if container else 'unknown'}/{codec[1] if codec else 'unknown'}"
    return DecodedAudio(samples, sr, samples.shape[1], fmt.lower(), "ffmpeg")


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Downmix by averaging channels.

    Parameters
    ----------
    samples : np.ndarray [shape=(frames, channels) or (frames,)]

    Returns
    -------
    np.ndarray [shape=(frames,)]
        The channel mean; a 1-D input is returned as is.
    """
    if samples.ndim == 1:
        return samples
    # Summing column views is several times faster than a strided mean over axis 1, and,
    # unlike a BLAS matrix-vector product, starts no threads inside one-process-per-core workers.
    channels = samples.shape[1]
    out = np.add(samples[:, 0], samples[:, 1]) if channels > 1 else samples[:, 0].copy()
    for c in range(2, channels):
        out += samples[:, c]
    out *= out.dtype.type(1.0 / channels)
    return out


def resample(x: np.ndarray, orig_sr: float, target_sr: float, quality: str = "HQ") -> np.ndarray:
    """Resample along the first axis with soxr.

    Parameters
    ----------
    x : np.ndarray [shape=(frames,) or (frames, channels), dtype=float]
    orig_sr, target_sr : float
        Sample rates in Hz (2 kHz to 96 kHz in practice).
    quality : {'HQ', 'VHQ', 'MQ', 'LQ', 'QQ'}
        soxr quality recipe.

    Returns
    -------
    np.ndarray [shape=(frames * target_sr / orig_sr, ...)]
        Length rounded by soxr (within one frame of the nearest integer); ``x`` itself when the
        rates are equal.
    """
    if orig_sr == target_sr:
        return x
    return soxr.resample(x, orig_sr, target_sr, quality=quality)


def trim_early_start(
    x: np.ndarray, sr: float, requested_s: float, tolerance_s: float = 0.05
) -> tuple[np.ndarray, float]:
    """Drop the excess from the start of a precut file longer than requested.

    A precut file (a clip cut from its source beforehand, as PANNs' ``Y<YTID>.wav``) has no
    timestamps to say where it sits on its source's timeline; a cut made at a keyframe before
    the requested start holds more than requested with the end in about the right place.

    Parameters
    ----------
    x : np.ndarray [shape=(frames, ...)]
    sr : float
        Sample rate of ``x``, in Hz.
    requested_s : float
        Requested section duration, in seconds.
    tolerance_s : float
        Excess, in seconds, accepted without trimming.

    Returns
    -------
    y : np.ndarray [shape=(round(requested_s * sr), ...) if trimmed, else x.shape]
        The last ``requested_s`` seconds of ``x`` when it was over ``requested_s + tolerance_s``
        long, else ``x``.
    trimmed_seconds : float
        Duration dropped from the start.
    """
    if len(x) / sr <= requested_s + tolerance_s:
        return x, 0.0
    excess = len(x) - round(requested_s * sr)
    return x[excess:], excess / sr


def fix_length(x: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Zero-pad at the end or trim to exactly ``n`` frames.

    Parameters
    ----------
    x : np.ndarray [shape=(frames, ...)]
    n : int
        Target number of frames.

    Returns
    -------
    y : np.ndarray [shape=(n, ...)]
    true_length : int
        ``min(frames, n)``: how many leading frames of ``y`` are real rather than padding.
    """
    if len(x) >= n:
        return x[:n], n
    pad = [(0, n - len(x))] + [(0, 0)] * (x.ndim - 1)
    return np.pad(x, pad), len(x)


def float_to_int16(x: np.ndarray) -> np.ndarray:
    """Quantize float audio to int16.

    Values are clipped to [-1, 1], scaled by 32767 (so -32768 is never produced and the scale is
    symmetric) and rounded to the nearest integer. NaN becomes 0.

    Parameters
    ----------
    x : np.ndarray [shape=(...), dtype=float]

    Returns
    -------
    np.ndarray [shape=x.shape, dtype=int16]
    """
    scale = np.asarray(INT16_SCALE, dtype=x.dtype)
    scaled = np.multiply(x, scale)  # then clipping to +-32767 is clipping x to [-1, 1]
    np.clip(scaled, -scale, scale, out=scaled)
    if scaled.size and np.isnan(scaled.max()):  # a NaN propagates through max: one fast pass
        scaled[np.isnan(scaled)] = 0.0
    return np.rint(scaled, out=scaled).astype(np.int16)


def int16_waveform(audio: DecodedAudio, target_sr: int) -> np.ndarray:
    """The int16 mono waveform of ``audio`` at ``target_sr``, as ingest stores a clip (without
    cutting it to a clip's length): downmixed, resampled with soxr HQ, then quantized by
    :func:`float_to_int16`.

    Parameters
    ----------
    audio : DecodedAudio
    target_sr : int
        Output sample rate in Hz.

    Returns
    -------
    np.ndarray [shape=(frames * target_sr / audio.sample_rate,), dtype=int16]
    """
    return float_to_int16(resample(to_mono(audio.samples), audio.sample_rate, target_sr))


def int16_to_float(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`float_to_int16`: divide by 32767.

    Parameters
    ----------
    x : np.ndarray [shape=(...), dtype=int16]

    Returns
    -------
    np.ndarray [shape=x.shape, dtype=float32]
        In [-1, 1], except -32768, which maps slightly below -1.
    """
    return x.astype(np.float32) / np.float32(INT16_SCALE)


def clip_stats(
    x: np.ndarray, sr: float, source: np.ndarray | None = None, source_scale: float | None = None
) -> dict[str, float]:
    """Level, clipping and silence measures of a mono float clip.

    Parameters
    ----------
    x : np.ndarray [shape=(frames,), dtype=float]
        At least one sample, full scale 1.0.
    sr : float
        Sample rate in Hz.
    source : np.ndarray [shape=(frames, ...), dtype=float], optional
        The audio ``x`` was made from, for the peak and clipping measures: the decoded file,
        whose samples can be at full scale but not beyond it (integer formats), where the
        resampler's filter overshoots full scale on loud audio (a 0.9 square wave peaks at
        1.1) and would have it count as clipped. ``x`` itself when not given.
    source_scale : float, optional
        Given when ``source`` holds integers: the power of two that scales them to full scale
        1.0 (``DecodedAudio.integer_scale``). The measures are those of the scaled floats, to
        the last bit, read off the integers.

    Returns
    -------
    dict[str, float]
        ``peak``: max ``|x|`` (of ``source`` when given); ``rms_dbfs``: ``20 log10(rms)`` re
        full scale 1.0 (a full-scale sine is -3.01; digital silence -200); ``clipping_ratio``:
        fraction of samples (of ``source``, over its channels, when given) with
        ``|x| >= 0.999``; ``silence_ratio``: fraction of consecutive 100 ms frames (the last may
        be shorter) whose RMS is below -60 dBFS; ``duration_s``: ``frames / sr``.
    """
    if x.size == 0:
        raise ValueError("clip_stats needs at least one sample")
    x = np.asarray(x)
    n = len(x)
    frame = max(1, round(SILENCE_FRAME_S * sr))
    whole = n // frame
    # Sums of squares per frame, in the input's precision (float32 sums of a few thousand
    # squares are good to about 1e-6): one read of the clip, no temporary copy of it.
    energy = np.empty(whole + (n % frame > 0), dtype=np.float64)
    head = x[: whole * frame].reshape(whole, frame)
    energy[:whole] = np.einsum("ij,ij->i", head, head)
    lengths = np.full(len(energy), frame, dtype=np.float64)
    if n % frame:
        tail = x[whole * frame :]
        energy[whole] = np.dot(tail, tail)
        lengths[whole] = len(tail)
    silent = energy / lengths < 10 ** (SILENCE_DBFS / 10)
    rms = max(math.sqrt(energy.sum() / n), RMS_FLOOR)
    if source_scale is not None:
        peak, clipping_ratio = _integer_peak_and_clipping(source, source_scale)
    else:
        peak, clipping_ratio = _peak_and_clipping(x if source is None else source)
    return {
        "peak": peak,
        "rms_dbfs": 20 * math.log10(rms),
        "clipping_ratio": clipping_ratio,
        "silence_ratio": float(silent.mean()),
        "duration_s": n / sr,
    }


def _peak_and_clipping(x: np.ndarray) -> tuple[float, float]:
    """Max ``|x|`` and the fraction of samples with ``|x| >= 0.999``, over every channel."""
    peak = float(max(x.max(), -x.min()))
    clipped = np.count_nonzero(np.abs(x) >= CLIPPING_LEVEL) if not peak < CLIPPING_LEVEL else 0
    return peak, clipped / x.size


def _integer_peak_and_clipping(x: np.ndarray, scale: float) -> tuple[float, float]:
    """:func:`_peak_and_clipping` of ``float32(x) * float32(scale)``, from the integers ``x``."""
    high = max(int(x.max()), -int(x.min()))  # as Python ints: -(-32768) overflows int16
    peak = float(np.float32(high) * np.float32(scale))
    if peak < CLIPPING_LEVEL:
        return peak, 0.0
    level = _clipping_integer(scale)
    clipped = np.count_nonzero(x >= level) + np.count_nonzero(x <= -level)
    return peak, clipped / x.size


@functools.cache
def _clipping_integer(scale: float) -> int:
    """The smallest integer ``k`` whose float32 ``k * scale`` counts as clipped, compared as
    :func:`_peak_and_clipping` compares the floats."""
    k = math.ceil(CLIPPING_LEVEL / scale)
    while k > 0 and np.float32(k - 1) * np.float32(scale) >= CLIPPING_LEVEL:
        k -= 1
    while not np.float32(k) * np.float32(scale) >= CLIPPING_LEVEL:
        k += 1
    return k


def prepare_clip(
    path: str | os.PathLike[str],
    *,
    target_sr: int,
    clip_seconds: float,
    start_s: float | None = None,
    end_s: float | None = None,
    precut: bool = False,
    timestamped: bool = False,
    min_coverage: float = 0.9,
) -> PreparedClip:
    """Turn one fetched file into a fixed-length mono int16 clip.

    Decode -> (trim an early start of a precut file) -> check coverage -> downmix -> resample
    -> stats -> pad or trim to ``target_sr * clip_seconds`` -> int16.

    Parameters
    ----------
    path : str or PathLike
        The fetched audio file.
    target_sr : int
        Output sample rate in Hz.
    clip_seconds : float
        Output length in seconds.
    start_s, end_s : float or None
        The wanted section of the source, in seconds. Without ``end_s`` at most ``clip_seconds``
        from ``start_s`` (or the beginning) are read and the file's own duration, so capped, is
        what is requested.
    precut : bool
        The file is precut to ``[start_s, end_s)`` of its source, possibly starting early: it
        is read whole and trimmed at the start to ``end_s - start_s``. Needs ``end_s``.
    timestamped : bool
        The file is a fetched section with its source's timestamps: :func:`decode_section`
        cuts ``[start_s, end_s)`` on the source's timeline. Needs both bounds.
    min_coverage : float
        Smallest accepted fraction of the requested duration.

    Returns
    -------
    PreparedClip

    Raises
    ------
    ClipFailure
        ``TOO_SHORT`` if less than ``min_coverage`` of the request was delivered, ``start_s``
        is past the end, or the audio is too short to hold a sample at ``target_sr``; otherwise
        as :func:`decode`.
    ValueError
        If ``precut`` is set without ``end_s``, ``timestamped`` without both bounds, or the
        bounds are invalid.
    """
    if timestamped:
        if start_s is None or end_s is None:
            raise ValueError("a timestamped section needs start_s and end_s")
        decoded = decode_section(path, start_s, end_s)
    elif precut:
        if end_s is None:
            raise ValueError("a precut file needs end_s to know the requested duration")
        decoded = decode(path)
    else:
        stop = end_s if end_s is not None else (start_s or 0.0) + clip_seconds
        decoded = decode(path, start_s, stop)
    sr = decoded.sample_rate
    delivered_s = len(decoded.samples) / sr
    requested_s = end_s - (start_s or 0.0) if end_s is not None else delivered_s
    samples, trimmed_s = decoded.samples, 0.0
    if precut:
        samples, trimmed_s = trim_early_start(samples, sr, requested_s)
    integers = decoded.integers
    if integers is not None:
        integers = integers[len(integers) - len(samples) :]
    if delivered_s < min_coverage * requested_s:
        raise ClipFailure(
            FailureReason.TOO_SHORT,
            f"{path}: delivered {delivered_s:.3f} s of the {requested_s:.3f} s requested "
            f"(need at least {min_coverage:.0%})",
        )
    mono = resample(to_mono(samples), sr, target_sr)
    if not len(mono):
        raise ClipFailure(
            FailureReason.TOO_SHORT,
            f"{path}: {len(samples)} frame(s) at {sr} Hz hold no sample at {target_sr} Hz",
        )
    waveform, num_samples = fix_length(mono, round(target_sr * clip_seconds))
    return PreparedClip(
        waveform=float_to_int16(waveform),
        num_samples=num_samples,
        source_sample_rate=sr,
        source_channels=decoded.channels,
        source_format=decoded.format,
        delivered_seconds=delivered_s,
        requested_seconds=requested_s,
        early_start_trimmed_s=trimmed_s,
        stats=(
            clip_stats(mono, target_sr, source=samples)
            if integers is None
            else clip_stats(mono, target_sr, source=integers, source_scale=decoded.integer_scale)
        ),
        decoder=decoded.decoder,
    )
