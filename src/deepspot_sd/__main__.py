"""Command line: ``python -m deepspot_sd demo`` runs the main job on the embedded default scene."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface.

    Parameters
    ----------
    argv
        Arguments without the program name; ``None`` reads :data:`sys.argv`.

    Returns
    -------
    The process exit code.
    """
    parser = argparse.ArgumentParser(prog="deepspot-sd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="simulate the default scene, write it to zarr and analyse it")
    demo.add_argument("--out", default="output/demo", help="output folder (the zarr store goes inside)")
    demo.add_argument("--size", type=int, default=2048, help="image side in pixels")
    demo.add_argument("--chunks", type=int, default=1024, help="chunk side in pixels")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--model", default=None, help="model name or folder (default: the shipped model)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("deepspot_sd").setLevel(logging.INFO)
    from ._demo import run_demo

    summary = run_demo(args.out, size=args.size, chunks=args.chunks, seed=args.seed, model=args.model)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
