"""VGGish in Keras, layer for layer as Google's TF-slim reference, and a batch embedder.

The network maps a (96, 64) log-mel example (0.96 s x 64 mel bands, see DESIGN.md 4.3) to a
128-d embedding: four blocks of 3x3 stride-1 SAME convolutions with ReLU (64; 128; 256, 256;
512, 512 channels), each followed by a 2x2 stride-2 SAME max pool, then the (6, 4, 512) map is
flattened in height-width-channel order into fully connected layers of 4096, 4096 (ReLU) and 128.
``fc2`` is linear: the released checkpoint was trained that way, and some older ports wrongly
apply ReLU there. Layer names are the last component of the checkpoint's TF-slim scopes
(``conv3_1`` for ``vggish/conv3/conv3_1``); see ``features.vggish_checkpoint``.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from features.vggish_checkpoint import load_vggish_checkpoint
from features.vggish_params import NUM_BANDS, NUM_FRAMES
from features.vggish_postprocess import EMBEDDING_SIZE, VGGishPostprocessor

_CONV_BLOCKS: tuple[tuple[tuple[str, int], ...], ...] = (
    (("conv1", 64),),
    (("conv2", 128),),
    (("conv3_1", 256), ("conv3_2", 256)),
    (("conv4_1", 512), ("conv4_2", 512)),
)
_HIDDEN: tuple[tuple[str, int], ...] = (("fc1_1", 4096), ("fc1_2", 4096))


def build_vggish(name: str = "vggish") -> keras.Model:
    """Build the VGGish network (72,141,184 parameters, randomly initialised).

    Parameters
    ----------
    name : str
        Model name.

    Returns
    -------
    keras.Model
        Input float32 (batch, 96, 64) log-mel examples; output float32 (batch, 128) raw
        embeddings (before PCA). Load weights with
        :func:`features.vggish_checkpoint.load_vggish_checkpoint`.
    """
    inputs = keras.Input(shape=(NUM_FRAMES, NUM_BANDS), dtype="float32", name="log_mel")
    x = keras.layers.Reshape((NUM_FRAMES, NUM_BANDS, 1), name="reshape")(inputs)
    for block, convs in enumerate(_CONV_BLOCKS, start=1):
        for conv_name, filters in convs:
            x = keras.layers.Conv2D(
                filters, 3, strides=1, padding="same", activation="relu", name=conv_name
            )(x)
        x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool{block}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for dense_name, units in _HIDDEN:
        x = keras.layers.Dense(units, activation="relu", name=dense_name)(x)
    outputs = keras.layers.Dense(EMBEDDING_SIZE, activation=None, name="fc2")(x)
    return keras.Model(inputs, outputs, name=name)


class VGGishEmbedder:
    """Examples in, raw and quantized embeddings out; build once per worker and reuse.

    The forward pass is a ``tf.function`` with input signature (None, 96, 64), so batches of any
    size (including the last, partial one) reuse one trace. TensorFlow places it on a GPU when it
    sees one and on the CPU otherwise.

    Parameters
    ----------
    checkpoint : str or os.PathLike
        ``vggish_model.ckpt`` (prefix, single file or directory; see
        :func:`features.vggish_checkpoint.resolve_checkpoint`).
    pca_params : str or os.PathLike
        ``vggish_pca_params.npz``.
    batch_size : int
        Examples per forward call; bounds memory independently of the input length.

    Attributes
    ----------
    model : keras.Model
        The loaded network.
    postprocessor : VGGishPostprocessor
    checkpoint_report : dict
        What :func:`features.vggish_checkpoint.load_vggish_checkpoint` returned.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        pca_params: str | os.PathLike,
        batch_size: int = 256,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.model = build_vggish()
        self.checkpoint_report = load_vggish_checkpoint(self.model, checkpoint)
        self.postprocessor = VGGishPostprocessor(pca_params)
        self._forward = tf.function(
            self._call_model,
            input_signature=[tf.TensorSpec((None, NUM_FRAMES, NUM_BANDS), tf.float32)],
            autograph=False,
        )

    def _call_model(self, examples: tf.Tensor) -> tf.Tensor:
        return self.model(examples, training=False)

    @property
    def provenance(self) -> dict[str, str]:
        """Checkpoint and PCA file paths and SHA-256 digests, for shard attributes."""
        return {
            "checkpoint": self.checkpoint_report["prefix"],
            "checkpoint_sha256": self.checkpoint_report["sha256"],
            "pca_sha256": self.postprocessor.sha256,
        }

    def raw(self, examples: np.ndarray) -> np.ndarray:
        """Raw ``fc2`` embeddings.

        Parameters
        ----------
        examples : numpy.ndarray
            Log-mel examples, shape (n, 96, 64); n may be 0.

        Returns
        -------
        numpy.ndarray
            float32, shape (n, 128).

        Raises
        ------
        ValueError
            If ``examples`` does not have shape (n, 96, 64).
        """
        examples = np.asarray(examples, dtype=np.float32)
        if examples.ndim != 3 or examples.shape[1:] != (NUM_FRAMES, NUM_BANDS):
            raise ValueError(
                f"examples must have shape (n, {NUM_FRAMES}, {NUM_BANDS}), got {examples.shape}"
            )
        out = np.empty((len(examples), EMBEDDING_SIZE), dtype=np.float32)
        for start in range(0, len(examples), self.batch_size):
            stop = start + self.batch_size
            out[start:stop] = self._forward(examples[start:stop]).numpy()
        return out

    def embed(self, examples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw and quantized embeddings.

        Parameters
        ----------
        examples : numpy.ndarray
            Log-mel examples, shape (n, 96, 64).

        Returns
        -------
        raw : numpy.ndarray
            float32, shape (n, 128).
        quantized : numpy.ndarray
            uint8, shape (n, 128), as in AudioSet's released embeddings.
        """
        raw = self.raw(examples)
        return raw, self.postprocessor.postprocess(raw)
