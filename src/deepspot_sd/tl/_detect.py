"""Chunked spot detection on SpatialData images: :func:`detect_spots`.

Chunking
--------
The image is cut into *cores* along its chunk grid; each core is read with a halo of ``depth`` px on every side
where it has neighbours (none beyond the image border, where the detectors mirror the image themselves, exactly as on
the whole image). A spot is kept by the core that holds its rounded centre, so every spot is found exactly once,
and the result equals the whole-image detection whenever a spot's neighbourhood (3 x 3 refinement, plateau,
background ring, and for the wavelet detector the reach of the largest wavelet scale plus the spot's connected
component) fits into the halo:

- ``local_max``: ``depth = min_distance + 16`` px;
- ``wavelet``: ``depth = wavelet_halo_px(scales) + 16`` px (270 px for scale 7). The wavelet thresholds need
  statistics of the *whole* image; they are computed first, in two exact passes over the same cores (global means,
  then mean absolute deviations around them), then every core is detected with the same thresholds.

Output columns
--------------
``x``, ``y``
    Spot centre in the pixel-index convention of the detection image (numpy, scikit-image, big-fish): a spot
    centred on pixel (row ``i``, col ``j``) has ``x = j``, ``y = i`` (pixel ``(i, j)`` covers
    ``[j - 0.5, j + 0.5) x [i - 0.5, i + 0.5)``), so ``imshow(image)`` + ``scatter(x, y)`` line up. spatialdata
    draws pixel ``(i, j)`` over ``[j, j + 1) x [i, i + 1)`` of the image's intrinsic coordinate system, so the
    element carries, for every coordinate system of the image, ``Sequence([Translation([0.5, 0.5],
    axes=("x", "y")), T_image])`` (``T_image``: the image's transformation, of the detected level for a multiscale
    image; see ``deepspot_sd._coords``). In every spatialdata coordinate system (and in spatialdata-plot) a
    spot therefore lands on the centre of its pixel: ``spatialdata.transform(points, to_coordinate_system=cs)``
    gives ``T_image(j + 0.5, i + 0.5)``.
``gene``
    The channel name (a string), the points' feature key.
``intensity_raw``
    Value of the raw image at the spot's pixel (nearest pixel); NaN when no raw image is known.
``intensity_enhanced``
    Value of the enhanced image at the spot's pixel; NaN when the detection image is not an enhanced image.
``background``
    Median of the raw image (of the detection image when no raw image is known) over the ring of pixels at a
    Euclidean distance of 4 to 6 px from the spot's pixel (inside the image), i.e. just outside a spot of up to
    ~8 px diameter.
``amplitude``
    Raw value at the spot's pixel minus ``background``: the spot's peak above its local background.
``integrated_intensity``
    Sum over the disc of pixels within 3 px of the spot's pixel (29 pixels, inside the ring) of the raw value minus
    ``background``.
``snr``
    ``amplitude`` divided by the local noise, 1.4826 x the median absolute deviation of the ring pixels (NaN where
    the ring is flat).
``molecule``
    Whether the detection belongs to the channel's molecule population (the ``min_amplitude`` decision). Without
    ``keep_rejected`` the element holds only molecules (all ``True``).

When no raw image is known and the detection image is an enhanced image, ``background``, ``amplitude``,
``integrated_intensity`` and ``snr`` are measured on the enhanced image and the molecule decision is skipped.

Molecules and dim puncta
------------------------
Real images hold, besides their molecules, much dimmer puncta (non-specific probe binding, autofluorescent
granules, out-of-focus light) that the network enhances too and that people who count RNA do not count. By default
(``min_amplitude="auto"``) each channel's detections are split by :func:`deepspot_sd.tl.split_populations`: a
separate population several times dimmer than the molecules is removed, a single population is left untouched.
The decision of each channel (cut, brightness model, counts, a histogram of the amplitudes) is recorded in the
element's attrs (``attrs["deepspot_sd"]["molecule_decision"]``) and logged in one line;
:func:`deepspot_sd.pl.spot_brightness` draws it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from deepspot_sd._coords import pixel_centre_transformations
from deepspot_sd._detection import (
    DEFAULT_SENSITIVITIES,
    combine_wavelet_statistics,
    find_spots_local_max,
    find_spots_wavelet,
    wavelet_halo_px,
    wavelet_statistics,
    wavelet_thresholds,
)
from deepspot_sd._logging import logger
from deepspot_sd._robust import MAD_TO_STD
from deepspot_sd._store import check_key_added, get_provenance, progress_bar, store_element
from deepspot_sd._validation import check_image_2d, check_key, check_type, get_image_element

from ._population import split_populations

if TYPE_CHECKING:  # pragma: no cover
    from dask.dataframe import DataFrame as DaskDataFrame
    from spatialdata import SpatialData

__all__ = ["detect_spots", "measure_spots"]

#: Columns of the points element, in order.
SPOT_COLUMNS = (
    "x",
    "y",
    "gene",
    "intensity_raw",
    "intensity_enhanced",
    "background",
    "amplitude",
    "integrated_intensity",
    "snr",
    "molecule",
)
#: Background ring around a spot: Euclidean distances in px (inclusive).
RING_RADII_PX = (4.0, 6.0)
#: Above this many spots per 100 px² over a whole channel, detection is implausible (warning).
MAX_DENSITY_PER_100PX2 = 3.0

_ring = np.array(
    [
        (dy, dx)
        for dy in range(-int(RING_RADII_PX[1]), int(RING_RADII_PX[1]) + 1)
        for dx in range(-int(RING_RADII_PX[1]), int(RING_RADII_PX[1]) + 1)
        if RING_RADII_PX[0] <= math.hypot(dy, dx) <= RING_RADII_PX[1]
    ],
    dtype=np.intp,
)
#: Disc over which a spot's integrated intensity is summed: Euclidean distance <= 3 px (inside the ring).
DISC_RADIUS_PX = 3.0
_disc = np.array(
    [
        (dy, dx)
        for dy in range(-int(DISC_RADIUS_PX), int(DISC_RADIUS_PX) + 1)
        for dx in range(-int(DISC_RADIUS_PX), int(DISC_RADIUS_PX) + 1)
        if math.hypot(dy, dx) <= DISC_RADIUS_PX
    ],
    dtype=np.intp,
)


# --------------------------------------------------------------------------------------------------------------------
# per-core work (pure numpy)
# --------------------------------------------------------------------------------------------------------------------
def _round(v: np.ndarray) -> np.ndarray:
    """Pixel index of a coordinate: pixel ``i`` covers ``[i - 0.5, i + 0.5)``."""
    return np.floor(v + 0.5).astype(np.intp)


def _local_background(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust standard deviation (1.4826 MAD) of ``image`` over the background ring of each pixel.

    Only in-bounds ring pixels count; a ring without pixels (1-px-wide image) gives NaN.
    """
    if len(rows) == 0:
        return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.float64)
    vals = _gather(image, rows, cols, _ring)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN ring on a 1-px-wide image
        median = np.nanmedian(vals, axis=1)
        noise = MAD_TO_STD * np.nanmedian(np.abs(vals - median[:, None]), axis=1)
    return median, noise


