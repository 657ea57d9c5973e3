"""`deepspot_sd.pp`."""

from ._normalize import NormalizationStats, apply_normalization, normalization_stats, normalize_array
from ._sdata import normalize

__all__ = ["NormalizationStats", "apply_normalization", "normalization_stats", "normalize", "normalize_array"]
