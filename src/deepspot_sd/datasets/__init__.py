"""Simulated smFISH images and ready SpatialData example scenes."""

from ._scene import WoundHealingLayout, wound_healing, wound_healing_layout
from ._simulate import STAMP, SimulatedImage, perlin_background, render_spots, simulate_image, stamp_target

__all__ = [
    "STAMP",
    "SimulatedImage",
    "WoundHealingLayout",
    "perlin_background",
    "render_spots",
    "simulate_image",
    "stamp_target",
    "wound_healing",
    "wound_healing_layout",
]
