"""Spot tables as CSV: :func:`read_spots_csv` and :func:`write_spots_csv`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from deepspot_sd._coords import pixel_centre_transformations
from deepspot_sd._logging import logger
from deepspot_sd._validation import check_key, check_type

if TYPE_CHECKING:  # pragma: no cover
    from dask.dataframe import DataFrame as DaskDataFrame
    from spatialdata import SpatialData

__all__ = ["read_spots_csv", "write_spots_csv"]


def read_spots_csv(
    path: str | os.PathLike[str],
    *,
    x: str = "x",
    y: str = "y",
    gene: str | None = "gene",
    transformations: Mapping[str, Any] | None = None,
    convention: Literal["index", "spatialdata"] = "index",
) -> DaskDataFrame:
    """Read a spot table (one row per spot) from a CSV file into a points element.

    Parameters
    ----------
    path
        CSV file with a header row.
    x, y
        Columns of the spot coordinates in pixels of the image they belong to (``x`` = column, ``y`` = row), in the
        given ``convention``; renamed to ``x`` and ``y`` and kept as they are.
    gene
        Column of the gene (or channel) of each spot, renamed to ``gene`` and used as the feature key; ``None`` if
        the table has none.
    transformations
        Coordinate transformations of the image the spots belong to (for a multiscale image, of the level the
        coordinates refer to), e.g. :func:`spatialdata.transformations.get_transformation`
        ``(image, get_all=True)``; default ``Identity`` to ``"global"``.
    convention
        Pixel convention of the coordinates:

        - ``"index"`` (numpy, scikit-image, big-fish, :func:`deepspot_sd.tl.detect_spots`,
          :func:`write_spots_csv` of our elements): a spot centred on pixel (row ``i``, col ``j``) has ``x = j``,
          ``y = i``. The element gets, for each coordinate system, ``Sequence([Translation([0.5, 0.5],
          axes=("x", "y")), T])`` (``T`` from ``transformations``), because spatialdata puts that pixel's centre at
          ``(j + 0.5, i + 0.5)`` in the image's intrinsic coordinates; the spots then overlay the image in every
          coordinate system.
        - ``"spatialdata"``: the coordinates are already spatialdata-intrinsic coordinates of the image (pixel
          ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``, its centre at ``(j + 0.5, i + 0.5)``), e.g. a table written
          from another spatialdata tool; ``transformations`` are used unchanged.

    Returns
    -------
    The points element (:class:`dask.dataframe.DataFrame` parsed by :class:`spatialdata.models.PointsModel`) with
    ``x``, ``y`` (float64), ``gene`` (categorical) and the other columns of the file; add it with
    ``sdata.points["spots"] = ...``.

    Raises
    ------
    KeyError
        If a named column is missing; the message lists the columns of the file.
    ValueError
        If ``convention`` is not ``"index"`` or ``"spatialdata"``.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> points = dsd.io.read_spots_csv("spots.csv", x="col", y="row")  # doctest: +SKIP
    """
    from spatialdata.models import PointsModel

    if convention not in ("index", "spatialdata"):
        raise ValueError(f"Parameter convention should be one of ['index', 'spatialdata'], got {convention!r}.")
    df = pd.read_csv(os.fspath(path))
    columns = {x: "x", y: "y"}
    if gene is not None:
        columns[gene] = "gene"
    for name in columns:
        check_type("column name", name, str)
        check_key(name, df.columns, f"columns of {os.fspath(path)}")
    df = df.rename(columns=columns)
    duplicated = sorted(set(df.columns[df.columns.duplicated()]))
    if duplicated:
        raise ValueError(
            f"After renaming {columns}, the table has duplicated columns {duplicated}; please rename them first."
        )
    df["x"] = df["x"].astype("float64")
    df["y"] = df["y"].astype("float64")
    kwargs: dict[str, Any] = {"coordinates": {"x": "x", "y": "y"}}
    if gene is not None:
        df["gene"] = df["gene"].astype(str).astype("category")
        kwargs["feature_key"] = "gene"
    if convention == "index":
        kwargs["transformations"] = pixel_centre_transformations(transformations)
    elif transformations is not None:
        kwargs["transformations"] = dict(transformations)
    logger.info("Read %d spots from %s.", len(df), os.fspath(path))
    return PointsModel.parse(df, **kwargs)


def write_spots_csv(sdata: SpatialData, points_key: str, path: str | os.PathLike[str]) -> None:
    """Write a points element (e.g. from :func:`deepspot_sd.tl.detect_spots`) to a CSV file.

    Parameters
    ----------
    sdata
        The SpatialData object.
    points_key
        Element in ``sdata.points``.
    path
        Output CSV file (overwritten). Columns ``x``, ``y`` first (the points' own coordinates, unchanged: for our
        elements the pixel-index convention, read back with ``read_spots_csv(..., convention="index")``), then the
        others in their order; no index column. Transformations are not written.

    Raises
    ------
    KeyError
        If ``points_key`` does not exist; the message lists the available keys.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> dsd.io.write_spots_csv(sdata, "smfish_enhanced_spots", "spots.csv")  # doctest: +SKIP
    """
    from spatialdata import SpatialData

    check_type("sdata", sdata, SpatialData)
    check_type("points_key", points_key, str)
    check_key(points_key, sdata.points, "sdata.points")
    df = sdata.points[points_key].compute()
    first = [c for c in ("x", "y") if c in df.columns]
    df = df[first + [c for c in df.columns if c not in first]]
    df.to_csv(os.fspath(path), index=False)
    logger.info("Wrote %d spots of `sdata.points[%r]` to %s.", len(df), points_key, os.fspath(path))
