"""Command line: ``deepspot-sd`` (or ``python -m deepspot_sd``); ``deepspot-sd --help`` lists the subcommands."""

from __future__ import annotations

import os

# before anything imports TensorFlow: its C++ runtime reads this once, at import
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from deepspot_sd._cli import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
