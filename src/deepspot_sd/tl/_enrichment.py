"""Sector enrichment of cytoplasmic spots around the nucleus and the DypFISH polarity index (paper §4.5).

Coordinates
-----------
Everything here is in the *pixel-index* coordinates of the cell labels (the centre of pixel ``(i, j)`` is
``x = j, y = i``), the convention of ``obsm['nucleus_centroid']`` written by :func:`~deepspot_sd.tl.assign_spots`
and of the pixel grid used for the sector areas. Spots and reference shapes are mapped through a shared
coordinate system to the labels' spatialdata-intrinsic coordinates (pixel ``(i, j)`` covers
``[j, j + 1) x [i, i + 1)``, the same mapping that assigned them to cells), then shifted by -0.5 px into this
convention.

Angle convention
----------------
Angles are in degrees in these ``(x, y)`` pixel coordinates, ``theta = atan2(dy, dx)``: 0° points to ``+x``
(right) and 90° to ``+y``, which is *down* in an image shown with its origin at the top left, so angles increase
clockwise on screen. Sector ``k`` (``k = 0 .. n - 1``)
covers ``[ref + k w - w / 2, ref + k w + w / 2)`` with ``w = 360 / n`` and ``ref`` the cell's reference angle:
sector 0 is centred on the reference direction and the others follow clockwise on screen.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import dask
import numpy as np
import pandas as pd

from deepspot_sd._coords import INTRINSIC_TO_INDEX, intrinsic_to_index
from deepspot_sd._logging import logger
from deepspot_sd._store import store_element
from deepspot_sd._validation import check_key, check_positive, check_type

from ._assign import _affine_to_grid, _blocks, _dask_data, _get_labels, _points_in_grid

if TYPE_CHECKING:
    from anndata import AnnData
    from shapely.geometry.base import BaseGeometry
    from spatialdata import SpatialData

__all__ = ["polarity_index", "sector_enrichment"]


def _sector_index(dx: np.ndarray, dy: np.ndarray, reference_deg: np.ndarray | float, n_sectors: int) -> np.ndarray:
    """Sector of each offset ``(dx, dy)`` from a centre, sector 0 centred on ``reference_deg`` (see module notes)."""
    width = 360.0 / n_sectors
    theta = np.degrees(np.arctan2(dy, dx))
    return (np.floor(np.mod(theta - reference_deg + width / 2.0, 360.0) / width).astype(np.int64)) % n_sectors


def _reference_angles(
    sdata: SpatialData, reference: Any, centres: np.ndarray, labels: Any, labels_key: str
) -> tuple[np.ndarray, str]:
    """Angle (degrees, in [0, 360)) from each centre ``(x, y)`` to the reference, and a description of it."""
    import shapely
    from shapely.affinity import affine_transform
    from shapely.geometry.base import BaseGeometry

    n = len(centres)
    if isinstance(reference, numbers.Real) and not isinstance(reference, bool):
        if not np.isfinite(reference):
            raise ValueError(f"Parameter reference should be a finite angle, got {reference}.")
        return np.full(n, float(reference) % 360.0), f"direction {float(reference)} deg"
    if isinstance(reference, str):
        check_key(reference, sdata.shapes, "sdata.shapes")
        shapes = sdata.shapes[reference]
        geoms = shapes.geometry
        if "radius" in shapes.columns:
            geoms = geoms.buffer(shapes["radius"].to_numpy())
        geom = shapely.union_all(np.asarray(geoms.values))
        m = INTRINSIC_TO_INDEX @ _affine_to_grid(
            shapes, labels, what=f"Shapes {reference!r}", target_name=f"labels {labels_key!r}"
        )
        if not np.allclose(m, np.eye(3)):
            geom = affine_transform(geom, [m[0, 0], m[0, 1], m[1, 0], m[1, 1], m[0, 2], m[1, 2]])
        description = f"shapes {reference!r}"
    elif isinstance(reference, BaseGeometry):
        geom, description = reference, f"geometry {reference.geom_type}"
    elif isinstance(reference, Sequence | np.ndarray) and np.shape(reference) == (2,):
        geom = shapely.Point(float(reference[0]), float(reference[1]))
        description = f"point ({float(reference[0])}, {float(reference[1])})"
    else:
        raise TypeError(
            "Parameter reference should be an angle in degrees, an (x, y) point, a key of `sdata.shapes` or a "
            f"shapely geometry. It is a {type(reference).__name__!r} instead."
        )
    if geom.is_empty:
        raise ValueError(f"The reference {description} is empty.")
    lines = shapely.shortest_line(shapely.points(centres), geom)
    target = shapely.get_coordinates(shapely.get_point(lines, 1))
    dx, dy = target[:, 0] - centres[:, 0], target[:, 1] - centres[:, 1]
    angles = np.degrees(np.arctan2(dy, dx)) % 360.0
    inside = np.hypot(dx, dy) == 0
    if inside.any():
        warnings.warn(
            f"{int(inside.sum())} cell(s) have their nucleus centroid on the reference {description}; their "
            "direction is undefined and their sector results are NaN. Check the reference or the segmentation.",
            UserWarning,
            stacklevel=3,
        )
        angles[inside] = np.nan
    return angles, description


def _block_sector_area(
    cells: np.ndarray, nuclei: np.ndarray | None, offset: tuple[int, int], params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Cytoplasm pixel counts of one chunk per ``cell_row * n_sectors + sector`` (unique keys, counts)."""
    cells = np.asarray(cells)
    mask = cells > 0
    if nuclei is not None:
        mask &= np.asarray(nuclei) == 0
    rr, cc = np.nonzero(mask)
    labs = cells[rr, cc].astype(np.int64)
    cell_ids = params["cell_ids"]
    idx = np.minimum(np.searchsorted(cell_ids, labs), len(cell_ids) - 1)
    ok = (cell_ids[idx] == labs) & np.isfinite(params["ref"][idx])
    idx, rr, cc = idx[ok], rr[ok], cc[ok]
    n_sectors = params["n_sectors"]
    sec = _sector_index(
        cc + offset[1] - params["cx"][idx], rr + offset[0] - params["cy"][idx], params["ref"][idx], n_sectors
    )
    return np.unique(idx * n_sectors + sec, return_counts=True)


