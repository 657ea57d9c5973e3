"""Regenerate the static figures of the docs and the README (seeded, a few seconds on a laptop CPU).

Run from the repository root::

    .venv/bin/python docs/make_figures.py

Writes ``docs/_static/readme.png`` (README and docs front page) and ``docs/_static/enhancement_target.png``
(docs/method.md). Sphinx does not run this script; the PNGs are committed.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import deepspot_sd as dsd

STATIC = Path(__file__).parent / "_static"


def _limits(image: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(image, [1.0, 99.8])
    return float(low), float(high)


def readme_figure(path: Path) -> None:
    """A simulated wound-healing crop: raw image, and the same with its true spots."""
    sdata = dsd.datasets.wound_healing((512, 512), cell_spacing_px=150, seed=0)
    image = np.asarray(sdata.images["smfish"].data[0].compute(), dtype=np.float32)
    points = sdata.points["true_spots"].compute()
    wound = sdata.shapes["wound"]
    vmin, vmax = _limits(image)

    fig, axes = plt.subplots(1, 2, figsize=(8.0, 4.1), dpi=90, layout="constrained")
    for ax, title in zip(axes, ("simulated smFISH image (wound at left)", "true RNA spots"), strict=True):
        ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        for geom in wound.geometry:
            x, y = geom.exterior.xy
            ax.plot(x, y, color="#4fc3f7", lw=1.4, ls="--")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    axes[1].scatter(points["x"], points["y"], s=6, facecolors="none", edgecolors="#ff1744", linewidths=0.8)
    axes[1].set_xlim(axes[0].get_xlim())
    axes[1].set_ylim(axes[0].get_ylim())
    fig.savefig(path, dpi=90)
    plt.close(fig)
    _quantize(path)


def enhancement_figure(path: Path) -> None:
    """A simulated image, its enhancement target e(X) and an intensity profile through the dimmest spot."""
    sim = dsd.datasets.simulate_image((128, 128), n_spots=30, family="hybrid", seed=3)
    inner = np.all((sim.spots > 12) & (sim.spots < 115), axis=1)
    k = int(np.flatnonzero(inner)[np.argmin(sim.snr[inner])])
    row, col = (int(round(v)) for v in sim.spots[k])
    cols = np.arange(col - 12, col + 13)

    vmin, vmax = _limits(sim.image)
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.3), dpi=90, layout="constrained")
    axes[0].imshow(sim.image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    axes[0].set_title("raw image X (hybrid, SNR 10–40)", fontsize=10)
    axes[1].imshow(sim.target, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    axes[1].set_title("target e(X): a 3×3 stamp at every spot", fontsize=10)
    for ax in axes[:2]:
        ax.plot([cols[0] - 0.5, cols[-1] + 0.5], [row, row], color="#ff9800", lw=1.2)
        ax.set_axis_off()
    axes[2].step(cols, sim.image[row, cols], where="mid", color="0.3", label="raw X")
    axes[2].step(cols, sim.target[row, cols], where="mid", color="#d81b60", label="target e(X)")
    axes[2].axvline(sim.spots[k, 1], color="#1e88e5", ls=":", lw=1.0, label="true centre")
    axes[2].set_ylim(0, 270)
    axes[2].set_xlabel("column (px)")
    axes[2].set_ylabel("intensity (8-bit scale)")
    axes[2].set_title(f"row {row}: dimmest spot, SNR {sim.snr[k]:.0f}", fontsize=10)
    axes[2].legend(fontsize=8, loc="lower right", frameon=False)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    _quantize(path)


def _quantize(path: Path, colors: int = 128) -> None:
    """Rewrite a PNG with a palette: same look, a fraction of the size (the README figure stays < 200 KB)."""
    from PIL import Image

    with Image.open(path) as img:
        pal = img.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal.save(path, optimize=True)


if __name__ == "__main__":
    STATIC.mkdir(exist_ok=True)
    readme_figure(STATIC / "readme.png")
    enhancement_figure(STATIC / "enhancement_target.png")
    for name in ("readme.png", "enhancement_target.png"):
        print(f"{name}: {(STATIC / name).stat().st_size / 1024:.0f} KiB")
