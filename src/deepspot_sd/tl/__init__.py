"""`deepspot_sd.tl`."""

from ._detectors import find_spots_local_max, find_spots_log, find_spots_wavelet

__all__ = ["find_spots_local_max", "find_spots_log", "find_spots_wavelet"]
