"""`deepspot_sd.io`."""
