"""The package logger: one named logger, no handlers added here (users configure logging)."""

import logging

logger = logging.getLogger("deepspot_sd")
