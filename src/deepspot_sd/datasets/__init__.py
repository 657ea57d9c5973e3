"""Simulated smFISH images and ready SpatialData example scenes."""

from ._hybrid import NoiseModel, estimate_noise_model, hybrid_image, suppress_spots
from ._scene import WoundHealingLayout, wound_healing, wound_healing_layout
from ._simulate import STAMP, SimulatedImage, perlin_background, render_spots, simulate_image, stamp_target

__all__ = [
    "STAMP",
    "NoiseModel",
    "SimulatedImage",
    "WoundHealingLayout",
    "estimate_noise_model",
    "hybrid_image",
    "perlin_background",
    "render_spots",
    "simulate_image",
    "stamp_target",
    "suppress_spots",
    "wound_healing",
    "wound_healing_layout",
]
