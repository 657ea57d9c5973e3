"""Matplotlib plots of images, spots, cell sectors and polarity indices stored in a SpatialData object.

Images are drawn with :meth:`matplotlib.axes.Axes.imshow` and the extent set so that pixel ``(i, j)`` is centred
on ``x = j, y = i`` (the pixel-index convention, with ``y`` pointing down), whatever the crop. Spots are mapped
through a coordinate system they share with the raster to its spatialdata-intrinsic coordinates (the mapping
:func:`deepspot_sd.tl.assign_spots` uses; pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)`` there), then
shifted by -0.5 px into the same pixel-index convention: our points (from :func:`deepspot_sd.tl.detect_spots`)
are drawn at their ``x``, ``y`` columns, foreign points in spatialdata's convention on the pixel spatialdata
draws them on. Only the cropped part of a (dask-backed) raster is loaded.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepspot_sd._coords import intrinsic_to_index
from deepspot_sd._logging import logger
from deepspot_sd._store import get_provenance
from deepspot_sd._validation import check_key, check_positive, check_type
from deepspot_sd.tl._assign import _get_labels, _points_in_grid, _scale0
from deepspot_sd.tl._enrichment import _sector_index

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from spatialdata import SpatialData
    from xarray import DataArray

__all__ = ["cell_sectors", "polarity", "raw_vs_enhanced", "spot_brightness", "spots"]

_REFERENCE_COLOR = "#9ecae1"  # light blue: the sector facing the reference (paper Fig. 7)
_OTHER_COLOR = "#3182bd"  # dark blue: the other sectors


# --------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------
def _get_image(sdata: SpatialData, key: str) -> DataArray:
    check_key(key, sdata.images, "sdata.images")
    image = _scale0(sdata.images[key])
    if tuple(image.dims) != ("c", "y", "x"):
        raise ValueError(f"Image {key!r} should have dims ('c', 'y', 'x'), got {tuple(image.dims)}.")
    return image


def _channel_index(image: DataArray, channel: int | str, key: str) -> int:
    if isinstance(channel, str):
        names = [str(c) for c in image.coords["c"].values]
        if channel not in names:
            raise KeyError(f"Channel {channel!r} not found in image {key!r}. Available channels: {names}.")
        return names.index(channel)
    check_type("channel", channel, (int, np.integer))
    if not 0 <= channel < image.sizes["c"]:
        raise ValueError(f"Parameter channel should be in [0, {image.sizes['c'] - 1}], got {channel}.")
    return int(channel)


def _crop_bounds(shape: tuple[int, int], crop: Sequence[int] | None) -> tuple[int, int, int, int]:
    """``(x_min, y_min, x_max, y_max)`` half-open pixel bounds, clipped to the image."""
    height, width = shape
    if crop is None:
        return 0, 0, width, height
    if len(crop) != 4:
        raise ValueError(f"Parameter crop should be (x_min, y_min, x_max, y_max), got {crop}.")
    x0, y0, x1, y1 = (int(v) for v in crop)
    x0, x1 = max(x0, 0), min(x1, width)
    y0, y1 = max(y0, 0), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"Parameter crop {tuple(crop)} does not overlap the image of shape (y, x) = {shape}.")
    return x0, y0, x1, y1


def _extent(bounds: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """Imshow extent putting pixel centres on integer coordinates (y pointing down)."""
    x0, y0, x1, y1 = bounds
    return x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5


_LARGE_CROP_PX = 4096 * 4096


def _load(raster: DataArray, bounds: tuple[int, int, int, int], channel: int | None = None) -> np.ndarray:
    x0, y0, x1, y1 = bounds
    if (x1 - x0) * (y1 - y0) > _LARGE_CROP_PX:
        warnings.warn(
            f"Loading {y1 - y0} x {x1 - x0} px to plot; pass `crop=(x_min, y_min, x_max, y_max)` to show a part.",
            UserWarning,
            stacklevel=3,
        )
    data = raster.data
    crop = data[channel, y0:y1, x0:x1] if channel is not None else data[y0:y1, x0:x1]
    return np.asarray(crop.compute() if hasattr(crop, "compute") else crop)


def _contrast(arr: np.ndarray, vmin: float | None, vmax: float | None) -> tuple[float, float]:
    lo, hi = np.percentile(arr, [1.0, 99.8]) if arr.size else (0.0, 1.0)
    lo = float(lo) if vmin is None else vmin
    hi = float(hi) if vmax is None else vmax
    return lo, hi if hi > lo else lo + 1.0


def _new_axes(ax: Axes | None, figsize: tuple[float, float] | None) -> Axes:
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    return ax


def _save(fig: Figure, save: str | Path | None, dpi: int) -> None:
    if save is not None:
        fig.savefig(save, dpi=dpi, bbox_inches="tight")
        logger.info("Saved figure to %s", save)


# --------------------------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------------------------
def raw_vs_enhanced(
    sdata: SpatialData,
    image_key: str,
    enhanced_key: str,
    *,
    channel: int | str = 0,
    crop: Sequence[int] | None = None,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    figsize: tuple[float, float] = (10.0, 5.0),
    dpi: int = 150,
    save: str | Path | None = None,
) -> Figure:
    """Show an image next to its enhanced version, on linked axes.

    Parameters
    ----------
    sdata
        The data.
    image_key
        Key of the raw image in :attr:`spatialdata.SpatialData.images` (``c, y, x``).
    enhanced_key
        Key of the enhanced image (e.g. ``f"{image_key}_enhanced"``), same shape.
    channel
        Channel index or name.
    crop
        ``(x_min, y_min, x_max, y_max)`` half-open pixel bounds to show (clipped to the image); `None` shows it
        all. Only this part is loaded.
    cmap
        Colormap of both panels.
    vmin, vmax
        Display range of the raw panel; `None` uses its 1st/99.8th percentiles. The enhanced panel always uses
        its own percentiles.
    figsize
        Figure size in inches.
    dpi
        Resolution of the saved file.
    save
        Path to save the figure to; `None` does not save.

    Returns
    -------
    The :class:`matplotlib.figure.Figure` with two linked axes (raw, enhanced).

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512), cell_spacing_px=150, seed=0)
    >>> sdata.images["smfish_copy"] = sdata.images["smfish"]
    >>> fig = dsd.pl.raw_vs_enhanced(sdata, "smfish", "smfish_copy", crop=(100, 100, 228, 228))
    """
    import matplotlib.pyplot as plt

    raw = _get_image(sdata, image_key)
    enhanced = _get_image(sdata, enhanced_key)
    if raw.shape[1:] != enhanced.shape[1:]:
        raise ValueError(
            f"Images {image_key!r} {raw.shape} and {enhanced_key!r} {enhanced.shape} should have the same (y, x) size."
        )
    bounds = _crop_bounds(raw.shape[1:], crop)
    fig, axes = plt.subplots(1, 2, figsize=figsize, sharex=True, sharey=True)
    for ax, (key, image, lo_hi) in zip(
        axes, ((image_key, raw, (vmin, vmax)), (enhanced_key, enhanced, (None, None))), strict=True
    ):
        arr = _load(image, bounds, _channel_index(image, channel, key))
        lo, hi = _contrast(arr, *lo_hi)
        ax.imshow(arr, cmap=cmap, vmin=lo, vmax=hi, extent=_extent(bounds), interpolation="nearest")
        ax.set_title(key)
        ax.set_xlabel("x (px)")
    axes[0].set_ylabel("y (px)")
    fig.tight_layout()
    _save(fig, save, dpi)
    return fig


def spots(
    sdata: SpatialData,
    image_key: str,
    points_key: str,
    *,
    channel: int | str = 0,
    crop: Sequence[int] | None = None,
    color: str = "tab:red",
    color_by: str | None = None,
    size: float = 30.0,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (6.0, 6.0),
    dpi: int = 150,
    save: str | Path | None = None,
) -> Axes:
    """Draw spots as open circles over an image, each on the pixel it lies in.

    Parameters
    ----------
    sdata
        The data.
    image_key
        Key of the image in :attr:`spatialdata.SpatialData.images` (``c, y, x``).
    points_key
        Key of the spots in :attr:`spatialdata.SpatialData.points`; they are mapped to the image's pixel grid
        through a coordinate system both share and drawn where spatialdata draws them (points of
        :func:`deepspot_sd.tl.detect_spots` on the image they were detected in: at their ``x``, ``y`` columns).
    channel
        Channel index or name.
    crop
        ``(x_min, y_min, x_max, y_max)`` half-open pixel bounds (clipped to the image); `None` shows it all.
    color
        Colour of the circles when ``color_by`` is `None`.
    color_by
        Column of the points to colour by (categories get a legend), e.g. ``"compartment"`` or ``"gene"``.
    size
        Marker area in points².
    cmap, vmin, vmax
        Colormap and display range of the image (`None`: 1st/99.8th percentiles of the crop).
    ax
        Axes to draw into; `None` creates a figure.
    figsize
        Figure size in inches when ``ax`` is `None`.
    dpi
        Resolution of the saved file.
    save
        Path to save the figure to; `None` does not save.

    Returns
    -------
    The :class:`matplotlib.axes.Axes`.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512), cell_spacing_px=150, seed=0)
    >>> ax = dsd.pl.spots(sdata, "smfish", "true_spots", crop=(100, 100, 228, 228))
    """
    check_positive("size", size)
    image = _get_image(sdata, image_key)
    check_key(points_key, sdata.points, "sdata.points")
    points = sdata.points[points_key]
    if color_by is not None:
        check_key(color_by, points.columns, f"sdata.points[{points_key!r}].columns")
    bounds = _crop_bounds(image.shape[1:], crop)
    arr = _load(image, bounds, _channel_index(image, channel, image_key))
    ax = _new_axes(ax, figsize)
    lo, hi = _contrast(arr, vmin, vmax)
    ax.imshow(arr, cmap=cmap, vmin=lo, vmax=hi, extent=_extent(bounds), interpolation="nearest")

    df = points.compute()
    x, y = intrinsic_to_index(
        *_points_in_grid(df, points, image, what=f"Points {points_key!r}", target_name=f"image {image_key!r}")
    )
    x0, y0, x1, y1 = bounds
    inside = (x >= x0 - 0.5) & (x < x1 - 0.5) & (y >= y0 - 0.5) & (y < y1 - 0.5)
    if color_by is None:
        ax.scatter(x[inside], y[inside], s=size, facecolors="none", edgecolors=color, linewidths=1.0)
    else:
        import matplotlib as mpl

        values = df[color_by].astype(str).to_numpy()
        cats = (
            list(df[color_by].cat.categories.astype(str)) if df[color_by].dtype == "category" else sorted(set(values))
        )
        palette = mpl.colormaps["tab10"]
        for k, cat in enumerate(cats):
            sel = inside & (values == cat)
            ax.scatter(x[sel], y[sel], s=size, facecolors="none", edgecolors=palette(k % 10), linewidths=1.0, label=cat)
        ax.legend(title=color_by, loc="upper right", fontsize="small")
    ax.set_xlim(x0 - 0.5, x1 - 0.5)
    ax.set_ylim(y1 - 0.5, y0 - 0.5)
    ax.set_title(f"{points_key} on {image_key} ({int(inside.sum())} spots)")
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    _save(ax.figure, save, dpi)
    return ax


def cell_sectors(
    sdata: SpatialData,
    table_key: str,
    *,
    cell_ids: Sequence[int] | None = None,
    key: str = "sector",
    max_cells: int = 6,
    ncols: int = 3,
    pad_px: int = 5,
    size: float = 8.0,
    panel_size: float = 3.5,
    dpi: int = 150,
    save: str | Path | None = None,
) -> Figure:
    """Draw cells with their sectors, reference direction and per-sector cytoplasmic counts (paper Fig. 7B).

    The cytoplasm of the sector facing the reference is light blue, the other sectors dark blue, the nucleus
    grey, neighbouring cells light grey; sector borders are white lines from the nucleus centroid, the red
    arrow points to the reference, and each sector shows its count of cytoplasmic spots (black dots; nuclear
    spots are white).

    Parameters
    ----------
    sdata
        The data.
    table_key
        Key of a table processed by :func:`deepspot_sd.tl.sector_enrichment`.
    cell_ids
        Cells to draw (values of ``obs['cell_id']``); `None` draws the first ``max_cells`` cells.
    key
        The ``key_added`` used in :func:`deepspot_sd.tl.sector_enrichment`.
    max_cells
        Number of cells drawn when ``cell_ids`` is `None`.
    ncols
        Panels per row.
    pad_px
        Margin around each cell's bounding box in pixels.
    size
        Spot marker area in points².
    panel_size
        Size of each panel in inches.
    dpi
        Resolution of the saved file.
    save
        Path to save the figure to; `None` does not save.

    Returns
    -------
    The :class:`matplotlib.figure.Figure`, one panel per cell.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512), cell_spacing_px=150, seed=0)
    >>> dsd.tl.assign_spots(sdata, "true_spots", "cells", nuclei_key="nuclei")
    >>> dsd.tl.sector_enrichment(sdata, "cells_true_spots", reference="wound")
    >>> fig = dsd.pl.cell_sectors(sdata, "cells_true_spots", max_cells=3)
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    check_key(table_key, sdata.tables, "sdata.tables")
    table = sdata.tables[table_key]
    angle_key = f"{key}_reference_angle"
    if angle_key not in table.obs or f"{key}_counts" not in table.obsm:
        raise KeyError(
            f"Sector results {key!r} not found in `sdata.tables[{table_key!r}]`. Please run "
            f"`dsd.tl.sector_enrichment(sdata, {table_key!r}, reference=..., key_added={key!r})` first."
        )
    check_type("max_cells", max_cells, (int, np.integer))
    check_positive("max_cells", max_cells)
    check_type("ncols", ncols, (int, np.integer))
    check_positive("ncols", ncols)
    record = table.uns["assign_spots"]
    labels = _get_labels(sdata, str(record["labels_key"]))
    nuclei_key = record.get("nuclei_key")
    nuclei = None if nuclei_key is None else _get_labels(sdata, str(nuclei_key))
    all_ids = table.obs["cell_id"].to_numpy(dtype=np.int64)
    if cell_ids is None:
        rows = np.arange(min(int(max_cells), len(all_ids)))
    else:
        wanted = np.asarray(cell_ids, dtype=np.int64).ravel()
        missing = sorted(set(wanted.tolist()) - set(all_ids.tolist()))
        if missing:
            raise KeyError(f"Cell ids {missing} not found in `sdata.tables[{table_key!r}].obs['cell_id']`.")
        rows = np.searchsorted(all_ids, wanted)
    if len(rows) == 0:
        raise ValueError("No cell to draw.")
    ids = all_ids[rows]
    n_sectors = int(table.obsm[f"{key}_counts"].shape[1])
    width = 360.0 / n_sectors

    points = sdata.points[str(record["points_key"])]
    sub = points[points["cell_id"].isin(ids.tolist())].compute()
    sx, sy = intrinsic_to_index(*_points_in_grid(sub, points, labels, what="Points", target_name="labels"))
    sub_cell = sub["cell_id"].to_numpy(dtype=np.int64)
    sub_nuc = (sub["compartment"] == "nucleus").to_numpy()

    ncols = min(int(ncols), len(rows))
    nrows = int(np.ceil(len(rows) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows), squeeze=False)
    cmap = ListedColormap(["white", "#e0e0e0", "#9e9e9e", _REFERENCE_COLOR, _OTHER_COLOR])
    height, width_px = labels.shape
    for ax, row, cid in zip(axes.ravel(), rows, ids, strict=False):
        bx0, by0, bx1, by1 = (int(v) for v in table.obsm["bbox"][row])
        bounds = _crop_bounds((height, width_px), (bx0 - pad_px, by0 - pad_px, bx1 + 1 + pad_px, by1 + 1 + pad_px))
        cells = _load(labels, bounds)
        nuc = _load(nuclei, bounds) > 0 if nuclei is not None else np.zeros(cells.shape, dtype=bool)
        cx, cy = (float(v) for v in table.obsm["nucleus_centroid"][row])
        ref = float(table.obs[angle_key].iloc[row])
        this = cells == cid
        canvas = np.where(cells > 0, 1, 0)
        canvas[this & nuc] = 2
        cyto = this & ~nuc
        if np.isfinite(ref):
            yy, xx = np.nonzero(cyto)
            sec = _sector_index(xx + bounds[0] - cx, yy + bounds[1] - cy, ref, n_sectors)
            canvas[yy, xx] = np.where(sec == 0, 3, 4)
        else:
            canvas[cyto] = 4
        ax.imshow(canvas, cmap=cmap, vmin=-0.5, vmax=4.5, extent=_extent(bounds), interpolation="nearest")
        sel = sub_cell == cid
        ax.scatter(sx[sel & ~sub_nuc], sy[sel & ~sub_nuc], s=size, c="black", linewidths=0)
        ax.scatter(sx[sel & sub_nuc], sy[sel & sub_nuc], s=size, c="white", edgecolors="black", linewidths=0.5)
        reach = float(np.hypot(bounds[2] - bounds[0], bounds[3] - bounds[1]))
        if np.isfinite(ref):
            counts = table.obsm[f"{key}_counts"][row]
            for k in range(n_sectors):
                edge = np.radians(ref + (k + 0.5) * width)
                ax.plot([cx, cx + reach * np.cos(edge)], [cy, cy + reach * np.sin(edge)], color="white", lw=1.5)
                mid = np.radians(ref + (k + 0.25) * width)  # off the sector's axis, clear of the arrow
                radius = 0.3 * min(bounds[2] - bounds[0], bounds[3] - bounds[1])
                ax.text(
                    cx + radius * np.cos(mid),
                    cy + radius * np.sin(mid),
                    str(int(counts[k])),
                    ha="center",
                    va="center",
                    fontsize="small",
                    fontweight="bold",
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8, "linewidth": 0},
                )
            arrow = 0.45 * min(bounds[2] - bounds[0], bounds[3] - bounds[1])
            ax.annotate(
                "",
                xy=(cx + arrow * np.cos(np.radians(ref)), cy + arrow * np.sin(np.radians(ref))),
                xytext=(cx, cy),
                arrowprops={"arrowstyle": "-|>", "color": "red", "lw": 2},
            )
        ax.set_xlim(bounds[0] - 0.5, bounds[2] - 0.5)
        ax.set_ylim(bounds[3] - 0.5, bounds[1] - 0.5)
        ax.set_title(f"cell {cid}", fontsize="medium")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(rows) :]:
        ax.set_visible(False)
    fig.tight_layout()
    _save(fig, save, dpi)
    return fig


