"""Robust spread of pixel differences, also for images whose noise is a few grey levels.

Integer-valued arrays of a moderate range (pixels and pixel differences of uint8 / uint16 images) have exact fast
paths through their histogram (:func:`numpy.bincount`): the order statistics (median, percentiles, MAD and the
lattice search) are taken from the distinct values and their counts instead of sorting millions of values. They give
the same results as the direct computation on the values (``tests/test_fast_stats.py``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "IntegerHistogram",
    "median_abs_deviation",
    "median_abs_deviation_counts",
    "pixel_noise_std",
    "pixel_noise_std_counts",
    "sorted_median",
    "sorted_percentile",
]

#: MAD of a Gaussian times this is its standard deviation.
MAD_TO_STD = 1.4826
#: Largest value range (max - min) of an integer array whose statistics are taken from its histogram.
MAX_HISTOGRAM_RANGE = 1 << 22


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
    values = np.asarray(values)
    if values.size and values.dtype.kind in "iu":
        counts = IntegerHistogram.of(values)
        if counts is not None:
            return median_abs_deviation_counts(*counts.distinct(), first=float(values.flat[0]))
    values = values.astype(np.float64, copy=False).ravel()
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


def median_abs_deviation_counts(values: np.ndarray, counts: np.ndarray, *, first: float) -> float:
    """:func:`median_abs_deviation` of the multiset where each of the sorted distinct ``values`` occurs ``counts``.

    ``first`` is the value the array started with (the lattice is searched relative to it, as there); the result
    equals :func:`median_abs_deviation` of the array up to float rounding.
    """
    values = np.asarray(values, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    median = sorted_median(values, counts)
    deviations = np.abs(values - median)
    order = np.argsort(deviations, kind="stable")
    plain = sorted_median(deviations[order], counts[order])
    relative = values - first
    step = _lattice_step_counts(relative, counts)
    if step is None or plain > 50 * step:
        return plain
    k = np.round(relative / step)  # sorted, as the values are and step > 0
    median = sorted_median(k, counts)
    half_width = int(np.ceil(4 * plain / step)) + 4
    lowest = int(np.floor(median)) - half_width
    n_bins = 2 * half_width + 2
    inside = (k >= lowest) & (k < lowest + n_bins)
    binned = np.bincount((k[inside] - lowest).astype(np.int64), weights=counts[inside], minlength=n_bins)
    binned = np.rint(binned).astype(np.int64)
    edges = lowest - 0.5 + np.arange(n_bins + 1, dtype=np.float64)
    below = int(counts[k < lowest].sum())
    cdf = (below + np.concatenate([[0], np.cumsum(binned)])) / int(counts.sum())
    centre = float(np.interp(0.5, cdf, edges))
    lo, hi = 0.0, float(half_width)
    for _ in range(60):
        r = 0.5 * (lo + hi)
        if np.interp(centre + r, edges, cdf) - np.interp(centre - r, edges, cdf) < 0.5:
            lo = r
        else:
            hi = r
    return hi * step


def pixel_noise_std(differences: np.ndarray) -> float:
    """Pixel noise standard deviation from differences of neighbouring pixels (each holds two pixels' noise)."""
    return MAD_TO_STD * median_abs_deviation(differences) / float(np.sqrt(2.0))


def pixel_noise_std_counts(values: np.ndarray, counts: np.ndarray, *, first: float) -> float:
    """:func:`pixel_noise_std` of differences given as sorted distinct ``values`` and their ``counts``."""
    return MAD_TO_STD * median_abs_deviation_counts(values, counts, first=first) / float(np.sqrt(2.0))


def sorted_median(values: np.ndarray, counts: np.ndarray) -> float:
    """:func:`numpy.median` of the multiset of sorted ``values`` (non-decreasing) occurring ``counts`` times."""
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])
    upper = float(values[np.searchsorted(cumulative, n // 2, side="right")])
    if n % 2:
        return upper
    return (float(values[np.searchsorted(cumulative, n // 2 - 1, side="right")]) + upper) / 2.0


def sorted_percentile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """:func:`numpy.percentile` (linear method) of the multiset of sorted ``values`` occurring ``counts`` times."""
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])
    virtual = (n - 1) * float(np.true_divide(q, 100))  # numpy's virtual index of the linear method
    if virtual >= n - 1:
        previous = following = n - 1
    elif virtual < 0:
        previous = following = 0
    else:
        previous = int(np.floor(virtual))
        following = previous + 1
    gamma = virtual - np.floor(virtual)
    a = float(values[np.searchsorted(cumulative, previous, side="right")])
    b = float(values[np.searchsorted(cumulative, following, side="right")])
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


class IntegerHistogram:
    """Counts of the integers ``offset, offset + 1, ...`` accumulated over several arrays (:func:`numpy.bincount`)."""

    def __init__(self, offset: int, size: int) -> None:
        self.offset = int(offset)
        self.counts = np.zeros(int(size), dtype=np.int64)

    @classmethod
    def of(cls, values: np.ndarray) -> IntegerHistogram | None:
        """Return the histogram of an integer array, or ``None`` when its range is too wide for one."""
        lo, hi = int(values.min()), int(values.max())
        if hi - lo > MAX_HISTOGRAM_RANGE:
            return None
        histogram = cls(lo, hi - lo + 1)
        histogram.add(values)
        return histogram

    def add(self, values: np.ndarray) -> None:
        """Count the values of an integer array (all within the histogram's range)."""
        values = values.ravel()
        if 0 < self.offset <= MAX_HISTOGRAM_RANGE and values.dtype.kind == "u":  # count from 0, cheaper than a shift
            self.counts += np.bincount(values, minlength=self.offset + self.counts.size)[self.offset :]
            return
        if self.offset:
            values = np.subtract(values, self.offset, dtype=np.int64)
        self.counts += np.bincount(values, minlength=self.counts.size)

    def distinct(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the sorted distinct values (float64) and their counts."""
        present = np.flatnonzero(self.counts)
        return (present + self.offset).astype(np.float64), self.counts[present]

    def median(self) -> float:
        """:func:`numpy.median` of the counted values."""
        return sorted_median(*self.distinct())

    def percentile(self, q: float) -> float:
        """:func:`numpy.percentile` of the counted values."""
        return sorted_percentile(*self.distinct(), q)


def _lattice_step(values: np.ndarray) -> float | None:
    """Return the step ``q`` when all values are whole multiples of it (within 1 % of a step), else ``None``."""
    magnitudes = np.abs(values[values != 0])
    if magnitudes.size == 0:
        return None
    # differences of float32 rounding (far below a grey level) are not steps of the lattice
    step = float(magnitudes[magnitudes > 1e-3 * np.median(magnitudes)].min())
    ratio = values / step
    return step if np.all(np.abs(ratio - np.round(ratio)) < 1e-2) else None


def _lattice_step_counts(values: np.ndarray, counts: np.ndarray) -> float | None:
    """:func:`_lattice_step` of sorted distinct ``values`` occurring ``counts`` times."""
    nonzero = values != 0
    if not nonzero.any():
        return None
    magnitudes = np.abs(values[nonzero])
    order = np.argsort(magnitudes, kind="stable")
    median = sorted_median(magnitudes[order], counts[nonzero][order])
    step = float(magnitudes[magnitudes > 1e-3 * median].min())
    ratio = values / step
    return step if np.all(np.abs(ratio - np.round(ratio)) < 1e-2) else None