def _gather(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``float64 (n, len(offsets))`` values of ``image`` at ``(rows, cols) + offsets``; NaN outside the image."""
    rr = rows[:, None] + offsets[None, :, 0]
    cc = cols[:, None] + offsets[None, :, 1]
    inside = (rr >= 0) & (rr < image.shape[0]) & (cc >= 0) & (cc < image.shape[1])
    vals = image[rr.clip(0, image.shape[0] - 1), cc.clip(0, image.shape[1] - 1)].astype(np.float64)
    vals[~inside] = np.nan
    return vals


def _spot_features(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``float64 (n, 5)``: value at the spot, ring background, amplitude, integrated intensity, SNR (module notes)."""
    value = image[rows, cols].astype(np.float64)
    background, noise = _local_background(image, rows, cols)
    amplitude = value - background
    disc = _gather(image, rows, cols, _disc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        integrated = np.nansum(disc - background[:, None], axis=1)
        snr = np.where(noise > 0, amplitude / np.where(noise > 0, noise, 1.0), np.nan)
    return np.column_stack([value, background, amplitude, integrated, snr])


def _detect_core(
    window: np.ndarray,
    raw: np.ndarray | None,
    *,
    origin: tuple[int, int],
    core: tuple[int, int, int, int],
    method: str,
    params: dict[str, Any],
) -> np.ndarray:
    """Detect the spots of one core; return ``float64 (n, 8)``: row, col (global), value, raw features.

    The raw features are :func:`_spot_features` of the raw image (raw value NaN when there is no raw image; the
    other features then come from the detection image).

    ``window`` is the core plus its halo, its pixel ``(0, 0)`` at global ``origin``; ``core`` = ``(y0, y1, x0, x1)``
    in global pixels. ``raw`` is the raw image over the same window, or ``None``.
    """
    window = np.asarray(window)
    if method == "local_max":
        spots = find_spots_local_max(window, threshold=params["threshold"], min_distance=params["min_distance"])
    else:
        spots = find_spots_wavelet(window, thresholds=params["thresholds"])
    r, c = _round(spots[:, 0]), _round(spots[:, 1])
    y0, y1, x0, x1 = core
    oy, ox = origin
    keep = (r + oy >= y0) & (r + oy < y1) & (c + ox >= x0) & (c + ox < x1)
    spots, r, c = spots[keep], r[keep], c[keep]
    value = window[r, c].astype(np.float64)
    features = _spot_features(np.asarray(raw) if raw is not None else window, r, c)
    if raw is None:
        features[:, 0] = np.nan
    return np.column_stack([spots[:, 0] + oy, spots[:, 1] + ox, value, features])


def measure_spots(image: np.ndarray, spots: np.ndarray) -> pd.DataFrame:
    """Brightness of spots in a raw image: the per-spot columns of :func:`detect_spots`, for arrays.

    Parameters
    ----------
    image
        ``(y, x)`` raw image.
    spots
        ``(n, 2)`` spot centres ``(row, col)`` in pixels (pixel-centre convention); each is measured at its nearest
        pixel.

    Returns
    -------
    One row per spot with the columns ``intensity_raw``, ``background``, ``amplitude``, ``integrated_intensity``
    and ``snr`` (definitions in the module notes of :mod:`deepspot_sd.tl._detect`, image units).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.full((32, 32), 100.0)
    >>> image[10, 12] = 150.0
    >>> measure_spots(image, np.array([[10.0, 12.0]]))[["background", "amplitude"]].to_numpy().tolist()
    [[100.0, 50.0]]
    """
    image = check_image_2d(image)
    spots = np.asarray(spots, dtype=np.float64).reshape(-1, 2)
    rows = _round(spots[:, 0]).clip(0, image.shape[0] - 1)
    cols = _round(spots[:, 1]).clip(0, image.shape[1] - 1)
    features = _spot_features(image, rows, cols)
    return pd.DataFrame(features, columns=["intensity_raw", "background", "amplitude", "integrated_intensity", "snr"])


def _check_min_amplitude(min_amplitude: Any, channels: list[str]) -> None:
    if min_amplitude is None or (isinstance(min_amplitude, str) and min_amplitude == "auto"):
        return
    values = min_amplitude
    if isinstance(min_amplitude, Mapping):
        missing = [c for c in channels if c not in min_amplitude]
        if missing:
            raise KeyError(
                f"Parameter min_amplitude has no value for channel(s) {missing}; it has {list(min_amplitude)}."
            )
        values = [min_amplitude[c] for c in channels]
    else:
        values = [min_amplitude]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not np.isfinite(v):
            raise ValueError(
                "Parameter min_amplitude should be 'auto', None, a finite number or a {channel: number} mapping, "
                f"got {min_amplitude!r}."
            )


def _molecule_decision(
    amplitude: np.ndarray, min_amplitude: Any, channel: str, *, has_raw: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """Return ``(molecule mask, record)`` of one channel for the ``min_amplitude`` option of :func:`detect_spots`."""
    n = len(amplitude)
    keep_all = np.ones(n, dtype=bool)
    if min_amplitude is None:
        return keep_all, {"mode": "off", "cut": None, "n_spots": n, "n_removed": 0, "reason": f"off; all {n} kept."}
    if not has_raw:
        return keep_all, {
            "mode": "skipped",
            "cut": None,
            "n_spots": n,
            "n_removed": 0,
            "reason": f"no raw image, so no raw amplitudes to decide on; all {n} kept (pass `raw_image_key`).",
        }
    if isinstance(min_amplitude, str):  # "auto", checked by the caller
        split = split_populations(amplitude)
        record = {"mode": "auto", **split.record()}
        molecule = split.keep
    else:
        cut = float(min_amplitude[channel] if isinstance(min_amplitude, Mapping) else min_amplitude)
        molecule = ~(amplitude < cut)  # NaN amplitudes are kept
        removed = n - int(np.count_nonzero(molecule))
        record = {
            "mode": "manual",
            "cut": cut,
            "n_spots": n,
            "n_removed": removed,
            "reason": f"amplitude >= {cut:.4g} set by hand: kept {n - removed}, removed {removed}.",
        }
    record["histogram"] = _log_histogram(amplitude, molecule)
    return molecule, record


def _log_histogram(amplitude: np.ndarray, molecule: np.ndarray, bins: int = 60) -> dict[str, list[float]]:
    """Histogram of the positive amplitudes on log-spaced bins, molecules and the rest apart (for the plot)."""
    positive = amplitude > 0
    if not np.any(positive):
        return {"edges": [], "molecule": [], "rejected": []}
    lo, hi = np.log10(amplitude[positive].min()), np.log10(amplitude[positive].max())
    edges = np.logspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    kept = np.histogram(amplitude[positive & molecule], edges)[0]
    rejected = np.histogram(amplitude[positive & ~molecule], edges)[0]
    return {"edges": edges.tolist(), "molecule": kept.tolist(), "rejected": rejected.tolist()}


def _stats_core(window: np.ndarray, *, region: tuple[slice, slice], scales: tuple[int, ...], center: Any) -> Any:
    return wavelet_statistics(np.asarray(window), scales=scales, region=region, center=center)


# --------------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------------
def _cores(chunks: tuple[int, ...], min_size: int) -> list[tuple[int, int]]:
    """Merge consecutive chunks into cores of at least ``min_size`` px; return ``[(start, stop), ...]``."""
    bounds, start, pos = [], 0, 0
    for c in chunks:
        pos += c
        if pos - start >= min_size:
            bounds.append((start, pos))
            start = pos
    if pos > start:
        if bounds and pos - start < min_size // 2:
            bounds[-1] = (bounds[-1][0], pos)
        else:
            bounds.append((start, pos))
    return bounds


def _windows(shape: tuple[int, int], chunks: tuple[tuple[int, ...], tuple[int, ...]], depth: int, min_core: int):
    """Yield ``(core, window)`` pairs: ``core = (y0, y1, x0, x1)``, ``window = (wy0, wy1, wx0, wx1)``."""
    height, width = shape
    for y0, y1 in _cores(chunks[0], min_core):
        for x0, x1 in _cores(chunks[1], min_core):
            yield (
                (y0, y1, x0, x1),
                (max(0, y0 - depth), min(height, y1 + depth), max(0, x0 - depth), min(width, x1 + depth)),
            )


def _find_raw(sdata: Any, provenance: dict[str, Any]) -> str | None:
    """Follow the provenance records (enhance, normalize) back to the raw image, if it is still in ``sdata``."""
    seen: set[str] = set()
    key = provenance.get("source_image")
    while isinstance(key, str) and key not in seen:
        if key not in sdata.images:
            logger.info("The source image %r is no longer in `sdata.images`; no raw intensities.", key)
            return None
        seen.add(key)
        record = get_provenance(sdata, key, sdata.images[key])
        if record.get("function") not in ("enhance", "normalize"):
            return key  # not produced by this package: the raw image
        key = record.get("source_image")
    return None


def _raw_level(sdata: Any, raw_key: str, shape: tuple[int, ...], image_key: str) -> Any:
    """Return the level of image ``raw_key`` whose shape equals ``shape`` ``(c, y, x)``, or raise a ValueError."""
    from xarray import DataTree

    element = sdata.images[raw_key]
    levels = [None] if not isinstance(element, DataTree) else [k for k in element.children if k.startswith("scale")]
    found = []
    for level in levels:
        data, _ = get_image_element(sdata, raw_key, scale=level)
        if tuple(data.shape) == tuple(shape):
            return data
        found.append(tuple(data.shape))
    raise ValueError(
        f"The raw image {raw_key!r} has shape(s) {found}, but {image_key!r} has shape {tuple(shape)}; they should "
        "match (same channels and pixels). Please pass the matching image as `raw_image_key`, or `raw_image_key=None`."
    )


# --------------------------------------------------------------------------------------------------------------------
# public wrapper
# --------------------------------------------------------------------------------------------------------------------
def detect_spots(
    sdata: SpatialData,
    image_key: str,
    *,
    method: Literal["local_max", "wavelet"] = "local_max",
    threshold: float | None = None,
    min_distance: int | None = None,
    sensitivities: Mapping[int, float] = DEFAULT_SENSITIVITIES,
    raw_image_key: str | None = None,
    min_amplitude: Literal["auto"] | float | Mapping[str, float] | None = "auto",
    keep_rejected: bool = False,
    scale: int | str | None = None,
    key_added: str | None = None,
    inplace: bool = True,
    show_progress_bar: bool = True,
) -> DaskDataFrame | None:
    """Detect RNA spots in an (enhanced) image element, chunk by chunk, into a points element.

    Parameters
    ----------
    sdata
        The SpatialData object.
    image_key
        Image element ``(c, y, x)`` to detect in, usually the output of :func:`deepspot_sd.tl.enhance`. Each
        channel is one gene.
    method
        ``"local_max"``: local maxima ``>= threshold`` (:func:`deepspot_sd.tl.find_spots_local_max`), the fixed
        setting for enhanced images. ``"wavelet"``: the Icy wavelet detector
        (:func:`deepspot_sd.tl.find_spots_wavelet`) with thresholds from statistics of each whole channel.
    threshold
        Absolute threshold of ``"local_max"`` in image units. Default: the threshold of the model that enhanced
        the image (recorded by :func:`deepspot_sd.tl.enhance`); required for other images.
    min_distance
        Minimal distance between local maxima (``"local_max"``); default: the model's, else 1.
    sensitivities
        ``{scale: sensitivity in percent}`` of the wavelet detector; default the paper's ``{3: 20, 7: 100}``. The
        image needs more than ``4**scale`` pixels for every enabled scale.
    raw_image_key
        Image with the raw intensities (same shape; for a multiscale image the level of that shape) for the
        ``intensity_raw`` and ``background`` columns. Default: the image the enhanced image was computed from, if
        recorded and still present; the detection image itself if it is not an enhanced image; else none.
    min_amplitude
        Which detections are molecules, per channel, from their ``amplitude`` (raw peak above the local background):
        ``"auto"`` (default) removes a clearly separate population of dim puncta when the channel has one and keeps
        everything otherwise (:func:`deepspot_sd.tl.split_populations`, see the module notes); a number (raw units;
        or ``{channel: number}``) keeps the detections with ``amplitude >= min_amplitude``; ``None`` keeps all. Needs
        raw intensities (see ``raw_image_key``); without them every detection is kept.
    keep_rejected
        Keep the detections that are not molecules in the element, with ``molecule=False``, instead of dropping
        them (for :func:`deepspot_sd.pl.spot_brightness` overlays and your own filtering; the per-cell tools count
        only ``molecule=True`` rows).
    scale
        Level of a multiscale detection image: ``None`` (full resolution), ``n`` or ``"scale{n}"``.
    key_added
        Name of the points element; default ``f"{image_key}_spots"``. An existing element of that name is replaced.
    inplace
        Store the result in ``sdata`` (see Returns) rather than returning it.
    show_progress_bar
        Show a dask progress bar during the computations (local schedulers).

    Returns
    -------
    If ``inplace=False``, returns the points element (:class:`dask.dataframe.DataFrame` parsed by
    :class:`spatialdata.models.PointsModel`, feature key ``gene``) with the columns ``x``, ``y``, ``gene``,
    ``intensity_raw``, ``intensity_enhanced``, ``background`` (see the module notes);
    otherwise adds ``sdata.points['{key_added}']`` (written to the zarr store too when ``sdata`` is backed).
    An image without spots gives an empty element with these columns (and a warning).

    Raises
    ------
    KeyError
        If ``image_key``, ``raw_image_key`` or ``scale`` do not exist.
    ValueError
        For an invalid method or parameters, a missing threshold, an image too small for a wavelet scale, or a raw
        image of another shape.

    Notes
    -----
    Coordinates: the ``x``, ``y`` columns are in the pixel-index convention of the detection image (a spot centred
    on pixel (row ``i``, col ``j``) has ``x = j``, ``y = i``), and the element's transformation to each coordinate
    system ``cs`` of the image is ``Sequence([Translation([0.5, 0.5], axes=("x", "y")), T_image[cs]])``, because
    spatialdata puts the centre of pixel ``(i, j)`` at ``(j + 0.5, i + 0.5)`` in the image's intrinsic
    coordinates. So the spots overlay the image in every spatialdata coordinate system, and ``imshow(level)`` +
    ``scatter(x, y)`` line up in matplotlib (``level`` the detected level). See :doc:`/method` (Coordinates).

    On an unbacked object the enhanced image is lazy and the network runs whenever it is read: ``"local_max"`` reads
    it once, ``"wavelet"`` three times (two statistics passes, then detection). For large images write the object
    to zarr first (``sdata.write(...)``), then :func:`deepspot_sd.tl.enhance` stores its result there.

    Warns
    -----
    UserWarning
        When no spot is found in a channel, or more than 3 spots per 100 px² (implausible: check the threshold).

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512))  # doctest: +SKIP
    >>> dsd.tl.enhance(sdata, "smfish")  # doctest: +SKIP
    >>> dsd.tl.detect_spots(sdata, "smfish_enhanced")  # doctest: +SKIP
    >>> sdata.points["smfish_enhanced_spots"].compute().head()  # doctest: +SKIP
    """
    import dask
    import dask.array as da
    from spatialdata.models import PointsModel

    data, transformations = get_image_element(sdata, image_key, scale=scale)
    check_type("inplace", inplace, bool)
    if method not in ("local_max", "wavelet"):
        raise ValueError(f"Parameter method should be one of ['local_max', 'wavelet'], got {method!r}.")
    check_type("keep_rejected", keep_rejected, bool)
    _check_min_amplitude(min_amplitude, [str(c) for c in data.coords["c"].values.tolist()])
    key_added = f"{image_key}_spots" if key_added is None else key_added
    if inplace:
        check_key_added(sdata, key_added, "points")
    provenance = get_provenance(sdata, image_key, data)
    enhanced = provenance.get("function") == "enhance"

    params: dict[str, Any] = {}
    if method == "local_max":
        if threshold is None:
            if "threshold" not in provenance:
                raise ValueError(
                    f"Image {image_key!r} was not produced by `dsd.tl.enhance`, so no model threshold is known. "
                    "Please pass `threshold=` (in image units), or run `dsd.tl.enhance(...)` first."
                )
            threshold = float(provenance["threshold"])
        check_type("threshold", threshold, (int, float, np.integer, np.floating))
        if not np.isfinite(threshold):
            raise ValueError(f"Parameter threshold should be finite, got {threshold}.")
        min_distance = int(provenance.get("min_distance", 1)) if min_distance is None else min_distance
        check_type("min_distance", min_distance, (int, np.integer))
        if min_distance < 1:
            raise ValueError(f"Parameter min_distance should be an integer >= 1, got {min_distance}.")
        params = {"threshold": float(threshold), "min_distance": int(min_distance)}
        depth = int(min_distance) + 16
        min_core = 0
    else:
        if threshold is not None:
            raise ValueError("Parameter threshold applies to method='local_max'; use `sensitivities` for 'wavelet'.")
        check_type("sensitivities", sensitivities, Mapping)
        scales = tuple(sorted(int(s) for s in sensitivities))
        depth = wavelet_halo_px(scales) + 16
        n_pixels = int(data.shape[1]) * int(data.shape[2])
        if n_pixels <= 4 ** max(scales):
            s = max(scales)
            raise ValueError(
                f"Wavelet scale {s} needs an image of more than 4**{s} = {4**s} pixels; image {image_key!r} has "
                f"{n_pixels}. Please disable scale {s} in `sensitivities` or use a larger image."
            )
        min_core = 2 * depth  # fewer, larger cores: less halo overhead

    # raw intensities
    if raw_image_key is not None:
        check_type("raw_image_key", raw_image_key, str)
        check_key(raw_image_key, sdata.images, "sdata.images")
    elif provenance.get("function") in ("enhance", "normalize"):
        raw_image_key = _find_raw(sdata, provenance)
    raw_data = _raw_level(sdata, raw_image_key, data.shape, image_key) if raw_image_key is not None else None
    raw_is_detection = raw_data is None and not provenance  # an image not made by this package: it is raw
    has_raw = raw_data is not None or raw_is_detection

    arr = data.data if isinstance(data.data, da.Array) else da.from_array(data.data, chunks=data.shape)
    raw_arr = None
    if raw_data is not None:
        raw_arr = raw_data.data if isinstance(raw_data.data, da.Array) else da.from_array(raw_data.data)
    channels = [str(c) for c in data.coords["c"].values.tolist()]
    height, width = int(data.shape[1]), int(data.shape[2])
    windows = list(_windows((height, width), arr.chunks[1:], depth, min_core))
    logger.info(
        "Detecting spots in %r (%d channel(s), %d core(s), halo %d px) with %s.",
        image_key,
        len(channels),
        len(windows),
        depth,
        method,
    )

    def window_of(a: Any, ci: int, w: tuple[int, int, int, int]) -> Any:
        return a[ci, w[0] : w[1], w[2] : w[3]]

    thresholds_per_channel: list[dict[int, float]] = []
    if method == "wavelet":
        for center_pass in (False, True):
            tasks = []
            for ci in range(len(channels)):
                center = thresholds_per_channel[ci] if center_pass else None
                for core, w in windows:
                    region = (slice(core[0] - w[0], core[1] - w[0]), slice(core[2] - w[2], core[3] - w[2]))
                    tasks.append(
                        dask.delayed(_stats_core)(window_of(arr, ci, w), region=region, scales=scales, center=center)
                    )
            with progress_bar(show_progress_bar):
                results = dask.compute(*tasks)
            per = len(windows)
            combined = [combine_wavelet_statistics(results[i * per : (i + 1) * per]) for i in range(len(channels))]
            if center_pass:
                thresholds_per_channel = [wavelet_thresholds(st, sensitivities=sensitivities) for st in combined]
            else:  # pass 1 leaves the global means, the centres of pass 2
                thresholds_per_channel = [dict(st.means) for st in combined]

    tasks = []
    for ci in range(len(channels)):
        p = dict(params)
        if method == "wavelet":
            p["thresholds"] = thresholds_per_channel[ci]
        for core, w in windows:
            raw_w = window_of(raw_arr, ci, w) if raw_arr is not None else None
            tasks.append(
                dask.delayed(_detect_core)(
                    window_of(arr, ci, w), raw_w, origin=(w[0], w[2]), core=core, method=method, params=p
                )
            )
    with progress_bar(show_progress_bar):
        results = dask.compute(*tasks)

    per = len(windows)
    frames = []
    empty_channels, dense_channels = [], []
    decisions: dict[str, dict[str, Any]] = {}
    for ci, name in enumerate(channels):
        block = np.concatenate(results[ci * per : (ci + 1) * per], axis=0)
        n = len(block)
        if 100.0 * n / (height * width) > MAX_DENSITY_PER_100PX2:
            dense_channels.append(f"{name} ({100.0 * n / (height * width):.1f})")
        amplitude = block[:, 5]
        molecule, decisions[name] = _molecule_decision(amplitude, min_amplitude, name, has_raw=has_raw)
        logger.info("Molecule decision for %r, channel %r: %s", image_key, name, decisions[name]["reason"])
        if not keep_rejected:
            block, molecule = block[molecule], molecule[molecule]
        if n == 0:
            empty_channels.append(name)
        frames.append(
            pd.DataFrame(
                {
                    "x": block[:, 1],
                    "y": block[:, 0],
                    "gene": pd.Categorical([name] * len(block), categories=channels),
                    "intensity_raw": block[:, 2] if raw_is_detection else block[:, 3],
                    "intensity_enhanced": block[:, 2] if enhanced else np.full(len(block), np.nan),
                    "background": block[:, 4],
                    "amplitude": block[:, 5],
                    "integrated_intensity": block[:, 6],
                    "snr": block[:, 7],
                    "molecule": molecule,
                }
            )
        )
    if empty_channels:
        what = f"threshold={params['threshold']}" if method == "local_max" else f"sensitivities={dict(sensitivities)}"
        warnings.warn(
            f"No spots found in channel(s) {empty_channels} of image {image_key!r} with {method} ({what}). "
            "Check the image (was it enhanced?) and the detector setting.",
            UserWarning,
            stacklevel=2,
        )
    if dense_channels:
        warnings.warn(
            f"Implausibly many spots (per 100 px²) in channel(s) {dense_channels} of image {image_key!r}; more than "
            f"{MAX_DENSITY_PER_100PX2:g} per 100 px² suggests a wrong threshold or an image that was not enhanced.",
            UserWarning,
            stacklevel=2,
        )
    df = pd.concat(frames, ignore_index=True)
    df["gene"] = pd.Categorical(df["gene"], categories=channels)
    df = df.sort_values(["gene", "y", "x"], kind="stable").reset_index(drop=True)

    points = PointsModel.parse(
        df,
        coordinates={"x": "x", "y": "y"},
        feature_key="gene",
        transformations=pixel_centre_transformations(transformations),
    )
    record: dict[str, Any] = {
        "function": "detect_spots",
        "image_key": image_key,
        "method": method,
        "raw_image_key": raw_image_key if raw_data is not None else None,
        "n_spots": len(df),
        "min_amplitude": min_amplitude if not isinstance(min_amplitude, Mapping) else dict(min_amplitude),
        "keep_rejected": keep_rejected,
        "molecule_decision": decisions,
    }
    if method == "local_max":
        record.update(params)
    else:
        record["sensitivities"] = {str(s): float(v) for s, v in sensitivities.items()}
        record["thresholds"] = [{str(s): float(t) for s, t in thr.items()} for thr in thresholds_per_channel]
    logger.info("Found %d spots in %r.", len(df), image_key)
    if not inplace:
        points.attrs["deepspot_sd"] = record
        return points
    store_element(sdata, key_added, points, kind="points", provenance=record, show_progress_bar=False)
    return None
