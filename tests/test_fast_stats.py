"""The fast normalisation statistics (histograms, running min / max) equal the straightforward computation.

The references below are the direct computations on float64 values (sorting, :func:`numpy.median`,
:func:`numpy.percentile`, :func:`scipy.ndimage.grey_opening`), as ``normalization_stats`` computed them before the
fast paths.
"""

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

import deepspot_sd as dsd
from deepspot_sd._robust import (
    MAD_TO_STD,
    IntegerHistogram,
    median_abs_deviation,
    median_abs_deviation_counts,
    sorted_median,
    sorted_percentile,
)
from deepspot_sd.pp._normalize import _grey_opening, _sample_windows

KWARGS = {"percentile": 99.9, "noise_floor": 8.0, "tophat_size": 15, "ceiling_percentile": 99.0}


# --------------------------------------------------------------------------------------------------------------------
# straightforward references
# --------------------------------------------------------------------------------------------------------------------
def _ref_lattice_step(values):
    magnitudes = np.abs(values[values != 0])
    if magnitudes.size == 0:
        return None
    step = float(magnitudes[magnitudes > 1e-3 * np.median(magnitudes)].min())
    ratio = values / step
    return step if np.all(np.abs(ratio - np.round(ratio)) < 1e-2) else None


def _ref_mad(values):
    values = np.asarray(values, dtype=np.float64).ravel()
    plain = float(np.median(np.abs(values - np.median(values))))
    relative = values - values[0]
    step = _ref_lattice_step(relative)
    if step is None or plain > 50 * step:
        return plain
    k = np.round(relative / step)
    median = float(np.median(k))
    half_width = int(np.ceil(4 * plain / step)) + 4
    lowest = int(np.floor(median)) - half_width
    n_bins = 2 * half_width + 2
    inside = k[(k >= lowest) & (k < lowest + n_bins)]
    counts = np.bincount((inside - lowest).astype(np.int64), minlength=n_bins)
    edges = lowest - 0.5 + np.arange(n_bins + 1, dtype=np.float64)
    cdf = (np.count_nonzero(k < lowest) + np.concatenate([[0], np.cumsum(counts)])) / k.size
    centre = float(np.interp(0.5, cdf, edges))
    lo, hi = 0.0, float(half_width)
    for _ in range(60):
        r = 0.5 * (lo + hi)
        if np.interp(centre + r, edges, cdf) - np.interp(centre - r, edges, cdf) < 0.5:
            lo = r
        else:
            hi = r
    return hi * step


def _ref_summary(image, *, tophat_size=15, percentile=99.9, ceiling_percentile=99.0, **window_kwargs):
    """``(background, noise, top, ceiling, spread)`` computed directly on float64 values."""
    windows = _sample_windows(image, image.shape, **window_kwargs)
    values, diffs, tophats, openings = [], [], [], []
    for w in windows:
        w = np.asarray(w, dtype=np.float64)
        values.append(w.ravel())
        diffs.append(np.diff(w, axis=1).ravel())
        size = min(tophat_size, *w.shape)
        tophat = w - ndi.grey_opening(w, size=(size, size), mode="reflect") if size > 1 else np.zeros_like(w)
        tophats.append(tophat.ravel())
        openings.append((w - tophat).ravel())
    values = np.concatenate(values)
    noise = MAD_TO_STD * _ref_mad(np.concatenate(diffs)) / np.sqrt(2.0)
    return (
        float(np.median(values)),
        float(noise),
        float(np.percentile(np.concatenate(tophats), percentile)),
        float(np.percentile(np.concatenate(openings), ceiling_percentile)),
        float(values.max() - values.min()),
    )


def _stats_from_summary(summary, *, noise_floor=8.0, background_level=100.0, spot_level=200.0, ceiling=180.0):
    background, noise, top, opening, spread = summary
    guard = (opening - background) * (spot_level - background_level) / (ceiling - background_level)
    scale = max(top, noise_floor * noise, guard)
    degenerate = not (scale > 0 and np.isfinite(scale)) or spread <= 1e-6 * max(1.0, abs(background))
    return background, (1.0 if degenerate else scale), noise, degenerate


def _raw(shape, dtype, *, gain=20.0, offset=500.0, seed=0, n_spots=None):
    sim = dsd.datasets.simulate_image(
        shape, n_spots=n_spots or max(5, shape[0] * shape[1] // 2000), camera_gain=gain, camera_offset=offset, seed=seed
    )
    x = sim.image
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        x = np.clip(np.round(x), info.min, info.max)
    return x.astype(dtype)


# --------------------------------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 15, 16, 31])
@pytest.mark.parametrize("shape", [(40, 33), (9, 60), (2, 2)])
def test_grey_opening_equals_scipy(dtype, size, shape):
    rng = np.random.default_rng(size)
    x = (rng.random(shape) * 200).astype(dtype)
    clipped = min(size, *shape)
    expected = x.copy() if clipped <= 1 else ndi.grey_opening(x, size=(clipped, clipped), mode="reflect")
    out = _grey_opening(x, size)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 1000, 1001])
