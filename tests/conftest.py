"""Markers: ``gpu`` tests are skipped unless TensorFlow sees a GPU; ``slow`` tests run by default (``-m "not slow"``
leaves them out)."""

import pytest

_GPU: bool | None = None


def _tensorflow_sees_gpu() -> bool:
    global _GPU
    if _GPU is None:
        import tensorflow as tf

        _GPU = bool(tf.config.list_physical_devices("GPU"))
    return _GPU


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None and not _tensorflow_sees_gpu():
        pytest.skip("needs a GPU visible to TensorFlow")
