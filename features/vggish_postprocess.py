"""VGGish postprocessing: PCA, clip and 8-bit quantization as in AudioSet's embedding release.

The released ``vggish_pca_params.npz`` holds ``pca_eigen_vectors`` (128, 128), whose rows are the
principal components, and ``pca_means`` (128,) or (128, 1). An embedding ``e`` becomes
``E @ (e - mean)``, clipped to [-2, 2] and mapped linearly onto [0, 255]. The mapping truncates
(``astype(np.uint8)``) rather than rounds, and everything is computed in float64, because that is
what produced the released embeddings; rounding or float32 arithmetic would change some bytes.
"""

from __future__ import annotations

import hashlib
import os
import zipfile

import numpy as np

EMBEDDING_SIZE = 128
EIGEN_VECTORS_KEY = "pca_eigen_vectors"
MEANS_KEY = "pca_means"
QUANTIZE_MIN = -2.0
QUANTIZE_MAX = 2.0
RELEASE_URL = "https://storage.googleapis.com/audioset/vggish_pca_params.npz"

_CHUNK = 1 << 20


def pca_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a PCA parameter file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class VGGishPostprocessor:
    """PCA-whiten, clip and quantize raw VGGish embeddings.

    Parameters
    ----------
    pca_path : str or os.PathLike
        ``vggish_pca_params.npz`` (or a file with the same keys and shapes).

    Attributes
    ----------
    eigen_vectors : numpy.ndarray
        float64, shape (128, 128); row ``i`` is principal component ``i``.
    means : numpy.ndarray
        float64, shape (128, 1).
    sha256 : str
        Digest of the file, for provenance.

    Raises
    ------
    FileNotFoundError
        If ``pca_path`` does not exist.
    ValueError
        If the file is not an .npz archive, a key is missing or an array has the wrong shape or
        holds objects (never unpickled).
    """

    def __init__(self, pca_path: str | os.PathLike) -> None:
        if not os.path.isfile(pca_path):
            raise FileNotFoundError(f"no PCA parameters at {pca_path}; download {RELEASE_URL}")
        not_pca = f"{pca_path} is not a VGGish PCA parameters .npz (--pca-params)"
        try:
            params = np.load(pca_path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{not_pca}: NumPy cannot read it as an .npz archive") from exc
        if not isinstance(params, np.lib.npyio.NpzFile):
            raise ValueError(f"{not_pca}: it holds one array (.npy), not named arrays")
        with params:
            missing = [k for k in (EIGEN_VECTORS_KEY, MEANS_KEY) if k not in params.files]
            if missing:
                raise ValueError(
                    f"{pca_path} lacks {', '.join(missing)} (has: {', '.join(params.files)})"
                )
            try:
                eigen_vectors = params[EIGEN_VECTORS_KEY]
                means = params[MEANS_KEY]
            except ValueError as exc:  # object arrays, which would need pickle
                raise ValueError(f"{not_pca}: {exc}") from exc
        if eigen_vectors.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE):
            raise ValueError(
                f"{pca_path}: {EIGEN_VECTORS_KEY} has shape {eigen_vectors.shape}, "
                f"expected {(EMBEDDING_SIZE, EMBEDDING_SIZE)}"
            )
        if means.shape not in ((EMBEDDING_SIZE,), (EMBEDDING_SIZE, 1)):
            raise ValueError(
                f"{pca_path}: {MEANS_KEY} has shape {means.shape}, "
                f"expected {(EMBEDDING_SIZE,)} or {(EMBEDDING_SIZE, 1)}"
            )
        self.eigen_vectors = eigen_vectors.astype(np.float64)
        self.means = means.astype(np.float64).reshape(EMBEDDING_SIZE, 1)
        self.sha256 = pca_sha256(pca_path)

    def postprocess(self, embeddings: np.ndarray) -> np.ndarray:
        """Quantize raw embeddings the way AudioSet's release did.

        Parameters
        ----------
        embeddings : numpy.ndarray
            Raw ``fc2`` outputs, shape (n, 128), any float dtype.

        Returns
        -------
        numpy.ndarray
            uint8, shape (n, 128).

        Raises
        ------
        ValueError
            If ``embeddings`` is not (n, 128) or holds NaN or infinity.
        """
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[1] != EMBEDDING_SIZE:
            raise ValueError(
                f"embeddings must have shape (n, {EMBEDDING_SIZE}), got {embeddings.shape}"
            )
        if not np.isfinite(embeddings).all():
            raise ValueError("embeddings contain NaN or infinity; check the model input")
        centered = embeddings.astype(np.float64).T - self.means
        pca_applied = np.dot(self.eigen_vectors, centered).T
        clipped = np.clip(pca_applied, QUANTIZE_MIN, QUANTIZE_MAX)
        scaled = (clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN))
        return scaled.astype(np.uint8)
