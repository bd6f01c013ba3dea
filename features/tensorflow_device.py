"""Where TensorFlow places work in this process when nothing says otherwise."""

from __future__ import annotations

from features.quiet_tensorflow import quiet_tensorflow_import


def default_device() -> str:
    """The device TensorFlow runs unplaced ops on here.

    Returns
    -------
    str
        ``"GPU:0"`` when TensorFlow sees a GPU (its default placement), else ``"CPU"``.
    """
    quiet_tensorflow_import()
    import tensorflow as tf

    return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU"
