"""Calibration of the simulator to a user's microscope, from the user's own images."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.optimize import curve_fit

from deepspot_sd._logging import logger
from deepspot_sd._validation import check_image_2d
from deepspot_sd.datasets._hybrid import NoiseModel, suppress_spots

__all__ = ["Calibration", "calibrate_array", "measure_spots"]


@dataclass(frozen=True)
class Calibration:
    """Simulator parameters estimated from real images (see :func:`calibrate_array`).

    Attributes
    ----------
    background_median
        Median raw intensity.
    texture_std
        Standard deviation of the smooth (spot-free, noise-free) background, raw units.
    noise
        The Poisson–Gaussian :class:`~deepspot_sd.datasets.NoiseModel`.
    psf_sigma_range_px
        10th–90th percentile of the PSF sigma of confidently detected spots.
    snr_range
        Range of spot SNR (5th–95th percentile of the confident spots, extended down to 3 because faint spots are
        the ones not detected confidently).
    density_per_100px2
        Confident spots per 100 px² of image.
    n_reference_spots
        How many confident, isolated spots the estimate rests on.
    backgrounds
        Spot-suppressed versions of the input images (raw units), for hybrid training images.
    """

    background_median: float
    texture_std: float
    noise: NoiseModel
    psf_sigma_range_px: tuple[float, float]
    snr_range: tuple[float, float]
    density_per_100px2: float
    n_reference_spots: int
    backgrounds: tuple[np.ndarray, ...] = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the scalar parameters as a JSON-serialisable dict (without the background images)."""
        d = asdict(self)
        d.pop("backgrounds")
        d["noise"] = asdict(self.noise)
        return d

    def simulation_kwargs(self, shape: tuple[int, int] = (256, 256)) -> dict[str, Any]:
        """Keyword arguments of :func:`deepspot_sd.datasets.simulate_image` that mimic the calibrated images.

        The simulator works in photons; the camera model maps them back to raw counts with the fitted gain and
        offset, so the simulated raw image has the calibrated level, noise and spot contrast.
        """
        gain = self.noise.gain if self.noise.gain > 1e-6 else 1.0
        photons_bg = max((self.background_median - self.noise.offset) / gain, 1.0)
        read_std = float(np.sqrt(self.noise.read_variance)) / gain
        texture = self.texture_std / gain
        n_spots = int(round(self.density_per_100px2 * shape[0] * shape[1] / 100.0))
        return {
            "shape": tuple(shape),
            "n_spots": n_spots,
            "family": "hybrid",
            "snr_range": self.snr_range,
            "psf_sigma_range": self.psf_sigma_range_px,
            "background_mean_range": (0.9 * photons_bg, 1.1 * photons_bg),
            "texture_std_range": (0.8 * texture, 1.2 * texture),
            "photons_per_unit": 1.0,
            "read_noise_std": read_std,
            "camera_gain": gain,
            "camera_offset": self.noise.offset,
        }


def _gaussian2d(coords: tuple[np.ndarray, np.ndarray], amp: float, r0: float, c0: float, sigma: float, base: float):
    rr, cc = coords
    return (base + amp * np.exp(-((rr - r0) ** 2 + (cc - c0) ** 2) / (2 * sigma**2))).ravel()


