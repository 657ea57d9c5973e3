"""Acceptance (issue 4): the shipped model's detections do not depend on gain, camera offset or storage dtype.

Normalise + enhance + detect (one fixed setting, the model's ``threshold`` / ``min_distance``) each variant of a small
simulated image and compare with the detections on the unmodified input: k-d tree matching at radius 3 px, F1 >= 0.99.
"""

import os

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

import deepspot_sd as dsd
from deepspot_sd.metrics import match_kdtree

SHIPPED = "deepspot_v1"

# x is the unmodified input (float64, 8-bit-like scale); each variant is what a camera / file could hand over instead.
VARIANTS = {
    "gain_x0.25": lambda x: x * 0.25,
    "gain_x8": lambda x: x * 8.0,
    "offset_+1000": lambda x: x + 1000.0,
    "uint8": lambda x: np.round(x).astype(np.uint8),
    "uint16": lambda x: np.round(x).astype(np.uint16),
    "uint16_camera": lambda x: np.round(4.0 * x + 1000.0).astype(np.uint16),
    "float32": lambda x: x.astype(np.float32),
}


@pytest.fixture(scope="module")
def model():
    return dsd.models.load_pretrained(SHIPPED)


def _detect(model, image):
    cfg = model.config
    enhanced = model.enhance_array(image)
    return dsd.tl.find_spots_local_max(enhanced, threshold=cfg.threshold, min_distance=cfg.min_distance)


@pytest.fixture(scope="module")
def raw():
    # 60 spots in 192 x 192 (~110 per 256²), SNR 6–12; the whole image fits the uint8 range (no clipping)
    sim = dsd.datasets.simulate_image(
        (192, 192), n_spots=60, snr_range=(6.0, 12.0), background_mean_range=(80.0, 110.0), seed=2
    )
    x = sim.image.astype(np.float64)
    assert 0.0 <= x.min() and x.max() <= 255.0, "test image must fit uint8 without clipping"
    return x


@pytest.fixture(scope="module")
def reference(model, raw):
    spots = _detect(model, raw)
    assert len(spots) > 30  # the comparison below must be about many spots, not an empty set
    return spots


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_detections_invariant(model, raw, reference, variant):
    image = VARIANTS[variant](raw)
    spots = _detect(model, image)
    res = match_kdtree(reference, spots, radius=3.0)
    assert res.f1 >= 0.99, f"{variant}: F1 {res.f1:.4f} vs the unmodified input ({res.fp} FP, {res.fn} FN)"


def test_fixed_setting_finds_true_spots(model):
    sim = dsd.datasets.simulate_image((192, 192), n_spots=40, family="hybrid", snr_range=(10.0, 40.0), seed=11)
    res = match_kdtree(sim.spots, _detect(model, sim.image), radius=3.0)
    assert res.f1 > 0.9, f"F1 {res.f1:.3f} (precision {res.precision:.3f}, recall {res.recall:.3f})"
