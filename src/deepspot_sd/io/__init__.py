"""`deepspot_sd.io`: read TIFF / OME-TIFF images and spot tables into SpatialData, write spot tables."""

from ._csv import read_spots_csv, write_spots_csv
from ._tiff import read_tiff

__all__ = ["read_spots_csv", "read_tiff", "write_spots_csv"]
