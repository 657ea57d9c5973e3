"""Molecules, not only spots: molecules per spot by intensity, clusters and transcription sites.

Why
---
A spot is not always one molecule. Where RNAs crowd (transcription sites, P-bodies, dense cytoplasm) several
molecules merge into one brighter, wider spot (a *tight* cluster, within one PSF) or into a group of touching spots
(a *loose* cluster, a few px apart), and counting spots undercounts RNA.

How
---
1. **Groups.** The spots of one channel (``molecule=True`` rows only) closer than ``radius_px`` are linked, and the
   connected groups are taken (single linkage: DBSCAN with one sample per core, via :class:`scipy.spatial.cKDTree`).
   Most groups are one isolated spot.
2. **Intensity.** A spot's integrated intensity is the ``integrated_intensity`` of :func:`deepspot_sd.tl.detect_spots`:
   the sum over the disc of pixels within 3 px of its pixel of the raw value minus its local background (median of
   the ring 4–6 px away). A group of several spots is measured the same way over the *union* of its spots' discs,
   with the median of the union of their rings (farther than 3 px from every member) as background, so the light
   that touching spots share is counted once.
3. **Single-molecule intensity.** Per channel and image: the median integrated intensity of the isolated spots
   (groups of one), recomputed over those at most :data:`MAX_SINGLE_RATIO` (1.5) times the current value until it
   no longer changes. Brighter spots (tight clusters) leave it, so it is robust to clusters as long as single
   molecules are the majority of the isolated spots (the median spot of Big-FISH's ``decompose_dense``).
4. **Counts.** A group's continuous estimate is its integrated intensity divided by the single-molecule intensity;
   its integer count is that estimate rounded, and at least its number of spots (every detection is at least one
   molecule). The count is shared among its spots in proportion to their own estimates (each at least 1, largest
   remainders), so the per-spot counts add up to the group's.

A *cluster* is a group of at least ``min_molecules`` molecules (:func:`detect_clusters`); when nuclei labels are
given its ``in_nucleus`` column says whether its centre lies in a nucleus: a transcription site.

Brightness must be comparable across molecules for this to work: in real smFISH images the molecules of one channel
vary by some 20–30 % in brightness and share the PSF of the optics. An image whose molecules vary several-fold in
brightness (e.g. the simulator's default SNR range 10–40 with PSF widths 0.7–2.5 px) cannot be counted by intensity.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from deepspot_sd._coords import intrinsic_to_index
from deepspot_sd._logging import logger
from deepspot_sd._store import check_key_added, get_provenance, store_element
from deepspot_sd._validation import check_key, check_positive, check_type

if TYPE_CHECKING:  # pragma: no cover
    from dask.dataframe import DataFrame as DaskDataFrame
    from spatialdata import SpatialData

__all__ = [
    "count_molecules",
    "count_molecules_array",
    "detect_clusters",
    "group_spots",
    "single_molecule_intensity",
    "summarize_clusters",
]

#: Default linking radius of :func:`group_spots` in px.
RADIUS_PX = 6.0
#: Spots above this many times the single-molecule intensity are left out of its estimate (step 3).
MAX_SINGLE_RATIO = 1.5
#: Narrow aperture: disc radius and background ring radii in px, those of :func:`deepspot_sd.tl.detect_spots`.
NARROW = (3.0, 4.0, 6.0)
#: Wide aperture for spots and groups of several molecules (disc, ring inner, ring outer radius in px).
WIDE = (6.0, 7.0, 9.0)
#: Columns added to the points by :func:`count_molecules`.
MOLECULE_COLUMNS = ("n_molecules", "n_molecules_estimate", "group_id")


# --------------------------------------------------------------------------------------------------------------------
# array core
# --------------------------------------------------------------------------------------------------------------------
def group_spots(spots: np.ndarray, *, radius_px: float = RADIUS_PX) -> np.ndarray:
    """Group spots closer than ``radius_px`` (single linkage): the connected components of the distance graph.

    Parameters
    ----------
    spots
        ``(n, 2)`` spot centres ``(row, col)`` in px.
    radius_px
        Spots at a distance ``<= radius_px`` are linked.

    Returns
    -------
    ``int64 (n,)`` group of each spot, ``0 .. n_groups - 1`` in the order of the groups' first spots.

    Examples
    --------
    >>> group_spots(np.array([[0.0, 0.0], [0.0, 3.0], [20.0, 20.0]]), radius_px=4.0).tolist()
    [0, 0, 1]
    """
    check_positive("radius_px", radius_px, allow_zero=True)
    spots = np.asarray(spots, dtype=np.float64).reshape(-1, 2)
    n = len(spots)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pairs = cKDTree(spots).query_pairs(float(radius_px), output_type="ndarray")
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # renumber in order of first appearance (deterministic, independent of scipy's numbering)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.ravel()]


def single_molecule_intensity(integrated: np.ndarray, *, max_ratio: float = MAX_SINGLE_RATIO) -> float:
    """Integrated intensity of one molecule: a median robust to brighter spots (module notes, step 3).

    Parameters
    ----------
    integrated
        ``(n,)`` integrated intensities of isolated spots (NaN and non-positive values are ignored).
    max_ratio
        Spots above ``max_ratio`` times the current estimate are left out of the next median.

    Returns
    -------
    The estimate; NaN when no value is positive.

    Examples
    --------
    >>> single_molecule_intensity(np.array([100.0, 95, 105, 98, 102, 300, 500, 1000, 800]))
    100.0
    """
    check_positive("max_ratio", max_ratio)
    values = np.asarray(integrated, dtype=np.float64).ravel()
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return float("nan")
    reference = float(np.median(values))
    for _ in range(50):
        new = float(np.median(values[values <= max_ratio * reference]))
        if new == reference:
            break
        reference = new
    return reference


def _offsets(radius: float, inner: float = 0.0) -> np.ndarray:
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    d = np.hypot(dy, dx)
    keep = (d >= inner) & (d <= radius)
    return np.stack([dy[keep], dx[keep]], axis=1)


def _window(
    image: Any,
    rows: np.ndarray,
    cols: np.ndarray,
    members: np.ndarray,
    aperture: tuple[float, float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float, float], np.ndarray, np.ndarray]:
    """Arguments of :func:`_measure_union` for the spots ``members`` of all spots ``(rows, cols)`` of ``image``."""
    r0, r1, c0, c1 = _group_window(rows[members], cols[members], image.shape)
    others = np.ones(len(rows), dtype=bool)
    others[members] = False
    others &= (rows >= r0 - aperture[0]) & (rows < r1 + aperture[0]) & (cols >= c0 - aperture[0])
    others &= cols < c1 + aperture[0]
    return (
        image[r0:r1, c0:c1],
        rows[members] - r0,
        cols[members] - c0,
        aperture,
        rows[others] - r0,
        cols[others] - c0,
    )


def _group_window(
    rows: np.ndarray, cols: np.ndarray, shape: tuple[int, ...], pad_px: float = WIDE[2]
) -> tuple[int, int, int, int]:
    pad = int(np.ceil(pad_px))
    return (
        max(int(rows.min()) - pad, 0),
        min(int(rows.max()) + pad + 1, shape[0]),
        max(int(cols.min()) - pad, 0),
        min(int(cols.max()) + pad + 1, shape[1]),
    )


def _measure_union(
    window: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    aperture: tuple[float, float, float] = NARROW,
    other_rows: np.ndarray | None = None,
    other_cols: np.ndarray | None = None,
) -> float:
    """Integrated intensity over the union of the discs of spots at ``(rows, cols)`` (window coordinates).

    The background is the median of the union of their rings, minus the pixels of any disc (module notes, step 2).
    With other spots given (``other_rows``, ``other_cols``), a disc pixel counts only when it is at least as close
    to this group as to them, and ring pixels within their narrow discs are left out: touching groups do not share
    light.
    """
    window = np.asarray(window, dtype=np.float64)
    rr, cc = np.mgrid[0 : window.shape[0], 0 : window.shape[1]]

    def nearest(rs: np.ndarray, cs: np.ndarray) -> np.ndarray:
        dist = np.full(window.shape, np.inf)
        for r, c in zip(rs, cs, strict=True):
            np.minimum(dist, np.hypot(rr - r, cc - c), out=dist)
        return dist

    dist = nearest(rows, cols)
    disc = dist <= aperture[0]
    ring = (dist >= aperture[1]) & (dist <= aperture[2])
    if other_rows is not None and len(other_rows):
        other = nearest(other_rows, other_cols)
        disc &= dist <= other
        ring &= other > NARROW[0]
    if not ring.any() or not disc.any():
        return float("nan")
    background = float(np.median(window[ring]))
    return float(np.sum(window[disc] - background))


def _spot_integrated(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Per-spot integrated intensity (disc 3 px minus the ring median), as in :func:`deepspot_sd.tl.detect_spots`."""
    out = np.empty(len(rows))
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        r0, r1, c0, c1 = _group_window(np.array([r]), np.array([c]), image.shape)
        out[i] = _measure_union(image[r0:r1, c0:c1], np.array([r - r0]), np.array([c - c0]), NARROW)
    return out


