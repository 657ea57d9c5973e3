"""DeepSpot RNA spot enhancement and detection for smFISH images, on SpatialData."""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, io, metrics, models, pl, pp, tl

try:
    __version__ = version("deepspot-sd")
except PackageNotFoundError:  # pragma: no cover - source checkout without install
    __version__ = "0.0.0"

__all__ = ["datasets", "io", "metrics", "models", "pl", "pp", "tl", "__version__"]
