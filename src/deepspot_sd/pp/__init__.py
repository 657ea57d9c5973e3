"""`deepspot_sd.pp`."""
