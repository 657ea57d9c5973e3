"""Checks that need a GPU visible to TensorFlow (skipped otherwise, see conftest.py)."""

import numpy as np
import pytest

import deepspot_sd as dsd
from deepspot_sd.tl._enhance import _choose_runtime


@pytest.mark.gpu
def test_gpu_enhancement_matches_the_cpu_runtime():
    model = dsd.models.load_pretrained()
    assert _choose_runtime("auto", model) == "tensorflow"  # with a GPU, "auto" runs TensorFlow on it
    sim = dsd.datasets.simulate_image((512, 512), n_spots=200, snr_range=(5.0, 20.0), seed=11)
    on_gpu = dsd.tl.enhance_array(sim.image, model, runtime="tensorflow")
    on_cpu = dsd.tl.enhance_array(sim.image, model, runtime="onnx")
    # float32 on two devices: equal up to rounding on the 0-255 scale, and the same spots
    assert np.abs(on_gpu - on_cpu).max() < 0.05
    threshold = model.config.threshold
    a = dsd.tl.find_spots_local_max(on_gpu, threshold=threshold, min_distance=model.config.min_distance)
    b = dsd.tl.find_spots_local_max(on_cpu, threshold=threshold, min_distance=model.config.min_distance)
    assert dsd.metrics.match_kdtree(a, b, radius=0.5).f1 > 0.995
    assert dsd.metrics.match_kdtree(sim.spots, a, radius=3.0).f1 > 0.9