def test_sorted_median_and_percentile_equal_numpy(n):
    rng = np.random.default_rng(n)
    x = rng.integers(-5, 40, n).astype(np.float64) * 0.37
    values, counts = np.unique(x, return_counts=True)
    assert sorted_median(values, counts) == pytest.approx(float(np.median(x)), rel=1e-15, abs=1e-15)
    for q in [0.0, 0.1, 1.0, 25.0, 50.0, 99.0, 99.9, 100.0, 100 * rng.random()]:
        expected = float(np.percentile(x, q))
        assert sorted_percentile(values, counts, q) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_histogram_accumulates_arrays():
    a, b = np.array([3, 5, 5, -2]), np.array([[0, 5], [3, 3]])
    h = IntegerHistogram(-2, 8)
    h.add(a)
    h.add(b)
    values, counts = h.distinct()
    expected_values, expected_counts = np.unique(np.concatenate([a, b.ravel()]), return_counts=True)
    np.testing.assert_array_equal(values, expected_values)
    np.testing.assert_array_equal(counts, expected_counts)
    assert IntegerHistogram.of(np.array([0, 2**40])) is None


@pytest.mark.parametrize("sigma", [0.3, 0.7, 1.0, 1.6, 3.0, 12.0, 80.0])
@pytest.mark.parametrize(("step", "offset"), [(1, 0), (1, 500), (3, 7), (20, 1000)])
def test_integer_mad_equals_reference(sigma, step, offset):
    """Integer differences on a lattice (noise of a fraction of a step to many steps): the histogram path."""
    rng = np.random.default_rng(int(10 * sigma) + step)
    diffs = (np.round(rng.normal(0.0, sigma, 50_000)) * step + offset).astype(np.int64)
    expected = _ref_mad(diffs)
    assert median_abs_deviation(diffs) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert median_abs_deviation(diffs.astype(np.float64)) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    values, counts = np.unique(diffs, return_counts=True)
    got = median_abs_deviation_counts(values, counts, first=float(diffs[0]))
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_integer_mad_depends_on_the_first_value_as_the_reference():
    """The lattice is searched relative to the first value: an odd first value among even ones breaks it."""
    rng = np.random.default_rng(1)
    diffs = 2 * np.round(rng.normal(0.0, 0.8, 20_001)).astype(np.int64)
    diffs[0] = 1
    assert median_abs_deviation(diffs) == pytest.approx(_ref_mad(diffs), rel=1e-12, abs=1e-12)
    diffs[0] = 2
    assert median_abs_deviation(diffs) == pytest.approx(_ref_mad(diffs), rel=1e-12, abs=1e-12)


def test_constant_integer_mad_is_zero():
    assert median_abs_deviation(np.full(100, 7, dtype=np.int32)) == 0.0 == _ref_mad(np.full(100, 7))


# --------------------------------------------------------------------------------------------------------------------
# normalization_stats
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dtype", "gain", "offset"),
    [
        (np.uint16, 20.0, 500.0),  # the benchmark's camera
        (np.uint16, 1.0, 100.0),  # noise of a few grey levels: the lattice estimate
        (np.uint16, 0.25, 0.0),  # noise below one grey level
        (np.uint8, 0.5, 10.0),
        (np.int16, 3.0, -200.0),
        (np.int32, 7.0, 100.0),
        (np.float32, 20.0, 500.0),
        (np.float32, 0.37, 3.0),  # float32 after a non-integer gain: the lattice within 1 % of a step
    ],
)
@pytest.mark.parametrize("shape", [(256, 320), (97, 61)])
def test_normalization_stats_equal_reference(dtype, gain, offset, shape):
    x = _raw(shape, dtype, gain=gain, offset=offset, seed=shape[0])
    stats = dsd.pp.normalization_stats(x, **KWARGS)
    background, scale, noise, degenerate = _stats_from_summary(
        _ref_summary(x, tophat_size=15, max_pixels=2**22, n_windows=64, window=256)
    )
    assert stats.background == pytest.approx(background, rel=1e-12)
    assert stats.noise == pytest.approx(noise, rel=1e-9)
    assert stats.scale == pytest.approx(scale, rel=1e-9)
    assert stats.degenerate == degenerate
    assert noise > 0


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_windowed_and_dask_stats_equal_reference(dtype):
    """Images above max_pixels: statistics over the sampled windows (numpy and dask) equal the reference."""
    x = _raw((700, 900), dtype, seed=4)
    window_kwargs = {"max_pixels": 100_000, "n_windows": 9, "window": 128}
    expected = _stats_from_summary(_ref_summary(x, **window_kwargs))
    for image in (x, da.from_array(x, chunks=(200, 300))):
        stats = dsd.pp.normalization_stats(image, **KWARGS, **window_kwargs)
        got = (stats.background, stats.scale, stats.noise, stats.degenerate)
        np.testing.assert_allclose(got[:3], expected[:3], rtol=1e-9)
        assert got[3] == expected[3]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_constant_and_two_level_images(dtype):
    for x in (np.full((50, 40), 9, dtype=dtype), np.tile(np.array([3, 4], dtype=dtype), (30, 20))):
        stats = dsd.pp.normalization_stats(x, **KWARGS)
        background, scale, noise, degenerate = _stats_from_summary(
            _ref_summary(x, max_pixels=2**22, n_windows=64, window=256)
        )
        assert (stats.background, stats.scale, stats.degenerate) == pytest.approx((background, scale, degenerate))
        assert stats.noise == pytest.approx(noise, abs=1e-12)


def test_wide_integer_range_uses_the_float_path():
    """A range too wide for a histogram (int32 over 2**23) still gives the reference statistics."""
    x = _raw((64, 64), np.float64, gain=50000.0, offset=0.0, seed=2).astype(np.int32)
    assert int(x.max()) - int(x.min()) > 2**22
    stats = dsd.pp.normalization_stats(x, **KWARGS)
    background, scale, noise, _ = _stats_from_summary(_ref_summary(x, max_pixels=2**22, n_windows=64, window=256))
    assert (stats.background, stats.scale, stats.noise) == pytest.approx((background, scale, noise), rel=1e-9)
