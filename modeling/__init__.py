"""TensorFlow/Keras modeling stage: readers, samplers, models, training, metrics, inference."""