def sector_enrichment(
    sdata: SpatialData,
    table_key: str,
    *,
    reference: float | tuple[float, float] | str | BaseGeometry,
    n_sectors: int = 3,
    genes: str | Sequence[str] | None = None,
    key_added: str = "sector",
    inplace: bool = True,
) -> AnnData | None:
    """Count cytoplasmic spots in angular sectors around each nucleus, sector 0 facing a reference.

    Each cell's cytoplasm (cell minus nucleus) is split into ``n_sectors`` sectors of ``360 / n_sectors``
    degrees around its nucleus centroid, sector 0 centred on the direction from the centroid to the reference
    (paper §4.5: three sectors of 120°, ``S_wound`` spanning ±60° around the direction to the wound). Sector
    areas are cytoplasm pixel counts, computed chunk by chunk. Angles are in degrees, ``atan2(dy, dx)`` in
    pixel coordinates, i.e. clockwise on screen since the image y axis points down.

    Parameters
    ----------
    sdata
        The data.
    table_key
        Key of a table written by :func:`deepspot_sd.tl.assign_spots`; its spots, cell labels and nuclei are
        the ones recorded there (``uns['assign_spots']``).
    reference
        What sector 0 faces:

        - a real number: a fixed direction angle in degrees (same for every cell);
        - ``(x, y)``: a point, in the cell labels' pixel-index coordinates (the centre of pixel ``(i, j)`` is
          ``x = j, y = i``, like ``obsm['nucleus_centroid']``);
        - a key of :attr:`spatialdata.SpatialData.shapes` (e.g. the wound polygon): the direction to the
          nearest point of the union of its shapes (mapped to the labels' pixel grid through a shared
          coordinate system, like the spots);
        - a :mod:`shapely` geometry in the labels' pixel-index coordinates (e.g. a ``LineString`` wound edge).

        Cells whose centroid lies on the reference shape get NaN results (with a warning).
    n_sectors
        Number of sectors, at least 2.
    genes
        Only count spots of these genes (values of the points' feature column); `None` counts all spots.
    key_added
        Prefix of the keys written to the table.
    inplace
        Whether to write the results into ``sdata.tables[table_key]``.

    Returns
    -------
    If ``inplace=False``, returns an updated copy of the table; otherwise adds to
    ``sdata.tables['{table_key}']``:

    - ``obsm['{key_added}_counts']``: ``(n_cells, n_sectors)`` int cytoplasmic spot counts per sector;
    - ``obsm['{key_added}_area_px']``: ``(n_cells, n_sectors)`` int cytoplasm pixels per sector;
    - ``obsm['{key_added}_density']``: counts / area (NaN where the area is 0);
    - ``obsm['{key_added}_relative_density']``: sector density / whole-cytoplasm density (NaN for cells with
      no cytoplasmic spot);
    - ``obs['{key_added}_reference_angle']``: the angle of sector 0's centre in degrees, in [0, 360);
    - ``uns['{key_added}_params']``: ``n_sectors``, the reference, the genes and the angle convention.

    Raises
    ------
    KeyError
        If the table, the recorded elements or the reference shapes do not exist, or the points lack the
        ``cell_id``/``compartment`` columns of :func:`deepspot_sd.tl.assign_spots`.
    ValueError
        If ``n_sectors < 2`` or the reference is empty.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512), cell_spacing_px=150, seed=0)
    >>> dsd.tl.assign_spots(sdata, "true_spots", "cells", nuclei_key="nuclei")
    >>> dsd.tl.sector_enrichment(sdata, "cells_true_spots", reference="wound")
    >>> sdata.tables["cells_true_spots"].obsm["sector_relative_density"].shape[1]
    3
    """
    check_key(table_key, sdata.tables, "sdata.tables")
    check_type("n_sectors", n_sectors, (int, np.integer))
    check_positive("n_sectors", n_sectors)
    if n_sectors < 2:
        raise ValueError(f"Parameter n_sectors should be at least 2, got {n_sectors}.")
    check_type("key_added", key_added, str)
    table = sdata.tables[table_key]
    record = table.uns.get("assign_spots")
    if record is None or "nucleus_centroid" not in table.obsm:
        raise KeyError(
            f"`sdata.tables[{table_key!r}]` was not written by `assign_spots`. Please run "
            "`dsd.tl.assign_spots(sdata, points_key, labels_key, nuclei_key=...)` first."
        )
    points_key, labels_key = str(record["points_key"]), str(record["labels_key"])
    nuclei_key = record.get("nuclei_key")
    feature_key = record.get("feature_key")
    check_key(points_key, sdata.points, "sdata.points")
    labels = _get_labels(sdata, labels_key)
    nuclei = None if nuclei_key is None else _get_labels(sdata, str(nuclei_key))

    points = sdata.points[points_key]
    missing = {"cell_id", "compartment"} - set(points.columns)
    if missing:
        raise KeyError(
            f"Columns {sorted(missing)} not found in `sdata.points[{points_key!r}]`. Please run "
            f"`dsd.tl.assign_spots(sdata, {points_key!r}, {labels_key!r}, ...)` first."
        )
    if genes is not None:
        genes = [genes] if isinstance(genes, str) else [str(g) for g in genes]
        if feature_key is None:
            raise ValueError("The table was built without a feature column; genes cannot be selected (use None).")

    # reference angle of every cell, from its nucleus centroid
    cell_ids = table.obs["cell_id"].to_numpy(dtype=np.int64)
    order = np.argsort(cell_ids, kind="stable")
    if not np.array_equal(order, np.arange(len(cell_ids))):
        raise ValueError(f"`sdata.tables[{table_key!r}].obs['cell_id']` should be sorted; re-run `assign_spots`.")
    centres = np.asarray(table.obsm["nucleus_centroid"], dtype=np.float64)
    ref, description = _reference_angles(sdata, reference, centres, labels, labels_key)

    # spot counts per sector
    df = points.compute()
    keep = (df["compartment"] == "cytoplasm").to_numpy()
    if "molecule" in df.columns:  # rejected dim puncta kept by `detect_spots(keep_rejected=True)` do not count
        keep = keep & df["molecule"].to_numpy(dtype=bool)
    if genes is not None:
        keep = keep & df[feature_key].astype(str).isin(genes).to_numpy()
    df = df.loc[keep]
    x, y = intrinsic_to_index(
        *_points_in_grid(df, points, labels, what=f"Points {points_key!r}", target_name=f"labels {labels_key!r}")
    )
    spot_cell = df["cell_id"].to_numpy(dtype=np.int64)
    n_cells = len(cell_ids)
    if n_cells:
        row = np.minimum(np.searchsorted(cell_ids, spot_cell), n_cells - 1)
        ok = (cell_ids[row] == spot_cell) & np.isfinite(ref[row])
    else:
        row, ok = np.zeros(len(spot_cell), dtype=np.int64), np.zeros(len(spot_cell), dtype=bool)
    row, x, y = row[ok], x[ok], y[ok]
    sec = _sector_index(x - centres[row, 0], y - centres[row, 1], ref[row], n_sectors)
    counts = np.bincount(row * n_sectors + sec, minlength=n_cells * n_sectors).reshape(n_cells, n_sectors)

    # cytoplasm area per sector, chunk by chunk
    params = dask.delayed(
        {"cell_ids": cell_ids, "cx": centres[:, 0], "cy": centres[:, 1], "ref": ref, "n_sectors": n_sectors},
        pure=True,
    )
    tasks = [
        dask.delayed(_block_sector_area)(cblock, nblock, offset, params)
        for _, cblock, nblock, offset in _blocks(_dask_data(labels), None if nuclei is None else _dask_data(nuclei))
        if n_cells
    ]
    area = np.zeros(n_cells * n_sectors, dtype=np.int64)
    for keys, cnt in dask.compute(*tasks):
        np.add.at(area, keys, cnt)
    area = area.reshape(n_cells, n_sectors)

    with np.errstate(invalid="ignore", divide="ignore"):
        density = np.where(area > 0, counts / area, np.nan)
        whole = counts.sum(axis=1) / area.sum(axis=1)
        relative = np.where(whole[:, None] > 0, density / whole[:, None], np.nan)

    # everything is computed: only now touch the table
    out = table if inplace else table.copy()
    out.obsm[f"{key_added}_counts"] = counts
    out.obsm[f"{key_added}_area_px"] = area
    out.obsm[f"{key_added}_density"] = density
    out.obsm[f"{key_added}_relative_density"] = relative
    out.obs[f"{key_added}_reference_angle"] = ref
    out.uns[f"{key_added}_params"] = {
        "n_sectors": int(n_sectors),
        "reference": description,
        "genes": "all" if genes is None else list(genes),
        "angle_convention": "degrees, atan2(dy, dx) in the labels' pixel-index coordinates (clockwise on screen); "
        "sector 0 centred on the reference",
    }
    logger.info(
        "Counted %d cytoplasmic spots in %d sectors of %d cells (reference: %s).",
        int(counts.sum()),
        n_sectors,
        n_cells,
        description,
    )
    if not inplace:
        return out
    logger.info(
        "Adding `sdata.tables[%r].obsm['%s_counts' | '%s_area_px' | '%s_density' | '%s_relative_density']`",
        table_key,
        *(key_added,) * 4,
    )
    store_element(sdata, table_key, out, kind="tables", show_progress_bar=False)  # type: ignore[arg-type]
    return None


