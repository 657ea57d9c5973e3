"""``deepspot-sd demo``: the main job on the simulated default scene (the README's set-up command runs it)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any, **kwargs: Any) -> None:
    """Add the ``demo`` subcommand to the subparsers ``sub``."""
    demo = sub.add_parser(
        "demo",
        help="simulate the default scene, write it to zarr, analyse it and draw its QC figure",
        description=(
            "Simulate the wound-healing scene (cells, nuclei, a wound, RNA spots with exact positions), write it "
            "to a zarr store, and run the whole pipeline from the store: enhance, detect, score against the true "
            "spots, assign spots to cells, sector enrichment toward the wound and the polarity index. Prints a "
            "summary and writes the QC figure {out}/qc.png (image with its spots, a zoomed crop, the brightness "
            "histogram with the molecule decision)."
        ),
        **kwargs,
    )
    demo.add_argument("--out", default="output/demo", help="output folder (the zarr store and qc.png go inside)")
    demo.add_argument("--size", type=int, default=2048, help="image side in pixels (at least 360)")
    demo.add_argument("--chunks", type=int, default=1024, help="chunk side in pixels")
    demo.add_argument("--seed", type=int, default=0, help="scene seed")
    demo.add_argument("--model", default=None, help="model name or folder (default: the shipped model)")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``deepspot-sd demo``."""
    from deepspot_sd._demo import run_demo

    summary = run_demo(
        args.out,
        size=args.size,
        chunks=args.chunks,
        seed=args.seed,
        model=args.model,
        show_progress_bar=not args.quiet,
    )
    print(summary)
    return 0
