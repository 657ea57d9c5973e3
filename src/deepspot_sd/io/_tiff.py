"""Read TIFF / OME-TIFF smFISH images into SpatialData: :func:`read_tiff`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from deepspot_sd._logging import logger
from deepspot_sd._validation import check_positive, check_type

if TYPE_CHECKING:  # pragma: no cover
    from spatialdata import SpatialData

__all__ = ["read_tiff"]

#: Axis letters of tifffile series that we know how to handle.
_KNOWN_AXES = set("TZCYXS")


def _ome_channel_names(tif: Any, n_channels: int) -> list[str] | None:
    """Channel names from the OME-XML of the first image, if there are exactly ``n_channels`` distinct ones."""
    if not tif.is_ome or not tif.ome_metadata:
        return None
    import tifffile

    try:
        meta = tifffile.xml2dict(tif.ome_metadata)
        image = meta["OME"]["Image"]
        image = image[0] if isinstance(image, list) else image
        channels = image["Pixels"].get("Channel", [])
    except (KeyError, TypeError, ValueError):  # malformed or unusual OME-XML: fall back to indices
        return None
    channels = channels if isinstance(channels, list) else [channels]
    names = [c.get("Name") for c in channels if isinstance(c, dict)]
    if len(names) != n_channels or any(not isinstance(n, str) or not n for n in names) or len(set(names)) != n_channels:
        return None
    return names


def read_tiff(
    path: str | os.PathLike[str],
    *,
    image_key: str = "image",
    z_projection: Literal["max"] | int | None = "max",
    channel_names: Sequence[str] | None = None,
    chunks: int = 1024,
    scale_um: float | tuple[float, float] | None = None,
    axes: str | None = None,
) -> SpatialData:
    """Read a TIFF or OME-TIFF image lazily into a SpatialData object with one ``(c, y, x)`` image element.

    The axes come from tifffile's series axes (OME-TIFF, ImageJ and tifffile metadata): ``YX`` (one channel),
    ``CYX``, ``ZYX``, ``ZCYX``, ``YXS`` (RGB samples become channels), ... Axes of length 1 are dropped. A z-stack
    is projected (``z_projection``): DeepSpot works on 2D images, and the maximum intensity projection keeps every
    spot of a thin stack, as in the paper's data. The pixels are read lazily (tifffile's zarr store, dask) and only
    when used; a pyramid's full resolution is read.

    Parameters
    ----------
    path
        TIFF file.
    image_key
        Name of the image element.
    z_projection
        ``"max"``: maximum intensity projection over z (default); an ``int``: that z plane; ``None``: the file must
        not hold more than one z plane.
    channel_names
        One name per channel (the genes); default: the OME channel names when present and distinct, else
        ``0, 1, ...``.
    chunks
        Chunk side in px for y and x (one channel per chunk).
    scale_um
        Pixel size in µm, one value or ``(y, x)``: the element gets a ``Scale`` to the ``"global"`` coordinate system
        (in µm). Default ``None``: ``"global"`` is in pixels (``Identity``).
    axes
        Override the axis letters of the file (e.g. ``"ZYX"`` or ``"CYX"`` for a plain multi-page TIFF, which
        tifffile reports as ``"QYX"`` or ``"IYX"``), one letter per dimension of the series.

    Returns
    -------
    A :class:`spatialdata.SpatialData` with ``images['{image_key}']``, an ``Image2DModel`` ``(c, y, x)`` element of
    the file's dtype, dask-backed.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        For unknown or unsupported axes (time series, ambiguous stacks: pass ``axes``), a z-stack with
        ``z_projection=None``, a z plane out of range, or a wrong number of channel names.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.io.read_tiff("smfish.ome.tif", image_key="smfish")  # doctest: +SKIP
    """
    import dask.array as da
    import tifffile
    import zarr
    from spatialdata import SpatialData
    from spatialdata.models import Image2DModel
    from spatialdata.transformations import Identity, Scale

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such file: {path!r}.")
    check_type("image_key", image_key, str)
    check_type("chunks", chunks, (int, np.integer))
    check_positive("chunks", chunks)
    if z_projection is not None and z_projection != "max" and not isinstance(z_projection, int | np.integer):
        raise ValueError(f"Parameter z_projection should be 'max', an int (plane index) or None, got {z_projection!r}.")

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        file_axes = series.axes.upper()
        shape = tuple(series.shape)
        names_from_file = None
        if "C" in file_axes or "S" in file_axes:
            n_c = shape[file_axes.index("C")] if "C" in file_axes else shape[file_axes.index("S")]
            names_from_file = _ome_channel_names(tif, n_c)
    if axes is not None:
        check_type("axes", axes, str)
        if len(axes) != len(shape) or len(set(axes.upper())) != len(axes):
            raise ValueError(
                f"Parameter axes should have one distinct letter per dimension of the series {shape} "
                f"(file axes {file_axes!r}), got {axes!r}."
            )
        file_axes = axes.upper()

    arr = da.from_zarr(zarr.open(tifffile.imread(path, aszarr=True, series=0, level=0), mode="r"))
    # drop singleton axes (but keep y and x), then check what is left
    keep = [i for i, a in enumerate(file_axes) if shape[i] > 1 or a in "YX"]
    arr = arr[tuple(slice(None) if i in keep else 0 for i in range(len(shape)))]
    ax = "".join(file_axes[i] for i in keep)
    if "Y" not in ax or "X" not in ax:
        raise ValueError(f"The TIFF series has axes {file_axes!r}: no Y and X axes. Please pass `axes=`.")
    unknown = sorted(set(ax) - _KNOWN_AXES)
    if unknown:
        raise ValueError(
            f"The TIFF series has axes {file_axes!r} (shape {shape}) with unknown axes {unknown}. Please say what they "
            "are with `axes=`, e.g. axes='ZYX' for a z-stack or axes='CYX' for channels."
        )
    if "T" in ax:
        raise ValueError(
            f"The TIFF series has {shape[file_axes.index('T')]} time points (axes {file_axes!r}); DeepSpot reads one "
            "2D image per channel. Please save one time point per file."
        )
    if "S" in ax:
        if "C" in ax:
            raise ValueError(f"Cannot combine channel and sample axes {file_axes!r}; please pass `axes=`.")
        ax = ax.replace("S", "C")
    if "Z" in ax:
        z = ax.index("Z")
        n_z = arr.shape[z]
        if z_projection is None:
            raise ValueError(
                f"The image is a z-stack of {n_z} planes (axes {file_axes!r}); please choose `z_projection='max'` "
                "or a plane index."
            )
        if z_projection == "max":
            arr = arr.max(axis=z)
            logger.info("Maximum intensity projection over %d z planes.", n_z)
        else:
            plane = int(z_projection)
            if not -n_z <= plane < n_z:
                raise ValueError(f"z plane {plane} out of range: the stack has {n_z} planes.")
            arr = arr[(slice(None),) * z + (plane,)]
        ax = ax.replace("Z", "")
    if "C" not in ax:
        arr = arr[None]
        ax = "C" + ax
    arr = arr.transpose([ax.index(a) for a in "CYX"])
    n_channels = int(arr.shape[0])

    if channel_names is not None:
        channel_names = [str(n) for n in channel_names]
        if len(channel_names) != n_channels or len(set(channel_names)) != n_channels:
            raise ValueError(
                f"Please provide {n_channels} distinct channel names, got {len(channel_names)}: {channel_names}."
            )
    else:
        channel_names = names_from_file
    if scale_um is None:
        transformation = Identity()
    else:
        sy, sx = (scale_um, scale_um) if np.isscalar(scale_um) else tuple(scale_um)  # type: ignore[misc]
        check_positive("scale_um", float(sy))
        check_positive("scale_um", float(sx))
        transformation = Scale([float(sy), float(sx)], axes=("y", "x"))

    arr = arr.rechunk((1, int(chunks), int(chunks)))
    image = Image2DModel.parse(
        arr,
        dims=("c", "y", "x"),
        c_coords=channel_names,
        transformations={"global": transformation},
    )
    logger.info("Read %s: axes %r -> (c, y, x) %s, %s.", path, file_axes, tuple(arr.shape), arr.dtype)
    return SpatialData(images={image_key: image})
