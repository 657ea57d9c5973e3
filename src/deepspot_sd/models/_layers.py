"""Custom Keras layers (imported lazily, with Keras)."""

from __future__ import annotations

from typing import Any

import keras

__all__ = ["BilinearUpsampling2x"]


class BilinearUpsampling2x(keras.layers.Layer):
    """Bilinear ×2 upsampling of ``(batch, y, x, channels)`` inputs of any, even unknown, size.

    ``tf.image.resize(..., "bilinear")`` (half-pixel centres) with the output size taken from the input's dynamic
    shape: Keras' ``UpSampling2D(interpolation="bilinear")`` cannot run on inputs whose size is unknown when its
    predict function is traced, and tiled inference feeds images of any size. On other backends (JAX, used
    to train on a machine without TensorFlow; shapes are static there) it is ``keras.ops.image.resize``, which gives
    the same values up to float rounding (2e-7).
    """

    def call(self, inputs: Any) -> Any:
        """Return the upsampled batch."""
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            shape = tf.shape(inputs)
            return tf.image.resize(inputs, (2 * shape[1], 2 * shape[2]), method="bilinear")
        _, height, width, _ = keras.ops.shape(inputs)
        return keras.ops.image.resize(inputs, (2 * height, 2 * width), interpolation="bilinear")

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """Double the known spatial sizes."""
        b, h, w, c = input_shape
        return (b, None if h is None else 2 * h, None if w is None else 2 * w, c)
