"""Classifiers over per-second embeddings: attention pooling models and an MLP baseline.

Inputs are quantised embeddings of shape ``(batch, frames, dims)`` (AudioSet: 10 x 128 uint8),
mapped to ``(x - 128) / 128`` inside the model. The attention pooling follows Kong et al. 2018
("Audio Set classification with attention model: a probabilistic perspective"); the multi-level
model pools the outputs of several hidden blocks and concatenates them (Yu et al. 2018,
"Multi-level attention model for weakly supervised audio classification").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers, ops

from modeling.models import check_int_list, check_positive_int, check_task, classification_head


@keras.saving.register_keras_serializable(package="audiomill")
class AttentionPooling(layers.Layer):
    """Per-class attention pooling of frame features over time.

    For frames ``h_t``, a classification branch gives ``c_t = act(W_c h_t)`` and an attention
    branch gives weights ``a_t`` normalised over time; the output is ``sum_t a_t * c_t`` per class.

    Parameters
    ----------
    num_classes : int
        Number of classes (output width).
    normalization : {'softmax', 'sigmoid'}, optional
        ``'softmax'``: softmax of attention logits over time; ``'sigmoid'``: sigmoid weights,
        clipped away from 0 and divided by their sum over time (Kong et al.).
    activation : {'sigmoid', 'softmax', 'linear'}, optional
        Activation of the classification branch; ``'softmax'`` is over classes per frame, and
        the pooled output is then renormalised to sum to 1 over classes.
    **kwargs
        Passed to :class:`keras.layers.Layer`.

    Notes
    -----
    Input shape ``(batch, frames, features)``, output shape ``(batch, num_classes)``. Attention
    weights are normalised in float32 under mixed precision.
    """

    def __init__(
        self,
        num_classes: int,
        normalization: str = "softmax",
        activation: str = "sigmoid",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if normalization not in ("softmax", "sigmoid"):
            raise ValueError(f"normalization must be 'softmax' or 'sigmoid', got {normalization!r}")
        self.num_classes = num_classes
        self.normalization = normalization
        self.activation = activation
        self.attention = layers.Dense(num_classes, dtype=self.dtype_policy, name="attention")
        self.classifier = layers.Dense(
            num_classes, activation=activation, dtype=self.dtype_policy, name="classifier"
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Create the two branch kernels for ``input_shape`` (batch, frames, features)."""
        self.attention.build(input_shape)
        self.classifier.build(input_shape)

    def call(self, inputs: Any) -> Any:
        """Pool ``inputs`` (batch, frames, features) to (batch, num_classes)."""
        logits = ops.cast(self.attention(inputs), "float32")
        if self.normalization == "softmax":
            weights = _softmax_over_time(logits)
        else:
            weights = ops.clip(ops.sigmoid(logits), 1e-7, 1.0 - 1e-7)
            weights = weights / ops.sum(weights, axis=1, keepdims=True)
        scores = ops.cast(self.classifier(inputs), "float32")
        pooled = ops.sum(weights * scores, axis=1)
        if self.activation == "softmax":
            pooled = pooled / ops.sum(pooled, axis=-1, keepdims=True)
        return ops.cast(pooled, self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """``(batch, num_classes)``."""
        return (input_shape[0], self.num_classes)

    def get_config(self) -> dict[str, Any]:
        """Layer configuration for serialisation."""
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "normalization": self.normalization,
            "activation": self.activation,
        }


def _softmax_over_time(logits: Any) -> Any:
    """Softmax of ``logits`` (batch, frames, classes) over frames.

    Over a single frame (one-second clips) the weights are exp(l - l) = 1, with the softmax's
    zero gradient: Keras warns that a softmax over an axis of size 1 is always 1, which is what
    pooling one frame needs.
    """
    if logits.shape[1] == 1:
        return ops.exp(logits - logits)
    return ops.softmax(logits, axis=1)