def polarity(
    sdata: SpatialData,
    table_key: str,
    *,
    key: str = "polarity_index",
    colors: Sequence[str] | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (3.5, 4.0),
    dpi: int = 150,
    save: str | Path | None = None,
) -> Axes:
    """Bar plot of the polarity index per group: bootstrap median ± standard deviation (paper Fig. 7D).

    Parameters
    ----------
    sdata
        The data.
    table_key
        Key of a table processed by :func:`deepspot_sd.tl.polarity_index`.
    key
        The ``key_added`` used in :func:`deepspot_sd.tl.polarity_index`.
    colors
        One bar colour per group; `None` alternates the paper's light and dark blue.
    ax
        Axes to draw into; `None` creates a figure.
    figsize
        Figure size in inches when ``ax`` is `None`.
    dpi
        Resolution of the saved file.
    save
        Path to save the figure to; `None` does not save.

    Returns
    -------
    The :class:`matplotlib.axes.Axes`.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512), cell_spacing_px=150, seed=0)
    >>> dsd.tl.assign_spots(sdata, "true_spots", "cells", nuclei_key="nuclei")
    >>> dsd.tl.sector_enrichment(sdata, "cells_true_spots", reference="wound")
    >>> dsd.tl.polarity_index(sdata, "cells_true_spots")
    >>> ax = dsd.pl.polarity(sdata, "cells_true_spots")
    """
    check_key(table_key, sdata.tables, "sdata.tables")
    table = sdata.tables[table_key]
    if key not in table.uns:
        raise KeyError(
            f"`uns[{key!r}]` not found in `sdata.tables[{table_key!r}]`. Available keys: {sorted(table.uns)}. "
            f"Please run `dsd.tl.polarity_index(sdata, {table_key!r})` first."
        )
    result: Any = table.uns[key]
    result = result if isinstance(result, pd.DataFrame) else pd.DataFrame(result)
    groups = [str(g) for g in result.index]
    if colors is None:
        colors = [(_REFERENCE_COLOR, _OTHER_COLOR)[k % 2] for k in range(len(groups))]
    elif len(colors) < len(groups):
        raise ValueError(f"Parameter colors should have at least {len(groups)} entries, got {len(colors)}.")
    ax = _new_axes(ax, figsize)
    pos = np.arange(len(groups))
    median = result["boot_median"].to_numpy(dtype=float)
    std = result["boot_std"].to_numpy(dtype=float)
    ax.bar(pos, median, yerr=std, color=list(colors)[: len(groups)], edgecolor="black", capsize=6, width=0.6)
    for p, m, s, n in zip(pos, median, std, result["n_cells"].to_numpy(), strict=True):
        if np.isfinite(m):
            ax.text(p, m + np.sign(m or 1) * (s + 0.05), f"n={int(n)}", ha="center", va="center", fontsize="small")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(pos, groups)
    ax.set_ylim(-1.1, 1.1)
    ax.set_ylabel("Polarity index")
    ax.set_xlabel(str(result.index.name or ""))
    _save(ax.figure, save, dpi)
    return ax


