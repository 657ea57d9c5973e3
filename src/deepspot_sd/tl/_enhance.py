"""Tiled DeepSpot enhancement: a pure array core and the SpatialData wrapper :func:`enhance`.

Tiling
------
The network sees tiles of ``tile`` px and only the central ``step = tile - 2 * overlap`` px of each tile are kept, so
every kept pixel had at least ``overlap`` px (48 for ``deepspot_v1``) of context on each side: the tiles overlap by
``2 * overlap`` px and the result has no seams. The tiles lie on one global grid: the tile of index ``k`` along an
axis covers image pixels ``[k * step - overlap, k * step - overlap + tile)``; outside the image the image is
mirrored (edge pixel repeated, :func:`numpy.pad` ``mode="symmetric"``, dask ``boundary="reflect"``).

Tile size. The network is fully convolutional and sees ``overlap`` px of context in every tile, so the tiled result
equals the whole-image result up to float rounding whatever the tile size (``benchmarks/seams.py``); the tile size
only sets how much is computed twice: ``(tile / step) ** 2`` network pixels per output pixel, 2.56 for the
256-px tiles of the model config, 1.2 for 1024-px tiles. The default (``tile_size=None``) therefore sizes the tiles
to the image, per axis: the fewest tiles of at most :data:`AUTO_TILE_MAX` px (1024) that cover it, made as small as
that allows (rounded up to the network's size step), so the last tile is not mostly mirrored padding. The grid
depends only on the image size, never on the chunking. An integer ``tile_size`` gives fixed square tiles of that
side (``tile_size=256``: the tiling of the model config, the default before 0.6.0). ``ModelConfig.tile_size`` stays
the tile of training and of that fixed tiling.

For a dask-backed image the y/x chunks are set to a multiple of ``step`` (close to the input chunks), so the block of
a chunk plus its ``overlap`` halo (:func:`dask.array.map_overlap`) is covered exactly by whole tiles of that grid;
ragged edge blocks are padded. The grid, and hence the result, therefore does not depend on the input chunking, and
equals :func:`enhance_array` on the whole image. The output gets the input's chunks: lazily rechunked, or, when the
object is backed by a zarr store, computed region by region straight into the new element's zarr array
(:func:`deepspot_sd._store.write_in_regions`), so that peak memory does not grow with the image size.

Runtime
-------
``runtime="auto"`` runs a model with an ONNX export (``<name>.onnx`` in its folder, shipped for ``deepspot_v1``) on
ONNX Runtime when TensorFlow sees no GPU, and the Keras model on TensorFlow otherwise (GPU, or no export). Both give
the same enhanced image up to float rounding (``tests/test_onnx.py``); on a CPU ONNX Runtime is faster
(``benchmarks/speed.py``).
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
from deepspot_sd._model_config import ModelConfig
from deepspot_sd._store import ATTRS_KEY, check_key_added, get_provenance, store_element, write_in_regions
from deepspot_sd._validation import check_finite_image, check_image_2d, check_type, get_image_element

if TYPE_CHECKING:  # pragma: no cover
    import keras
    from spatialdata import SpatialData
    from xarray import DataArray

    from deepspot_sd.models._pretrained import EnhancementModel

__all__ = ["AUTO_TILE_MAX", "enhance", "enhance_array"]

#: Largest tile side in px of the automatic tiling (``tile_size=None``): 1024 px tiles with the 48-px halo compute
#: 1.2x the output area (256 px: 2.56x) and run as fast per network pixel as 256-px tiles (``benchmarks/speed.py``).
AUTO_TILE_MAX = 1024
#: Network pixels per forward pass of the automatic batch size (``batch_size=None``): 8 tiles of 256 x 256 px.
AUTO_BATCH_PIXELS = 8 * 256 * 256
#: Runtimes of :func:`enhance`.
RUNTIMES = ("auto", "onnx", "tensorflow")

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
    """Return ``(graph_spec, model, config, label)`` for any accepted ``model`` argument.

    ``graph_spec`` is what the dask tasks receive: a cache key string (the worker loads the model once), an
    :class:`~deepspot_sd.models.EnhancementModel` or a bare network; ``model`` is the loaded
    :class:`~deepspot_sd.models.EnhancementModel` or the bare network (see :func:`_network`).
    """
    from deepspot_sd.models import EnhancementModel

    if model is None:
        model = "deepspot_v1"
    if isinstance(model, str | os.PathLike):
        key = _model_key(model)
        loaded = _load_by_key(key)
        return key, loaded, loaded.config, key.partition(":")[2]
    if isinstance(model, EnhancementModel):
        return model, model, model.config, model.config.name
    if callable(model):  # a keras.Model (or any callable on (b, y, x, 1) batches)
        return model, model, ModelConfig(), str(getattr(model, "name", type(model).__name__))
    raise TypeError(
        "Parameter model should be a ('EnhancementModel', 'keras.Model', 'str', 'PathLike', 'NoneType'). "
        f"It is a {type(model).__name__!r} instead."
    )


def _tensorflow_sees_gpu() -> bool:
    """Whether TensorFlow sees a GPU (asked once per process)."""
    global _GPU
    if _GPU is None:
        import tensorflow as tf

        _GPU = bool(tf.config.list_physical_devices("GPU"))
    return _GPU


_GPU: bool | None = None


def _choose_runtime(runtime: str, model: Any) -> str:
    """Resolve ``runtime`` ("auto", "onnx", "tensorflow") for a loaded model: ``"onnx"`` or ``"tensorflow"``.

    ``model`` is an :class:`~deepspot_sd.models.EnhancementModel` or a bare network (always TensorFlow).
    """
    from deepspot_sd.models import EnhancementModel
    from deepspot_sd.models._onnx import onnx_available

    check_type("runtime", runtime, str)
    if runtime not in RUNTIMES:
        raise ValueError(f"Parameter runtime should be one of {RUNTIMES}, got {runtime!r}.")
    has_export = isinstance(model, EnhancementModel) and model.onnx_path is not None
    if runtime == "onnx":
        if not has_export:
            raise ValueError(
                "runtime='onnx' needs a model with an ONNX export (<name>.onnx in its folder, "
                "`deepspot_sd.models.export_onnx`); this model has none."
            )
        if not onnx_available():
            raise ImportError("runtime='onnx' needs onnxruntime: `pip install onnxruntime`.")
        return "onnx"
    if runtime == "tensorflow" or not has_export or not onnx_available():
        return "tensorflow"
    return "tensorflow" if _tensorflow_sees_gpu() else "onnx"


def _network(spec: Any, runtime: str = "tensorflow") -> Any:
    """Return the network object behind a graph spec (cache key, model or network) for ``runtime``."""
    from deepspot_sd.models import EnhancementModel

    if isinstance(spec, str):
        spec = _load_by_key(spec)
    if isinstance(spec, EnhancementModel):
        return spec.onnx_network() if runtime == "onnx" else spec.keras_model
    return spec


def _predict_lock(net: Any) -> threading.Lock:
    with _CACHE_LOCK:
        return _PREDICT_LOCKS.setdefault(id(net), threading.Lock())


def _predict_tiles(
    net: Any, tiles: np.ndarray, *, batch_size: int | None, show_progress_bar: bool = False
) -> np.ndarray:
    """Run the network on ``(n, ty, tx)`` normalised tiles in batches; return ``float32 (n, ty, tx)``.

    ``batch_size=None`` takes as many tiles per pass as fit in :data:`AUTO_BATCH_PIXELS` (at least one). For a Keras
    network a short (last) batch of ``m`` tiles is padded to the next power of two (at most ``batch_size``), so the
    compiled prediction function sees few distinct shapes and at most ``m - 1`` padding tiles are computed; ONNX
    Runtime needs no padding.
    """
    from deepspot_sd.models import OnnxNetwork

    n = len(tiles)
    if batch_size is None:
        batch_size = max(1, AUTO_BATCH_PIXELS // (tiles.shape[1] * tiles.shape[2]))
    out = np.empty(tiles.shape, dtype=np.float32)
    lock = _predict_lock(net)
    onnx = isinstance(net, OnnxNetwork)
    starts = range(0, n, batch_size)
    if show_progress_bar:
        from tqdm.auto import tqdm

        starts = tqdm(starts, total=math.ceil(n / batch_size), desc="enhance", unit="batch")
    for start in starts:
        batch = tiles[start : start + batch_size]
        m = len(batch)
        if onnx:
            with lock:
                out[start : start + m] = net.predict_tiles(batch)
            continue
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
def _axis_tile(length: int, tile_size: int | None, overlap: int, multiple: int) -> int:
    """Tile side along an axis of ``length`` px: ``tile_size``, or the automatic one when it is ``None``.

    Automatic: the fewest tiles of at most ``AUTO_TILE_MAX`` px that cover the axis, each as small as that allows
    (its kept centre at least ``ceil(length / n)`` px, the tile rounded up to a multiple of ``multiple``).
    """
    if tile_size is not None:
        return int(tile_size)
    largest = max(AUTO_TILE_MAX, 2 * overlap + multiple)
    largest -= largest % multiple
    n = math.ceil(length / (largest - 2 * overlap))
    core = math.ceil(length / n)
    return min(largest, multiple * math.ceil((core + 2 * overlap) / multiple))


def _tiles_for(shape: tuple[int, int], config: ModelConfig, tile_size: int | None) -> tuple[int, int]:
    """``(tile_y, tile_x)`` of an image of ``shape`` (the grid depends on the image size only)."""
    m, o = config.size_multiple, config.overlap
    return _axis_tile(shape[0], tile_size, o, m), _axis_tile(shape[1], tile_size, o, m)


def _enhance_padded(
    padded: np.ndarray,
    net: Any,
    *,
    tiles: tuple[int, int],
    overlap: int,
    batch_size: int | None,
    show_progress_bar: bool = False,
) -> np.ndarray:
    """Enhance the core of an image that carries a halo of ``overlap`` px on every side.

    Returns the ``(y - 2 * overlap, x - 2 * overlap)`` core; tiles of ``tiles = (ty, tx)`` px start at the halo's
    outer corner with strides ``(ty - 2 * overlap, tx - 2 * overlap)`` and the missing bottom/right part of the last
    tiles is mirrored.
    """
    ty, tx = tiles
    sy, sx = ty - 2 * overlap, tx - 2 * overlap
    h, w = padded.shape[0] - 2 * overlap, padded.shape[1] - 2 * overlap
    ny, nx = math.ceil(h / sy), math.ceil(w / sx)
    extra_y = ny * sy + 2 * overlap - padded.shape[0]
    extra_x = nx * sx + 2 * overlap - padded.shape[1]
    if extra_y or extra_x:
        padded = np.pad(padded, ((0, extra_y), (0, extra_x)), mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (ty, tx))[::sy, ::sx]
    batch = np.ascontiguousarray(windows.reshape(ny * nx, ty, tx), dtype=np.float32)
    pred = _predict_tiles(net, batch, batch_size=batch_size, show_progress_bar=show_progress_bar)
    centres = pred.reshape(ny, nx, ty, tx)[:, :, overlap : overlap + sy, overlap : overlap + sx]
    return centres.transpose(0, 2, 1, 3).reshape(ny * sy, nx * sx)[:h, :w]


def _check_tiling(
    config: ModelConfig, tile_size: int | None, overlap: int | None, batch_size: int | None
) -> tuple[ModelConfig, int | None]:
    """Validate the tiling arguments; return the config (with ``overlap``) and the fixed tile side or ``None``."""
    if batch_size is not None:
        check_type("batch_size", batch_size, (int, np.integer))
        if batch_size < 1:
            raise ValueError(f"Parameter batch_size should be >= 1, got {batch_size}.")
    if overlap is not None:
        check_type("overlap", overlap, (int, np.integer))
        config = config.replace(overlap=int(overlap))
    if tile_size is None:
        return config, None
    check_type("tile_size", tile_size, (int, np.integer))
    return config.replace(tile_size=int(tile_size)), int(tile_size)


def enhance_array(
    image: np.ndarray,
    model: EnhancementModel | keras.Model | str | os.PathLike[str] | None = None,
    *,
    tile_size: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    normalized: bool = False,
    runtime: str = "auto",
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
        Tile side in px seen by the network. ``None`` (default): tiles sized to the image, at most
        :data:`AUTO_TILE_MAX` (1024) px per side (see the module notes); an integer: fixed square tiles of that side
        (``256``, the model config's ``tile_size``, was the default before 0.6.0; it gives the same result up to
        float rounding). Divisible by the network's size step (``config.size_multiple``, 8).
    overlap
        Halo in px kept around every tile's centre; default from the model config (48 for ``deepspot_v1``).
        Results are exact away from the image border when the network's receptive field fits within it.
    batch_size
        Tiles per forward pass; ``None``: as many as fit in 8 x 256² px (one 1024-px tile).
    normalized
        ``True`` if ``image`` is already on the network's normalised 0–255 scale; otherwise it is normalised with
        :func:`deepspot_sd.pp.normalization_stats` over the whole image and the model's settings.
    runtime
        ``"auto"`` (ONNX Runtime on a CPU when the model has an ONNX export, TensorFlow otherwise or when it sees a
        GPU), ``"onnx"`` or ``"tensorflow"``. The results agree up to float rounding.
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
    _, loaded, config, _ = _resolve_model(model)
    config, fixed = _check_tiling(config, tile_size, overlap, batch_size)
    net = _network(loaded, _choose_runtime(runtime, loaded))
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
        tiles=_tiles_for(arr.shape, config, fixed),
        overlap=o,
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
    )


def _enhance_block(
    block: np.ndarray,
    *,
    model: Any,
    runtime: str,
    tiles: tuple[int, int],
    overlap: int,
    halo: tuple[int, int],
    batch_size: int | None,
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
    core = _enhance_padded(padded, _network(model, runtime), tiles=tiles, overlap=overlap, batch_size=batch_size)
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


def _enhance_dask(
    arr: Any,
    spec: Any,
    config: ModelConfig,
    *,
    tiles: tuple[int, int],
    runtime: str,
    batch_size: int | None,
    in_chunks: tuple[int, ...],
) -> Any:
    """Lazily enhance a normalised ``(c, y, x)`` float32 dask array with tiles of ``tiles = (ty, tx)`` px.

    The result has the chunks of the tile grid (multiples of the tile steps close to ``in_chunks``).
    """
    import dask
    import dask.array as da
    from dask.base import tokenize

    o = config.overlap
    _, ny, nx = arr.shape
    ychunks = _axis_chunks(ny, in_chunks[1], tiles[0] - 2 * o, o)
    xchunks = _axis_chunks(nx, in_chunks[2], tiles[1] - 2 * o, o)
    arr = arr.rechunk(((1,) * arr.shape[0], ychunks, xchunks))
    halo = (o if len(ychunks) > 1 else 0, o if len(xchunks) > 1 else 0)
    if isinstance(spec, str):
        model_arg, token = spec, spec
    else:  # one graph key for a user's model, so it is shipped once per worker, not once per task
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
        name=f"deepspot-enhance-{tokenize(arr.name, token, runtime, tiles, o, halo, batch_size)}",
        model=model_arg,
        runtime=runtime,
        tiles=tiles,
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
    batch_size: int | None = None,
    normalized: bool = False,
    runtime: str = "auto",
    scale: int | str | None = None,
    key_added: str | None = None,
    inplace: bool = True,
    show_progress_bar: bool = True,
) -> DataArray | None:
    """Enhance the RNA spots of an image element with a DeepSpot network, tile by tile.

    Every channel is normalised (unless ``normalized``) with statistics over the whole channel
    (:func:`deepspot_sd.pp.normalization_stats`, the model's settings) and enhanced independently, chunk by chunk
    with :func:`dask.array.map_overlap`: each chunk plus a halo of ``overlap`` px is cut into overlapping tiles on one
    global grid and only the tile centres are kept, so the result has no seams, does not depend on the chunking, and
    equals :func:`enhance_array` on the whole image. For an object backed by a zarr store the result is computed
    region by region (at most 4096 px on a side) and written into the new element's zarr array, so peak memory
    depends on the chunk and region size, not on the image size; an object in memory gets a lazy result. The model
    is loaded once per worker. On a CPU the network runs on ONNX Runtime (the model's ONNX export), with a GPU on
    TensorFlow (see ``runtime``).

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
        Tile side in px seen by the network. ``None`` (default): tiles sized to the image, at most
        :data:`~deepspot_sd.tl._enhance.AUTO_TILE_MAX` (1024) px per side, so that little is computed twice (1.2x
        the output area instead of 2.56x for 256-px tiles); an integer: fixed square tiles of that side (``256``,
        the model config's ``tile_size``, was the default before 0.6.0 and gives the same spots). The chunks of the
        computation are multiples of the tiles' kept centres close to the input chunks.
    overlap
        Halo in px around each tile centre; default from the model config (48 for ``deepspot_v1``).
    batch_size
        Tiles per forward pass; ``None``: as many as fit in 8 x 256² px (one 1024-px tile).
    normalized
        ``True`` if the image already is on the network's normalised 0–255 scale (e.g. from
        :func:`deepspot_sd.pp.normalize`); otherwise it is normalised here.
    runtime
        ``"auto"`` (default): ONNX Runtime when the model has an ONNX export (``deepspot_v1`` ships one) and
        TensorFlow sees no GPU, otherwise TensorFlow; ``"onnx"`` or ``"tensorflow"`` to choose. The enhanced images
        agree up to float rounding (about 1e-4 on the 0–255 scale).
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
    spec, loaded, config, label = _resolve_model(model)
    config, fixed = _check_tiling(config, tile_size, overlap, batch_size)
    chosen = _choose_runtime(runtime, loaded)
    if chosen == "onnx" and not isinstance(spec, str):  # a model object: its ONNX network travels to the workers
        spec = loaded.onnx_network()
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

    tiles = _tiles_for(tuple(data.shape[1:]), config, fixed)
    out = _enhance_dask(
        norm,
        spec,
        config,
        tiles=tiles,
        runtime=chosen,
        batch_size=None if batch_size is None else int(batch_size),
        in_chunks=in_chunks,
    )
    provenance = {
        "function": "enhance",
        "source_image": image_key,
        "scale": level,
        "model": label,
        "threshold": float(config.threshold),
        "min_distance": int(config.min_distance),
        "tile_size": "auto" if fixed is None else int(fixed),
        "tiles": [int(t) for t in tiles],
        "overlap": int(config.overlap),
        "runtime": chosen,
        "normalized_input": bool(normalized),
        "normalization": norm_records,
    }
    logger.info(
        "Enhancing %r (%s, %d channel(s), shape %s) with model %r on %s, tiles %d x %d px, overlap %d px.",
        image_key,
        level,
        len(channels),
        tuple(data.shape[1:]),
        label,
        chosen,
        tiles[0],
        tiles[1],
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
