"""Regenerate the figures of the tutorial "Your folder of images" (docs/your_images.md).

Runs the command line on the two annotated real images of ``../shared/data/real_annotated/`` (a copy of the
project's shared data; not in the repository) and keeps what the tutorial shows::

    .venv/bin/python docs/make_cli_figures.py [--data ../shared/data/real_annotated]

Writes ``docs/_static/cli/{overview,beads_lung_qc,iss_rnd0_ch3_qc}.png``, ``summary.csv`` and ``output.txt`` (the
command and what it printed). Sphinx does not run this script (the data are not in a clean clone); the files are
committed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from deepspot_sd.__main__ import main

STATIC = Path(__file__).parent / "_static" / "cli"
ROOT = Path(__file__).resolve().parents[1]


def run(data: Path) -> None:
    """Run ``deepspot-sd detect`` on the ``.tif`` files of ``data`` and copy its figures into docs/_static/cli."""
    STATIC.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        for tif in sorted(data.glob("*.tif")):  # only the images: the annotation CSVs are not the command's input
            shutil.copy(tif, images / tif.name)
        out = Path(tmp) / "results"
        argv = ["detect", str(images), "--out", str(out), "-q"]
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = main(argv)
        text = printed.getvalue().replace(tmp, "").replace("/images", "images").replace("/results", "results")
        command = "deepspot-sd detect images/ --out results/"
        (STATIC / "output.txt").write_text(f"$ {command}\n{text}exit code {code}\n", encoding="utf-8")
        shutil.copy(out / "overview.png", STATIC / "overview.png")
        for folder in sorted(p for p in out.iterdir() if (p / "qc.png").is_file()):
            shutil.copy(folder / "qc.png", STATIC / f"{folder.name}_qc.png")
        summary = pd.read_csv(out / "summary.csv")
        keep = ["image", "status", "channel", "n_molecules", "n_rejected", "molecule_amplitude_median", "seconds"]
        summary[keep].to_csv(STATIC / "summary.csv", index=False, float_format="%.4g")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "real_annotated")
    run(parser.parse_args().data)
