"""Tiled DeepSpot enhancement: a pure array core and the SpatialData wrapper :func:`enhance`.

Tiling
------
The network sees tiles of ``tile_size`` px (256) and only the central ``step = tile_size - 2 * overlap`` px of each
tile are kept, so every kept pixel had at least ``overlap`` px of context on each side: the tiles overlap by
``2 * overlap`` px and the result has no seams. The tiles lie on one global grid: the tile of index ``k`` along an
axis covers image pixels ``[k * step - overlap, k * step - overlap + tile_size)``; outside the image the image is
mirrored (edge pixel repeated, :func:`numpy.pad` ``mode="symmetric"``, dask ``boundary="reflect"``).

For a dask-backed image the y/x chunks are set to a multiple of ``step`` (close to the input chunks), so the block of
a chunk plus its ``overlap`` halo (:func:`dask.array.map_overlap`) is covered exactly by whole tiles of that grid;
ragged edge blocks are padded. The grid, and hence the result, therefore does not depend on the input chunking, and
equals :func:`enhance_array` on the whole image. The output gets the input's chunks: lazily rechunked, or, when the
object is backed by a zarr store, computed region by region straight into the new element's zarr array
(:func:`deepspot_sd._store.write_in_regions`), so that peak memory does not grow with the image size.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspot_sd._logging import logger
from deepspot_sd._store import ATTRS_KEY, check_key_added, get_provenance, store_element, write_in_regions
from deepspot_sd._validation import check_finite_image, check_image_2d, check_type, get_image_element
from deepspot_sd.models._config import ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    import keras
    from spatialdata import SpatialData
    from xarray import DataArray

    from deepspot_sd.models._pretrained import EnhancementModel

__all__ = ["enhance", "enhance_array"]

#: Loaded models, one per worker process, keyed by ``"pretrained:<name>"`` or ``"path:<folder>"``.
_MODEL_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()
#: One lock per network object: dask's threads take turns on the network (TensorFlow parallelises inside a call).
_PREDICT_LOCKS: dict[int, threading.Lock] = {}


# --------------------------------------------------------------------------------------------------------------------
# model handling
# --------------------------------------------------------------------------------------------------------------------
def _model_key(model: str | os.PathLike[str]) -> str:
    """Return the cache key of a shipped model name or a model folder, or raise a :class:`KeyError`."""
    from deepspot_sd.models import available_models

    if isinstance(model, str) and model in available_models():
        return f"pretrained:{model}"
    path = Path(model)
    if path.is_dir() and (path / "config.json").is_file():
        return f"path:{path.resolve()}"
    raise KeyError(
        f"Model {str(model)!r} is neither a shipped model nor a model folder (with config.json). "
        f"Available models: {available_models()}."
    )


def _load_by_key(key: str) -> EnhancementModel:
    """Load (once per process) the model behind a cache key."""
    model = _MODEL_CACHE.get(key)
    if model is not None:
        return model
    with _CACHE_LOCK:
        model = _MODEL_CACHE.get(key)
        if model is None:
            from deepspot_sd.models import load_model, load_pretrained

            kind, _, name = key.partition(":")
            model = load_pretrained(name) if kind == "pretrained" else load_model(name)
            _MODEL_CACHE[key] = model
            logger.debug("Loaded model %s.", key)
    return model


def _resolve_model(model: Any) -> tuple[Any, Any, ModelConfig, str]:
    """Return ``(graph_spec, network, config, label)`` for any accepted ``model`` argument.

    ``graph_spec`` is what the dask tasks receive: a cache key string (the worker loads the model once) or the
    network object itself.
    """
    from deepspot_sd.models import EnhancementModel

    if model is None:
        model = "deepspot_v1"
    if isinstance(model, str | os.PathLike):
        key = _model_key(model)
        loaded = _load_by_key(key)
        return key, loaded.keras_model, loaded.config, key.partition(":")[2]
    if isinstance(model, EnhancementModel):
        return model.keras_model, model.keras_model, model.config, model.config.name
    if callable(model):  # a keras.Model (or any callable on (b, y, x, 1) batches)
        return model, model, ModelConfig(), str(getattr(model, "name", type(model).__name__))
    raise TypeError(
        "Parameter model should be a ('EnhancementModel', 'keras.Model', 'str', 'PathLike', 'NoneType'). "
        f"It is a {type(model).__name__!r} instead."
    )


def _network(spec: Any) -> Any:
    if isinstance(spec, str):
        return _load_by_key(spec).keras_model
    return spec


def _predict_lock(net: Any) -> threading.Lock:
    with _CACHE_LOCK:
        return _PREDICT_LOCKS.setdefault(id(net), threading.Lock())


def _predict_tiles(net: Any, tiles: np.ndarray, *, batch_size: int, show_progress_bar: bool = False) -> np.ndarray:
    """Run the network on ``(n, T, T)`` normalised tiles in batches; return ``float32 (n, T, T)``.

    A short (last) batch of ``m`` tiles is padded to the next power of two (at most ``batch_size``), so the compiled
    prediction function sees few distinct shapes and at most ``m - 1`` padding tiles are computed (padding it to
    ``batch_size`` wasted up to a third of the network work on chunks of 25 tiles).
    """
    n = len(tiles)
    out = np.empty(tiles.shape, dtype=np.float32)
    lock = _predict_lock(net)
    starts = range(0, n, batch_size)
    if show_progress_bar:
        from tqdm.auto import tqdm

        starts = tqdm(starts, total=math.ceil(n / batch_size), desc="enhance", unit="batch")
    for start in starts:
        batch = tiles[start : start + batch_size]
        m = len(batch)
        x = np.zeros((min(batch_size, 1 << (m - 1).bit_length()), *tiles.shape[1:], 1), dtype=np.float32)
        x[:m, ..., 0] = batch
        with lock:
            pred = net.predict_on_batch(x) if hasattr(net, "predict_on_batch") else net(x)
        pred = np.asarray(pred, dtype=np.float32)
        out[start : start + m] = pred[:m].reshape(m, *tiles.shape[1:])
    return out


# --------------------------------------------------------------------------------------------------------------------
# array core
# --------------------------------------------------------------------------------------------------------------------
def _enhance_padded(
    padded: np.ndarray,
    net: Any,
    *,
    tile_size: int,
    overlap: int,
    batch_size: int,
    show_progress_bar: bool = False,
) -> np.ndarray:
    """Enhance the core of an image that carries a halo of ``overlap`` px on every side.

    Returns the ``(y - 2 * overlap, x - 2 * overlap)`` core; tiles start at the halo's outer corner with stride
    ``tile_size - 2 * overlap`` and the missing bottom/right part of the last tiles is mirrored.
    """
    step = tile_size - 2 * overlap
    h, w = padded.shape[0] - 2 * overlap, padded.shape[1] - 2 * overlap
    ny, nx = math.ceil(h / step), math.ceil(w / step)
    extra_y = ny * step + 2 * overlap - padded.shape[0]
    extra_x = nx * step + 2 * overlap - padded.shape[1]
    if extra_y or extra_x:
        padded = np.pad(padded, ((0, extra_y), (0, extra_x)), mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (tile_size, tile_size))[::step, ::step]
    tiles = np.ascontiguousarray(windows.reshape(ny * nx, tile_size, tile_size), dtype=np.float32)
    pred = _predict_tiles(net, tiles, batch_size=batch_size, show_progress_bar=show_progress_bar)
    centres = pred.reshape(ny, nx, tile_size, tile_size)[:, :, overlap : overlap + step, overlap : overlap + step]
    return centres.transpose(0, 2, 1, 3).reshape(ny * step, nx * step)[:h, :w]


def _check_tiling(config: ModelConfig, tile_size: int | None, overlap: int | None, batch_size: int) -> ModelConfig:
    check_type("batch_size", batch_size, (int, np.integer))
    if batch_size < 1:
        raise ValueError(f"Parameter batch_size should be >= 1, got {batch_size}.")
    changes = {}
    if tile_size is not None:
        check_type("tile_size", tile_size, (int, np.integer))
        changes["tile_size"] = int(tile_size)
    if overlap is not None:
        check_type("overlap", overlap, (int, np.integer))
        changes["overlap"] = int(overlap)
    return config.replace(**changes) if changes else config


def enhance_array(
    image: np.ndarray,
    model: EnhancementModel | keras.Model | str | os.PathLike[str] | None = None,
    *,
    tile_size: int | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
    normalized: bool = False,
    show_progress_bar: bool = False,
) -> np.ndarray:
    """Enhance a whole 2D image in memory with overlapping tiles (the core of :func:`enhance`).

    Parameters
    ----------
    image
        ``(y, x)`` raw image (uint8, uint16 or float), any size (smaller than a tile is fine: it is padded).
    model
        An :class:`~deepspot_sd.models.EnhancementModel`, a :class:`keras.Model` on ``(batch, y, x, 1)`` tiles of the
        normalised 0–255 scale, the name of a shipped model, a model folder, or ``None`` for ``"deepspot_v1"``.
        A bare Keras model uses the default :class:`~deepspot_sd.models.ModelConfig` (tiling, normalisation).
    tile_size
        Tile side in px seen by the network; default from the model config (256). Divisible by the network's size
        step (``config.size_multiple``).
    overlap
        Halo in px kept around every tile's centre; default from the model config (32). Results are exact away from
        the image border when the network's receptive field fits within it.
    batch_size
        Tiles per forward pass.
    normalized
        ``True`` if ``image`` is already on the network's normalised 0–255 scale; otherwise it is normalised with
        :func:`deepspot_sd.pp.normalization_stats` over the whole image and the model's settings.
    show_progress_bar
        Show a tqdm bar over the batches.

    Returns
    -------
    ``float32 (y, x)`` enhanced image on the 0–255 scale (spots become ~255 stamps).

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sim = dsd.datasets.simulate_image((64, 64), n_spots=20, seed=0)
    >>> enhanced = dsd.tl.enhance_array(sim.image)  # doctest: +SKIP
    """
    arr = check_image_2d(image)
    _, net, config, _ = _resolve_model(model)
    config = _check_tiling(config, tile_size, overlap, batch_size)
    if normalized:
        norm = arr.astype(np.float32, copy=False)
    else:
        from deepspot_sd.pp import apply_normalization, normalization_stats

        stats = normalization_stats(arr, **config.normalization_kwargs)
        if stats.degenerate:
            warnings.warn(
                "The image has no contrast (constant); its enhanced image carries no spots. Check the input.",
                UserWarning,
                stacklevel=2,
            )
        norm = apply_normalization(arr, stats)
    o = config.overlap
    padded = np.pad(norm, ((o, o), (o, o)), mode="symmetric")
    return _enhance_padded(
        padded,
        net,
        tile_size=config.tile_size,
        overlap=o,
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
    )


def _enhance_block(
    block: np.ndarray,
    *,
    model: Any,
    tile_size: int,
    overlap: int,
    halo: tuple[int, int],
    batch_size: int,
) -> np.ndarray:
    """Enhance one ``(1, y, x)`` dask block carrying ``halo`` px of context (0 on single-chunk axes).

    Returns an array of the block's shape whose core holds the result (the halo is trimmed by dask).
    """
    hy, hx = halo
    img = block[0]
    if not np.all(np.isfinite(img)):
        raise ValueError("The image contains NaN or infinite values; fill or mask them before enhancing it.")
    py, px = overlap - hy, overlap - hx
    padded = np.pad(img, ((py, py), (px, px)), mode="symmetric") if (py or px) else img
    core = _enhance_padded(padded, _network(model), tile_size=tile_size, overlap=overlap, batch_size=batch_size)
    out = np.zeros(block.shape, dtype=np.float32)
    out[0, hy : hy + core.shape[0], hx : hx + core.shape[1]] = core
    return out


# --------------------------------------------------------------------------------------------------------------------
# SpatialData wrapper
# --------------------------------------------------------------------------------------------------------------------
def _axis_chunks(size: int, chunk: int, step: int, overlap: int) -> tuple[int, ...]:
    """Chunks of one axis: multiples of ``step`` close to ``chunk``, none smaller than ``overlap`` (unless single)."""
    k = max(1, round(chunk / step), math.ceil(overlap / step))
    c = k * step
    if size <= c:
        return (size,)
    chunks = [c] * (size // c)
    rest = size - sum(chunks)
    if rest:
        if rest < overlap:
            chunks[-1] += rest
        else:
            chunks.append(rest)
    return tuple(chunks)


def _enhance_dask(arr: Any, spec: Any, config: ModelConfig, *, batch_size: int, in_chunks: tuple[int, ...]) -> Any:
    """Lazily enhance a normalised ``(c, y, x)`` float32 dask array.

    The result has the chunks of the tile grid (multiples of the tile step close to ``in_chunks``).
    """
    import dask
    import dask.array as da
    from dask.base import tokenize

    t, o = config.tile_size, config.overlap
    step = t - 2 * o
    _, ny, nx = arr.shape
    ychunks = _axis_chunks(ny, in_chunks[1], step, o)
    xchunks = _axis_chunks(nx, in_chunks[2], step, o)
    arr = arr.rechunk(((1,) * arr.shape[0], ychunks, xchunks))
    halo = (o if len(ychunks) > 1 else 0, o if len(xchunks) > 1 else 0)
    if isinstance(spec, str):
        model_arg, token = spec, spec
    else:  # one graph key for a user's network, so it is shipped once per worker, not once per task
        token = f"deepspot-model-{uuid.uuid4().hex}"
        model_arg = dask.delayed(spec, name=token, pure=True)
    out = da.map_overlap(
        _enhance_block,
        arr,
        depth={0: 0, 1: halo[0], 2: halo[1]},
        boundary="reflect",
        trim=True,
        allow_rechunk=False,
        dtype=np.float32,
        meta=np.empty((0, 0, 0), dtype=np.float32),
        name=f"deepspot-enhance-{tokenize(arr.name, token, t, o, halo, batch_size)}",
        model=model_arg,
        tile_size=t,
        overlap=o,
        halo=halo,
        batch_size=batch_size,
    )
    return out


def enhance(
    sdata: SpatialData,
    image_key: str,
    *,
    model: EnhancementModel | keras.Model | str | os.PathLike[str] | None = None,
    tile_size: int | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
    normalized: bool = False,
    scale: int | str | None = None,
    key_added: str | None = None,
    inplace: bool = True,
    show_progress_bar: bool = True,
) -> DataArray | None:
    """Enhance the RNA spots of an image element with a DeepSpot network, tile by tile.

    Every channel is normalised (unless ``normalized``) with statistics over the whole channel
    (:func:`deepspot_sd.pp.normalization_stats`, the model's settings) and enhanced independently, chunk by chunk
    with :func:`dask.array.map_overlap`: each chunk plus a halo of ``overlap`` px is cut into overlapping tiles of
    ``tile_size`` px on one global grid and only the tile centres are kept, so the result has no seams, does not
    depend on the chunking, and equals :func:`enhance_array` on the whole image. For an object backed by a zarr store
    the result is computed region by region (at most 4096 px on a side) and written into the new element's zarr
    array, so peak memory depends on the chunk and region size, not on the image size; an object in memory gets a
    lazy result. The model is loaded once per worker; TensorFlow uses a GPU when it sees one.

    Parameters
    ----------
    sdata
        The SpatialData object.
    image_key
        Image element ``(c, y, x)`` in ``sdata.images``, raw uint8 / uint16 / float intensities (or already
        normalised, see ``normalized``). Several channels are enhanced independently.
    model
        An :class:`~deepspot_sd.models.EnhancementModel`, the name of a shipped model, a model folder, a
        :class:`keras.Model` (input and output ``(batch, y, x, 1)``, normalised 0–255 scale; it uses the default
        :class:`~deepspot_sd.models.ModelConfig`) or ``None`` for ``"deepspot_v1"``.
    tile_size
        Tile side in px; default from the model config (256).
    overlap
        Halo in px around each tile centre; default from the model config (32).
    batch_size
        Tiles per forward pass.
    normalized
        ``True`` if the image already is on the network's normalised 0–255 scale (e.g. from
        :func:`deepspot_sd.pp.normalize`); otherwise it is normalised here.
    scale
        Level of a multiscale image to enhance: ``None`` (full resolution), ``n`` or ``"scale{n}"``. The result is a
        single-scale image with that level's shape and coordinate transformations.
    key_added
        Name of the new image element; default ``f"{image_key}_enhanced"``. An existing image of that name is
        replaced.
    inplace
        Store the result in ``sdata`` (see Returns) rather than returning it.
    show_progress_bar
        Show a progress bar over the regions while the result is computed into a backed store.

    Returns
    -------
    If ``inplace=False``, returns the enhanced image, a lazy ``float32 (c, y, x)`` :class:`xarray.DataArray` on the
    0–255 scale with the input's channels, chunks and transformations; otherwise adds
    ``sdata.images['{key_added}']``. If ``sdata`` is backed by a zarr store, the element is computed into the store
    (nothing is written if the computation fails) and read back lazily; otherwise it stays lazy. Its
    ``attrs["deepspot_sd"]`` (also ``sdata.attrs["deepspot_sd"]['{key_added}']``) records the source image, the
    model and its detection threshold, used by :func:`deepspot_sd.tl.detect_spots`.

    Raises
    ------
    KeyError
        If ``image_key``, ``scale`` or the model name do not exist.
    ValueError
        If the image is not ``(c, y, x)``, is empty or contains NaN / inf, or if the tiling is invalid.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512))  # doctest: +SKIP
    >>> dsd.tl.enhance(sdata, "smfish")  # doctest: +SKIP
    >>> sdata.images["smfish_enhanced"]  # doctest: +SKIP
    """
    import dask.array as da
    from spatialdata.models import Image2DModel

    data, transformations = get_image_element(sdata, image_key, scale=scale)
    level = "scale0" if scale is None else (f"scale{int(scale)}" if not isinstance(scale, str) else scale)
    check_type("inplace", inplace, bool)
    check_type("normalized", normalized, bool)
    key_added = f"{image_key}_enhanced" if key_added is None else key_added
    if key_added == image_key:
        raise ValueError(f"Parameter key_added should differ from image_key {image_key!r}; please pass another name.")
    if inplace:
        check_key_added(sdata, key_added, "images")
    spec, _, config, label = _resolve_model(model)
    config = _check_tiling(config, tile_size, overlap, batch_size)
    if not normalized and get_provenance(sdata, image_key, data).get("function") == "normalize":
        warnings.warn(
            f"Image {image_key!r} was made by `dsd.pp.normalize`; it is normalised a second time here. Pass "
            "`normalized=True` to enhance it as it is.",
            UserWarning,
            stacklevel=2,
        )

    arr = data.data if isinstance(data.data, da.Array) else da.from_array(data.data, chunks=data.shape)
    in_chunks = tuple(int(c) for c in arr.chunksize)
    channels = list(data.coords["c"].values.tolist())
    check_finite_image(arr, f"sdata.images[{image_key!r}]")

    norm_records: list[dict[str, Any]] | None = None
    if normalized:
        norm = arr.astype(np.float32)
    else:
        from deepspot_sd.pp._sdata import normalize_channels

        norm, norm_records = normalize_channels(arr, channels, config, image_key=image_key)

    out = _enhance_dask(norm, spec, config, batch_size=int(batch_size), in_chunks=in_chunks)
    provenance = {
        "function": "enhance",
        "source_image": image_key,
        "scale": level,
        "model": label,
        "threshold": float(config.threshold),
        "min_distance": int(config.min_distance),
        "tile_size": int(config.tile_size),
        "overlap": int(config.overlap),
        "normalized_input": bool(normalized),
        "normalization": norm_records,
    }
    logger.info(
        "Enhancing %r (%s, %d channel(s), shape %s) with model %r, tiles %d px, overlap %d px.",
        image_key,
        level,
        len(channels),
        tuple(data.shape[1:]),
        label,
        config.tile_size,
        config.overlap,
    )

    def parse(arr: Any) -> DataArray:
        element = Image2DModel.parse(arr, dims=("c", "y", "x"), c_coords=channels, transformations=transformations)
        element.attrs[ATTRS_KEY] = provenance
        return element

    if not inplace or not sdata.is_backed():
        element = parse(out.rechunk(in_chunks))
        if not inplace:
            return element
        store_element(sdata, key_added, element, kind="images", provenance=provenance)
        return None
    # backed: the element is written with placeholder data, then its zarr array is computed into region by region
    # (memory bounded by the region, not the image; every value written once)
    import dask.array as da

    placeholder = da.zeros(out.shape, dtype=out.dtype, chunks=in_chunks)
    store_element(
        sdata,
        key_added,
        parse(placeholder),
        kind="images",
        provenance=provenance,
        show_progress_bar=False,
        fill=lambda target: write_in_regions(out, target, show_progress_bar=show_progress_bar, desc="enhance"),
    )
    return None
