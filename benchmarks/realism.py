"""Realism of the simulator: statistics of each real image beside those of simulated images calibrated to it.

For every image in ``shared/data/real_unlabeled/`` the script calibrates the simulator to it
(:func:`deepspot_sd.models.calibrate_array`), simulates one image of the same size with the calibrated parameters
(fully simulated) and one hybrid image (the image's own spot-suppressed background plus simulated spots), and
measures on all three: background level, noise at the background level, texture (spread of the smoothed
background in noise units), the slope of the radially averaged power spectrum, the spot PSF sigma, the spot SNR
and the density of confident spots. Writes a table and a figure into ``docs/benchmarks.md``.

    python benchmarks/realism.py [--data ../shared/data/real_unlabeled] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _common import DOCS_BENCHMARKS, command_line, write_between_markers

import deepspot_sd as dsd
from deepspot_sd.models._calibrate import calibrate_array, measure_spots

FIGURE = DOCS_BENCHMARKS.parent / "_static" / "realism.png"


def radial_power_spectrum(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum (frequency in cycles/px, power) of the mean-subtracted image."""
    img = image.astype(np.float64) - image.mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(img))) ** 2
    fy = np.fft.fftshift(np.fft.fftfreq(img.shape[0]))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(img.shape[1]))[None, :]
    radius = np.hypot(fy, fx)
    bins = np.linspace(0.0, 0.5, 51)
    idx = np.digitize(radius.ravel(), bins)
    sums = np.bincount(idx, power.ravel(), minlength=len(bins) + 1)[1 : len(bins)]
    counts = np.bincount(idx, minlength=len(bins) + 1)[1 : len(bins)]
    centres = 0.5 * (bins[1:] + bins[:-1])
    return centres, sums / np.maximum(counts, 1)


def image_statistics(image: np.ndarray) -> dict[str, float]:
    """The statistics compared between real and simulated images."""
    noise = dsd.datasets.estimate_noise_model(image)
    median = float(np.median(image))
    noise_std = float(noise.std(median))
    smooth = ndimage.gaussian_filter(ndimage.median_filter(image.astype(np.float64), size=11), 2.0)
    freq, power = radial_power_spectrum(image)
    band = (freq > 0.02) & (freq < 0.25)
    slope = float(np.polyfit(np.log(freq[band]), np.log(power[band]), 1)[0])
    spots = measure_spots(image, noise, min_snr=6.0)
    return {
        "median": median,
        "noise std": noise_std,
        "texture / noise": float(np.std(smooth)) / noise_std,
        "PSD slope": slope,
        "PSF sigma (px)": float(np.median(spots["sigma"])) if len(spots["sigma"]) else float("nan"),
        "spot SNR (median)": float(np.median(spots["snr"])) if len(spots["snr"]) else float("nan"),
        "spots / 100 px²": float(spots["n_candidates"]) / (image.size / 100.0),
    }


def main() -> None:
    """Run the benchmark and write its table and figure."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_unlabeled"
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch docs/benchmarks.md")
    args = parser.parse_args()

    paths = sorted(args.data.glob("*.tif"))
    if not paths:
        raise SystemExit(f"No .tif images in {args.data}")
    rows, panels = [], []
    for path in paths:
        real = tifffile.imread(path).astype(np.float32)
        calib = calibrate_array(real, seed=args.seed)
        kwargs = calib.simulation_kwargs(real.shape)
        simulated = dsd.datasets.simulate_image(**kwargs, n_regions=2, seed=args.seed).image
        hybrid = dsd.datasets.hybrid_image(
            calib.backgrounds[0],
            calib.noise,
            shape=real.shape,
            n_spots=kwargs["n_spots"],
            snr_range=calib.snr_range,
            psf_sigma_range=calib.psf_sigma_range_px,
            seed=args.seed,
        ).image
        for kind, image in (("real", real), ("simulated", simulated), ("hybrid", hybrid)):
            rows.append({"image": path.stem, "kind": kind, **image_statistics(image)})
        panels.append((path.stem, real, simulated, hybrid))
        print(pd.DataFrame(rows[-3:]).to_string(index=False), flush=True)

    table = pd.DataFrame(rows)
    fig, axes = plt.subplots(len(panels), 4, figsize=(16, 4 * len(panels)))
    for ax_row, (name, real, simulated, hybrid) in zip(axes, panels, strict=True):
        crop = tuple(slice(s // 2 - 64, s // 2 + 64) for s in real.shape)
        lo, hi = np.percentile(real[crop], [0.5, 99.8])
        named = (("real", real), ("simulated", simulated), ("hybrid", hybrid))
        for ax, (title, img) in zip(ax_row[:3], named, strict=True):
            ax.imshow(img[crop], cmap="gray", vmin=lo, vmax=hi)
            ax.set_title(f"{name[:28]}: {title}", fontsize=9)
            ax.axis("off")
        for title, img in named:
            freq, power = radial_power_spectrum(img)
            ax_row[3].loglog(freq[1:], power[1:] / power[1:].sum(), label=title)
        ax_row[3].set_xlabel("frequency (cycles/px)")
        ax_row[3].set_title("radial power spectrum (normalised)", fontsize=9)
        ax_row[3].legend(fontsize=8)
    fig.tight_layout()
    text = "\n".join(
        [
            f"Command: `{command_line()}`",
            "",
            table.to_markdown(index=False, floatfmt=".3g"),
            "",
            "![real vs calibrated simulated and hybrid images](_static/realism.png)",
        ]
    )
    print(text)
    if not args.no_write:
        FIGURE.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(FIGURE, dpi=60)
        write_between_markers(text, "realism")


if __name__ == "__main__":
    main()
