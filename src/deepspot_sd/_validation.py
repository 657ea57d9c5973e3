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
