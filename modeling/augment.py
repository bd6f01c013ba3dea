"""Training-time augmentation: mixup on batches, SpecAugment masks, random crops of waveforms."""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
import numpy as np
from keras import ops


class MixedBatch(NamedTuple):
    """A mixup batch and how it was made.

    Attributes
    ----------
    x : np.ndarray, shape (batch, ...)
        ``lam * x + (1 - lam) * x[partner]``, float32.
    y : np.ndarray, shape (batch, num_classes)
        ``lam * y + (1 - lam) * y[partner]``, float32.
    lam : np.ndarray, shape (batch,)
        Mixing weight of each example, drawn from Beta(alpha, alpha).
    partner : np.ndarray, shape (batch,)
        Index of the example each one was mixed with (a permutation of the batch).
    """

    x: np.ndarray
    y: np.ndarray
    lam: np.ndarray
    partner: np.ndarray


def mixup(
    x: np.ndarray,
    y: np.ndarray,
    alpha: float,
    rng: np.random.Generator | int | None = None,
) -> MixedBatch:
    """Mix every example of a batch with a random partner (Zhang et al. 2018).

    Each example ``i`` gets its own ``lam_i ~ Beta(alpha, alpha)`` and partner ``partner[i]`` from
    a random permutation; inputs and labels are mixed with the same weight.

    Parameters
    ----------
    x : np.ndarray, shape (batch, ...)
        Inputs (embeddings, waveforms or spectrograms); cast to float32 before mixing.
    y : np.ndarray, shape (batch, num_classes)
        Multi-hot or one-hot labels.
    alpha : float
        Beta distribution parameter, > 0; small values keep most weights near 0 or 1.
    rng : np.random.Generator or int or None, optional
        Random generator or seed.

    Returns
    -------
    MixedBatch
        Mixed inputs and labels, with the weights and partners used.

    Raises
    ------
    ValueError
        If ``alpha <= 0`` or the batch sizes of ``x`` and ``y`` differ.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"batch sizes differ: x {x.shape[0]}, y {y.shape[0]}")
    gen = np.random.default_rng(rng)
    lam = gen.beta(alpha, alpha, size=x.shape[0]).astype(np.float32)
    partner = gen.permutation(x.shape[0])
    lam_x = lam.reshape((-1,) + (1,) * (x.ndim - 1))
    lam_y = lam.reshape((-1,) + (1,) * (y.ndim - 1))
    return MixedBatch(
        x=lam_x * x + (1.0 - lam_x) * x[partner],
        y=lam_y * y + (1.0 - lam_y) * y[partner],
        lam=lam,
        partner=partner,
    )


def random_crop(
    waveform: np.ndarray, length: int, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Cut a random window of fixed length from a clip, zero-padding clips that are too short.

    Parameters
    ----------
    waveform : np.ndarray, shape (..., n_samples)
        Audio; the last axis is time.
    length : int
        Output length in samples, > 0.
    rng : np.random.Generator or int or None, optional
        Random generator or seed.

    Returns
    -------
    np.ndarray, shape (..., length)
        A window starting at a uniform random offset; a shorter clip is placed at a random offset
        inside zeros.

    Raises
    ------
    ValueError
        If ``length <= 0``.
    """
    if length <= 0:
        raise ValueError(f"length must be > 0, got {length}")
    waveform = np.asarray(waveform)
    gen = np.random.default_rng(rng)
    n = waveform.shape[-1]
    if n >= length:
        start = int(gen.integers(0, n - length + 1))
        return waveform[..., start : start + length]
    out = np.zeros((*waveform.shape[:-1], length), dtype=waveform.dtype)
    start = int(gen.integers(0, length - n + 1))
    out[..., start : start + n] = waveform
    return out


@keras.saving.register_keras_serializable(package="audiomill")
class SpecAugment(keras.layers.Layer):
    """Time and frequency masking of spectrograms (Park et al. 2019), only while training.

    Each example gets its own masks: ``time_masks`` bands of ``0..time_mask_width`` frames and
    ``freq_masks`` bands of ``0..freq_mask_width`` bins, set to ``mask_value``. At inference the
    layer is the identity.

    Parameters
    ----------
    time_masks, freq_masks : int, optional
        Number of masks along time and frequency.
    time_mask_width, freq_mask_width : int, optional
        Largest width of one mask, in frames and bins.
    mask_value : float, optional
        Value written into masked cells (0 suits normalised log-mels).
    seed : int or None, optional
        Seed of the layer's random stream.
    **kwargs
        Passed to :class:`keras.layers.Layer`.

    Notes
    -----
    Input and output shape ``(batch, time, freq)`` or ``(batch, time, freq, channels)``.
    """

    def __init__(
        self,
        time_masks: int = 2,
        time_mask_width: int = 20,
        freq_masks: int = 2,
        freq_mask_width: int = 8,
        mask_value: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.time_masks = time_masks
        self.time_mask_width = time_mask_width
        self.freq_masks = freq_masks
        self.freq_mask_width = freq_mask_width
        self.mask_value = mask_value
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _band_mask(self, batch: Any, size: Any, count: int, max_width: int) -> Any:
        """Boolean mask of shape (batch, size), True inside ``count`` random bands per row."""
        positions = ops.arange(size)[None, None, :]
        if count == 0 or max_width == 0:
            return ops.zeros((batch, size), dtype="bool")
        width = ops.cast(
            keras.random.uniform((batch, count, 1), 0.0, max_width + 1.0, seed=self.seed_generator),
            "int32",
        )
        room = ops.cast(ops.maximum(size - width + 1, 1), "float32")
        start = ops.cast(
            keras.random.uniform((batch, count, 1), seed=self.seed_generator) * room, "int32"
        )
        inside = ops.logical_and(positions >= start, positions < start + width)
        return ops.any(inside, axis=1)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """Mask ``inputs`` when ``training`` is true, else return them unchanged."""
        if not training:
            return inputs
        shape = ops.shape(inputs)
        time_mask = self._band_mask(shape[0], shape[1], self.time_masks, self.time_mask_width)
        freq_mask = self._band_mask(shape[0], shape[2], self.freq_masks, self.freq_mask_width)
        mask = ops.logical_or(time_mask[:, :, None], freq_mask[:, None, :])
        if len(inputs.shape) == 4:
            mask = mask[..., None]
        return ops.where(mask, ops.cast(self.mask_value, inputs.dtype), inputs)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """Same shape as the input."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """Layer configuration for serialisation."""
        return {
            **super().get_config(),
            "time_masks": self.time_masks,
            "time_mask_width": self.time_mask_width,
            "freq_masks": self.freq_masks,
            "freq_mask_width": self.freq_mask_width,
            "mask_value": self.mask_value,
            "seed": self.seed,
        }