def polarity_index(
    sdata: SpatialData,
    table_key: str,
    *,
    groupby: str | None = None,
    sector: int = 0,
    key: str = "sector",
    versus: Literal["rest", "max"] = "rest",
    n_boot: int = 100,
    ci: float = 0.95,
    seed: int = 0,
    key_added: str = "polarity_index",
    inplace: bool = True,
) -> pd.DataFrame | None:
    """DypFISH polarity index of a sector, per group of cells, with bootstrap spread.

    ``PI = 2 * n_polarized / n - 1`` over the ``n`` cells of a group, in [-1, 1]: 1 when every cell is
    enriched in ``sector``, -1 when none is, about 0 when there is no enrichment (paper §4.5, DypFISH). The
    cells are resampled with replacement ``n_boot`` times to give the median and standard deviation of the
    bootstrap estimates (Figure 7D shows median ± std of 100 resamples).

    Parameters
    ----------
    sdata
        The data.
    table_key
        Key of a table processed by :func:`deepspot_sd.tl.sector_enrichment`.
    groupby
        Column of ``obs`` defining the groups (e.g. migrating vs control cells); `None` pools all cells in
        one group ``"all"``.
    sector
        The sector of interest (0 = the one facing the reference).
    key
        The ``key_added`` used in :func:`deepspot_sd.tl.sector_enrichment`.
    versus
        When a cell counts as polarized:

        - ``"rest"``: its density in ``sector`` is higher than in the rest of its cytoplasm (the paper's
          "higher than in the non-wound section"), i.e. relative density > 1. The null value is 0.
        - ``"max"``: its relative density in ``sector`` is higher than in every other sector. Stricter: with
          no enrichment the expected PI is ``2 / n_sectors - 1``, not 0.

        Cells without cytoplasmic spots (undefined relative density) are left out; ``n_cells`` counts the
        cells used.
    n_boot
        Number of bootstrap resamples.
    ci
        Coverage of the percentile bootstrap interval (``boot_low``, ``boot_high``).
    seed
        Seed of the :class:`numpy.random.Generator` used for resampling.
    key_added
        Key of the result in ``uns``.
    inplace
        Whether to write the result into the table.

    Returns
    -------
    If ``inplace=False``, returns a :class:`pandas.DataFrame` indexed by group with columns ``n_cells``,
    ``n_polarized``, ``pi``, ``boot_median``, ``boot_std``, ``boot_low``, ``boot_high``; otherwise stores it
    in ``sdata.tables['{table_key}'].uns['{key_added}']``.

    Raises
    ------
    KeyError
        If the table, its sector results or the ``groupby`` column do not exist.
    ValueError
        If ``sector``, ``versus``, ``n_boot`` or ``ci`` are out of range.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512), cell_spacing_px=150, seed=0)
    >>> dsd.tl.assign_spots(sdata, "true_spots", "cells", nuclei_key="nuclei")
    >>> dsd.tl.sector_enrichment(sdata, "cells_true_spots", reference="wound")
    >>> pi = dsd.tl.polarity_index(sdata, "cells_true_spots", inplace=False)
    >>> list(pi.columns[:3])
    ['n_cells', 'n_polarized', 'pi']
    """
    check_key(table_key, sdata.tables, "sdata.tables")
    table = sdata.tables[table_key]
    rel_key = f"{key}_relative_density"
    if rel_key not in table.obsm:
        raise KeyError(
            f"`obsm[{rel_key!r}]` not found in `sdata.tables[{table_key!r}]`. Available keys: "
            f"{sorted(table.obsm)}. Please run `dsd.tl.sector_enrichment(sdata, {table_key!r}, reference=...)` first."
        )
    rel = np.asarray(table.obsm[rel_key], dtype=np.float64)
    n_sectors = rel.shape[1]
    check_type("sector", sector, (int, np.integer))
    if not 0 <= sector < n_sectors:
        raise ValueError(f"Parameter sector should be in [0, {n_sectors - 1}], got {sector}.")
    if versus not in ("rest", "max"):
        raise ValueError(f"Parameter versus should be 'rest' or 'max', got {versus!r}.")
    check_type("n_boot", n_boot, (int, np.integer))
    check_positive("n_boot", n_boot)
    check_positive("ci", ci)
    if ci >= 1:
        raise ValueError(f"Parameter ci should be in (0, 1), got {ci}.")

    ref = rel[:, sector]
    others = np.delete(rel, sector, axis=1)
    if versus == "rest":
        valid = np.isfinite(ref)
        polarized = ref > 1.0
    else:
        finite_others = np.isfinite(others)
        valid = np.isfinite(ref) & finite_others.any(axis=1)
        best_other = np.max(np.where(finite_others, others, -np.inf), axis=1)
        polarized = ref > best_other
    if groupby is None:
        groups = pd.Series("all", index=table.obs_names)
    else:
        check_key(groupby, table.obs.columns, f"sdata.tables[{table_key!r}].obs")
        groups = table.obs[groupby]
    categories = (
        list(groups.cat.categories) if isinstance(groups.dtype, pd.CategoricalDtype) else sorted(set(groups.dropna()))
    )
    rng = np.random.default_rng(seed)
    alpha = (1.0 - ci) / 2.0
    rows = {}
    for group in categories:
        in_group = (groups == group).to_numpy() & valid
        flags = polarized[in_group].astype(np.float64)
        n = len(flags)
        if n == 0:
            warnings.warn(
                f"Group {group!r} has no cell with cytoplasmic spots; its polarity index is NaN.",
                UserWarning,
                stacklevel=2,
            )
            rows[str(group)] = {
                "n_cells": 0,
                "n_polarized": 0,
                **dict.fromkeys(("pi", "boot_median", "boot_std", "boot_low", "boot_high"), np.nan),
            }
            continue
        boots = 2.0 * flags[rng.integers(0, n, size=(int(n_boot), n))].mean(axis=1) - 1.0
        rows[str(group)] = {
            "n_cells": n,
            "n_polarized": int(flags.sum()),
            "pi": 2.0 * flags.mean() - 1.0,
            "boot_median": float(np.median(boots)),
            "boot_std": float(np.std(boots)),
            "boot_low": float(np.quantile(boots, alpha)),
            "boot_high": float(np.quantile(boots, 1.0 - alpha)),
        }
    result = pd.DataFrame.from_dict(rows, orient="index")
    result.index.name = groupby if groupby is not None else "group"
    n_left_out = int((~valid).sum())
    if n_left_out:
        logger.info("Left out %d cell(s) without cytoplasmic spots from the polarity index.", n_left_out)
    if not inplace:
        return result
    table.uns[key_added] = result
    logger.info("Adding `sdata.tables[%r].uns[%r]`", table_key, key_added)
    store_element(sdata, table_key, table, kind="tables", show_progress_bar=False)  # type: ignore[arg-type]
    return None
