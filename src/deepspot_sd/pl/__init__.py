"""`deepspot_sd.pl`."""

from ._plots import cell_sectors, polarity, raw_vs_enhanced, spot_brightness, spots

__all__ = ["cell_sectors", "polarity", "raw_vs_enhanced", "spot_brightness", "spots"]
