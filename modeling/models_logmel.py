"""Waveform classifiers that compute log-mel spectrograms inside the model (on the device).

:class:`LogMel` turns ``(batch, samples)`` audio into ``(batch, frames, n_mels)`` log-mel
features with ``tf.signal``; :func:`cnn14` is a CNN14-style family (Kong et al. 2020, PANNs) and
:func:`small_cnn` a four-layer CNN for small data sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from features.mel import mel_weights
from modeling.augment import SpecAugment
from modeling.models import check_int_list, check_positive_int, check_task, classification_head

BN_MOMENTUM = 0.9
"""Momentum of every BatchNorm here: PyTorch's default as PANNs trains with (``momentum=0.1``
there), not Keras' 0.99, whose moving statistics after a few hundred steps still lean on their
initial 0 and 1 and skew inference on log-mel values far from those."""


@keras.saving.register_keras_serializable(package="audiomill")
class LogMel(layers.Layer):
    """Log-mel spectrogram of waveforms: Hann STFT, power or magnitude, HTK mel bands, log.

    Frames are ``win_length`` samples (zero-padded to ``n_fft``) every ``hop_length`` samples,
    without centring: ``frames = 1 + (samples - win_length) // hop_length``. The output is
    ``log(spectrum @ mel_weights(n_mels, n_fft, sample_rate, fmin, fmax) + log_offset)``.

    Parameters
    ----------
    sample_rate : int, optional
        Sample rate of the input, Hz.
    n_fft : int, optional
        FFT length.
    hop_length : int, optional
        Hop between frames, samples.
    n_mels : int, optional
        Number of mel bands.
    fmin : float, optional
        Lower edge of the first band, Hz.
    fmax : float or None, optional
        Upper edge of the last band, Hz; None for Nyquist.
    win_length : int or None, optional
        Window length, ``<= n_fft``; None for ``n_fft``.
    power : float, optional
        2 for the power spectrum, 1 for the magnitude.
    log_offset : float, optional
        Added before the log to avoid ``log(0)``.
    **kwargs
        Passed to :class:`keras.layers.Layer`; the dtype defaults to float32 so the STFT runs in
        float32 under mixed precision.

    Notes
    -----
    Input shape ``(batch, samples)`` (samples may be None), output ``(batch, frames, n_mels)``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 160,
        n_mels: int = 64,
        fmin: float = 50.0,
        fmax: float | None = None,
        win_length: int | None = None,
        power: float = 2.0,
        log_offset: float = 1e-6,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if power not in (1.0, 2.0):
            raise ValueError(f"power must be 1 (magnitude) or 2 (power), got {power}")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.fmin = fmin
        self.fmax = fmax
        self.win_length = win_length
        self.power = power
        self.log_offset = log_offset
        self._frame_length = n_fft if win_length is None else win_length
        if not 0 < self._frame_length <= n_fft:
            raise ValueError(f"win_length must be in 1..n_fft ({n_fft}), got {win_length}")
        top = sample_rate / 2.0 if fmax is None else fmax
        self._mel = tf.constant(mel_weights(n_mels, n_fft, sample_rate, fmin, top, np.float32))

    def call(self, inputs: Any) -> Any:
        """Log-mel features (batch, frames, n_mels) of waveforms (batch, samples)."""
        stft = tf.signal.stft(
            tf.cast(inputs, tf.float32),
            frame_length=self._frame_length,
            frame_step=self.hop_length,
            fft_length=self.n_fft,
            window_fn=tf.signal.hann_window,
        )
        spectrum = tf.abs(stft)
        if self.power == 2.0:
            spectrum = tf.square(spectrum)
        return tf.math.log(tf.tensordot(spectrum, self._mel, axes=1) + self.log_offset)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """``(batch, frames, n_mels)``; frames is None for variable-length input."""
        samples = input_shape[-1]
        frames = None
        if samples is not None:
            frames = max(0, 1 + (samples - self._frame_length) // self.hop_length)
        return (input_shape[0], frames, self.n_mels)

    def get_config(self) -> dict[str, Any]:
        """Layer configuration for serialisation."""
        return {
            **super().get_config(),
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            "fmin": self.fmin,
            "fmax": self.fmax,
            "win_length": self.win_length,
            "power": self.power,
            "log_offset": self.log_offset,
        }


DEFAULT_FMAX = 8000.0
"""Top of the waveform models' mel bands when ``fmax`` is not given (Hz); None is Nyquist."""


def _logmel_front(
    clip_samples: int | None,
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    fmin: float,
    fmax: float | None,
    spec_augment: bool,
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Waveform input -> log-mel -> BatchNorm over mel bins -> SpecAugment -> (b, t, f, 1).

    Refuses (``ValueError``, naming the argument) an ``n_fft`` longer than the clip and an
    ``n_fft``, ``hop_length`` or ``n_mels`` that is not a positive int.
    """
    clip = None if clip_samples is None else ("the clip's samples", clip_samples)
    check_positive_int("n_fft", n_fft, at_most=clip)
    check_positive_int("hop_length", hop_length)
    check_positive_int("n_mels", n_mels)
    inputs = keras.Input((clip_samples,), dtype="float32", name="waveform")
    x = LogMel(sample_rate, n_fft, hop_length, n_mels, fmin, fmax, name="logmel")(inputs)
    x = layers.BatchNormalization(axis=-1, momentum=BN_MOMENTUM, name="bn_mel")(x)
    if spec_augment:
        x = SpecAugment(name="spec_augment")(x)
    return inputs, layers.Reshape((-1, n_mels, 1), name="add_channel")(x)


def cnn14(
    num_classes: int,
    width: int = 64,
    task: str = "multilabel",
    *,
    blocks: int = 6,
    dropout: float = 0.2,
    fc_dropout: float = 0.5,
    clip_samples: int | None = None,
    sample_rate: int = 16000,
    n_fft: int = 512,
    hop_length: int = 160,
    n_mels: int = 64,
    fmin: float = 50.0,
    fmax: float | None = DEFAULT_FMAX,
    spec_augment: bool = True,
) -> keras.Model:
    """CNN14-style log-mel CNN (PANNs, Kong et al. 2020) with adjustable width and depth.

    Log-mel -> BatchNorm over mel bins -> SpecAugment -> ``blocks`` conv blocks, each two
    (3x3 conv + BatchNorm + ReLU) followed by 2x2 average pooling (none after a sixth block) and
    dropout, with channels ``width * (1, 2, 4, 8, 16, 32)[:blocks]`` -> mean over frequency ->
    max + mean over time -> Dropout -> Dense(channels) + ReLU -> Dropout -> head.

    Parameters
    ----------
    num_classes : int
        Number of output classes.
    width : int, optional
        Channels of the first block (64 is CNN14, about 80M parameters); small values train on
        a CPU.
    task : {'multilabel', 'singlelabel'}, optional
        Output activation.
    blocks : int, optional
        Number of conv blocks, 1..6.
    dropout, fc_dropout : float, optional
        Dropout after each conv block and around the fully connected layer.
    clip_samples : int or None, optional
        Fixed input length, or None for variable-length clips.
    sample_rate, n_fft, hop_length, n_mels, fmin, fmax
        Log-mel parameters (see :class:`LogMel`).
    spec_augment : bool, optional
        Insert a :class:`~modeling.augment.SpecAugment` layer (active only in training).

    Returns
    -------
    keras.Model
        Input ``(batch, clip_samples)`` float32 waveforms, output ``(batch, num_classes)`` float32.
    """
    check_task(task)
    if not 1 <= blocks <= 6:
        raise ValueError(f"blocks must be in 1..6, got {blocks}")
    inputs, x = _logmel_front(
        clip_samples, sample_rate, n_fft, hop_length, n_mels, fmin, fmax, spec_augment
    )
    widths = [width * m for m in (1, 2, 4, 8, 16, 32)[:blocks]]
    for i, channels in enumerate(widths):
        for j in (1, 2):
            x = layers.Conv2D(
                channels, 3, padding="same", use_bias=False, name=f"block{i + 1}_conv{j}"
            )(x)
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i + 1}_bn{j}")(x)
            x = layers.ReLU(name=f"block{i + 1}_relu{j}")(x)
        if i < 5:
            x = layers.AveragePooling2D(2, padding="same", name=f"block{i + 1}_pool")(x)
        x = layers.Dropout(dropout, name=f"block{i + 1}_dropout")(x)
    x = keras.ops.mean(x, axis=2)
    x = layers.Add(name="max_plus_mean")(
        [
            layers.GlobalMaxPooling1D(name="max_time")(x),
            layers.GlobalAveragePooling1D(name="mean_time")(x),
        ]
    )
    x = layers.Dropout(fc_dropout, name="fc_dropout_in")(x)
    x = layers.Dense(widths[-1], activation="relu", name="fc1")(x)
    x = layers.Dropout(fc_dropout, name="fc_dropout_out")(x)
    return keras.Model(inputs, classification_head(x, num_classes, task), name="cnn14")


def small_cnn(
    num_classes: int,
    task: str = "multilabel",
    *,
    filters: Sequence[int] = (16, 32, 64, 128),
    dropout: float = 0.1,
    clip_samples: int | None = None,
    sample_rate: int = 16000,
    n_fft: int = 512,
    hop_length: int = 160,
    n_mels: int = 64,
    fmin: float = 50.0,
    fmax: float | None = DEFAULT_FMAX,
    spec_augment: bool = True,
) -> keras.Model:
    """Small log-mel CNN: four 3x3 conv layers, then global average pooling and the head.

    Each conv layer is followed by BatchNorm, LeakyReLU and SpatialDropout2D; the first three
    also by 2x2 max pooling.

    Parameters
    ----------
    num_classes : int
        Number of output classes.
    task : {'multilabel', 'singlelabel'}, optional
        Output activation.
    filters : sequence of 4 int, optional
        Channels of the conv layers.
    dropout : float, optional
        SpatialDropout2D rate.
    clip_samples, sample_rate, n_fft, hop_length, n_mels, fmin, fmax, spec_augment
        As in :func:`cnn14`.

    Returns
    -------
    keras.Model
        Input ``(batch, clip_samples)`` float32 waveforms, output ``(batch, num_classes)`` float32.
    """
    check_task(task)
    filters = check_int_list("filters", filters, length=4)
    inputs, x = _logmel_front(
        clip_samples, sample_rate, n_fft, hop_length, n_mels, fmin, fmax, spec_augment
    )
    for i, channels in enumerate(filters, start=1):
        x = layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(x)
        x = layers.LeakyReLU(0.1, name=f"lrelu{i}")(x)
        x = layers.SpatialDropout2D(dropout, name=f"dropout{i}")(x)
        if i < 4:
            x = layers.MaxPooling2D(2, padding="same", name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, classification_head(x, num_classes, task), name="small_cnn")
