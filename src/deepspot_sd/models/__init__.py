"""`deepspot_sd.models`."""