def _embedding_input(
    num_frames: int, embedding_dim: int, input_dtype: str
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Input tensor and its dequantised float version ``(x - 128) / 128``."""
    inputs = keras.Input((num_frames, embedding_dim), dtype=input_dtype, name="embeddings")
    return inputs, layers.Rescaling(1.0 / 128.0, offset=-1.0, name="dequantize")(inputs)


def _frame_blocks(
    x: keras.KerasTensor, num_blocks: int, hidden: int, dropout: float
) -> list[keras.KerasTensor]:
    """Apply ``num_blocks`` of Dense + BatchNorm + ReLU + Dropout per frame; return each output."""
    outputs = []
    for i in range(1, num_blocks + 1):
        x = layers.Dense(hidden, use_bias=False, name=f"block{i}_dense")(x)
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.ReLU(name=f"block{i}_relu")(x)
        x = layers.Dropout(dropout, name=f"block{i}_dropout")(x)
        outputs.append(x)
    return outputs


def _attention_model(
    num_classes: int,
    levels: Sequence[int],
    name: str,
    hidden: int,
    dropout: float,
    task: str,
    num_blocks: int,
    num_frames: int,
    embedding_dim: int,
    attention_normalization: str,
    input_dtype: str,
) -> keras.Model:
    """Feature-level attention on the outputs of blocks ``levels`` (1-based), then the head."""
    check_task(task)
    check_positive_int("num_blocks", num_blocks)
    levels = check_int_list("levels", levels, high=num_blocks)
    inputs, x = _embedding_input(num_frames, embedding_dim, input_dtype)
    blocks = _frame_blocks(x, num_blocks, hidden, dropout)
    pooled = [
        AttentionPooling(
            num_classes, attention_normalization, activation="sigmoid", name=f"attention{level}"
        )(blocks[level - 1])
        for level in levels
    ]
    x = pooled[0] if len(pooled) == 1 else layers.Concatenate(name="levels")(pooled)
    return keras.Model(inputs, classification_head(x, num_classes, task), name=name)


def multi_level_attention(
    num_classes: int,
    hidden: int = 600,
    dropout: float = 0.4,
    task: str = "multilabel",
    *,
    num_blocks: int = 3,
    levels: Sequence[int] = (2, 3),
    num_frames: int = 10,
    embedding_dim: int = 128,
    attention_normalization: str = "softmax",
    input_dtype: str = "uint8",
) -> keras.Model:
    """Multi-level attention model (Yu et al. 2018) on embedding sequences.

    Three per-frame blocks (Dense ``hidden`` + BatchNorm + ReLU + Dropout); attention pooling on
    the outputs of blocks 2 and 3; the pooled class vectors are concatenated and mapped by a Dense
    layer to the outputs (sigmoid for ``'multilabel'``, softmax for ``'singlelabel'``).

    Parameters
    ----------
    num_classes : int
        Number of output classes.
    hidden : int, optional
        Width of each per-frame block.
    dropout : float, optional
        Dropout rate after each block.
    task : {'multilabel', 'singlelabel'}, optional
        Output activation.
    num_blocks : int, optional
        Number of per-frame blocks.
    levels : sequence of int, optional
        1-based blocks whose outputs are attention-pooled.
    num_frames, embedding_dim : int, optional
        Input shape (AudioSet: 10 one-second frames of 128 dims).
    attention_normalization : {'softmax', 'sigmoid'}, optional
        How attention weights are normalised over time (see :class:`AttentionPooling`).
    input_dtype : str, optional
        Input dtype: ``'uint8'`` for quantised embeddings, ``'float32'`` to feed mixup batches
        (values still on the 0..255 scale).

    Returns
    -------
    keras.Model
        Input ``(batch, num_frames, embedding_dim)``, output ``(batch, num_classes)`` float32.
    """
    return _attention_model(
        num_classes,
        levels,
        "multi_level_attention",
        hidden,
        dropout,
        task,
        num_blocks,
        num_frames,
        embedding_dim,
        attention_normalization,
        input_dtype,
    )


def single_level_attention(
    num_classes: int,
    hidden: int = 600,
    dropout: float = 0.4,
    task: str = "multilabel",
    *,
    num_blocks: int = 3,
    num_frames: int = 10,
    embedding_dim: int = 128,
    attention_normalization: str = "softmax",
    input_dtype: str = "uint8",
) -> keras.Model:
    """Feature-level attention on the last block only, then Dense + sigmoid/softmax.

    Parameters are those of :func:`multi_level_attention` (attention on block ``num_blocks``).

    Returns
    -------
    keras.Model
        Input ``(batch, num_frames, embedding_dim)``, output ``(batch, num_classes)`` float32.
    """
    return _attention_model(
        num_classes,
        (num_blocks,),
        "single_level_attention",
        hidden,
        dropout,
        task,
        num_blocks,
        num_frames,
        embedding_dim,
        attention_normalization,
        input_dtype,
    )


def decision_level_attention(
    num_classes: int,
    hidden: int = 600,
    dropout: float = 0.4,
    task: str = "multilabel",
    *,
    num_blocks: int = 3,
    num_frames: int = 10,
    embedding_dim: int = 128,
    attention_normalization: str = "softmax",
    input_dtype: str = "uint8",
) -> keras.Model:
    """Decision-level attention (Kong et al. 2018): attention-weighted mean of frame predictions.

    Each frame is classified (sigmoid per class, or softmax over classes for ``'singlelabel'``)
    and the clip prediction is the attention-weighted average over frames, so the output is
    already a probability. Other parameters are those of :func:`multi_level_attention`.

    Returns
    -------
    keras.Model
        Input ``(batch, num_frames, embedding_dim)``, output ``(batch, num_classes)`` float32.
    """
    check_task(task)
    inputs, x = _embedding_input(num_frames, embedding_dim, input_dtype)
    x = _frame_blocks(x, num_blocks, hidden, dropout)[-1]
    outputs = AttentionPooling(
        num_classes,
        attention_normalization,
        activation="sigmoid" if task == "multilabel" else "softmax",
        dtype="float32",
        name="predictions",
    )(x)
    return keras.Model(inputs, outputs, name="decision_level_attention")


def mlp_baseline(
    num_classes: int,
    hidden: int = 600,
    dropout: float = 0.4,
    task: str = "multilabel",
    *,
    num_blocks: int = 2,
    num_frames: int = 10,
    embedding_dim: int = 128,
    input_dtype: str = "uint8",
) -> keras.Model:
    """Mean of the frame embeddings followed by an MLP.

    Parameters
    ----------
    num_classes : int
        Number of output classes.
    hidden, dropout : int, float, optional
        Width and dropout of each hidden block (Dense + BatchNorm + ReLU + Dropout).
    task : {'multilabel', 'singlelabel'}, optional
        Output activation.
    num_blocks : int, optional
        Number of hidden blocks.
    num_frames, embedding_dim : int, optional
        Input shape.
    input_dtype : str, optional
        Input dtype (see :func:`multi_level_attention`).

    Returns
    -------
    keras.Model
        Input ``(batch, num_frames, embedding_dim)``, output ``(batch, num_classes)`` float32.
    """
    check_task(task)
    inputs, x = _embedding_input(num_frames, embedding_dim, input_dtype)
    x = layers.GlobalAveragePooling1D(name="mean_frames")(x)
    x = _frame_blocks(x, num_blocks, hidden, dropout)[-1]
    return keras.Model(inputs, classification_head(x, num_classes, task), name="mlp_baseline")
