"""`deepspot_sd.metrics`."""
