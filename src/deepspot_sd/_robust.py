"""Robust spread of pixel differences, also for integer images whose noise is a few counts."""

from __future__ import annotations

import numpy as np

__all__ = ["median_abs_deviation"]


def median_abs_deviation(values: np.ndarray, *, integer: bool = False) -> float:
    """Median absolute deviation from the median (not scaled to a standard deviation).

    Parameters
    ----------
    values
        1D array of values.
    integer
        The values are integers (e.g. differences of an integer image). The plain MAD of integers is itself a whole
        or half number: for a noise of 0.5–1.5 counts it is 0 or 1 whatever the noise, and it is biased by about
        +5 % up to a few counts. With ``integer=True`` every integer ``k`` is spread evenly over
        ``[k - 0.5, k + 0.5]`` (a piecewise-linear distribution function), which removes the steps: the result
        is the MAD of the dequantised values.

    Returns
    -------
    The MAD in the units of ``values``.
    """
    values = np.asarray(values).ravel()
    median = float(np.median(values))
    plain = float(np.median(np.abs(values - median)))
    if not integer or plain > 50:  # beyond 50 counts the steps of one count change the MAD by < 1 %
        return plain
    # the distribution function is needed only around the median: a window of whole counts keeps it small
    half_width = int(np.ceil(4 * plain)) + 4
    lowest = int(np.floor(median)) - half_width
    n_bins = 2 * half_width + 2
    inside = values[(values >= lowest) & (values < lowest + n_bins)]
    counts = np.bincount((inside - lowest).astype(np.int64), minlength=n_bins)
    edges = lowest - 0.5 + np.arange(n_bins + 1, dtype=np.float64)
    cdf = (np.count_nonzero(values < lowest) + np.concatenate([[0], np.cumsum(counts)])) / values.size
    centre = float(np.interp(0.5, cdf, edges))
    lo, hi = 0.0, float(half_width)
    for _ in range(60):  # bisection on r: the mass within centre ± r grows with r
        r = 0.5 * (lo + hi)
        if np.interp(centre + r, edges, cdf) - np.interp(centre - r, edges, cdf) < 0.5:
            lo = r
        else:
            hi = r
    return hi