def _share(total: int, weights: np.ndarray) -> np.ndarray:
    """Split the integer ``total`` (>= len(weights)) into parts >= 1, about proportional to ``weights``."""
    k = len(weights)
    weights = np.where(np.isfinite(weights) & (weights > 0), weights, 0.0)
    if weights.sum() <= 0:
        weights = np.ones(k)
    extra = total - k
    ideal = extra * weights / weights.sum()
    base = np.floor(ideal).astype(np.int64)
    left = extra - int(base.sum())
    if left > 0:
        base[np.argsort(-(ideal - base), kind="stable")[:left]] += 1
    return base + 1


def _count_groups(
    own: np.ndarray, groups: np.ndarray, group_estimate: Mapping[int, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-spot ``(n_molecules, n_molecules_estimate)`` from per-spot and per-group estimates (step 4)."""
    estimate = np.array(own, dtype=np.float64)
    count = np.where(np.isfinite(estimate), np.maximum(np.rint(estimate), 1), 1).astype(np.int64)
    for g, total_est in group_estimate.items():
        members = np.flatnonzero(groups == g)
        k = len(members)
        mine = estimate[members]
        if not np.isfinite(total_est):  # no measurement: the members' own estimates
            total_est = float(np.nansum(mine)) if np.isfinite(mine).any() else np.nan
        total = max(k, int(np.rint(total_est))) if np.isfinite(total_est) else k
        count[members] = _share(total, mine)
        weights = np.where(np.isfinite(mine) & (mine > 0), mine, 0.0)
        weights = weights / weights.sum() if weights.sum() > 0 else np.full(k, 1.0 / k)
        estimate[members] = total_est * weights
    return count, estimate


def count_molecules_array(
    image: np.ndarray | None,
    spots: np.ndarray,
    *,
    radius_px: float = RADIUS_PX,
    reference: float | None = None,
    integrated: np.ndarray | None = None,
) -> tuple[pd.DataFrame, float]:
    """Estimate the molecules of every spot of one channel from its intensity (module notes).

    Parameters
    ----------
    image
        ``(y, x)`` raw image; `None` uses ``integrated`` only (a group of several spots is then the sum of its
        spots, which counts the light that touching spots share twice).
    spots
        ``(n, 2)`` spot centres ``(row, col)`` in px; each is measured at its nearest pixel.
    radius_px
        Linking radius of :func:`group_spots`.
    reference
        Single-molecule integrated intensity (image units); default: :func:`single_molecule_intensity` of the
        isolated spots (of all spots when fewer than 5 are isolated).
    integrated
        ``(n,)`` per-spot integrated intensities (e.g. the ``integrated_intensity`` column of
        :func:`deepspot_sd.tl.detect_spots`); default: measured on ``image``.

    Returns
    -------
    ``(table, reference)``: one row per spot with ``integrated_intensity``, ``group_id``, ``n_molecules`` (int, at
    least 1) and ``n_molecules_estimate`` (float), and the single-molecule intensity used.

    Raises
    ------
    ValueError
        If neither ``image`` nor ``integrated`` is given, or their shapes do not match the spots.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sim = dsd.datasets.simulate_image((64, 64), n_spots=10, snr_range=(20, 20), psf_sigma_range=(1.2, 1.2), seed=0)
    >>> table, _ = count_molecules_array(sim.image, sim.spots)
    >>> table["n_molecules"].tolist() == [1] * 10
    True
    """
    if image is not None:
        image = np.asarray(image, dtype=np.float64)
        if image.ndim != 2:
            raise ValueError(f"Parameter image should be 2D (y, x), got shape {image.shape}.")
    return _count_core(image, spots, radius_px=radius_px, reference=reference, integrated=integrated)


def _count_core(
    image: Any, spots: np.ndarray, *, radius_px: float, reference: float | None, integrated: np.ndarray | None
) -> tuple[pd.DataFrame, float]:
    """:func:`count_molecules_array` on anything with ``shape`` and 2D slicing (a numpy array, a sparse reader)."""
    spots = np.asarray(spots, dtype=np.float64).reshape(-1, 2)
    n = len(spots)
    if image is None and integrated is None:
        raise ValueError("Please pass the raw `image` or the per-spot `integrated` intensities (or both).")
    if integrated is not None:
        integrated = np.asarray(integrated, dtype=np.float64).ravel()
        if len(integrated) != n:
            raise ValueError(f"Parameter integrated should have one value per spot ({n}), got {len(integrated)}.")
    if reference is not None:
        check_positive("reference", reference)
    groups = group_spots(spots, radius_px=radius_px)
    if n == 0:
        empty = pd.DataFrame(
            {
                "integrated_intensity": np.zeros(0),
                "group_id": np.zeros(0, dtype=np.int64),
                "n_molecules": np.zeros(0, dtype=np.int64),
                "n_molecules_estimate": np.zeros(0),
            }
        )
        return empty, float(reference) if reference is not None else float("nan")
    rows = np.floor(spots[:, 0] + 0.5).astype(np.intp)
    cols = np.floor(spots[:, 1] + 0.5).astype(np.intp)
    if image is not None:
        rows, cols = rows.clip(0, image.shape[0] - 1), cols.clip(0, image.shape[1] - 1)
    if integrated is None:
        integrated = _spot_integrated(image, rows, cols)
    sizes = np.bincount(groups)
    isolated = sizes[groups] == 1
    if reference is None:
        reference = single_molecule_intensity(integrated[isolated] if isolated.sum() >= 5 else integrated)
    reference = float(reference)
    with np.errstate(invalid="ignore", divide="ignore"):
        own = integrated / reference if np.isfinite(reference) and reference > 0 else np.full(n, np.nan)
    # several molecules: groups of several spots, and isolated spots brighter than MAX_SINGLE_RATIO molecules
    bright = np.bincount(groups, weights=(np.nan_to_num(own) >= MAX_SINGLE_RATIO).astype(float), minlength=len(sizes))
    several = np.flatnonzero((sizes > 1) | (bright > 0))
    group_estimate: dict[int, float] = {}
    if image is None:
        for g in several:
            group_estimate[int(g)] = float(np.nansum(own[groups == g]))
    elif len(several):
        # the wide aperture, calibrated on the isolated single molecules (module notes, step 2)
        singles = np.flatnonzero(isolated & (own < MAX_SINGLE_RATIO) & (own > 0))
        wide_single = np.array([_measure_union(*_window(image, rows, cols, np.array([i]), WIDE)) for i in singles])
        ratio = np.nanmedian(wide_single / integrated[singles]) if len(singles) >= 5 else np.nan
        for g in several:
            members = np.flatnonzero(groups == g)
            if np.isfinite(ratio) and ratio > 0:
                value = _measure_union(*_window(image, rows, cols, members, WIDE))
                group_estimate[int(g)] = value / (ratio * reference)
            else:
                value = _measure_union(*_window(image, rows, cols, members, NARROW))
                group_estimate[int(g)] = value / reference
    count, estimate = _count_groups(own, groups, group_estimate)
    table = pd.DataFrame(
        {"integrated_intensity": integrated, "group_id": groups, "n_molecules": count, "n_molecules_estimate": estimate}
    )
    return table, reference


def summarize_clusters(
    spots: np.ndarray,
    groups: np.ndarray,
    n_molecules: np.ndarray,
    n_molecules_estimate: np.ndarray | None = None,
    *,
    min_molecules: int = 2,
) -> pd.DataFrame:
    """One row per group of spots holding at least ``min_molecules`` molecules: a cluster.

    Parameters
    ----------
    spots
        ``(n, 2)`` spot centres ``(row, col)``.
    groups
        ``(n,)`` group of each spot (:func:`group_spots`); negative values are left out.
    n_molecules, n_molecules_estimate
        ``(n,)`` integer and continuous molecules per spot (:func:`count_molecules_array`).
    min_molecules
        Smallest number of molecules of a cluster.

    Returns
    -------
    Columns ``group_id``, ``row``, ``col`` (the members' centre weighted by their molecules), ``n_spots``,
    ``n_molecules``, ``n_molecules_estimate``, sorted by ``group_id``.
    """
    check_type("min_molecules", min_molecules, (int, np.integer))
    if min_molecules < 1:
        raise ValueError(f"Parameter min_molecules should be >= 1, got {min_molecules}.")
    spots = np.asarray(spots, dtype=np.float64).reshape(-1, 2)
    groups = np.asarray(groups, dtype=np.int64)
    count = np.asarray(n_molecules, dtype=np.float64)
    est = count if n_molecules_estimate is None else np.asarray(n_molecules_estimate, dtype=np.float64)
    frame = pd.DataFrame(
        {"group_id": groups, "w": count, "wr": count * spots[:, 0], "wc": count * spots[:, 1], "est": est}
    )
    frame = frame[frame["group_id"] >= 0]
    agg = frame.groupby("group_id", sort=True).agg(
        n_spots=("w", "size"), n_molecules=("w", "sum"), wr=("wr", "sum"), wc=("wc", "sum"), est=("est", "sum")
    )
    agg = agg[agg["n_molecules"] >= min_molecules]
    return pd.DataFrame(
        {
            "group_id": agg.index.to_numpy(dtype=np.int64),
            "row": (agg["wr"] / agg["n_molecules"]).to_numpy(),
            "col": (agg["wc"] / agg["n_molecules"]).to_numpy(),
            "n_spots": agg["n_spots"].to_numpy(dtype=np.int64),
            "n_molecules": agg["n_molecules"].to_numpy(dtype=np.int64),
            "n_molecules_estimate": agg["est"].to_numpy(dtype=np.float64),
        }
    )


# --------------------------------------------------------------------------------------------------------------------
# SpatialData wrappers
# --------------------------------------------------------------------------------------------------------------------
def _find_raw_image(sdata: SpatialData, record: Mapping[str, Any]) -> str | None:
    """Return the raw image of a points element: its ``raw_image_key``, else its detection image if that is raw."""
    raw = record.get("raw_image_key")
    if raw is not None and raw in sdata.images:
        return str(raw)
    image_key = record.get("image_key")
    if image_key is not None and image_key in sdata.images:
        if not get_provenance(sdata, str(image_key), sdata.images[image_key]):  # not made by this package: raw
            return str(image_key)
    return None


def _reference_for(reference: Any, gene: str) -> float | None:
    if reference is None:
        return None
    if isinstance(reference, Mapping):
        if gene not in reference:
            raise KeyError(f"Parameter reference has no value for channel {gene!r}; it has {list(reference)}.")
        return float(reference[gene])
    return float(reference)


def _rewrite_points(sdata: SpatialData, points_key: str, points: Any, df: pd.DataFrame, record: dict) -> Any:
    from spatialdata.models import PointsModel
    from spatialdata.transformations import get_transformation

    attrs = points.attrs.get("spatialdata_attrs", {})
    new = PointsModel.parse(
        df,
        coordinates={"x": "x", "y": "y", **({"z": "z"} if "z" in df.columns else {})},
        feature_key=attrs.get("feature_key"),
        instance_key=attrs.get("instance_key"),
        transformations=get_transformation(points, get_all=True),
    )
    for name, value in points.attrs.items():
        new.attrs.setdefault(name, value)
    return new


def count_molecules(
    sdata: SpatialData,
    points_key: str,
    *,
    image_key: str | None = None,
    radius_px: float = RADIUS_PX,
    reference: float | Mapping[str, float] | None = None,
    feature_key: str | None = "gene",
    inplace: bool = True,
) -> DaskDataFrame | None:
    """Estimate the number of molecules of every spot from its intensity (module notes of this module).

    Per channel (value of ``feature_key``), spots closer than ``radius_px`` are grouped, each group's integrated
    intensity above the local background (over the union of its spots' discs) is divided by the image's
    single-molecule integrated intensity, and the rounded count is shared among the group's spots.

    Parameters
    ----------
    sdata
        The data.
    points_key
        Spots in :attr:`spatialdata.SpatialData.points`, usually from :func:`deepspot_sd.tl.detect_spots` (its
        ``integrated_intensity`` column is used for isolated spots). Rows with ``molecule=False`` get 0 molecules.
    image_key
        Raw image ``(c, y, x)``, one channel per gene (a single-channel image serves every gene), on which groups
        of spots are measured. Default: the raw image recorded by :func:`deepspot_sd.tl.detect_spots`, or its
        detection image if that was a raw image. Without one, a group is the sum of its spots' intensities (a
        warning: touching spots then count their shared light twice).
    radius_px
        Spots at most this far apart (px of the image) are grouped.
    reference
        Single-molecule integrated intensity (raw units), a number or ``{gene: number}``; default: estimated per
        channel (:func:`deepspot_sd.tl.single_molecule_intensity` of the isolated spots).
    feature_key
        Column of the points holding the channel; `None`: all spots are one channel.
    inplace
        Write the columns into ``sdata.points[points_key]`` (see Returns) rather than returning the element.

    Returns
    -------
    If ``inplace=False``, returns the points element with the new columns; otherwise replaces
    ``sdata.points['{points_key}']`` with it: ``n_molecules`` (int64, at least 1 for a molecule, 0 for
    ``molecule=False`` rows), ``n_molecules_estimate`` (float64, the continuous estimate) and ``group_id`` (int64, the
    spot's group, unique over channels; -1 for rows that are not molecules). The single-molecule intensity of each
    channel lands in the provenance record (``attrs["deepspot_sd"]["count_molecules"]``).

    Raises
    ------
    KeyError
        If the points, the image, a channel of the image or the columns needed do not exist.
    ValueError
        For a non-positive ``radius_px`` or ``reference``.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512), cell_spacing_px=150, clusters_per_cell=2, seed=0)
    >>> dsd.tl.count_molecules(sdata, "true_spots", image_key="smfish")  # doctest: +SKIP
    """
    import dask
    import dask.array as da

    from ._assign import _points_in_grid, _scale0

    check_type("points_key", points_key, str)
    check_key(points_key, sdata.points, "sdata.points")
    check_positive("radius_px", radius_px)
    check_type("inplace", inplace, bool)
    if reference is not None and not isinstance(reference, Mapping):
        check_positive("reference", reference)
    points = sdata.points[points_key]
    record = get_provenance(sdata, points_key, points)
    if image_key is None:
        image_key = _find_raw_image(sdata, record)
    else:
        check_type("image_key", image_key, str)
        check_key(image_key, sdata.images, "sdata.images")
    df = points.compute()
    if not (df.index.is_unique and df.index.is_monotonic_increasing):
        df = df.reset_index(drop=True)
    if feature_key is not None and feature_key not in df.columns:
        raise KeyError(
            f"Column {feature_key!r} not found in `sdata.points[{points_key!r}]`. Available columns: "
            f"{list(df.columns)}. Pass feature_key=None to treat all spots as one channel."
        )
    if image_key is None and "integrated_intensity" not in df.columns:
        raise KeyError(
            f"`sdata.points[{points_key!r}]` has no `integrated_intensity` column and no raw image is known. Please "
            "pass `image_key` (the raw image) or run `dsd.tl.detect_spots(...)` first."
        )
    if image_key is None:
        warnings.warn(
            f"No raw image known for `sdata.points[{points_key!r}]`: groups of touching spots are the sum of their "
            "spots' intensities, which counts shared light twice. Pass `image_key` for exact group intensities.",
            UserWarning,
            stacklevel=2,
        )

    genes = df[feature_key].astype(str).to_numpy() if feature_key is not None else np.full(len(df), "all")
    counted = df["molecule"].to_numpy(dtype=bool) if "molecule" in df.columns else np.ones(len(df), dtype=bool)
    n_molecules = np.zeros(len(df), dtype=np.int64)
    estimate = np.full(len(df), np.nan)
    group_id = np.full(len(df), -1, dtype=np.int64)
    references: dict[str, float | None] = {}

    image = channels = None
    if image_key is not None:
        image = _scale0(sdata.images[image_key])
        channels = [str(c) for c in image.coords["c"].values.tolist()]
        x, y = intrinsic_to_index(
            *_points_in_grid(df, points, image, what=f"Points {points_key!r}", target_name=f"image {image_key!r}")
        )
        spots_all = np.column_stack([y, x])
        arr = image.data if isinstance(image.data, da.Array) else da.from_array(np.asarray(image.data))
    else:
        spots_all = df[["y", "x"]].to_numpy(dtype=np.float64)
    offset = 0
    for gene in sorted(set(genes[counted])):
        idx = np.flatnonzero((genes == gene) & counted)
        spots = spots_all[idx]
        integrated = (
            df["integrated_intensity"].to_numpy(dtype=np.float64)[idx] if "integrated_intensity" in df.columns else None
        )
        window_image = None
        if image is not None:
            if len(channels) == 1:
                ci = 0
            elif gene in channels:
                ci = channels.index(gene)
            else:
                raise KeyError(f"Channel {gene!r} not found in image {image_key!r}. Available channels: {channels}.")
            window_image = _SparseImage(arr[ci], spots, dask)
        ref = _reference_for(reference, gene)
        table, used = _count_core(window_image, spots, radius_px=radius_px, reference=ref, integrated=integrated)
        n_molecules[idx] = table["n_molecules"].to_numpy()
        estimate[idx] = table["n_molecules_estimate"].to_numpy()
        group_id[idx] = table["group_id"].to_numpy() + offset
        offset += int(table["group_id"].max()) + 1 if len(table) else 0
        references[gene] = used if np.isfinite(used) else None
        logger.info(
            "Counted %d molecules in %d spots of channel %r (single-molecule intensity %.4g).",
            int(n_molecules[idx].sum()),
            len(idx),
            gene,
            used,
        )
    df["n_molecules"] = n_molecules
    df["n_molecules_estimate"] = estimate
    df["group_id"] = group_id
    record = dict(record)
    record["count_molecules"] = {
        "image_key": image_key,
        "radius_px": float(radius_px),
        "reference": references,
        "feature_key": feature_key,
    }
    new = _rewrite_points(sdata, points_key, points, df, record)
    if not inplace:
        new.attrs["deepspot_sd"] = record
        return new
    store_element(sdata, points_key, new, kind="points", provenance=record, show_progress_bar=False)
    return None


class _SparseImage:
    """The pixels of a lazy 2D channel around given spots, read once, posing as a numpy image for the array core.

    Only windows around the spots (bounding boxes of groups of spots within 16 px of each other, padded by the wide
    aperture's 9 px) are read.
    """

    ndim = 2

    def __init__(self, channel: Any, spots: np.ndarray, dask: Any, radius_px: float = 16.0):
        self.shape = tuple(int(s) for s in channel.shape)
        self._data: dict[tuple[int, int, int, int], np.ndarray] = {}
        if not len(spots):
            return
        rows = np.floor(spots[:, 0] + 0.5).astype(np.intp).clip(0, self.shape[0] - 1)
        cols = np.floor(spots[:, 1] + 0.5).astype(np.intp).clip(0, self.shape[1] - 1)
        # boxes around groups of spots within 16 px of each other: few reads, small memory
        boxes = group_spots(np.column_stack([rows, cols]).astype(float), radius_px=radius_px)
        keys, tasks = [], []
        for g in range(int(boxes.max()) + 1):
            m = boxes == g
            key = _group_window(rows[m], cols[m], self.shape)
            keys.append(key)
            tasks.append(channel[key[0] : key[1], key[2] : key[3]])
        for key, values in zip(keys, dask.compute(*tasks), strict=True):
            self._data[key] = np.asarray(values, dtype=np.float64)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        r0, r1, c0, c1 = key[0].start, key[0].stop, key[1].start, key[1].stop
        for (a0, a1, b0, b1), values in self._data.items():
            if a0 <= r0 and r1 <= a1 and b0 <= c0 and c1 <= b1:
                return values[r0 - a0 : r1 - a0, c0 - b0 : c1 - b0]
        raise KeyError(f"Window {key} was not read.")  # pragma: no cover - the windows cover every group


def detect_clusters(
    sdata: SpatialData,
    points_key: str,
    *,
    min_molecules: int = 2,
    nuclei_key: str | None = None,
    feature_key: str | None = "gene",
    key_added: str | None = None,
    inplace: bool = True,
) -> DaskDataFrame | None:
    """Collect the groups of spots holding at least ``min_molecules`` molecules into a cluster points element.

    Parameters
    ----------
    sdata
        The data.
    points_key
        Spots processed by :func:`deepspot_sd.tl.count_molecules` (columns ``n_molecules``,
        ``n_molecules_estimate``, ``group_id``).
    min_molecules
        Smallest number of molecules of a cluster (a tight cluster can be one bright spot).
    nuclei_key
        Nucleus labels in :attr:`spatialdata.SpatialData.labels`; adds ``in_nucleus`` (the cluster's centre lies on
        a nucleus pixel: a transcription site) and ``nucleus_id``.
    feature_key
        Column of the points holding the channel; `None`: one channel.
    key_added
        Name of the clusters element; default ``f"{points_key}_clusters"``.
    inplace
        Store the element in ``sdata`` rather than returning it.

    Returns
    -------
    If ``inplace=False``, returns the clusters element; otherwise adds ``sdata.points['{key_added}']``: one row per
    cluster with ``x``, ``y`` (the members' centre weighted by their molecules, in the points' coordinates, with the
    points' transformations), ``gene``, ``cluster_id`` (the members' ``group_id``), ``n_spots``, ``n_molecules``,
    ``n_molecules_estimate`` and, with ``nuclei_key``, ``in_nucleus`` and ``nucleus_id``.

    Raises
    ------
    KeyError
        If the points or the nuclei do not exist, or :func:`deepspot_sd.tl.count_molecules` has not run.
    ValueError
        If ``min_molecules < 1``.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512), cell_spacing_px=150, transcription_sites_per_cell=1, seed=0)
    >>> dsd.tl.count_molecules(sdata, "true_spots", image_key="smfish")  # doctest: +SKIP
    >>> dsd.tl.detect_clusters(sdata, "true_spots", nuclei_key="nuclei")  # doctest: +SKIP
    """
    from spatialdata.models import PointsModel
    from spatialdata.transformations import get_transformation

    from ._assign import _dask_data, _get_labels, _points_in_grid

    check_type("points_key", points_key, str)
    check_key(points_key, sdata.points, "sdata.points")
    check_type("min_molecules", min_molecules, (int, np.integer))
    if min_molecules < 1:
        raise ValueError(f"Parameter min_molecules should be >= 1, got {min_molecules}.")
    check_type("inplace", inplace, bool)
    key_added = f"{points_key}_clusters" if key_added is None else key_added
    if inplace:
        check_key_added(sdata, key_added, "points")
    nuclei = _get_labels(sdata, nuclei_key) if nuclei_key is not None else None
    points = sdata.points[points_key]
    missing = [c for c in MOLECULE_COLUMNS if c not in points.columns]
    if missing:
        raise KeyError(
            f"Columns {missing} not found in `sdata.points[{points_key!r}]`. Please run "
            f"`dsd.tl.count_molecules(sdata, {points_key!r})` first."
        )
    df = points.compute()
    if feature_key is not None:
        check_key(feature_key, df.columns, f"sdata.points[{points_key!r}] columns")
    summary = summarize_clusters(
        df[["y", "x"]].to_numpy(dtype=np.float64),
        df["group_id"].to_numpy(),
        df["n_molecules"].to_numpy(),
        df["n_molecules_estimate"].to_numpy(),
        min_molecules=int(min_molecules),
    )
    first = df.drop_duplicates("group_id").set_index("group_id")
    categories = (
        list(df[feature_key].cat.categories)
        if feature_key is not None and isinstance(df[feature_key].dtype, pd.CategoricalDtype)
        else None
    )
    out = pd.DataFrame(
        {
            "x": summary["col"].to_numpy(),
            "y": summary["row"].to_numpy(),
            "cluster_id": summary["group_id"].to_numpy(),
            "n_spots": summary["n_spots"].to_numpy(),
            "n_molecules": summary["n_molecules"].to_numpy(),
            "n_molecules_estimate": summary["n_molecules_estimate"].to_numpy(),
        }
    )
    if feature_key is not None:
        values = first.loc[summary["group_id"], feature_key].astype(str).to_numpy()
        out.insert(2, feature_key, pd.Categorical(values, categories=categories))
    if nuclei is not None:
        u, v = _points_in_grid(out, points, nuclei, what=f"Points {points_key!r}", target_name=f"labels {nuclei_key!r}")
        rows, cols = np.floor(np.asarray(v)).astype(np.int64), np.floor(np.asarray(u)).astype(np.int64)
        inside = (rows >= 0) & (rows < nuclei.shape[0]) & (cols >= 0) & (cols < nuclei.shape[1])
        ids = np.zeros(len(out), dtype=np.int64)
        if inside.any():
            ids[inside] = np.asarray(_dask_data(nuclei).vindex[rows[inside], cols[inside]].compute(), dtype=np.int64)
        out["in_nucleus"] = ids > 0
        out["nucleus_id"] = ids
    element = PointsModel.parse(
        out,
        coordinates={"x": "x", "y": "y"},
        feature_key=feature_key,
        transformations=get_transformation(points, get_all=True),
    )
    record = {
        "function": "detect_clusters",
        "points_key": points_key,
        "min_molecules": int(min_molecules),
        "nuclei_key": nuclei_key,
        "n_clusters": len(out),
    }
    logger.info(
        "Found %d clusters of >= %d molecules in %r%s.",
        len(out),
        min_molecules,
        points_key,
        f" ({int(out['in_nucleus'].sum())} in nuclei)" if nuclei is not None else "",
    )
    if not inplace:
        element.attrs["deepspot_sd"] = record
        return element
    store_element(sdata, key_added, element, kind="points", provenance=record, show_progress_bar=False)
    return None
