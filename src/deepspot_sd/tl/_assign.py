"""Assign spots to cells and summarise every cell of a label image in an AnnData table.

Conventions
-----------
* Spots are mapped into the label image through a coordinate system both share, to the labels'
  spatialdata-intrinsic coordinates ``(u, v)``, in which pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``;
  a spot falls on the pixel ``(floor(v), floor(u))``, spots outside the image belong to no cell. This holds for
  any points element under spatialdata's convention: ours (``x``, ``y`` in the pixel-index convention plus the
  half-pixel translation of ``deepspot_sd._coords.pixel_centre_transformations``, so a spot at ``x = j``,
  ``y = i`` falls on pixel ``(i, j)``) and foreign ones (a point at ``(j + 0.5, i + 0.5)`` with the labels'
  transformation falls on pixel ``(i, j)`` too).
* Centroids and bounding boxes in the table (``obsm['spatial']``, ``obsm['nucleus_centroid']``, ``obsm['bbox']``)
  are in the labels' *pixel-index* convention (the centre of pixel ``(i, j)`` is ``x = j, y = i``, like the
  ``x``, ``y`` columns of our points); add 0.5 for the labels' spatialdata-intrinsic coordinates.
* Label ``0`` is background. The *nucleus* of a cell is the part of its mask covered by any nucleus label (the
  nucleus ids need not match the cell ids); the *cytoplasm* is the rest of the mask. Without nuclei the whole
  cell counts as cytoplasm.
* Label images are read chunk by chunk (one dask task per chunk), so memory is bounded by the chunk size,
  not by the image size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
from scipy import sparse

from deepspot_sd._coords import pixel_of
from deepspot_sd._logging import logger
from deepspot_sd._store import check_key_added, get_provenance, store_element
from deepspot_sd._validation import check_key, check_type

if TYPE_CHECKING:
    from anndata import AnnData
    from dask.dataframe import DataFrame as DaskDataFrame
    from spatialdata import SpatialData
    from xarray import DataArray

__all__ = ["assign_spots"]

COMPARTMENTS = ("nucleus", "cytoplasm", "none")
_DEFAULT_CHUNK_PX = 2048


# --------------------------------------------------------------------------------------------------------------
# element access and coordinate transformations (also used by `_enrichment` and `deepspot_sd.pl`)
# --------------------------------------------------------------------------------------------------------------
def _scale0(element: Any) -> DataArray:
    """Return the full-resolution :class:`xarray.DataArray` of a (possibly multiscale) raster element."""
    from xarray import DataTree

    if isinstance(element, DataTree):
        from spatialdata import get_pyramid_levels

        return get_pyramid_levels(element, n=0)
    return element


def _get_labels(sdata: SpatialData, key: str) -> DataArray:
    """Look up a 2D integer label element (full resolution) or raise a clear error."""
    check_key(key, sdata.labels, "sdata.labels")
    labels = _scale0(sdata.labels[key])
    if tuple(labels.dims) != ("y", "x"):
        raise ValueError(f"Label element {key!r} should have dims ('y', 'x'), got {tuple(labels.dims)}.")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise TypeError(f"Label element {key!r} should have an integer dtype, got {labels.dtype}.")
    return labels


def _dask_data(raster: DataArray) -> da.Array:
    """Return the raster data as a dask array (numpy-backed elements are wrapped, not copied)."""
    data = raster.data
    if isinstance(data, da.Array):
        return data
    return da.from_array(np.asarray(data), chunks=_DEFAULT_CHUNK_PX)


def _affine_to_grid(element: Any, target: Any, *, what: str, target_name: str) -> np.ndarray:
    """Return the 3x3 affine matrix mapping ``element`` intrinsic ``(x, y, 1)`` to ``target`` intrinsic ones.

    Intrinsic coordinates are those of spatialdata: for a raster ``target``, pixel ``(i, j)`` covers
    ``[j, j + 1) x [i, i + 1)``; for a points or shapes ``element``, its own ``x``, ``y`` values. Both elements
    are mapped to a coordinate system they share (``"global"`` when shared, otherwise the first shared one in
    alphabetical order); the result is ``inv(T_target) @ T_element``.
    """
    from spatialdata.transformations import get_transformation

    src = get_transformation(element, get_all=True)
    dst = get_transformation(target, get_all=True)
    common = sorted(set(src) & set(dst), key=lambda cs: (cs != "global", cs))
    if not common:
        raise ValueError(
            f"{what} and {target_name} share no coordinate system ({sorted(src)} vs {sorted(dst)}). Please add a "
            "transformation to a common coordinate system with `spatialdata.transformations.set_transformation`."
        )
    cs = common[0]
    a = np.asarray(src[cs].to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")), dtype=np.float64)
    b = np.asarray(dst[cs].to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")), dtype=np.float64)
    if abs(np.linalg.det(b[:2, :2])) < 1e-12:
        raise ValueError(f"The transformation of {target_name} to {cs!r} is not invertible.")
    return np.linalg.inv(b) @ a


def _apply_affine(matrix: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply a 3x3 affine matrix to coordinate arrays; the identity returns float copies."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if np.allclose(matrix, np.eye(3)):
        return x.copy(), y.copy()
    return matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2], matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]


def _points_in_grid(points_df: pd.DataFrame, points: Any, raster: Any, *, what: str, target_name: str):
    """Spot coordinates ``(u, v)`` of ``points_df`` in the spatialdata-intrinsic coordinates of ``raster``.

    Pixel ``(i, j)`` of ``raster`` covers ``[j, j + 1) x [i, i + 1)``: :func:`deepspot_sd._coords.pixel_of` gives
    the pixel of each spot, :func:`deepspot_sd._coords.intrinsic_to_index` its pixel-index coordinates.
    """
    matrix = _affine_to_grid(points, raster, what=what, target_name=target_name)
    return _apply_affine(matrix, points_df["x"].to_numpy(), points_df["y"].to_numpy())


# --------------------------------------------------------------------------------------------------------------
# chunk-wise label statistics
# --------------------------------------------------------------------------------------------------------------
def _compress(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique labels of ``flat`` and the index of each pixel into them (bincount when ids are dense)."""
    if flat.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.intp)
    low, high = int(flat.min()), int(flat.max())
    if low < 0:
        raise ValueError(f"Label images should hold non-negative integers, found label {low}.")
    if high < 4 * flat.size + 1024:
        present = np.bincount(flat, minlength=high + 1) > 0
        ids = np.flatnonzero(present)
        lut = np.zeros(high + 1, dtype=np.intp)
        lut[ids] = np.arange(len(ids))
        return ids.astype(np.int64), lut[flat]
    ids, inv = np.unique(flat, return_inverse=True)
    return ids.astype(np.int64), inv.ravel()


