"""The ``deepspot-sd`` command line: the parser and the entry point.

Subcommands: ``detect`` (a batch of TIFF / OME-TIFF files or SpatialData zarr stores), ``demo`` (the main job on
the simulated default scene), ``train``, ``calibrate`` and ``fine-tune``. Each lives in its own module and imports
the heavy libraries only when it runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
DeepSpot RNA spot enhancement and detection for smFISH images, on SpatialData.

Run `deepspot-sd detect images/ --out results/` on a folder of TIFF / OME-TIFF files (or SpatialData zarr
stores): every image gets a zarr store with the image, the enhanced image and the spots, a spot table (CSV) and
a QC figure; the batch gets a summary table and an overview figure. `deepspot-sd SUBCOMMAND --help` explains
each subcommand's options.

Output is quiet by default: progress bars and warnings only (no TensorFlow, absl, CUDA or ome_zarr start-up
lines); -v adds the package's INFO lines, -q removes the progress bars.
"""

EPILOG = """\
examples:
  deepspot-sd detect data/*.tif --out results --pixel-size 0.108
  deepspot-sd detect data/ --out results --channels 0 2 --z max
  deepspot-sd demo --out output/demo
  deepspot-sd calibrate finetuned/model --annotated data/annotated/ --write
  deepspot-sd fine-tune data/ --out finetuned --epochs 5
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the description's line breaks and show every option's default; a fixed width (docs, tests)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=100, max_help_position=32)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Wrap the paragraphs of plain text; keep paragraphs with indented lines (lists, examples) as they are."""
        import textwrap

        paragraphs = []
        for para in text.split("\n\n"):
            lines = para.splitlines()
            if any(line.startswith(" ") for line in lines[1:]) or all(len(line) <= width for line in lines):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(
                    textwrap.fill(" ".join(para.split()), width, initial_indent=indent, subsequent_indent=indent)
                )
        return "\n\n".join(paragraphs)


def _common() -> argparse.ArgumentParser:
    """Options every subcommand takes: verbosity and progress bars."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="show the package's INFO lines (-vv: DEBUG, and the third-party libraries' warnings)",
    )
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bars (warnings and errors still show)")
    return common


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of ``deepspot-sd`` with all its subcommands.

    Returns
    -------
    The :class:`argparse.ArgumentParser`; ``parser.parse_args(argv)`` gives a namespace whose ``run`` attribute is
    the subcommand's function.
    """
    from . import _batch, _demo, _train

    parser = argparse.ArgumentParser(
        prog="deepspot-sd", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter
    )
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("deepspot-sd")
    except PackageNotFoundError:  # pragma: no cover - source checkout without install
        release = "0.0.0"
    parser.add_argument("--version", action="version", version=f"%(prog)s {release}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    common = _common()
    for module in (_batch, _demo, _train):
        module.add_parsers(sub, parents=[common], formatter_class=_Formatter)
    return parser


def _configure_logging(verbose: int) -> None:
    """Warnings always; the package's INFO lines with -v; DEBUG and third-party warnings with -vv."""
    from deepspot_sd._logging import quiet_third_party

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("deepspot_sd").setLevel(
        logging.DEBUG if verbose >= 2 else logging.INFO if verbose else logging.WARNING
    )
    if verbose < 2:
        quiet_third_party()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface.

    Parameters
    ----------
    argv
        Arguments without the program name; ``None`` reads :data:`sys.argv`.

    Returns
    -------
    The process exit code: 0 on success, 1 if any image of a batch failed, 2 for wrong arguments.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    return int(args.run(args))
