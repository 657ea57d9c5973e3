"""Hybrid training images: real backgrounds with their spots removed, plus simulated spots at known positions.

We have no annotated real images. The paper's hybrid set mixed annotated experimental images with simulated
ones; the equivalent here keeps what the simulator cannot invent — real autofluorescence, haze, texture, camera
noise — and puts spots whose positions we know on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from deepspot_sd._robust import pixel_noise_std
from deepspot_sd._validation import check_image_2d, check_positive

from ._simulate import SimulatedImage, render_spots, sample_spot_positions

__all__ = ["NoiseModel", "estimate_noise_model", "hybrid_image", "suppress_spots"]


@dataclass(frozen=True)
class NoiseModel:
    """Poisson–Gaussian camera noise: ``variance = gain * (intensity - offset) + read_variance``.

    Attributes
    ----------
    gain
        Counts per photon (slope of the variance against the mean).
    offset
        Intensity of zero photons (camera baseline), estimated as the darkest background level when the fit
        cannot separate it from the read noise.
    read_variance
        Variance at the baseline.
    """

    gain: float
    offset: float
    read_variance: float

    def std(self, intensity: np.ndarray | float) -> np.ndarray:
        """Noise standard deviation at the given noise-free intensity."""
        var = self.gain * np.maximum(np.asarray(intensity, dtype=np.float64) - self.offset, 0) + self.read_variance
        return np.sqrt(np.maximum(var, 1e-12))


def _local_background(image: np.ndarray, size_px: int) -> np.ndarray:
    return ndimage.median_filter(image, size=size_px, mode="reflect")


def estimate_noise_model(image: np.ndarray, *, background_size_px: int = 11, n_bins: int = 20) -> NoiseModel:
    """Estimate a Poisson–Gaussian noise model from one image.

    The residual of the image around its local median is binned by the local median; a straight line through
    the robust variance of each bin against its level gives the gain (slope) and the read variance.

    Parameters
    ----------
    image
        ``(y, x)`` raw image (any dtype).
    background_size_px
        Window of the local median used as the noise-free intensity.
    n_bins
        Number of intensity bins (quantiles of the local median).

    Returns
    -------
    The fitted :class:`NoiseModel`.
    """
    img = check_image_2d(image, min_size=8).astype(np.float64)
    bg = _local_background(img, background_size_px)
    # differences of horizontal neighbours cancel smooth structure; each holds the noise of two pixels
    diff = img[:, 1:] - img[:, :-1]
    level = 0.5 * (bg[:, 1:] + bg[:, :-1])
    edges = np.unique(np.quantile(level, np.linspace(0.0, 0.98, n_bins + 1)))
    means, variances = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (level >= lo) & (level < hi)
        if sel.sum() < 50:
            continue
        means.append(level[sel].mean())
        variances.append(pixel_noise_std(diff[sel]) ** 2)
    offset = float(np.quantile(img, 0.001))
    if len(means) < 2:
        var = float(np.var(diff)) / 2.0
        return NoiseModel(gain=0.0, offset=offset, read_variance=max(var, 1e-6))
    # the line variance = slope * level + intercept is what the data determine; offset and read noise are not
    # separable from one image, so the read variance is the line's value at the darkest level (the offset)
    slope, intercept = np.polyfit(np.asarray(means), np.asarray(variances), 1)
    slope = max(float(slope), 0.0)
    read_variance = max(slope * offset + float(intercept), 0.05 * float(np.min(variances)), 1e-6)
    return NoiseModel(gain=slope, offset=offset, read_variance=read_variance)


def suppress_spots(
    image: np.ndarray,
    *,
    spot_sigma_px: float = 1.5,
    threshold_std: float = 2.5,
    mask_radius_px: int = 3,
    background_size_px: int = 11,
    seed: int | np.random.Generator | None = 0,
) -> tuple[np.ndarray, np.ndarray, NoiseModel]:
    """Remove spot-like signal from a real image and fill it with background of the same texture and noise.

    Spot candidates are pixels whose Gaussian-smoothed excess over the local median exceeds ``threshold_std``
    times the (smoothed) local noise; they are dilated by ``mask_radius_px``, replaced by the local background
    interpolated from the unmasked pixels, and given fresh Poisson–Gaussian noise from
    :func:`estimate_noise_model`. The threshold is deliberately low: a missed faint spot would teach a model to
    erase spots, a removed bit of background costs little.

    Parameters
    ----------
    image
        ``(y, x)`` raw image.
    spot_sigma_px
        Expected PSF sigma of the spots in pixels (smoothing scale of the detection).
    threshold_std
        Detection threshold in units of the noise of the smoothed residual.
    mask_radius_px
        Dilation radius of the detected spot pixels.
    background_size_px
        Window of the local median.
    seed
        Seed of the fill noise.

    Returns
    -------
    background
        ``float32 (y, x)`` spot-free image in the input's intensity units.
    mask
        ``bool (y, x)`` the pixels that were replaced.
    noise
        The estimated :class:`NoiseModel`.
    """
    check_positive("spot_sigma_px", spot_sigma_px)
    img = check_image_2d(image, min_size=16).astype(np.float64)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    noise = estimate_noise_model(img, background_size_px=background_size_px)
    bg = _local_background(img, background_size_px)
    excess = ndimage.gaussian_filter(img - bg, spot_sigma_px)
    # noise of a Gaussian-smoothed white field: std / (2 sqrt(pi) sigma)
    smoothed_std = noise.std(bg) / (2.0 * np.sqrt(np.pi) * spot_sigma_px)
    # real noise is not white (texture, PSF-correlated noise): never go below the empirical spread of `excess`
    robust_std = 1.4826 * np.median(np.abs(excess - np.median(excess)))
    mask = excess > threshold_std * np.maximum(smoothed_std, robust_std)
    mask = ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=mask_radius_px)
    keep = (~mask).astype(np.float64)
    # normalised convolution: the background under the mask from the surrounding unmasked pixels
    width = max(2.0, 2.0 * mask_radius_px)
    fill = ndimage.gaussian_filter(img * keep, width) / np.maximum(ndimage.gaussian_filter(keep, width), 1e-6)
    still_empty = ndimage.gaussian_filter(keep, width) < 1e-3
    fill[still_empty] = bg[still_empty]
    out = img.copy()
    out[mask] = fill[mask] + rng.normal(0.0, 1.0, size=int(mask.sum())) * noise.std(fill[mask])
    return out.astype(np.float32), mask, noise


def hybrid_image(
    background: np.ndarray,
    noise: NoiseModel,
    *,
    shape: tuple[int, int] = (256, 256),
    n_spots: int = 50,
    snr_range: tuple[float, float] = (3.0, 40.0),
    psf_sigma_range: tuple[float, float] = (0.7, 2.5),
    min_spot_distance_px: float = 2.0,
    cluster_fraction: float = 0.0,
    extra_noise: float = 0.0,
    seed: int | np.random.Generator | None = None,
) -> SimulatedImage:
    """Put simulated spots at known positions on a random crop of a spot-free real background.

    Spot heights are ``snr * noise_std`` with the noise standard deviation of the crop at its median level
    (the package's SNR definition); spot photons get Poisson noise through the gain of ``noise``.

    Parameters
    ----------
    background
        ``(y, x)`` spot-free real image from :func:`suppress_spots`, at least ``shape``.
    noise
        Its noise model.
    shape
        Crop size ``(y, x)``.
    n_spots, snr_range, psf_sigma_range, min_spot_distance_px, cluster_fraction
        As in :func:`~deepspot_sd.datasets.simulate_image`.
    extra_noise
        Add independent Gaussian noise of ``extra_noise`` times the crop's own noise standard deviation at each
        pixel's local level, as a noisier camera or a shorter exposure of the same sample would; the spot heights
        then refer to the total noise, ``sqrt(1 + extra_noise**2)`` times the original.
    seed
        Seed or generator.

    Returns
    -------
    A :class:`~deepspot_sd.datasets.SimulatedImage` in the background's intensity units; its ``target`` is left
    to the caller (it is defined on the normalised scale), so it is the image itself.
    """
    bg = check_image_2d(background, min_size=1)
    if bg.shape[0] < shape[0] or bg.shape[1] < shape[1]:
        raise ValueError(f"`background` of shape {bg.shape} is smaller than the requested crop {shape}.")
    if extra_noise < 0:
        raise ValueError(f"`extra_noise` must be >= 0, got {extra_noise}.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    r0 = int(rng.integers(0, bg.shape[0] - shape[0] + 1))
    c0 = int(rng.integers(0, bg.shape[1] - shape[1] + 1))
    crop = bg[r0 : r0 + shape[0], c0 : c0 + shape[1]].astype(np.float64)
    clean_bg = ndimage.median_filter(crop, size=5)
    noise_std = float(noise.std(np.median(crop)))
    if extra_noise > 0:
        crop = crop + rng.normal(size=crop.shape) * (extra_noise * noise.std(clean_bg))
        noise_std *= float(np.sqrt(1.0 + extra_noise**2))
    spots = sample_spot_positions(
        shape, n_spots, rng, min_distance_px=min_spot_distance_px, cluster_fraction=cluster_fraction
    )
    snr = rng.uniform(*snr_range, size=n_spots)
    sigmas = rng.uniform(*psf_sigma_range, size=n_spots)
    heights = snr * noise_std
    signal = render_spots(shape, spots, heights, sigmas).astype(np.float64)
    if noise.gain > 0:
        # extra shot noise of the spot photons: signal / gain photons, each worth `gain` counts
        photons = rng.poisson(signal / noise.gain) * noise.gain
        signal = photons.astype(np.float64)
    image = (crop + signal).astype(np.float32)
    params = {"family": "real_background", "crop_origin": (r0, c0), "gain": noise.gain, "extra_noise": extra_noise}
    return SimulatedImage(
        image, image.copy(), spots, heights, sigmas, snr, clean_bg.astype(np.float32), noise_std, params
    )