def measure_spots(
    image: np.ndarray,
    noise: NoiseModel,
    *,
    min_snr: float = 6.0,
    max_spots: int = 300,
    window_px: int = 4,
) -> dict[str, np.ndarray]:
    """Find confident, isolated spots and fit a 2D Gaussian to each.

    Parameters
    ----------
    image
        ``(y, x)`` raw image.
    noise
        Its noise model (for the SNR of each spot).
    min_snr
        Smallest SNR of a local maximum of the smoothed excess over the local median to be fitted.
    max_spots
        Fit at most this many, the strongest first.
    window_px
        Half size of the fitted window.

    Returns
    -------
    ``{"centres", "sigma", "snr", "n_candidates"}``; arrays over the spots whose fit converged to a plausible
    spot (sigma 0.4–4 px, centre within 1.5 px of the maximum).
    """
    img = check_image_2d(image, min_size=16).astype(np.float64)
    bg = ndimage.median_filter(img, size=11)
    excess = ndimage.gaussian_filter(img - bg, 1.0)
    std = noise.std(bg)
    peaks = (excess == ndimage.maximum_filter(excess, size=2 * window_px + 1)) & (img - bg > min_snr * std)
    rows, cols = np.nonzero(peaks)
    inside = (rows >= window_px) & (rows < img.shape[0] - window_px)
    inside &= (cols >= window_px) & (cols < img.shape[1] - window_px)
    rows, cols = rows[inside], cols[inside]
    order = np.argsort(-(img - bg)[rows, cols])[:max_spots]
    centres, sigmas, snrs = [], [], []
    grid = np.mgrid[-window_px : window_px + 1, -window_px : window_px + 1].astype(np.float64)
    for r, c in zip(rows[order], cols[order], strict=True):
        patch = img[r - window_px : r + window_px + 1, c - window_px : c + window_px + 1]
        base0 = float(np.median(np.concatenate([patch[0], patch[-1], patch[:, 0], patch[:, -1]])))
        try:
            popt, _ = curve_fit(
                _gaussian2d,
                (grid[0], grid[1]),
                patch.ravel(),
                p0=(patch.max() - base0, 0.0, 0.0, 1.2, base0),
                bounds=([0, -2, -2, 0.3, -np.inf], [np.inf, 2, 2, 5.0, np.inf]),
                maxfev=2000,
            )
        except (RuntimeError, ValueError):
            continue
        amp, dr, dc, sigma, base = popt
        if not (0.4 <= sigma <= 4.0 and abs(dr) <= 1.5 and abs(dc) <= 1.5):
            continue
        # the package's SNR: brightest noise-free pixel above background / noise std at the background
        brightest = amp * np.exp(-(min(abs(dr), 0.5) ** 2 + min(abs(dc), 0.5) ** 2) / (2 * sigma**2))
        centres.append((r + dr, c + dc))
        sigmas.append(sigma)
        snrs.append(brightest / float(noise.std(base)))
    return {
        "centres": np.asarray(centres, dtype=np.float64).reshape(-1, 2),
        "sigma": np.asarray(sigmas),
        "snr": np.asarray(snrs),
        "n_candidates": np.asarray(len(rows)),
    }


def calibrate_array(image: np.ndarray, *, min_snr: float = 6.0, seed: int = 0) -> Calibration:
    """Estimate simulator parameters from one real image.

    Parameters
    ----------
    image
        ``(y, x)`` raw image of the user's microscope (any dtype; at least 64 px per side).
    min_snr
        SNR above which spots are used to measure spot size and brightness.
    seed
        Seed of the noise used to fill the removed spots of the background.

    Returns
    -------
    The :class:`Calibration` (with the spot-suppressed image in ``backgrounds``).

    Raises
    ------
    ValueError
        If the image is not 2D, smaller than 64 px per side, has no contrast, or contains NaN.
    """
    img = check_image_2d(image, min_size=64).astype(np.float64)
    if np.ptp(img) == 0:
        raise ValueError("`image` is constant; a calibration needs an image with background noise and spots.")
    background, _, noise = suppress_spots(img, seed=seed)
    smooth = ndimage.gaussian_filter(ndimage.median_filter(background, size=11), 2.0)
    spots = measure_spots(img, noise, min_snr=min_snr)
    n_ref = len(spots["sigma"])
    if n_ref >= 5:
        sigma_range = tuple(float(v) for v in np.clip(np.percentile(spots["sigma"], [10, 90]), 0.5, 3.0))
        snr_hi = float(np.clip(np.percentile(spots["snr"], 95), 8.0, 60.0))
        snr_lo = float(min(3.0, np.percentile(spots["snr"], 5)))
        snr_range = (max(snr_lo, 2.0), snr_hi)
    else:
        logger.warning("Only %d confident spots found; using default spot size and SNR ranges.", n_ref)
        sigma_range, snr_range = (0.8, 2.0), (3.0, 30.0)
    density = float(spots["n_candidates"]) / (img.size / 100.0)
    return Calibration(
        background_median=float(np.median(img)),
        texture_std=float(np.std(smooth)),
        noise=noise,
        psf_sigma_range_px=sigma_range,
        snr_range=snr_range,
        density_per_100px2=density,
        n_reference_spots=n_ref,
        backgrounds=(background,),
    )
