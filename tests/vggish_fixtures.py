"""VGGish test material: TF-slim checkpoints written like Google's, and NumPy references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

# The published variables, written out here rather than derived from the code under test.
CONVS = [
    ("conv1", 1, 64),
    ("conv2", 64, 128),
    ("conv3/conv3_1", 128, 256),
    ("conv3/conv3_2", 256, 256),
    ("conv4/conv4_1", 256, 512),
    ("conv4/conv4_2", 512, 512),
]
FCS = [("fc1/fc1_1", 12288, 4096), ("fc1/fc1_2", 4096, 4096), ("fc2", 4096, 128)]


def slim_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {}
    for scope, cin, cout in CONVS:
        shapes[f"vggish/{scope}/weights"] = (3, 3, cin, cout)
        shapes[f"vggish/{scope}/biases"] = (cout,)
    for scope, fin, fout in FCS:
        shapes[f"vggish/{scope}/weights"] = (fin, fout)
        shapes[f"vggish/{scope}/biases"] = (fout,)
    return shapes


def random_weights(seed: int) -> dict[str, np.ndarray]:
    """He-scaled weights so activations stay O(1) through the network."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in slim_shapes().items():
        if name.endswith("weights"):
            std = float(np.sqrt(2.0 / np.prod(shape[:-1])))
            weights[name] = (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)
        else:
            weights[name] = rng.normal(0.0, 0.1, shape).astype(np.float32)
    return weights


def write_slim_checkpoint(prefix: Path, arrays: dict[str, np.ndarray], v1: bool = False) -> str:
    """Save ``arrays`` as TF1 graph-mode variables with ``tf.compat.v1.train.Saver``."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        assigns = {}
        for name, value in arrays.items():
            var = tf.compat.v1.get_variable(name, shape=value.shape, dtype=tf.as_dtype(value.dtype))
            feed = tf.compat.v1.placeholder(var.dtype, shape=value.shape)
            assigns[var.assign(feed)] = (feed, value)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        sess.run(global_step.initializer)
        for assign, (feed, value) in assigns.items():
            sess.run(assign, {feed: value})
        version = tf.compat.v1.train.SaverDef.V1 if v1 else tf.compat.v1.train.SaverDef.V2
        saver = tf.compat.v1.train.Saver(write_version=version)
        return saver.save(sess, str(prefix), write_meta_graph=False)


def numpy_vggish(weights: dict[str, np.ndarray], examples: np.ndarray) -> np.ndarray:
    """Float64 forward pass: im2col SAME convs, SAME max pools, HWC flatten, linear fc2."""
    x = examples.astype(np.float64)[..., None]
    for scope, _, _ in CONVS:
        n, h, w, c = x.shape
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        cols = np.concatenate(
            [padded[:, dy : dy + h, dx : dx + w, :] for dy in range(3) for dx in range(3)], axis=-1
        )
        kernel = weights[f"vggish/{scope}/weights"].astype(np.float64).reshape(9 * c, -1)
        x = np.maximum(cols @ kernel + weights[f"vggish/{scope}/biases"], 0.0)
        if scope in ("conv1", "conv2", "conv3/conv3_2", "conv4/conv4_2"):
            n, h, w, c = x.shape
            x = np.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=-np.inf)
            x = x.reshape(n, (h + 1) // 2, 2, (w + 1) // 2, 2, c).max(axis=(2, 4))
    x = x.reshape(len(x), -1)
    for scope, _, _ in FCS:
        x = x @ weights[f"vggish/{scope}/weights"] + weights[f"vggish/{scope}/biases"]
        if scope != "fc2":
            x = np.maximum(x, 0.0)
    return x


def reference_postprocess(emb: np.ndarray, eigen: np.ndarray, means: np.ndarray) -> np.ndarray:
    """AudioSet's quantization written elementwise from its definition."""
    out = np.zeros(emb.shape, dtype=np.uint8)
    for i in range(emb.shape[0]):
        for k in range(emb.shape[1]):
            value = sum(
                float(eigen[k, j]) * (float(emb[i, j]) - float(means[j])) for j in range(128)
            )
            value = min(max(value, -2.0), 2.0)
            out[i, k] = int((value + 2.0) * 63.75)  # int() truncates toward zero
    return out


def write_pca(path: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write a ``vggish_pca_params.npz`` with seeded values; returns (eigen_vectors, means)."""
    rng = np.random.default_rng(seed)
    eigen = np.linalg.qr(rng.standard_normal((128, 128)))[0] * 0.5
    means = rng.normal(0.0, 0.1, 128)
    np.savez(path, pca_eigen_vectors=eigen, pca_means=means.reshape(128, 1))
    return eigen, means