def spot_brightness(
    sdata: SpatialData,
    points_key: str,
    *,
    channel: str | None = None,
    image_key: str | None = None,
    crop: Sequence[int] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: int = 150,
    save: str | Path | None = None,
) -> np.ndarray:
    """Plot the molecule decision of :func:`deepspot_sd.tl.detect_spots`: brightness histogram, cut, populations.

    The left panel is the histogram of the detections' ``amplitude`` (raw peak above the local background, log
    scale) as recorded when the spots were detected: molecules and rejected dim puncta in two colours, the cut as a
    vertical line and the two-population brightness model (Gaussians on the log amplitude, scaled to the counts)
    when one was fitted, like Big-FISH's elbow plot or AIRLOCALIZE's intensity histograms. With ``image_key``, a
    right panel overlays the detections on a crop of that image: molecules in green, rejected puncta in red (those
    are in the element only when it was made with ``keep_rejected=True``).

    Parameters
    ----------
    sdata
        The data.
    points_key
        Points element made by :func:`deepspot_sd.tl.detect_spots`.
    channel
        Channel (``gene``) whose decision to show; default the first.
    image_key
        Image to overlay the detections on (the raw image, for example); `None` draws the histogram only.
    crop
        ``(x_min, y_min, x_max, y_max)`` pixel bounds of the overlay.
    figsize
        Figure size in inches (default from the number of panels).
    dpi
        Resolution of the saved file.
    save
        Path to save the figure to; `None` does not save.

    Returns
    -------
    The array of :class:`matplotlib.axes.Axes` (one or two).

    Raises
    ------
    KeyError
        If the points element, the channel or the image do not exist.
    ValueError
        If the points element carries no molecule decision (not made by :func:`deepspot_sd.tl.detect_spots`).

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512), seed=0)  # doctest: +SKIP
    >>> dsd.tl.enhance(sdata, "smfish")  # doctest: +SKIP
    >>> dsd.tl.detect_spots(sdata, "smfish_enhanced", keep_rejected=True)  # doctest: +SKIP
    >>> axes = dsd.pl.spot_brightness(sdata, "smfish_enhanced_spots", image_key="smfish")  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    check_key(points_key, sdata.points, "sdata.points")
    decisions = get_provenance(sdata, points_key, sdata.points[points_key]).get("molecule_decision")
    if not isinstance(decisions, dict) or not decisions:
        raise ValueError(
            f"Points {points_key!r} carry no molecule decision; they were not made by `dsd.tl.detect_spots` "
            "(version 0.6 or later)."
        )
    channel = next(iter(decisions)) if channel is None else str(channel)
    check_key(channel, decisions, f"the channels of {points_key!r}")
    decision = decisions[channel]
    n_panels = 1 if image_key is None else 2
    fig, axes = plt.subplots(1, n_panels, figsize=figsize or (5.5 * n_panels, 4.5), squeeze=False)
    axes = axes[0]
    _brightness_histogram(axes[0], decision, title=f"{points_key} / {channel}")
    if image_key is not None:
        image = _get_image(sdata, image_key)
        points = sdata.points[points_key]
        df = points.compute()
        sel = (df["gene"].astype(str) == channel).to_numpy() if "gene" in df.columns else np.ones(len(df), bool)
        bounds = _crop_bounds(image.shape[1:], crop)
        names = [str(c) for c in image.coords["c"].values]
        arr = _load(image, bounds, names.index(channel) if channel in names else 0)
        lo, hi = _contrast(arr, None, None)
        ax = axes[1]
        ax.imshow(arr, cmap="gray", vmin=lo, vmax=hi, extent=_extent(bounds), interpolation="nearest")
        x, y = intrinsic_to_index(
            *_points_in_grid(df, points, image, what=f"Points {points_key!r}", target_name=f"image {image_key!r}")
        )
        x0, y0, x1, y1 = bounds
        inside = sel & (x >= x0 - 0.5) & (x < x1 - 0.5) & (y >= y0 - 0.5) & (y < y1 - 0.5)
        molecule = df["molecule"].to_numpy(bool) if "molecule" in df.columns else np.ones(len(df), bool)
        for mask, colour, label in ((molecule, "tab:green", "molecule"), (~molecule, "tab:red", "rejected")):
            m = inside & mask
            ax.scatter(
                x[m], y[m], s=30, facecolors="none", edgecolors=colour, linewidths=1.0, label=f"{label} ({m.sum()})"
            )
        ax.legend(loc="upper right", fontsize="small")
        ax.set_xlim(x0 - 0.5, x1 - 0.5)
        ax.set_ylim(y1 - 0.5, y0 - 0.5)
        ax.set_title(f"{points_key} on {image_key}")
        ax.set_xlabel("x (px)")
        ax.set_ylabel("y (px)")
    fig.tight_layout()
    _save(fig, save, dpi)
    return axes


def _brightness_histogram(ax: Axes, decision: dict[str, Any], *, title: str) -> None:
    hist = decision.get("histogram") or {}
    edges = np.asarray(hist.get("edges", []), dtype=float)
    if edges.size < 2:
        ax.text(0.5, 0.5, "no detection with a positive amplitude", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        return
    widths = np.diff(edges)
    kept = np.asarray(hist["molecule"], dtype=float)
    rejected = np.asarray(hist["rejected"], dtype=float)
    ax.bar(
        edges[:-1],
        kept,
        width=widths,
        align="edge",
        color="tab:green",
        alpha=0.7,
        label=f"molecules ({kept.sum():.0f})",
    )
    ax.bar(
        edges[:-1],
        rejected,
        width=widths,
        bottom=kept,
        align="edge",
        color="tab:red",
        alpha=0.7,
        label=f"rejected ({rejected.sum():.0f})",
    )
    means, sds, weights = (np.asarray(decision.get(k) or [], dtype=float) for k in ("means", "sds", "weights"))
    if means.size:
        # Gaussians on the natural log of the amplitude, as expected counts per (log-spaced) bin
        grid = np.geomspace(edges[0], edges[-1], 400)
        log_step = float(np.mean(np.diff(np.log(edges))))
        total = kept.sum() + rejected.sum()
        for m, sd, w in zip(means, sds, weights, strict=True):
            density = w * np.exp(-0.5 * ((np.log(grid) - m) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
            ax.plot(grid, total * log_step * density, color="0.2", lw=1.2)
    if decision.get("cut") is not None:
        ax.axvline(decision["cut"], color="k", ls="--", lw=1.2, label=f"cut {decision['cut']:.4g}")
    ax.set_xscale("log")
    ax.set_xlabel("amplitude above local background (raw units)")
    ax.set_ylabel("detections")
    ax.set_title(title)
    ax.legend(fontsize="small")
