"""Training and validation data: diverse simulated images, normalised exactly as at inference (no TensorFlow here).

Every image goes through the camera model (random offset and gain), a dtype round trip (uint16, uint8 where the
range allows, or float32) and then :func:`deepspot_sd.pp.normalization_stats` and
:func:`~deepspot_sd.pp.apply_normalization`, so training sees camera offsets, gains and quantisation exactly like
real inputs. The target is :func:`deepspot_sd.datasets.stamp_target` applied to the *normalised* image: the
normalised input with the 3×3 stamp at every spot and every other pixel capped at ``target_cap`` (bright non-spot
structures must not pass the detector's threshold).
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_TARGET_CAP",
    "TrainingSample",
    "load_real_backgrounds",
    "real_background_sample",
    "sample_simulation_kwargs",
    "simulate_training_sample",
    "training_batches",
    "validation_set",
]

#: Non-spot pixels of the target are capped here (normalised 0–255 scale).
DEFAULT_TARGET_CAP = 150.0

#: Validation images come from this seed stream, disjoint from the training streams ``(seed, epoch)``.
_VALIDATION_STREAM = 7_919_001


@dataclass(frozen=True)
class TrainingSample:
    """One normalised training image.

    Attributes
    ----------
    image
        ``float32 (y, x)`` network input on the normalised 0–255 scale.
    target
        ``float32 (y, x)`` enhancement target on the same scale.
    spots
        ``float64 (n, 2)`` true spot centres ``(row, col)`` in the (augmented) image.
    params
        The simulator keyword arguments and the camera / dtype draw, for reporting.
    """

    image: np.ndarray
    target: np.ndarray
    spots: np.ndarray
    params: dict


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _draw_n_spots(rng: np.random.Generator) -> int:
    u = rng.uniform()
    if u < 0.10:
        n = 0
    elif u < 0.20:
        n = int(rng.integers(1, 10))
    elif u < 0.85:
        n = int(round(_loguniform(rng, 10, 150)))
    else:
        n = int(rng.integers(150, 401))
    return n


def sample_simulation_kwargs(rng: np.random.Generator, shape: tuple[int, int] = (256, 256)) -> dict[str, Any]:
    """Draw the keyword arguments of :func:`deepspot_sd.datasets.simulate_image` for one training image.

    The mix: families hybrid 60 %, variable 20 %, fixed 20 %; spots per 256² image 0 (10 %), 1–9 (10 %),
    10–150 log-uniform (65 %), 150–400 (15 %), scaled to the image area; SNR sub-ranges inside [3, 40]; PSF sigma
    sub-ranges inside [0.7, 2.5] px; photons per unit 0.5–4 (log-uniform); read noise (50 %); 1–8 bright non-spot
    blobs (50 %, 80 % in images with fewer than 10 spots per 256²: without spots to set the normalisation's spot
    scale, blobs reach the top of the input range and look like huge saturated spots); 1–3 large autofluorescent
    regions (30 %); out-of-focus haze (40 %); uneven illumination (30 %); clustered spots (30 %); camera gain
    0.25–8 and offset: 8-bit-like (25 %; gain 0.5–1.2, offset 0–20), 16-bit camera (60 %; gain 0.25–8
    log-uniform, offset 100–5000) or float (15 %; gain 0.01–8, offset −50–1000).
    """
    area = shape[0] * shape[1] / 256.0**2
    u = rng.uniform()
    family = "hybrid" if u < 0.6 else ("variable" if u < 0.8 else "fixed")
    snr_lo = _loguniform(rng, 3.0, 20.0)
    snr_hi = float(rng.uniform(snr_lo, 40.0))
    sigma_c = float(rng.uniform(0.7, 2.5))
    sigma_w = float(rng.uniform(0.0, 0.5))
    n_spots = int(round(_draw_n_spots(rng) * area))
    kwargs: dict[str, Any] = {
        "shape": tuple(shape),
        "n_spots": n_spots,
        "family": family,
        "snr_range": (snr_lo, snr_hi),
        "psf_sigma_range": (max(0.7, sigma_c - sigma_w), min(2.5, sigma_c + sigma_w)),
        "photons_per_unit": _loguniform(rng, 0.5, 4.0),
        "read_noise_std": float(rng.uniform(0.0, 8.0)) if rng.uniform() < 0.5 else 0.0,
        "n_blobs": int(rng.integers(1, 9)) if rng.uniform() < (0.8 if n_spots < 10 * area else 0.5) else 0,
        "n_regions": int(rng.integers(1, 4)) if rng.uniform() < 0.3 else 0,
        "haze_fraction": float(rng.uniform(0.1, 1.5)) if rng.uniform() < 0.4 else 0.0,
        "illumination_falloff": float(rng.uniform(0.0, 0.5)) if rng.uniform() < 0.3 else 0.0,
        "cluster_fraction": float(rng.uniform(0.1, 0.5)) if rng.uniform() < 0.3 else 0.0,
    }
    u = rng.uniform()
    if u < 0.25:  # 8-bit world (the paper's): stored as uint8 when the range fits
        camera = {"camera_gain": float(rng.uniform(0.5, 1.2)), "camera_offset": float(rng.uniform(0.0, 20.0))}
    elif u < 0.85:  # scientific camera, uint16 counts
        camera = {"camera_gain": _loguniform(rng, 0.25, 8.0), "camera_offset": float(rng.uniform(100.0, 5000.0))}
    else:  # already processed float images
        camera = {"camera_gain": _loguniform(rng, 0.01, 8.0), "camera_offset": float(rng.uniform(-50.0, 1000.0))}
    kwargs.update(camera)
    return kwargs


def _dtype_round_trip(image: np.ndarray, params: Mapping[str, Any]) -> tuple[np.ndarray, str]:
    """Store the raw image as its camera would: uint8 where the range fits, uint16 counts, or float32."""
    lo, hi = float(image.min()), float(image.max())
    if params["camera_offset"] < 0 or params["camera_gain"] < 0.25:
        return image.astype(np.float32), "float32"
    if params["camera_offset"] <= 20 and lo >= -0.5 and hi <= 255.4:
        return np.clip(np.round(image), 0, 255).astype(np.uint8), "uint8"
    return np.clip(np.round(image), 0, 65535).astype(np.uint16), "uint16"


def _augment(arrays: list[np.ndarray], spots: np.ndarray, shape: tuple[int, int], rng: np.random.Generator):
    """Random rot90 (k = 0..3) and flips of all arrays, with the matching spot coordinates."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    pts = np.asarray(spots, dtype=np.float64).reshape(-1, 2).copy()
    h, w = shape
    out = list(arrays)
    for _ in range(k):  # np.rot90 (counter-clockwise): new[r, c] = old[c, W-1-r]
        out = [np.rot90(a) for a in out]
        pts = np.column_stack([w - 1 - pts[:, 1], pts[:, 0]])
        h, w = w, h
    if flip:
        out = [a[:, ::-1] for a in out]
        pts[:, 1] = w - 1 - pts[:, 1]
    return [np.ascontiguousarray(a) for a in out], pts


