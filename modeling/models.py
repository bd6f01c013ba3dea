"""Task heads, losses, the model registry and the device strategy / precision helper.

Model families live in :mod:`modeling.models_embedding` (embedding sequences) and
:mod:`modeling.models_logmel` (waveforms, log-mel computed inside the model);
:func:`build_model` picks one by name and input kind.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from features.tensorflow_device import default_device
from modeling.catalog import TASKS

INPUT_KINDS = ("embedding", "waveform")
LOCAL_DEVICE = tf.DeviceSpec(job="localhost", replica=0, task=0, device_type="CPU", device_index=0)
"""What TensorFlow fills in where a device name leaves a part out (``/gpu`` is GPU:0)."""
EMULATED_FLOAT16 = (
    "mixed precision on CPU only: float16 is emulated there, so each step takes many times "
    "longer than in float32 (--no-mixed-precision trains in float32)"
)

log = logging.getLogger(__name__)


def check_task(task: str) -> None:
    """Raise ``ValueError`` unless ``task`` is ``'multilabel'`` or ``'singlelabel'``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def check_int_list(
    name: str, value: Any, *, length: int | None = None, low: int = 1, high: int | None = None
) -> list[int]:
    """Refuse a model argument that is not a non-empty list of ints in ``low..high``.

    Parameters
    ----------
    name : str
        The argument, for the message (``filters``, ``levels``).
    value : Any
        What was given.
    length : int, optional
        The exact number of items the list must have.
    low, high : int, optional
        The range of each item (``high`` None: no upper bound).

    Returns
    -------
    list of int
        ``value`` as a list.

    Raises
    ------
    ValueError
        Naming the argument, what it must be and the value given.
    """
    items = list(value) if isinstance(value, (list, tuple)) else None
    bound = f"in {low}..{high}" if high is not None else ("positive" if low == 1 else f">= {low}")
    kind = f"{bound} ints" if bound == "positive" else f"ints {bound}"
    what = f"a list of {length} {kind}" if length else f"a non-empty list of {kind}"
    if (
        not items
        or (length is not None and len(items) != length)
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in items)
        or min(items) < low
        or (high is not None and max(items) > high)
    ):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return items


def check_positive_int(name: str, value: Any, *, at_most: tuple[str, int] | None = None) -> int:
    """Refuse a model argument that is not a positive int (at most ``at_most[1]``).

    Parameters
    ----------
    name : str
        The argument, for the message.
    value : Any
        What was given.
    at_most : (str, int), optional
        What bounds it and the bound, e.g. ``("the clip's samples", 16000)``.

    Returns
    -------
    int
        ``value``.

    Raises
    ------
    ValueError
        Naming the argument, what it must be and the value given.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if at_most is not None and value > at_most[1]:
        raise ValueError(f"{name} must be at most {at_most[0]} ({at_most[1]}), got {value}")
    return value


def classification_head(x: keras.KerasTensor, num_classes: int, task: str) -> keras.KerasTensor:
    """Final Dense + sigmoid (multi-label) or softmax (single-label), both in float32.

    Parameters
    ----------
    x : keras.KerasTensor, shape (batch, features)
        Clip-level features.
    num_classes : int
        Output width.
    task : {'multilabel', 'singlelabel'}
        Picks the activation.

    Returns
    -------
    keras.KerasTensor, shape (batch, num_classes)
        Probabilities, float32 even under a mixed precision policy.
    """
    check_task(task)
    logits = layers.Dense(num_classes, dtype="float32", name="logits")(x)
    activation = "sigmoid" if task == "multilabel" else "softmax"
    return layers.Activation(activation, dtype="float32", name="predictions")(logits)


@keras.saving.register_keras_serializable(package="audiomill")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy on probabilities with a weight per class.

    Parameters
    ----------
    class_weights : sequence of float
        Weight of each class's term, shape (num_classes,); the loss of an example is the mean of
        ``w_c * bce_c`` over classes.
    negative_weights : sequence of float or None, optional
        Weight of each class's negative term, shape (num_classes,); ``class_weights`` then
        weighs the positive term only: the loss of an example is the mean over classes of
        ``-(w_c * y_c * log p_c + n_c * (1 - y_c) * log(1 - p_c))``. None weighs both terms by
        ``class_weights``.
    **kwargs
        Passed to :class:`keras.losses.Loss`.
    """

    def __init__(
        self,
        class_weights: Sequence[float],
        negative_weights: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "weighted_binary_crossentropy")
        super().__init__(**kwargs)
        self.class_weights = [float(w) for w in class_weights]
        self.negative_weights = (
            None if negative_weights is None else [float(w) for w in negative_weights]
        )

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """Per-example loss, shape (batch,), from labels and probabilities (batch, classes)."""
        y_pred = ops.cast(y_pred, "float32")
        y_true = ops.cast(y_true, y_pred.dtype)
        if self.negative_weights is not None:
            return self._sided_loss(y_true, y_pred)
        bce = ops.binary_crossentropy(y_true, y_pred)
        return ops.mean(bce * ops.convert_to_tensor(self.class_weights, "float32"), axis=-1)

    def _sided_loss(self, y_true: Any, y_pred: Any) -> Any:
        """The loss with the positive and negative terms weighted apart."""
        epsilon = keras.config.epsilon()
        p = ops.clip(y_pred, epsilon, 1.0 - epsilon)
        positive = ops.convert_to_tensor(self.class_weights, "float32") * y_true * ops.log(p)
        negative = ops.convert_to_tensor(self.negative_weights, "float32") * (1 - y_true)
        return -ops.mean(positive + negative * ops.log(1 - p), axis=-1)

    def get_config(self) -> dict[str, Any]:
        """Loss configuration for serialisation."""
        return {
            **super().get_config(),
            "class_weights": self.class_weights,
            "negative_weights": self.negative_weights,
        }


