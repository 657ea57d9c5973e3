"""Quality-control figures of the command line: one per image, one over a batch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Largest side of the whole-image panel in display pixels (bigger images are max-pooled down to it).
_OVERVIEW_PX = 1024


def _contrast(arr: np.ndarray) -> tuple[float, float]:
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [1.0, 99.8])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def _densest_crop(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], side: int) -> tuple[int, int, int, int]:
    """``(y0, x0, y1, x1)`` of the ``side``-px window (on a grid of half steps) holding the most spots."""
    height, width = shape
    sy, sx = min(side, height), min(width, side)
    if len(x) == 0:
        y0, x0 = (height - sy) // 2, (width - sx) // 2
        return y0, x0, y0 + sy, x0 + sx
    step = max(1, side // 2)
    best, best_count = (0, 0), -1
    for y0 in range(0, max(1, height - sy + 1), step):
        for x0 in range(0, max(1, width - sx + 1), step):
            count = int(np.count_nonzero((x >= x0) & (x < x0 + sx) & (y >= y0) & (y < y0 + sy)))
            if count > best_count:
                best, best_count = (y0, x0), count
    y0, x0 = best
    return y0, x0, y0 + sy, x0 + sx


def qc_figure(
    sdata: Any,
    image_key: str,
    points_key: str,
    path: str | Path,
    *,
    title: str | None = None,
    crop_px: int = 256,
    dpi: int = 110,
) -> Path:
    """Draw the QC figure of one image: per channel, the image with its spots, a zoomed crop and the decision.

    One row per channel: the whole image (max-pooled to at most 1024 px) with the detected molecules, the
    ``crop_px`` window holding the most spots at full resolution, and the brightness histogram with the
    molecule/puncta decision of :func:`deepspot_sd.tl.detect_spots` (as :func:`deepspot_sd.pl.spot_brightness`
    draws it).

    Parameters
    ----------
    sdata
        The SpatialData object.
    image_key
        The raw image element ``(c, y, x)``.
    points_key
        Points made by :func:`deepspot_sd.tl.detect_spots` on the enhanced ``image_key``.
    path
        PNG file to write.
    title
        Figure title (default: ``image_key``).
    crop_px
        Side of the zoomed crop in px.
    dpi
        Resolution of the PNG.

    Returns
    -------
    The path written.
    """
    import dask.array as da
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from deepspot_sd._store import get_provenance
    from deepspot_sd.pl._plots import _brightness_histogram

    image = sdata.images[image_key]
    data = image.data
    channels = [str(c) for c in image.coords["c"].values]
    df = sdata.points[points_key].compute()
    decisions = get_provenance(sdata, points_key, sdata.points[points_key]).get("molecule_decision", {})
    height, width = (int(s) for s in data.shape[1:])
    factor = max(1, math.ceil(max(height, width) / _OVERVIEW_PX))

    fig, axes = plt.subplots(len(channels), 3, figsize=(15.0, 4.8 * len(channels)), squeeze=False)
    for row, name in zip(axes, channels, strict=True):
        ci = channels.index(name)
        sel = (df["gene"].astype(str) == name).to_numpy() if "gene" in df.columns else np.ones(len(df), bool)
        if "molecule" in df.columns:
            sel = sel & df["molecule"].to_numpy(bool)
        x, y = df["x"].to_numpy(float)[sel], df["y"].to_numpy(float)[sel]
        plane = data[ci].astype(np.float32)
        if factor > 1:
            small = da.coarsen(np.max, plane, {0: factor, 1: factor}, trim_excess=True).compute()
        else:
            small = np.asarray(plane)
        lo, hi = _contrast(small)
        ax = row[0]
        ax.imshow(
            small,
            cmap="gray",
            vmin=lo,
            vmax=hi,
            interpolation="nearest",
            extent=(-0.5, small.shape[1] * factor - 0.5, small.shape[0] * factor - 0.5, -0.5),
        )
        ax.scatter(x, y, s=max(1.0, 12.0 / factor), c="tab:red", linewidths=0, alpha=0.8)
        y0, x0, y1, x1 = _densest_crop(x, y, (height, width), crop_px)
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=1.2))
        ax.set_title(f"{name}: {len(x)} molecules ({height} x {width} px)")
        ax.set_xlabel("x (px)")
        ax.set_ylabel("y (px)")

        crop = np.asarray(data[ci, y0:y1, x0:x1], dtype=np.float32)
        lo, hi = _contrast(crop)
        ax = row[1]
        ax.imshow(
            crop,
            cmap="gray",
            vmin=lo,
            vmax=hi,
            interpolation="nearest",
            extent=(x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5),
        )
        inside = (x >= x0 - 0.5) & (x < x1 - 0.5) & (y >= y0 - 0.5) & (y < y1 - 0.5)
        ax.scatter(x[inside], y[inside], s=40, facecolors="none", edgecolors="tab:red", linewidths=0.9)
        ax.set_title(f"zoom: x {x0}-{x1}, y {y0}-{y1} ({int(inside.sum())} molecules)")
        ax.set_xlabel("x (px)")

        decision = decisions.get(name)
        if decision:
            _brightness_histogram(row[2], decision, title=f"molecule decision: {name}")
            reason = str(decision.get("reason", ""))
            row[2].text(0.02, -0.28, _wrap(reason, 80), transform=row[2].transAxes, fontsize="small", va="top")
        else:
            row[2].text(0.5, 0.5, "no molecule decision recorded", ha="center", va="center")
            row[2].set_axis_off()
    fig.suptitle(title or image_key)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def overview_figure(rows: Sequence[dict[str, Any]], path: str | Path, *, dpi: int = 110) -> Path:
    """Draw the overview of a batch: molecules per image and channel, their brightness, and the failed images.

    Parameters
    ----------
    rows
        The rows of the batch summary (``image``, ``channel``, ``status``, ``n_molecules``,
        ``molecule_amplitude_median``, ``error``).
    path
        PNG file to write.
    dpi
        Resolution of the PNG.

    Returns
    -------
    The path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") != "failed"]
    failed = [r for r in rows if r.get("status") == "failed"]
    images = list(dict.fromkeys(r["image"] for r in ok))
    channels = list(dict.fromkeys(str(r["channel"]) for r in ok))
    height = max(2.5, 0.35 * max(1, len(images)) * max(1, len(channels)) + 1.5)
    fig, axes = plt.subplots(1, 2, figsize=(12.0, height), squeeze=False)
    count_ax, amp_ax = axes[0]
    bar_h = 0.8 / max(1, len(channels))
    for k, channel in enumerate(channels):
        pos = [i + k * bar_h for i, im in enumerate(images)]
        lookup = {(r["image"], str(r["channel"])): r for r in ok}
        counts = [float(lookup.get((im, channel), {}).get("n_molecules", np.nan)) for im in images]
        amps = [float(lookup.get((im, channel), {}).get("molecule_amplitude_median", np.nan)) for im in images]
        count_ax.barh(pos, counts, height=bar_h, label=channel)
        amp_ax.plot(amps, pos, "o", label=channel)
    ticks = [i + 0.4 - bar_h / 2 for i in range(len(images))]
    for ax in (count_ax, amp_ax):
        ax.set_yticks(ticks, images)
        ax.invert_yaxis()
    count_ax.set_xlabel("molecules")
    count_ax.set_title("molecules per image and channel")
    amp_ax.set_xlabel("median molecule amplitude above background (raw units)")
    amp_ax.set_title("molecule brightness")
    if len(channels) > 1:
        count_ax.legend(fontsize="small", title="channel")
    title = f"{len(images)} image(s)"
    if failed:
        names = ", ".join(str(r["image"]) for r in failed)
        title += f"; failed: {names}"
    fig.suptitle(_wrap(title, 110))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