def simulate_training_sample(
    rng: np.random.Generator,
    *,
    shape: tuple[int, int] = (256, 256),
    target_cap: float | None = DEFAULT_TARGET_CAP,
    normalization_kwargs: Mapping[str, Any] = MappingProxyType({}),
    simulation_overrides: Mapping[str, Any] = MappingProxyType({}),
    augment: bool = True,
) -> TrainingSample:
    """Simulate, store, normalise and augment one training image and build its target.

    Parameters
    ----------
    rng
        Random generator; all randomness comes from it.
    shape
        ``(y, x)`` image size.
    target_cap
        Cap of the non-spot pixels of the target on the normalised scale; ``None`` keeps them as they are.
    normalization_kwargs
        Passed to :func:`deepspot_sd.pp.normalization_stats` (e.g. ``ModelConfig.normalization_kwargs``).
    simulation_overrides
        Replace drawn :func:`deepspot_sd.datasets.simulate_image` arguments, e.g. ``{"n_blobs": 0}``.
    augment
        Apply a random rot90 / flip.

    Returns
    -------
    The :class:`TrainingSample`.
    """
    from deepspot_sd.datasets import simulate_image, stamp_target
    from deepspot_sd.pp import apply_normalization, normalization_stats

    kwargs = sample_simulation_kwargs(rng, shape)
    kwargs.update(simulation_overrides)
    sim = simulate_image(**kwargs, seed=rng)
    raw, dtype = _dtype_round_trip(sim.image, kwargs)
    stats = normalization_stats(raw, **dict(normalization_kwargs))
    image = apply_normalization(raw, stats)
    target = stamp_target(image, sim.spots, cap=target_cap)
    spots = sim.spots
    if augment:
        (image, target), spots = _augment([image, target], spots, image.shape, rng)
    params = {**kwargs, "dtype": dtype, "normalization": stats.to_dict()}
    return TrainingSample(image.astype(np.float32), target.astype(np.float32), spots, params)


def load_real_backgrounds(paths: Sequence[str | Path], *, seed: int = 0) -> list[tuple[np.ndarray, Any]]:
    """Read real images and remove their spots: the backgrounds of hybrid training images.

    Parameters
    ----------
    paths
        2D TIFF files (any dtype) at least ``tile_size`` px on each side.
    seed
        Seed of the noise that fills the removed spots.

    Returns
    -------
    ``[(background, noise_model), ...]`` from :func:`deepspot_sd.datasets.suppress_spots`.
    """
    import tifffile

    from deepspot_sd.datasets import suppress_spots

    out = []
    for path in paths:
        background, _, noise = suppress_spots(tifffile.imread(path), seed=seed)
        out.append((background, noise))
    return out


