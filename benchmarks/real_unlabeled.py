"""The molecule decision on real images without annotations: detections before and after, and its plot per image.

For every ``*.tif`` in ``--data`` (default ``../shared/data/real_unlabeled`` next to the repository) the raw image
becomes a SpatialData image element, ``dsd.tl.enhance`` and ``dsd.tl.detect_spots(keep_rejected=True)`` run with
their defaults, and the script reports how many detections the molecule decision kept and removed (and its log
line), and draws ``dsd.pl.spot_brightness`` (histogram with the cut, and the detections on a 256 x 256 crop at the
image centre) into ``docs/_static/molecules/<name>.png``. There is no ground truth here: the figures are for the eye.

Run from the repository root::

    python benchmarks/real_unlabeled.py              # writes the table into docs/benchmarks.md and the figures
    python benchmarks/real_unlabeled.py --no-write
"""

from __future__ import annotations

import argparse
import datetime as _dt
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import tifffile
from _common import command_line, write_between_markers

import deepspot_sd as dsd

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_unlabeled"
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "_static" / "molecules"
CROP = 256


def main(argv: list[str] | None = None) -> int:
    from spatialdata import SpatialData
    from spatialdata.models import Image2DModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of 2D TIFF images")
    parser.add_argument("--no-write", action="store_true", help="print only: no table, no figures")
    args = parser.parse_args(argv)
    tifs = sorted(args.data.glob("*.tif"))
    if not tifs:
        raise FileNotFoundError(f"No .tif image in {args.data}.")

    t_run = time.perf_counter()
    lines = [
        "| image | detections | molecules | removed | decision |",
        "|:---|---:|---:|---:|:---|",
    ]
    figures = []
    for tif in tifs:
        image = tifffile.imread(tif)
        sdata = SpatialData(images={"raw": Image2DModel.parse(image[None], dims=("c", "y", "x"))})
        dsd.tl.enhance(sdata, "raw", show_progress_bar=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dsd.tl.detect_spots(sdata, "raw_enhanced", keep_rejected=True, show_progress_bar=False, key_added="spots")
        df = sdata.points["spots"].compute()
        decision = sdata["spots"].attrs["deepspot_sd"]["molecule_decision"]["0"]
        n_kept = int(df["molecule"].sum())
        lines.append(f"| `{tif.stem}` | {len(df)} | {n_kept} | {len(df) - n_kept} | {decision['reason']} |")
        print(f"{tif.stem}: {len(df)} detections, {n_kept} molecules; {decision['reason']}")
        if not args.no_write:
            height, width = image.shape
            y0, x0 = max(0, (height - CROP) // 2), max(0, (width - CROP) // 2)
            FIGURES.mkdir(parents=True, exist_ok=True)
            path = FIGURES / f"{tif.stem}.png"
            dsd.pl.spot_brightness(
                sdata,
                "spots",
                image_key="raw",
                crop=(x0, y0, x0 + CROP, y0 + CROP),
                figsize=(10.0, 4.2),
                dpi=70,
                save=path,
            )
            plt.close("all")
            figures.append(f"![{tif.stem}: brightness histogram and detections](_static/molecules/{path.name})")

    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = "\n".join(
        [
            "The molecule decision of `tl.detect_spots` (defaults) on the real images without annotations "
            "(`../shared/data/real_unlabeled/`): every detection of the shipped model's fixed setting, and how many "
            "the decision kept as molecules. Figures: `dsd.pl.spot_brightness` (left: amplitude histogram, molecules "
            "green, removed red, cut dashed, the two-population model in grey; right: a 256 x 256 crop at the image "
            "centre with molecules in green and removed detections in red).",
            "",
            "\n".join(lines),
            "",
            *(f"{f}\n" for f in figures),
            f"Command: `{command_line()}` ({date}, {time.perf_counter() - t_run:.0f} s on this machine).",
        ]
    )
    print()
    print(text)
    if not args.no_write:
        print(f"\nWrote {write_between_markers(text, 'real_unlabeled')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
