"""Seeded stand-ins for Google's VGGish checkpoint and PCA file, for offline demos.

The quickstart runs without network, so it cannot fetch ``vggish_model.ckpt`` and
``vggish_pca_params.npz``. :func:`write_seeded_vggish` writes files in exactly those formats
(a TF-slim ``tf.train.Saver`` checkpoint with the published variable names and shapes, and an
``.npz`` with ``pca_eigen_vectors`` and ``pca_means``) filled with seeded random values: the
whole embedding path runs as it would with the real files, but the embeddings carry no meaning
learned from AudioSet. Every caller must say so to the user.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from features.vggish_checkpoint import expected_variables
from features.vggish_model import build_vggish

SEEDED_NOTE = (
    "VGGish weights are SEEDED RANDOM values, not Google's published checkpoint: the embeddings "
    "exercise the pipeline but carry no AudioSet knowledge. Pass the real vggish_model.ckpt and "
    "vggish_pca_params.npz for meaningful embeddings."
)


def _seeded_arrays(seed: int) -> dict[str, np.ndarray]:
    """He-scaled kernels and small biases for every checkpoint variable (float32)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in sorted(expected_variables(build_vggish()).items()):
        if name.endswith("/weights"):
            scale = np.sqrt(2.0 / np.prod(shape[:-1]))
            arrays[name] = (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)
        else:
            arrays[name] = np.full(shape, 0.01, dtype=np.float32)
    return arrays


def _save_slim(prefix: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save ``arrays`` as TF1 variables of those names with ``tf.compat.v1.train.Saver``."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        feeds = {}
        for name, value in arrays.items():
            variable = tf.compat.v1.get_variable(name, shape=value.shape, dtype=tf.float32)
            placeholder = tf.compat.v1.placeholder(tf.float32, shape=value.shape)
            feeds[variable.assign(placeholder)] = (placeholder, value)
        for assign, (placeholder, value) in feeds.items():
            session.run(assign, {placeholder: value})
        tf.compat.v1.train.Saver().save(session, str(prefix), write_meta_graph=False)


def write_seeded_vggish(out_dir: str | Path, seed: int = 0) -> dict[str, str]:
    """Write a seeded VGGish checkpoint and PCA file under ``out_dir`` (once; reused after).

    Parameters
    ----------
    out_dir : str or Path
    seed : int

    Returns
    -------
    dict
        ``checkpoint`` (the prefix to pass as ``--checkpoint``), ``pca_params``, ``seed`` and
        ``note`` (:data:`SEEDED_NOTE`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / f"vggish_seeded_{seed}.ckpt"
    pca = out / f"vggish_seeded_{seed}_pca_params.npz"
    record = out / f"vggish_seeded_{seed}.json"
    if not record.is_file():
        _save_slim(prefix, _seeded_arrays(seed))
        rng = np.random.default_rng([seed, 1])
        eigen = np.linalg.qr(rng.standard_normal((128, 128)))[0] * 0.5
        np.savez(pca, pca_eigen_vectors=eigen, pca_means=rng.normal(0, 0.1, (128, 1)))
        record.write_text(json.dumps({"seed": seed, "note": SEEDED_NOTE}) + "\n")
    return {"checkpoint": str(prefix), "pca_params": str(pca), "seed": seed, "note": SEEDED_NOTE}
