"""Robust spread of pixel differences, also for images whose noise is a few grey levels."""

from __future__ import annotations

import numpy as np

__all__ = ["median_abs_deviation", "pixel_noise_std"]

#: MAD of a Gaussian times this is its standard deviation.
MAD_TO_STD = 1.4826


def median_abs_deviation(values: np.ndarray) -> float:
    """Median absolute deviation from the median (not scaled to a standard deviation), free of rounding steps.

    Values that all lie on a lattice ``k * step`` (an integer image or its differences, also after a gain or an
    offset, in any dtype) have a plain MAD that is itself a whole or half number of steps: for a noise of 0.5–1.5
    steps it is 0 or 1 step whatever the noise, and it is biased by about +5 % up to a few steps. Such values are
    treated as if every lattice point ``k`` were spread evenly over ``[k - 0.5, k + 0.5]`` steps (a
    piecewise-linear distribution function), which removes the steps: the result is the MAD of the dequantised
    values. Other values get the plain MAD.

    Parameters
    ----------
    values
        1D array of values.

    Returns
    -------
    The MAD in the units of ``values``.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    plain = float(np.median(np.abs(values - np.median(values))))
    relative = values - values[0]  # a lattice with an offset is a lattice through 0 after this shift
    step = _lattice_step(relative)
    if step is None or plain > 50 * step:  # beyond 50 steps the rounding changes the MAD by < 1 %
        return plain
    k = np.round(relative / step)
    median = float(np.median(k))
    # the distribution function is needed only around the median: a window of whole steps keeps it small
    half_width = int(np.ceil(4 * plain / step)) + 4
    lowest = int(np.floor(median)) - half_width
    n_bins = 2 * half_width + 2
    inside = k[(k >= lowest) & (k < lowest + n_bins)]
    counts = np.bincount((inside - lowest).astype(np.int64), minlength=n_bins)
    edges = lowest - 0.5 + np.arange(n_bins + 1, dtype=np.float64)
    cdf = (np.count_nonzero(k < lowest) + np.concatenate([[0], np.cumsum(counts)])) / k.size
    centre = float(np.interp(0.5, cdf, edges))
    lo, hi = 0.0, float(half_width)
    for _ in range(60):  # bisection on r: the mass within centre ± r grows with r
        r = 0.5 * (lo + hi)
        if np.interp(centre + r, edges, cdf) - np.interp(centre - r, edges, cdf) < 0.5:
            lo = r
        else:
            hi = r
    return hi * step


def pixel_noise_std(differences: np.ndarray) -> float:
    """Pixel noise standard deviation from differences of neighbouring pixels (each holds two pixels' noise)."""
    return MAD_TO_STD * median_abs_deviation(differences) / float(np.sqrt(2.0))


def _lattice_step(values: np.ndarray) -> float | None:
    """Return the step ``q`` when all values are whole multiples of it (within 1 % of a step), else ``None``."""
    magnitudes = np.abs(values[values != 0])
    if magnitudes.size == 0:
        return None
    # differences of float32 rounding (far below a grey level) are not steps of the lattice
    step = float(magnitudes[magnitudes > 1e-3 * np.median(magnitudes)].min())
    ratio = values / step
    return step if np.all(np.abs(ratio - np.round(ratio)) < 1e-2) else None
