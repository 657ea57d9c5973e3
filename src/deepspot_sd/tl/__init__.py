"""`deepspot_sd.tl`."""
