"""SpatialData wrapper of the package normalisation: :func:`normalize`."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspot_sd._logging import logger
from deepspot_sd._model_config import ModelConfig, default_model_config
from deepspot_sd._store import check_key_added, store_element
from deepspot_sd._validation import check_finite_image, check_type, get_image_element

from ._normalize import apply_normalization, normalization_stats

if TYPE_CHECKING:  # pragma: no cover
    from spatialdata import SpatialData
    from xarray import DataArray

__all__ = ["normalize"]


def normalize(
    sdata: SpatialData,
    image_key: str,
    *,
    model_config: ModelConfig | None = None,
    scale: int | str | None = None,
    key_added: str | None = None,
    inplace: bool = True,
    show_progress_bar: bool = True,
) -> DataArray | None:
    """Normalise an image element to the DeepSpot networks' 0–255 input scale, channel by channel, lazily.

    The statistics (background, noise, spot scale; :func:`deepspot_sd.pp.normalization_stats`) are taken over each
    whole channel, then :func:`deepspot_sd.pp.apply_normalization` is applied chunk by chunk, so the result does not
    depend on the chunking. :func:`deepspot_sd.tl.enhance` does this itself; call this function to inspect the
    network input, or to enhance several times with ``normalized=True``.

    Parameters
    ----------
    sdata
        The SpatialData object.
    image_key
        Image element ``(c, y, x)`` in ``sdata.images`` (uint8, uint16 or float).
    model_config
        Normalisation settings (``ModelConfig.normalization_kwargs``); default: those of the default shipped model.
    scale
        Level of a multiscale image: ``None`` (full resolution), ``n`` or ``"scale{n}"``. The result is a
        single-scale image with that level's shape and transformations.
    key_added
        Name of the new image element; default ``f"{image_key}_normalized"``.
    inplace
        Store the result in ``sdata`` (see Returns) rather than returning it.
    show_progress_bar
        Show a dask progress bar while the result is written to a backed store.

    Returns
    -------
    If ``inplace=False``, returns the lazy ``float32 (c, y, x)`` :class:`xarray.DataArray` (background at ~100, spots
    at ~200 or more, clipped to 0–255) with the input's channels, chunks and transformations; otherwise adds
    ``sdata.images['{key_added}']`` (written to the zarr store too when ``sdata`` is backed). The statistics of every
    channel are recorded in its ``attrs["deepspot_sd"]["normalization"]``.

    Raises
    ------
    KeyError
        If ``image_key`` or ``scale`` do not exist.
    ValueError
        If the image is not ``(c, y, x)``, is empty or contains NaN / inf.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512))  # doctest: +SKIP
    >>> dsd.pp.normalize(sdata, "smfish")  # doctest: +SKIP
    """
    import dask.array as da
    from spatialdata.models import Image2DModel

    data, transformations = get_image_element(sdata, image_key, scale=scale)
    check_type("inplace", inplace, bool)
    config = default_model_config() if model_config is None else model_config
    check_type("model_config", config, ModelConfig)
    key_added = f"{image_key}_normalized" if key_added is None else key_added
    if key_added == image_key:
        raise ValueError(f"Parameter key_added should differ from image_key {image_key!r}; please pass another name.")
    if inplace:
        check_key_added(sdata, key_added, "images")
    arr = data.data if isinstance(data.data, da.Array) else da.from_array(data.data, chunks=data.shape)
    check_finite_image(arr, f"sdata.images[{image_key!r}]")
    channels = list(data.coords["c"].values.tolist())

    out, records = normalize_channels(arr, channels, config, image_key=image_key)
    out = out.rechunk(arr.chunksize)
    out = out.map_blocks(_check_finite_block, dtype=np.float32)
    element = Image2DModel.parse(out, dims=("c", "y", "x"), c_coords=channels, transformations=transformations)
    level = "scale0" if scale is None else (scale if isinstance(scale, str) else f"scale{int(scale)}")
    provenance: dict[str, Any] = {
        "function": "normalize",
        "source_image": image_key,
        "scale": level,
        "normalization": records,
    }
    element.attrs["deepspot_sd"] = provenance
    logger.info("Normalising %r (%s, %d channel(s)).", image_key, level, len(channels))
    if not inplace:
        return element
    store_element(sdata, key_added, element, kind="images", provenance=provenance, show_progress_bar=show_progress_bar)
    return None


def normalize_channels(
    arr: Any, channels: list[Any], config: ModelConfig, *, image_key: str
) -> tuple[Any, list[dict[str, Any]]]:
    """Normalise each channel of a ``(c, y, x)`` dask array lazily, with statistics over the whole channel.

    Returns the stacked float32 dask array and the per-channel statistics (as dicts, for provenance). A channel
    without contrast (constant) gives a :class:`UserWarning`: its normalised image is constant and carries no spots.
    """
    import dask.array as da

    layers, records = [], []
    for i, name in enumerate(channels):
        stats = normalization_stats(arr[i], **config.normalization_kwargs)
        if stats.degenerate:
            warnings.warn(
                f"Channel {name!r} of image {image_key!r} has no contrast (constant); its normalised image is "
                "constant and carries no spots. Check the input channel.",
                UserWarning,
                stacklevel=3,
            )
        layers.append(apply_normalization(arr[i], stats))
        records.append(stats.to_dict())
    return da.stack(layers), records


def _check_finite_block(block: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(block)):
        raise ValueError("The image contains NaN or infinite values; fill or mask them before normalising it.")
    return block