def real_background_sample(
    rng: np.random.Generator,
    backgrounds: Sequence[tuple[np.ndarray, Any]],
    *,
    shape: tuple[int, int] = (256, 256),
    target_cap: float | None = DEFAULT_TARGET_CAP,
    normalization_kwargs: Mapping[str, Any] = MappingProxyType({}),
    augment: bool = True,
) -> TrainingSample:
    """One hybrid training image: simulated spots on a random crop of a spot-free real background.

    The crop gets spots as :func:`deepspot_sd.datasets.hybrid_image` makes them (density, SNR and PSF drawn as
    for simulated images), in half of the images extra camera noise (0–1× the crop's own noise, so that the real
    textures are also seen at lower SNR than they were recorded at), a random camera gain (0.25–4) and offset
    (0–2000) on top of the real one, a uint16 round trip, then the same normalisation and target as
    :func:`simulate_training_sample`.
    """
    from deepspot_sd.datasets import hybrid_image, stamp_target
    from deepspot_sd.pp import apply_normalization, normalization_stats

    background, noise = backgrounds[int(rng.integers(len(backgrounds)))]
    kwargs = sample_simulation_kwargs(rng, shape)
    hyb = hybrid_image(
        background,
        noise,
        shape=shape,
        n_spots=kwargs["n_spots"],
        snr_range=kwargs["snr_range"],
        psf_sigma_range=kwargs["psf_sigma_range"],
        cluster_fraction=kwargs["cluster_fraction"],
        extra_noise=float(rng.uniform(0.0, 1.0)) if rng.uniform() < 0.5 else 0.0,
        seed=rng,
    )
    gain, offset = _loguniform(rng, 0.25, 4.0), float(rng.uniform(0.0, 2000.0))
    raw = np.clip(np.round(offset + gain * hyb.image), 0, 65535).astype(np.uint16)
    stats = normalization_stats(raw, **dict(normalization_kwargs))
    image = apply_normalization(raw, stats)
    target = stamp_target(image, hyb.spots, cap=target_cap)
    spots = hyb.spots
    if augment:
        (image, target), spots = _augment([image, target], spots, image.shape, rng)
    params = {**hyb.params, "n_spots": len(spots), "gain": gain, "offset": offset, "normalization": stats.to_dict()}
    return TrainingSample(image.astype(np.float32), target.astype(np.float32), spots, params)


def _draw_sample(
    rng: np.random.Generator,
    *,
    shape: tuple[int, int],
    target_cap: float | None,
    normalization_kwargs: Mapping[str, Any],
    simulation_overrides: Mapping[str, Any],
    backgrounds: Sequence[tuple[np.ndarray, Any]],
    real_fraction: float,
    augment: bool = True,
) -> TrainingSample:
    common = {
        "shape": shape,
        "target_cap": target_cap,
        "normalization_kwargs": normalization_kwargs,
        "augment": augment,
    }
    if backgrounds and rng.uniform() < real_fraction:
        return real_background_sample(rng, backgrounds, **common)
    return simulate_training_sample(rng, simulation_overrides=simulation_overrides, **common)


