"""`deepspot_sd.pl`."""