_SUM_COLUMNS = ("area_px", "sum_x", "sum_y", "nucleus_area_px", "nucleus_sum_x", "nucleus_sum_y")
_MIN_COLUMNS = ("x_min", "y_min")
_MAX_COLUMNS = ("x_max", "y_max")


def _block_stats(
    cells: np.ndarray,
    nuclei: np.ndarray | None,
    offset: tuple[int, int],
    rows: np.ndarray,
    cols: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Per-label sums, bounding boxes and the labels under the given spots for one chunk.

    ``rows``/``cols`` are spot pixel indices relative to the chunk origin ``offset`` (``(row0, col0)``).
    """
    cells = np.asarray(cells)
    if cells.dtype == bool:
        cells = cells.astype(np.uint8)
    h, w = cells.shape
    ids, inv = _compress(cells.ravel())
    k = len(ids)
    yy, xx = np.divmod(np.arange(h * w, dtype=np.int64), w)
    yy += offset[0]
    xx += offset[1]
    stats = {
        "area_px": np.bincount(inv, minlength=k).astype(np.float64),
        "sum_x": np.bincount(inv, weights=xx, minlength=k),
        "sum_y": np.bincount(inv, weights=yy, minlength=k),
    }
    for name, coord, ufunc, start in (
        ("x_min", xx, np.minimum, np.iinfo(np.int64).max),
        ("y_min", yy, np.minimum, np.iinfo(np.int64).max),
        ("x_max", xx, np.maximum, -1),
        ("y_max", yy, np.maximum, -1),
    ):
        out = np.full(k, start, dtype=np.int64)
        ufunc.at(out, inv, coord)
        stats[name] = out
    spot_cell = cells[rows, cols].astype(np.int64)
    if nuclei is not None:
        nuc = np.asarray(nuclei).ravel() > 0
        stats["nucleus_area_px"] = np.bincount(inv[nuc], minlength=k).astype(np.float64)
        stats["nucleus_sum_x"] = np.bincount(inv[nuc], weights=xx[nuc], minlength=k)
        stats["nucleus_sum_y"] = np.bincount(inv[nuc], weights=yy[nuc], minlength=k)
        spot_nuc = np.asarray(nuclei)[rows, cols] > 0
    else:
        for name in ("nucleus_area_px", "nucleus_sum_x", "nucleus_sum_y"):
            stats[name] = np.zeros(k)
        spot_nuc = np.zeros(len(rows), dtype=bool)
    return pd.DataFrame(stats, index=pd.Index(ids, name="cell_id")), spot_cell, spot_nuc


def _blocks(cells: da.Array, nuclei: da.Array | None):
    """Yield ``((i, j), cells_block, nuclei_block, (row0, col0))`` delayed blocks on the cells' chunk grid."""
    if nuclei is not None and nuclei.chunks != cells.chunks:
        nuclei = nuclei.rechunk(cells.chunks)
    y_bounds = np.cumsum((0, *cells.chunks[0]))
    x_bounds = np.cumsum((0, *cells.chunks[1]))
    cell_blocks = cells.to_delayed()
    nuc_blocks = nuclei.to_delayed() if nuclei is not None else None
    for i in range(len(y_bounds) - 1):
        for j in range(len(x_bounds) - 1):
            yield (
                (i, j),
                cell_blocks[i, j],
                None if nuc_blocks is None else nuc_blocks[i, j],
                (int(y_bounds[i]), int(x_bounds[j])),
            )


def _spots_by_block(rows: np.ndarray, cols: np.ndarray, chunks: tuple[tuple[int, ...], ...]):
    """Group in-image spot indices by chunk: returns ``{(i, j): spot indices}``."""
    y_bounds = np.cumsum((0, *chunks[0]))
    x_bounds = np.cumsum((0, *chunks[1]))
    inside = np.flatnonzero((rows >= 0) & (rows < y_bounds[-1]) & (cols >= 0) & (cols < x_bounds[-1]))
    bi = np.searchsorted(y_bounds, rows[inside], side="right") - 1
    bj = np.searchsorted(x_bounds, cols[inside], side="right") - 1
    lin = bi * (len(x_bounds) - 1) + bj
    order = np.argsort(lin, kind="stable")
    n_blocks = (len(y_bounds) - 1) * (len(x_bounds) - 1)
    splits = np.searchsorted(lin[order], np.arange(n_blocks + 1))
    out = {}
    for b in range(n_blocks):
        out[divmod(b, len(x_bounds) - 1)] = inside[order[splits[b] : splits[b + 1]]]
    return out


def _label_statistics(
    cells: da.Array, nuclei: da.Array | None, rows: np.ndarray, cols: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Per-cell statistics of a chunked label image and the cell/nucleus flag under each spot.

    Returns a DataFrame indexed by cell id (background excluded, ascending) with ``area_px``, ``sum_x``,
    ``sum_y``, ``x_min``, ``y_min``, ``x_max``, ``y_max``, ``nucleus_area_px``, ``nucleus_sum_x``,
    ``nucleus_sum_y``, and for each spot its cell id (``0`` outside cells or the image) and whether it lies on a
    nucleus pixel.
    """
    groups = _spots_by_block(rows, cols, cells.chunks)
    tasks, spot_sets = [], []
    for block, cblock, nblock, (r0, c0) in _blocks(cells, nuclei):
        idx = groups[block]
        spot_sets.append(idx)
        tasks.append(dask.delayed(_block_stats)(cblock, nblock, (r0, c0), rows[idx] - r0, cols[idx] - c0))
    results = dask.compute(*tasks)
    spot_cell = np.zeros(len(rows), dtype=np.int64)
    spot_nuc = np.zeros(len(rows), dtype=bool)
    for idx, (_, cell, nuc) in zip(spot_sets, results, strict=True):
        spot_cell[idx] = cell
        spot_nuc[idx] = nuc
    combined = pd.concat([r[0] for r in results])
    grouped = combined.groupby(level=0, sort=True)
    stats = pd.concat(
        [
            grouped[list(_SUM_COLUMNS)].sum(),
            grouped[list(_MIN_COLUMNS)].min(),
            grouped[list(_MAX_COLUMNS)].max(),
        ],
        axis=1,
    )
    stats = stats.loc[stats.index > 0]
    spot_nuc &= spot_cell > 0
    return stats, spot_cell, spot_nuc


# --------------------------------------------------------------------------------------------------------------
# public function
# --------------------------------------------------------------------------------------------------------------
def assign_spots(
    sdata: SpatialData,
    points_key: str,
    labels_key: str,
    *,
    nuclei_key: str | None = None,
    table_key: str | None = None,
    feature_key: str | None = "gene",
    inplace: bool = True,
) -> tuple[DaskDataFrame, AnnData] | None:
    """Assign every spot to the cell (and compartment) under it and count spots per cell and gene.

    Each spot is mapped to the spatialdata-intrinsic coordinates ``(u, v)`` of the cell labels through a
    coordinate system both elements share (so any affine transformations work) and looked up on the pixel that
    contains it, ``(floor(v), floor(u))`` (spatialdata draws pixel ``(i, j)`` over ``[j, j + 1) x [i, i + 1)``).
    Points from :func:`deepspot_sd.tl.detect_spots` (pixel-index ``x``, ``y`` plus a half-pixel translation) and
    foreign points in spatialdata's convention are both assigned to the pixel they are drawn on. The label
    images are read chunk by chunk, so they may be larger than memory.

    Parameters
    ----------
    sdata
        The data.
    points_key
        Key of the spots in :attr:`spatialdata.SpatialData.points` (columns ``x``, ``y`` and ``feature_key``).
        Rows with ``molecule=False`` (dim puncta kept by ``detect_spots(keep_rejected=True)``) get their cell and
        compartment but are not counted.
    labels_key
        Key of the 2D cell label image in :attr:`spatialdata.SpatialData.labels` (``0`` = background).
    nuclei_key
        Key of a 2D nucleus label image on the same pixel grid as the cells (same shape and transformations).
        The nucleus of a cell is the part of its mask covered by any nucleus label. If `None`, the whole cell
        is cytoplasm and the nucleus centroid is the cell centroid.
    table_key
        Key of the table to write; default ``f"{labels_key}_{points_key}"`` (one table per pair, so true and
        detected spots can be counted on the same cells side by side).
    feature_key
        Column of the points holding the gene (one variable per category). If `None`, all spots are counted
        as one variable named ``points_key``.
    inplace
        Whether to write the results into ``sdata``.

    Returns
    -------
    If ``inplace=False``, returns ``(points, table)``; otherwise adds the columns ``cell_id`` (``int64``,
    ``0`` = no cell) and ``compartment`` (categorical: ``"nucleus"``, ``"cytoplasm"``, ``"none"``) to
    ``sdata.points['{points_key}']`` (existing columns of those names are replaced) and adds
    ``sdata.tables['{table_key}']``, an :class:`anndata.AnnData` annotating ``labels_key``
    (``region_key="region"``, ``instance_key="cell_id"``) with one row per cell of the label image, cells
    without spots included, sorted by cell id:

    - ``X``: spot counts per cell and gene (:class:`scipy.sparse.csr_matrix`, ``float32``), ``var_names`` the
      genes; with nuclei, ``layers['nucleus']`` and ``layers['cytoplasm']`` split them by compartment;
    - ``obs``: ``cell_id``, ``region``, ``area_px``, ``cytoplasm_area_px``, ``nucleus_area_px``, ``n_spots``,
      ``n_spots_cytoplasm``, ``n_spots_nucleus``;
    - ``obsm['spatial']``: cell centroid ``(x, y)`` in the labels' pixel-index coordinates (the centre of pixel
      ``(i, j)`` is ``x = j, y = i``; add 0.5 for the labels' spatialdata-intrinsic coordinates), what
      :func:`squidpy.gr.spatial_neighbors` reads; ``obsm['nucleus_centroid']``: centroid ``(x, y)`` of the
      nucleus part, same convention (the cell centroid for cells without nucleus pixels); ``obsm['bbox']``:
      inclusive pixel-index bounding box ``(x_min, y_min, x_max, y_max)``;
    - ``uns['assign_spots']``: the keys used (read by :func:`deepspot_sd.tl.sector_enrichment`).

    When ``sdata`` is backed by a zarr store, both elements are also written there (the points element is
    replaced there, its provenance kept).

    Raises
    ------
    KeyError
        If an element or the ``feature_key`` column does not exist.
    ValueError
        If the nuclei are not on the cells' pixel grid or the points share no coordinate system with the cells.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512), cell_spacing_px=150, seed=0)
    >>> dsd.tl.assign_spots(sdata, "true_spots", "cells", nuclei_key="nuclei")
    >>> table = sdata.tables["cells_true_spots"]
    >>> int(table.obs["n_spots"].sum()) == len(sdata.points["true_spots"])
    True
    """
    import anndata as ad
    from spatialdata.models import PointsModel, TableModel
    from spatialdata.transformations import get_transformation

    check_type("points_key", points_key, str)
    check_type("labels_key", labels_key, str)
    check_key(points_key, sdata.points, "sdata.points")
    labels = _get_labels(sdata, labels_key)
    nuclei = None
    if nuclei_key is not None:
        nuclei = _get_labels(sdata, nuclei_key)
        if nuclei.shape != labels.shape:
            raise ValueError(
                f"Nuclei {nuclei_key!r} {nuclei.shape} and cells {labels_key!r} {labels.shape} should have the same "
                "shape; resample one onto the other's pixel grid first."
            )
        if not np.allclose(
            _affine_to_grid(nuclei, labels, what=f"Nuclei {nuclei_key!r}", target_name=f"cells {labels_key!r}"),
            np.eye(3),
        ):
            raise ValueError(
                f"Nuclei {nuclei_key!r} and cells {labels_key!r} should share their pixel grid (identical "
                "transformations); resample one onto the other first."
            )
    table_key = f"{labels_key}_{points_key}" if table_key is None else table_key
    check_type("table_key", table_key, str)
    if inplace:
        check_key_added(sdata, table_key, "tables")  # type: ignore[arg-type]

    points = sdata.points[points_key]
    df = points.compute()
    if feature_key is not None and feature_key not in df.columns:
        raise KeyError(
            f"Column {feature_key!r} not found in `sdata.points[{points_key!r}]`. Available columns: "
            f"{list(df.columns)}. Pass feature_key=None to count all spots as one variable."
        )
    if not (df.index.is_unique and df.index.is_monotonic_increasing):
        df = df.reset_index(drop=True)

    # spots -> label pixels, then one pass over the label chunks
    x, y = _points_in_grid(df, points, labels, what=f"Points {points_key!r}", target_name=f"labels {labels_key!r}")
    rows, cols = pixel_of(x, y)
    cells_da = _dask_data(labels)
    nuclei_da = None if nuclei is None else _dask_data(nuclei)
    stats, spot_cell, spot_nuc = _label_statistics(cells_da, nuclei_da, rows, cols)
    compartment = np.where(spot_cell == 0, "none", np.where(spot_nuc, "nucleus", "cytoplasm"))

    # the per-cell table
    cell_ids = stats.index.to_numpy(dtype=np.int64)
    n_cells = len(cell_ids)
    if feature_key is None:
        genes = pd.Index([points_key])
        gene_codes = np.zeros(len(df), dtype=np.int64)
    else:
        feature = df[feature_key]
        cat = feature if isinstance(feature.dtype, pd.CategoricalDtype) else feature.astype(str).astype("category")
        genes = pd.Index(cat.cat.categories.astype(str))
        gene_codes = cat.cat.codes.to_numpy().astype(np.int64)
    # detections that `detect_spots(keep_rejected=True)` flagged as not molecules keep their cell, but do not count
    counted = df["molecule"].to_numpy(dtype=bool) if "molecule" in df.columns else np.ones(len(df), dtype=bool)
    in_cell = (spot_cell > 0) & (gene_codes >= 0) & counted
    cell_row = np.searchsorted(cell_ids, spot_cell[in_cell])

    def _counts(mask: np.ndarray) -> sparse.csr_matrix:
        ones = np.ones(int(mask.sum()), dtype=np.float32)
        return sparse.csr_matrix(
            (ones, (cell_row[mask], gene_codes[in_cell][mask])), shape=(n_cells, len(genes)), dtype=np.float32
        )

    in_nuc = spot_nuc[in_cell]
    counts = _counts(np.ones(len(cell_row), dtype=bool))
    area = stats["area_px"].to_numpy()
    nuc_area = stats["nucleus_area_px"].to_numpy()
    centroid = np.stack([stats["sum_x"] / area, stats["sum_y"] / area], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        nuc_centroid = np.stack([stats["nucleus_sum_x"] / nuc_area, stats["nucleus_sum_y"] / nuc_area], axis=1)
    nuc_centroid = np.where(nuc_area[:, None] > 0, nuc_centroid, centroid)
    n_spots = np.bincount(cell_row, minlength=n_cells)
    n_nuc = np.bincount(cell_row[in_nuc], minlength=n_cells)
    obs = pd.DataFrame(
        {
            "cell_id": cell_ids,
            "region": pd.Categorical([labels_key] * n_cells),
            "area_px": area.astype(np.int64),
            "cytoplasm_area_px": (area - nuc_area).astype(np.int64),
            "nucleus_area_px": nuc_area.astype(np.int64),
            "n_spots": n_spots,
            "n_spots_cytoplasm": n_spots - n_nuc,
            "n_spots_nucleus": n_nuc,
        },
        index=pd.Index(cell_ids.astype(str)),
    )
    adata = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=genes))
    if nuclei is not None:
        adata.layers["nucleus"] = _counts(in_nuc)
        adata.layers["cytoplasm"] = _counts(~in_nuc)
    adata.obsm["spatial"] = centroid
    adata.obsm["nucleus_centroid"] = nuc_centroid
    adata.obsm["bbox"] = stats[["x_min", "y_min", "x_max", "y_max"]].to_numpy(dtype=np.int64)
    record = {"points_key": points_key, "labels_key": labels_key}
    if nuclei_key is not None:
        record["nuclei_key"] = nuclei_key
    if feature_key is not None:
        record["feature_key"] = feature_key
    adata.uns["assign_spots"] = record
    table = TableModel.parse(adata, region=labels_key, region_key="region", instance_key="cell_id")

    # the points, with the new columns
    df["cell_id"] = spot_cell
    df["compartment"] = pd.Categorical(compartment, categories=list(COMPARTMENTS))
    attrs = points.attrs.get("spatialdata_attrs", {})
    coordinates = {"x": "x", "y": "y", **({"z": "z"} if "z" in df.columns else {})}
    new_points = PointsModel.parse(
        df,
        coordinates=coordinates,
        feature_key=attrs.get("feature_key"),
        instance_key=attrs.get("instance_key"),
        transformations=get_transformation(points, get_all=True),
    )
    for name, value in points.attrs.items():  # keep other attributes, e.g. the provenance of detect_spots
        new_points.attrs.setdefault(name, value)
    n_assigned = int(in_cell.sum())
    logger.info("Assigned %d of %d spots to %d cells.", n_assigned, len(df), n_cells)
    if not inplace:
        return new_points, table
    provenance = get_provenance(sdata, points_key, points) or None
    store_element(sdata, points_key, new_points, kind="points", provenance=provenance, show_progress_bar=False)
    store_element(sdata, table_key, table, kind="tables", show_progress_bar=False)  # type: ignore[arg-type]
    return None