def training_batches(
    *,
    batch_size: int = 8,
    tile_size: int = 256,
    seed: int | np.random.SeedSequence = 0,
    target_cap: float | None = DEFAULT_TARGET_CAP,
    normalization_kwargs: Mapping[str, Any] = MappingProxyType({}),
    simulation_overrides: Mapping[str, Any] = MappingProxyType({}),
    n_batches: int | None = None,
    backgrounds: Sequence[tuple[np.ndarray, Any]] = (),
    real_fraction: float = 0.0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield training batches of freshly simulated images (a plain python generator, no TensorFlow).

    Parameters
    ----------
    batch_size
        Images per batch.
    tile_size
        Side of the square images in px.
    seed
        Seed (or :class:`numpy.random.SeedSequence`) of the stream; the same seed gives the same batches.
        :func:`deepspot_sd.models.train` uses ``SeedSequence([seed, epoch])`` so a resumed run draws the same data.
    target_cap, normalization_kwargs, simulation_overrides
        See :func:`simulate_training_sample`.
    n_batches
        Stop after this many batches (default: never).
    backgrounds
        Spot-free real backgrounds from :func:`load_real_backgrounds`.
    real_fraction
        Fraction of the images made on a real background (:func:`real_background_sample`) when ``backgrounds``
        are given.

    Yields
    ------
    ``(x, y)``: float32 arrays of shape ``(batch_size, tile_size, tile_size, 1)``, input and target on the
    normalised 0–255 scale.
    """
    rng = np.random.default_rng(seed)
    count = 0
    while n_batches is None or count < n_batches:
        yield _draw_batch(
            rng,
            batch_size,
            shape=(tile_size, tile_size),
            target_cap=target_cap,
            normalization_kwargs=normalization_kwargs,
            simulation_overrides=simulation_overrides,
            backgrounds=backgrounds,
            real_fraction=real_fraction,
        )
        count += 1


def _draw_batch(rng: np.random.Generator, batch_size: int, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    samples = [_draw_sample(rng, **kwargs) for _ in range(batch_size)]
    x = np.stack([s.image for s in samples])[..., None]
    y = np.stack([s.target for s in samples])[..., None]
    return x, y


# the keyword arguments of _draw_batch in a worker process of BatchPool (backgrounds are sent once, not per batch)
_WORKER_KWARGS: dict[str, Any] = {}


def _init_worker(kwargs: dict[str, Any]) -> None:
    _WORKER_KWARGS.clear()
    _WORKER_KWARGS.update(kwargs)


def _worker_batch(seed: np.random.SeedSequence, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    return _draw_batch(np.random.default_rng(seed), batch_size, **_WORKER_KWARGS)


class BatchPool:
    """Simulate training batches in worker processes, for machines whose cores outpace one simulating thread.

    Batch ``b`` of a stream with seed ``s`` is drawn from the ``b``-th child of ``s`` (``SeedSequence`` spawn keys),
    so the batches depend on the seed only, not on the number of workers; they differ from the batches of
    :func:`training_batches`, which draws one sequential stream. Use it as a context manager; workers are spawned
    (not forked), so a parent that already runs TensorFlow or JAX threads is safe.

    Parameters
    ----------
    workers
        Number of worker processes.
    batch_size, tile_size, target_cap, normalization_kwargs, simulation_overrides, backgrounds, real_fraction
        As for :func:`training_batches`.
    """

    def __init__(
        self,
        workers: int,
        *,
        batch_size: int = 8,
        tile_size: int = 256,
        target_cap: float | None = DEFAULT_TARGET_CAP,
        normalization_kwargs: Mapping[str, Any] = MappingProxyType({}),
        simulation_overrides: Mapping[str, Any] = MappingProxyType({}),
        backgrounds: Sequence[tuple[np.ndarray, Any]] = (),
        real_fraction: float = 0.0,
    ) -> None:
        self.workers = int(workers)
        self.batch_size = int(batch_size)
        kwargs = {
            "shape": (int(tile_size), int(tile_size)),
            "target_cap": target_cap,
            "normalization_kwargs": dict(normalization_kwargs),
            "simulation_overrides": dict(simulation_overrides),
            "backgrounds": list(backgrounds),
            "real_fraction": float(real_fraction),
        }
        self._executor = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(kwargs,),
        )

    def batches(self, seed: int | np.random.SeedSequence, n_batches: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``n_batches`` batches of the stream ``seed`` in order, at most two per worker in flight."""
        root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
        pending: deque = deque()
        submitted = 0
        try:
            while submitted < n_batches or pending:
                while submitted < n_batches and len(pending) < 2 * self.workers:
                    child = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, submitted))
                    pending.append(self._executor.submit(_worker_batch, child, self.batch_size))
                    submitted += 1
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        """Stop the worker processes."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BatchPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def validation_set(
    n_images: int = 24,
    *,
    tile_size: int = 256,
    seed: int = 0,
    target_cap: float | None = DEFAULT_TARGET_CAP,
    normalization_kwargs: Mapping[str, Any] = MappingProxyType({}),
    simulation_overrides: Mapping[str, Any] = MappingProxyType({}),
    backgrounds: Sequence[tuple[np.ndarray, Any]] = (),
    real_fraction: float = 0.0,
) -> list[TrainingSample]:
    """Return a fixed, seeded validation set drawn like the training data, from a stream training never uses.

    Parameters
    ----------
    n_images
        Number of images.
    tile_size
        Side of the square images in px.
    seed
        Validation seed; the stream is ``SeedSequence([7919001, seed])``, disjoint from the training streams.
    target_cap, normalization_kwargs, simulation_overrides
        See :func:`simulate_training_sample`.
    backgrounds, real_fraction
        See :func:`training_batches`; real-background images are drawn the same way (new crops and spots).

    Returns
    -------
    A list of :class:`TrainingSample` (``image``, ``target``, ``spots``).
    """
    rng = np.random.default_rng(np.random.SeedSequence([_VALIDATION_STREAM, int(seed)]))
    return [
        _draw_sample(
            rng,
            shape=(tile_size, tile_size),
            target_cap=target_cap,
            normalization_kwargs=normalization_kwargs,
            simulation_overrides=simulation_overrides,
            backgrounds=backgrounds,
            real_fraction=real_fraction,
            augment=False,
        )
        for _ in range(int(n_images))
    ]
