"""`deepspot_sd.pp`."""

from ._normalize import NormalizationStats, apply_normalization, normalization_stats, normalize_array

__all__ = ["NormalizationStats", "apply_normalization", "normalization_stats", "normalize_array"]
