"""HTK mel filterbanks the way Google's AudioSet reference (``mel_features.py``) builds them.

Triangles are linear in mel, evaluated at each FFT bin's centre frequency, peak at 1 and are not
area-normalised; the DC bin never contributes. :func:`mel_weights` gives the dense matrix and
:func:`banded_mel_weights` the same values stored over their support as a sparse matrix, since
each band spans only a few bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
from numpy.typing import ArrayLike, DTypeLike

MEL_BREAK_HZ = 700.0
MEL_HIGH_FREQUENCY_Q = 1127.0


def hz_to_mel_htk(frequencies_hz: ArrayLike) -> np.ndarray:
    """Convert frequencies to the HTK mel scale, ``1127 * ln(1 + f / 700)``.

    Parameters
    ----------
    frequencies_hz : array_like
        Frequencies in Hz, any shape.

    Returns
    -------
    np.ndarray
        Mel values, same shape as ``frequencies_hz``.
    """
    return MEL_HIGH_FREQUENCY_Q * np.log(1.0 + np.asarray(frequencies_hz) / MEL_BREAK_HZ)


def mel_weights(
    num_bands: int,
    fft_length: int,
    sample_rate: float,
    fmin: float,
    fmax: float,
    dtype: DTypeLike = np.float64,
) -> np.ndarray:
    """Dense mel weight matrix that post-multiplies STFT magnitude frames.

    Band edges are ``num_bands + 2`` points equally spaced in HTK mel from ``fmin`` to ``fmax``;
    band ``i`` rises linearly in mel from edge ``i`` to 1 at edge ``i + 1`` and falls back to 0 at
    edge ``i + 2``. Weights are computed in float64 and then cast to ``dtype``.

    Parameters
    ----------
    num_bands : int
        Number of mel bands.
    fft_length : int
        FFT size; the spectrum has ``fft_length // 2 + 1`` bins from 0 Hz to Nyquist.
    sample_rate : float
        Sample rate of the analysed signal, Hz.
    fmin, fmax : float
        Lower edge of the first band and upper edge of the last band, Hz;
        ``0 <= fmin < fmax <= sample_rate / 2``.
    dtype : dtype, optional
        Dtype of the result.

    Returns
    -------
    np.ndarray, shape (fft_length // 2 + 1, num_bands)
        Weights: ``mel = magnitude @ weights``. Row 0 (DC) is zero.

    Raises
    ------
    ValueError
        If the edges are out of order or above Nyquist.
    """
    nyquist = sample_rate / 2.0
    if not 0.0 <= fmin < fmax <= nyquist:
        raise ValueError(f"need 0 <= fmin < fmax <= Nyquist ({nyquist} Hz), got {fmin}, {fmax}")
    bins_mel = hz_to_mel_htk(np.linspace(0.0, nyquist, fft_length // 2 + 1))[:, np.newaxis]
    edges = np.linspace(hz_to_mel_htk(fmin), hz_to_mel_htk(fmax), num_bands + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel - lower) / (center - lower)
    falling = (upper - bins_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    return weights.astype(dtype, copy=False)


@dataclass(frozen=True)
class BandedMel:
    """Mel weights stored over the FFT bins that carry them.

    Attributes
    ----------
    bin_start, bin_stop : int
        Every nonzero weight lies in FFT bins ``[bin_start, bin_stop)``.
    weights_t : scipy.sparse.csr_array, shape (num_bands, bin_stop - bin_start)
        Transposed weights of those bins, only the nonzeros stored.
    """

    bin_start: int
    bin_stop: int
    weights_t: scipy.sparse.csr_array

    def apply_t(self, magnitude_t: np.ndarray) -> np.ndarray:
        """Mel magnitudes from bin-major magnitudes of the support bins.

        Parameters
        ----------
        magnitude_t : np.ndarray, shape (bin_stop - bin_start, n_frames)
            STFT magnitudes of bins ``bin_start..bin_stop - 1``, C-contiguous for speed.

        Returns
        -------
        np.ndarray, shape (num_bands, n_frames)
            Same values as ``(magnitude @ mel_weights(...)).T`` up to summation rounding.
        """
        return self.weights_t @ magnitude_t


def banded_mel_weights(
    num_bands: int,
    fft_length: int,
    sample_rate: float,
    fmin: float,
    fmax: float,
    dtype: DTypeLike = np.float64,
) -> BandedMel:
    """Sparse form of :func:`mel_weights` (same parameters, same values).

    Returns
    -------
    BandedMel
        The support bin range and the transposed nonzero weights.
    """
    dense = mel_weights(num_bands, fft_length, sample_rate, fmin, fmax, dtype)
    support = np.flatnonzero(dense.any(axis=1))
    start, stop = (int(support[0]), int(support[-1]) + 1) if support.size else (0, 0)
    return BandedMel(start, stop, scipy.sparse.csr_array(dense[start:stop].T))
