"""Simulated smFISH images and ready SpatialData example scenes."""

from ._simulate import STAMP, SimulatedImage, perlin_background, render_spots, simulate_image, stamp_target

__all__ = ["STAMP", "SimulatedImage", "perlin_background", "render_spots", "simulate_image", "stamp_target"]