@keras.saving.register_keras_serializable(package="audiomill")
class WeightedCategoricalCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy on probabilities with a weight per class.

    Parameters
    ----------
    class_weights : sequence of float
        Weight of each class, shape (num_classes,); the loss of an example is
        ``-sum_c w_c * y_c * log p_c``: its class's weight times the cross-entropy for one-hot
        labels, ``lam * w_a * CE_a + (1 - lam) * w_b * CE_b`` for a mixup of classes a and b.
    **kwargs
        Passed to :class:`keras.losses.Loss`.
    """

    def __init__(self, class_weights: Sequence[float], **kwargs: Any) -> None:
        kwargs.setdefault("name", "weighted_categorical_crossentropy")
        super().__init__(**kwargs)
        self.class_weights = [float(w) for w in class_weights]

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """Per-example loss, shape (batch,), from labels and probabilities (batch, classes).

        The weighted target is scaled to sum 1 and the loss scaled back: Keras takes the
        cross-entropy of a softmax output from its logits, with a gradient that holds only
        for targets summing to 1.
        """
        y_pred = ops.cast(y_pred, "float32")
        y_true = ops.cast(y_true, y_pred.dtype)
        weighted = y_true * ops.convert_to_tensor(self.class_weights, "float32")
        total = ops.sum(weighted, axis=-1, keepdims=True)
        target = ops.divide_no_nan(weighted, total)
        return ops.squeeze(total, axis=-1) * ops.categorical_crossentropy(target, y_pred)

    def get_config(self) -> dict[str, Any]:
        """Loss configuration for serialisation."""
        return {**super().get_config(), "class_weights": self.class_weights}


def loss_for_task(
    task: str,
    class_weights: Sequence[float] | None = None,
    negative_weights: Sequence[float] | None = None,
) -> keras.losses.Loss:
    """Loss for a task head: binary cross-entropy (multi-label) or categorical (single-label).

    Parameters
    ----------
    task : {'multilabel', 'singlelabel'}
        Task of the model's head (models output probabilities).
    class_weights : sequence of float or None, optional
        Per-class weights, shape (num_classes,); None for the unweighted loss.
    negative_weights : sequence of float or None, optional
        Per-class weights of the negative terms of a multi-label loss, ``class_weights`` then
        weighing the positive terms (:class:`WeightedBinaryCrossentropy`); None weighs both
        terms by ``class_weights``.

    Returns
    -------
    keras.losses.Loss
        Loss taking labels and probabilities of shape (batch, num_classes).
    """
    check_task(task)
    if task == "multilabel":
        if class_weights is None:
            return keras.losses.BinaryCrossentropy()
        return WeightedBinaryCrossentropy(class_weights, negative_weights)
    if class_weights is None:
        return keras.losses.CategoricalCrossentropy()
    return WeightedCategoricalCrossentropy(class_weights)


def balanced_class_weights(labels: np.ndarray) -> np.ndarray:
    """Class weights inversely proportional to class frequency, mean 1 over present classes.

    Parameters
    ----------
    labels : np.ndarray, shape (n_examples, num_classes)
        Multi-hot or one-hot training labels.

    Returns
    -------
    np.ndarray, shape (num_classes,)
        ``mean_count / count_c`` for classes with positives, 0 for classes without.
    """
    counts = np.asarray(labels, dtype=np.float64).sum(axis=0)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts[present].mean() / counts[present]
    return weights.astype(np.float32)


def balanced_binary_weights(labels: np.ndarray) -> tuple[float, float]:
    """Weights of the positive and negative terms of a one-class detector's loss, inversely
    proportional to their frequency: ``N / (2 P)`` and ``N / (2 (N - P))``.

    Parameters
    ----------
    labels : np.ndarray, shape (n_examples, 1)
        Training labels of the one class; clips without it are negatives.

    Returns
    -------
    tuple of float
        ``(positive_weight, negative_weight)``.

    Raises
    ------
    ValueError
        When every clip is positive or every clip negative: there is nothing to balance.
    """
    total = int(np.asarray(labels).size)
    positives = int(np.count_nonzero(labels))
    if not 0 < positives < total:
        raise ValueError(
            f"{positives} of {total} clips are positives: balancing positives against "
            "negatives needs both"
        )
    return total / (2 * positives), total / (2 * (total - positives))


def compile_model(
    model: keras.Model,
    task: str,
    learning_rate: float = 1e-3,
    class_weights: Sequence[float] | None = None,
    optimizer: keras.optimizers.Optimizer | None = None,
    jit_compile: bool | str = "auto",
    negative_weights: Sequence[float] | None = None,
) -> keras.Model:
    """Compile ``model`` with the task's loss and an accuracy metric.

    Parameters
    ----------
    model : keras.Model
        Model whose outputs are probabilities (batch, num_classes).
    task : {'multilabel', 'singlelabel'}
        Picks the loss (binary / categorical cross-entropy) and metric (binary / categorical
        accuracy).
    learning_rate : float, optional
        Adam learning rate, used when ``optimizer`` is None.
    class_weights : sequence of float or None, optional
        Per-class loss weights, shape (num_classes,).
    optimizer : keras.optimizers.Optimizer or None, optional
        Optimizer; Adam by default. Under a mixed_float16 policy Keras wraps it in loss scaling.
    jit_compile : bool or 'auto', optional
        XLA compilation of the train/predict steps; False avoids the compile time on small runs.
    negative_weights : sequence of float or None, optional
        Per-class weights of the negative terms of a multi-label loss
        (:func:`loss_for_task`).

    Returns
    -------
    keras.Model
        The same model, compiled.
    """
    metric = "binary_accuracy" if task == "multilabel" else "categorical_accuracy"
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(learning_rate),
        loss=loss_for_task(task, class_weights, negative_weights),
        metrics=[metric],
        jit_compile=jit_compile,
    )
    return model


def _registry() -> dict[tuple[str, str], Callable[..., keras.Model]]:
    """Builders by (name, input kind); imported here because the families import this module."""
    from modeling import models_embedding, models_logmel

    return {
        ("multi_level_attention", "embedding"): models_embedding.multi_level_attention,
        ("single_level_attention", "embedding"): models_embedding.single_level_attention,
        ("decision_level_attention", "embedding"): models_embedding.decision_level_attention,
        ("mlp_baseline", "embedding"): models_embedding.mlp_baseline,
        ("cnn14", "waveform"): models_logmel.cnn14,
        ("small_cnn", "waveform"): models_logmel.small_cnn,
    }


def model_names() -> list[tuple[str, str]]:
    """Registered ``(name, input_kind)`` pairs, sorted."""
    return sorted(_registry())


def model_parameters(name: str, input_kind: str) -> list[str]:
    """The builder arguments of a registered model, besides ``num_classes`` and ``task``."""
    builder = _registry()[name, input_kind]
    return [p for p in inspect.signature(builder).parameters if p not in ("num_classes", "task")]


def build_model(
    name: str, input_kind: str, num_classes: int, task: str = "multilabel", **kwargs: Any
) -> keras.Model:
    """Build a registered model.

    Parameters
    ----------
    name : str
        Model name, e.g. ``'multi_level_attention'`` or ``'cnn14'`` (see :func:`model_names`).
    input_kind : {'embedding', 'waveform'}
        What the model reads: embedding sequences or raw waveforms.
    num_classes : int
        Number of output classes.
    task : {'multilabel', 'singlelabel'}, optional
        Output head.
    **kwargs
        Passed to the model's builder (``hidden``, ``width``, ``sample_rate``...).

    Returns
    -------
    keras.Model
        The uncompiled model, outputs (batch, num_classes) float32 probabilities.

    Raises
    ------
    ValueError
        If the input kind, task or (name, input kind) pair is unknown.
    """
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")
    check_task(task)
    registry = _registry()
    if (name, input_kind) not in registry:
        raise ValueError(f"no model {name!r} for {input_kind} input; known: {sorted(registry)}")
    return registry[name, input_kind](num_classes, task=task, **kwargs)


def _device_name(name: str) -> str | None:
    """``name`` as TensorFlow resolves it in this process, ``TYPE:INDEX``.

    Parameters
    ----------
    name : str
        A device name in any of TensorFlow's forms: ``/gpu:0``, ``GPU:0``, ``/device:GPU:0``,
        ``/job:localhost/replica:0/task:0/device:GPU:0``.

    Returns
    -------
    str or None
        Such as ``"GPU:0"``; None where ``name`` is no name of a device of this process.
    """
    try:
        spec = LOCAL_DEVICE.make_merged_spec(tf.DeviceSpec.from_string(name))
    except ValueError:
        return None
    if (spec.job, spec.replica, spec.task) != ("localhost", 0, 0):
        return None
    return f"{spec.device_type}:{spec.device_index}"


def check_devices(devices: Sequence[str]) -> list[str]:
    """Refuse a device TensorFlow does not see in this process, or one named twice.

    ``MirroredStrategy`` takes any device name: on a device TensorFlow does not have it trains
    elsewhere (a GPU) or waits forever in its first step (a CPU).

    Parameters
    ----------
    devices : sequence of str
        Device names, as :func:`_device_name` takes them.

    Returns
    -------
    list of str
        The devices as ``TYPE:INDEX``, in order.

    Raises
    ------
    ValueError
        Naming the first device refused, and the devices TensorFlow sees.
    """
    seen = [_device_name(device.name) for device in tf.config.list_logical_devices()]
    given: dict[str, str] = {}
    for device in devices:
        name = _device_name(device)
        if name not in seen:
            known = ", ".join(str(s) for s in seen)
            raise ValueError(
                f"--device {device}: TensorFlow sees no such device (devices: {known})"
            )
        if name in given:
            raise ValueError(f"--device {device}: names {given[name]} again; give each device once")
        given[name] = device
    return list(given)


def strategy_and_policy(
    mixed_precision: bool | None = None,
    devices: Sequence[str] | None = None,
) -> tuple[tf.distribute.Strategy, keras.DTypePolicy]:
    """Pick the distribution strategy and set the global Keras precision policy.

    Parameters
    ----------
    mixed_precision : bool or None, optional
        True forces ``'mixed_float16'``, False forces ``'float32'``, None uses mixed precision
        exactly when the run's devices include a GPU (``devices``, else every GPU visible).
        Mixed precision on CPUs only is logged as a warning: float16 is emulated there, many
        times slower.
    devices : sequence of str, optional
        Replicate over exactly these devices (``MirroredStrategy``), e.g. two logical CPUs
        in a test or a subset of the GPUs; each must be one TensorFlow sees
        (:func:`check_devices`).

    Returns
    -------
    strategy : tf.distribute.Strategy
        ``MirroredStrategy`` over all GPUs when more than one is visible, else the default
        strategy. Build and compile models inside ``strategy.scope()``.
    policy : keras.DTypePolicy
        The global policy now in force; model heads keep float32 outputs under it.

    Raises
    ------
    ValueError
        For a device TensorFlow does not see, or one named twice.

    Notes
    -----
    The policy is process-global: callers that only need it temporarily must restore the
    previous one (``keras.mixed_precision.set_global_policy``).
    """
    gpus = tf.config.list_physical_devices("GPU")
    if devices:
        on_cpus_only = all(name.startswith("CPU:") for name in check_devices(devices))
        strategy = tf.distribute.MirroredStrategy(list(devices))
    elif len(gpus) > 1:
        on_cpus_only = False
        strategy = tf.distribute.MirroredStrategy()
    else:
        on_cpus_only = not gpus
        strategy = tf.distribute.get_strategy()
    use_mixed = not on_cpus_only if mixed_precision is None else mixed_precision
    if use_mixed and on_cpus_only:
        log.warning(EMULATED_FLOAT16)
    keras.mixed_precision.set_global_policy("mixed_float16" if use_mixed else "float32")
    return strategy, keras.mixed_precision.global_policy()


def describe_strategy(strategy: tf.distribute.Strategy, policy: keras.DTypePolicy) -> str:
    """Where and in what precision a model trains, for a run's summary.

    Parameters
    ----------
    strategy : tf.distribute.Strategy
    policy : keras.DTypePolicy
        As :func:`strategy_and_policy` returns them.

    Returns
    -------
    str
        Such as ``"CPU, float32"``, ``"GPU:0, mixed_float16"`` or ``"2 replicas
        (MirroredStrategy: GPU:0, GPU:1), mixed_float16"``.
    """
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        names = [tf.DeviceSpec.from_string(d) for d in strategy.extended.worker_devices]
        where = ", ".join(f"{d.device_type}:{d.device_index}" for d in names)
        replicas = strategy.num_replicas_in_sync
        where = f"{replicas} replica{'s' if replicas > 1 else ''} (MirroredStrategy: {where})"
    else:
        where = default_device()
    return f"{where}, {policy.name}"
