"""Pixel conventions: how our pixel-index coordinates relate to spatialdata's intrinsic coordinates.

Two conventions meet in this package:

*pixel-index* (numpy, scikit-image, big-fish, and the ``x``, ``y`` columns of every points element we write)
    The centre of pixel ``(row i, col j)`` is ``x = j``, ``y = i``; the pixel covers
    ``[j - 0.5, j + 0.5) x [i - 0.5, i + 0.5)``.
*spatialdata-intrinsic* (the intrinsic coordinate system of an image or labels element, also what
spatialdata-plot draws)
    Pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``; its centre is ``x = j + 0.5``, ``y = i + 0.5``.

So ``intrinsic = index + 0.5`` on both axes. Points elements we write keep index coordinates in their columns and
carry, for every coordinate system of their image, ``Sequence([Translation([0.5, 0.5]), T_image])``
(:func:`pixel_centre_transformations`): in every spatialdata coordinate system they land on the pixel centres.
A point with spatialdata-intrinsic coordinates ``(u, v)`` in a raster lies in pixel ``(floor(v), floor(u))``
(:func:`pixel_of`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from spatialdata.transformations import BaseTransformation

__all__ = [
    "INTRINSIC_TO_INDEX",
    "PIXEL_CENTRE_OFFSET",
    "intrinsic_to_index",
    "pixel_centre_transformations",
    "pixel_of",
]

#: Spatialdata-intrinsic coordinate minus pixel-index coordinate, on ``x`` and ``y``, in pixels.
PIXEL_CENTRE_OFFSET = 0.5
#: 3x3 affine on ``(x, y, 1)`` from spatialdata-intrinsic to pixel-index coordinates of the same raster.
INTRINSIC_TO_INDEX = np.array(
    [[1.0, 0.0, -PIXEL_CENTRE_OFFSET], [0.0, 1.0, -PIXEL_CENTRE_OFFSET], [0.0, 0.0, 1.0]], dtype=np.float64
)


def pixel_centre_transformations(
    image_transformations: Mapping[str, BaseTransformation] | None,
) -> dict[str, BaseTransformation]:
    """Return the transformations of a points element in pixel-index coordinates of an image (or of a level).

    Parameters
    ----------
    image_transformations
        ``{coordinate system: transformation}`` of the image (for a multiscale image, of the level the points
        refer to), e.g. ``spatialdata.transformations.get_transformation(image, get_all=True)``; `None` means
        ``{"global": Identity()}``.

    Returns
    -------
    ``{coordinate system: Sequence([Translation([0.5, 0.5], axes=("x", "y")), T_image])}`` (just the translation
    where ``T_image`` is the identity), so that a point ``x = j, y = i`` lands on the centre of pixel ``(i, j)``
    in every coordinate system. The image's transformations are copied, not shared.
    """
    from spatialdata.transformations import Identity, Sequence, Translation

    if image_transformations is None:
        image_transformations = {"global": Identity()}
    out: dict[str, BaseTransformation] = {}
    for cs, transformation in image_transformations.items():
        shift = Translation([PIXEL_CENTRE_OFFSET, PIXEL_CENTRE_OFFSET], axes=("x", "y"))
        out[cs] = shift if isinstance(transformation, Identity) else Sequence([shift, copy.deepcopy(transformation)])
    return out


def intrinsic_to_index(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-index coordinates ``(x, y)`` of spatialdata-intrinsic coordinates of the same raster."""
    return (
        np.asarray(x, dtype=np.float64) - PIXEL_CENTRE_OFFSET,
        np.asarray(y, dtype=np.float64) - PIXEL_CENTRE_OFFSET,
    )


def pixel_of(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(row, col)`` (int64) of the pixel holding spatialdata-intrinsic ``(x, y)``: ``(floor(y), floor(x))``."""
    return (
        np.floor(np.asarray(y, dtype=np.float64)).astype(np.int64),
        np.floor(np.asarray(x, dtype=np.float64)).astype(np.int64),
    )
