"""features/tensorflow_device.py: the device unplaced TensorFlow ops run on."""

from __future__ import annotations

from features.tensorflow_device import default_device


def test_default_device_is_the_first_gpu_tensorflow_sees_else_the_cpu():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    assert default_device() == ("GPU:0" if gpus else "CPU")
    with tf.device(default_device()):
        placed = tf.constant([1.0]) + 1.0
    assert placed.device.endswith("device:GPU:0" if gpus else "device:CPU:0")
