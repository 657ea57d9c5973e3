"""Input checks shared by the public functions; they raise before any computation starts."""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any

import numpy as np


def check_key(key: str, container: Container[str] | Iterable[str], where: str) -> None:
    """Raise a :class:`KeyError` naming the available keys when ``key`` is missing.

    Parameters
    ----------
    key
        The requested element name.
    container
        The mapping or collection of available names.
    where
        How the container is called in the message, e.g. ``"sdata.images"``.
    """
    if key not in container:  # type: ignore[operator]
        available = sorted(container)  # type: ignore[arg-type]
        raise KeyError(f"Key {key!r} not found in `{where}`. Available keys: {available}.")


def check_type(name: str, value: Any, types: type | tuple[type, ...]) -> None:
    """Raise a :class:`TypeError` when ``value`` is not an instance of ``types``."""
    if not isinstance(value, types):
        expected = tuple(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise TypeError(f"Parameter {name} should be a {expected}. It is a {type(value).__name__!r} instead.")


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise a :class:`ValueError` when ``value`` is not (strictly) positive."""
    check_type(name, value, (int, float, np.integer, np.floating))
    if value < 0 or (value == 0 and not allow_zero) or not np.isfinite(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Parameter {name} should be finite and {bound}, got {value}.")


def check_image_2d(image: Any, name: str = "image", *, min_size: int = 1) -> np.ndarray:
    """Return ``image`` as a 2D numeric array, or raise a clear error.

    Parameters
    ----------
    image
        Array-like of shape ``(y, x)``.
    name
        Name used in error messages.
    min_size
        Smallest allowed size of each side in pixels.

    Returns
    -------
    The image as a :class:`numpy.ndarray` (no copy where possible).

    Raises
    ------
    TypeError
        If the array is not numeric.
    ValueError
        If it is not 2D, smaller than ``min_size`` on a side, or contains NaN / inf.
    """
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` should be a 2D array (y, x), got shape {arr.shape}.")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"`{name}` should have an integer or float dtype, got {arr.dtype}.")
    if min(arr.shape) < min_size:
        raise ValueError(f"`{name}` should be at least {min_size} px on each side, got shape {arr.shape}.")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values; fill or mask them before calling this function.")
    return arr


# --------------------------------------------------------------------------------------------------------------------
# SpatialData elements (appended for the tl / pp / io wrappers)
# --------------------------------------------------------------------------------------------------------------------
def _scale_keys(tree: Any) -> list[str]:
    return sorted((k for k in tree.children if str(k).startswith("scale")), key=lambda k: int(str(k)[5:] or 0))


def get_image_element(sdata: Any, image_key: str, *, scale: int | str | None = None) -> tuple[Any, dict[str, Any]]:
    """Look up a 2D image element (one level of it, for a multiscale image) and check its layout.

    Parameters
    ----------
    sdata
        The :class:`spatialdata.SpatialData` object.
    image_key
        Name of the element in ``sdata.images``.
    scale
        Level of a multiscale image: ``None`` (full resolution, ``"scale0"``), an int ``n`` or ``"scale{n}"``.
        Must be ``None`` or ``0`` for a single-scale image.

    Returns
    -------
    ``(data_array, transformations)``: the :class:`xarray.DataArray` ``(c, y, x)`` of the chosen level (dask-backed)
    and its coordinate transformations ``{coordinate system: transformation}`` (for a level of a multiscale image
    these include the level's downscaling).

    Raises
    ------
    TypeError
        If ``sdata`` is not a SpatialData object or the image is not numeric.
    KeyError
        If ``image_key`` or ``scale`` do not exist; the message lists the available names.
    ValueError
        If the element is not a 2D ``(c, y, x)`` image or is empty.
    """
    from spatialdata import SpatialData
    from spatialdata.transformations import get_transformation
    from xarray import DataArray, DataTree

    check_type("sdata", sdata, SpatialData)
    check_type("image_key", image_key, str)
    if image_key not in sdata.images:
        for kind in ("labels", "points", "shapes", "tables"):
            if image_key in getattr(sdata, kind):
                raise KeyError(
                    f"Key {image_key!r} is a {kind} element, not an image. "
                    f"Available keys in `sdata.images`: {sorted(sdata.images)}."
                )
    check_key(image_key, sdata.images, "sdata.images")
    element = sdata.images[image_key]
    if isinstance(element, DataTree):
        levels = _scale_keys(element)
        level = "scale0" if scale is None else (f"scale{int(scale)}" if isinstance(scale, int | np.integer) else scale)
        check_type("scale", level, str)
        if level not in levels:
            raise KeyError(f"Scale {scale!r} not found in multiscale image {image_key!r}. Available scales: {levels}.")
        data = next(iter(element[level].values()))
    elif isinstance(element, DataArray):
        if scale not in (None, 0, "scale0"):
            raise KeyError(
                f"Scale {scale!r} not found: image {image_key!r} is single-scale. Available scales: ['scale0']."
            )
        data = element
    else:  # pragma: no cover - spatialdata only stores these two types
        raise TypeError(f"Unsupported image element type {type(element).__name__!r}.")
    dims = tuple(data.dims)
    if dims != ("c", "y", "x"):
        hint = (
            " Please project the z axis first, e.g. with `dsd.io.read_tiff(..., z_projection='max')`."
            if ("z" in dims)
            else ""
        )
        raise ValueError(f"Image {image_key!r} should have dims ('c', 'y', 'x'), got {dims}.{hint}")
    if min(data.shape) < 1:
        raise ValueError(f"Image {image_key!r} is empty: shape {tuple(data.shape)}.")
    dtype = np.dtype(data.dtype)
    if dtype.kind == "b" or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(f"Image {image_key!r} should have an integer or float dtype, got {dtype}.")
    transformations = get_transformation(data, get_all=True)
    return data, dict(transformations)  # type: ignore[arg-type]


def check_finite_image(data: Any, name: str = "image", *, max_pixels: int = 2**26) -> None:
    """Raise a :class:`ValueError` when a float image holds NaN or infinite values.

    Integer images pass at no cost. Float images with at most ``max_pixels`` pixels are checked whole (for a dask
    array one lazy reduction, computed here); larger ones are checked block by block during the computation instead.

    Parameters
    ----------
    data
        numpy or dask array (or :class:`xarray.DataArray`).
    name
        Name used in the message.
    max_pixels
        Largest image checked up front.
    """
    arr = getattr(data, "data", data)
    if not np.issubdtype(np.dtype(arr.dtype), np.floating) or int(np.prod(arr.shape)) > max_pixels:
        return
    finite = np.isfinite(arr).all()
    if hasattr(finite, "compute"):
        finite = finite.compute()
    if not bool(finite):
        raise ValueError(f"`{name}` contains NaN or infinite values; fill or mask them before calling this function.")
