import dask.array as da
import numpy as np
import pytest

import deepspot_sd as dsd
from deepspot_sd.pp import NormalizationStats, apply_normalization, normalization_stats, normalize_array


@pytest.fixture(scope="module")
def sim():
    return dsd.datasets.simulate_image((128, 128), n_spots=30, snr_range=(10.0, 30.0), seed=3)


def _ref(x):
    return apply_normalization(x, normalization_stats(np.asarray(x, dtype=np.float64)))


@pytest.mark.parametrize("gain", [0.25, 1.0, 8.0])
@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_affine_invariance_exact_for_float(sim, gain, offset):
    x = sim.image.astype(np.float64)
    ref = _ref(x)
    out = _ref(gain * x + offset)
    np.testing.assert_allclose(out, ref, atol=2e-3)


@pytest.mark.parametrize(
    ("gain", "offset", "dtype"),
    [
        (0.5, 0.0, np.uint8),
        (0.25, 0.0, np.uint8),
        (1.0, 0.0, np.uint16),
        (0.25, 1000.0, np.uint16),
        (8.0, 1000.0, np.uint16),
        (8.0, 1000.0, np.float32),
        (0.25, 0.0, np.float32),
    ],
)
def test_invariance_up_to_quantisation(sim, gain, offset, dtype):
    x = sim.image.astype(np.float64)
    ref = _ref(x)
    raw = gain * x + offset
    if np.issubdtype(dtype, np.integer):
        raw = np.round(raw)
        assert 0 <= raw.min() and raw.max() <= np.iinfo(dtype).max
    raw = raw.astype(dtype)
    stats = normalization_stats(raw)
    out = apply_normalization(raw, stats)
    assert out.dtype == np.float32
    assert out.shape == x.shape
    # one raw grey level expressed in normalised units
    step = 1.0 * stats.gain if np.issubdtype(dtype, np.integer) else 1e-3
    diff = np.abs(out - ref)
    if np.array_equal(raw.astype(np.float64), gain * x + offset):  # nothing lost to the dtype: float32 rounding only
        assert np.max(diff) < 1e-3
    else:  # rounded to integers: within the quantisation step
        assert np.mean(diff) < 0.6 * step
        assert np.max(diff) < 3 * step


def test_levels_background_and_spots(sim):
    out = normalize_array(sim.image)
    assert abs(float(np.median(out)) - 100.0) < 1e-3
    centres = np.floor(sim.spots + 0.5).astype(int)
    assert np.median(out[centres[:, 0], centres[:, 1]]) > 150
    assert out.min() >= 0 and out.max() <= 255


def test_noise_only_image_uses_noise_floor():
    rng = np.random.default_rng(0)
    img = rng.normal(1000.0, 20.0, (256, 256))
    stats = normalization_stats(img, noise_floor=8.0)
    assert stats.noise == pytest.approx(20.0, rel=0.05)
    assert stats.scale == pytest.approx(8.0 * stats.noise, rel=1e-6)
    out = apply_normalization(img, stats)
    assert np.std(out) == pytest.approx(100.0 / 8.0, rel=0.06)


@pytest.mark.parametrize("sigma", [0.7, 1.0, 1.5, 2.5, 5.0])
def test_noise_of_an_integer_image_is_not_rounded_to_whole_counts(sigma):
    # the noise of the stored image: the camera's plus the rounding's (variance 1/12)
    img = np.random.default_rng(0).normal(200.0, sigma, (256, 256))
    stored = np.round(img).astype(np.uint16)
    truth = np.sqrt(sigma**2 + 1.0 / 12.0)
    noise = normalization_stats(stored).noise
    assert noise == pytest.approx(truth, rel=0.08)
    # the same grey levels in another dtype, gain or offset give the same estimate in their units
    assert normalization_stats(stored.astype(np.float32) * 4.0 + 1000.0).noise == pytest.approx(4.0 * noise, rel=1e-6)
    assert normalization_stats((stored * 0.37).astype(np.float32)).noise == pytest.approx(0.37 * noise, rel=1e-3)
    assert normalization_stats(img).noise == pytest.approx(sigma, rel=0.05)  # values off any lattice: the plain MAD


def test_bright_haze_is_compressed_not_clipped():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:256, :256]
    haze = 2000.0 * np.exp(-((yy - 128.0) ** 2 + (xx - 128.0) ** 2) / (2 * 60.0**2))
    img = rng.poisson(500.0 + haze).astype(np.float64)
    img[100, 100] += 400.0  # a spot-like pixel on the haze
    out = normalize_array(img)
    assert np.mean(out[123:133, 123:133]) < 195.0  # the haze top (opening at <= 180, plus noise) stays low
    assert np.percentile(out, 99) < 200.0
    assert out[100, 100] < 255.0


@pytest.mark.parametrize("value", [0, 7, 40000])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_constant_image(value, dtype):
    img = np.full((32, 48), value, dtype=dtype)
    stats = normalization_stats(img)
    assert stats.degenerate
    assert np.isfinite(stats.scale) and stats.scale > 0
    with pytest.warns(UserWarning, match="no contrast"):
        out = normalize_array(img)
    np.testing.assert_array_equal(out, np.full(img.shape, 100.0, np.float32))


def test_dask_matches_numpy_small_and_windowed():
    rng = np.random.default_rng(2)
    img = rng.poisson(200.0, (700, 650)).astype(np.uint16)
    img[rng.integers(0, 700, 300), rng.integers(0, 650, 300)] += 300
    arr = da.from_array(img, chunks=(256, 256))
    for kwargs in ({}, {"max_pixels": 2**16, "n_windows": 9, "window": 128}):
        s_np = normalization_stats(img, **kwargs)
        s_da = normalization_stats(arr, **kwargs)
        assert s_np == s_da
    lazy = apply_normalization(arr, s_da)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), apply_normalization(img, s_da), atol=1e-4)


def test_tile_equals_crop_of_whole(sim):
    stats = normalization_stats(sim.image)
    whole = apply_normalization(sim.image, stats)
    np.testing.assert_array_equal(apply_normalization(sim.image[10:50, 20:90], stats), whole[10:50, 20:90])


def test_stats_dict_round_trip(sim):
    stats = normalization_stats(sim.image)
    assert NormalizationStats.from_dict(stats.to_dict()) == stats


def test_errors():
    with pytest.raises(ValueError, match="2D"):
        normalization_stats(np.zeros((2, 8, 8)))
    with pytest.raises(TypeError, match="dtype"):
        normalization_stats(np.zeros((8, 8), dtype=bool))
    bad = np.ones((8, 8))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        normalization_stats(bad)
    with pytest.raises(TypeError, match="NormalizationStats"):
        apply_normalization(np.ones((4, 4)), {"background": 0})


def test_stats_of_a_lazy_image_read_only_the_sampled_windows():
    import dask.array as da

    computed = []

    def block(x, block_info=None):
        computed.append(block_info[None]["chunk-location"])
        rng = np.random.default_rng(len(computed))
        return rng.poisson(100, x.shape).astype(np.uint16)

    lazy = da.zeros((16384, 16384), dtype=np.uint16, chunks=512).map_blocks(block, dtype=np.uint16)
    stats = dsd.pp.normalization_stats(lazy)
    assert abs(stats.background - 100) < 2
    # 64 windows of 256 px straddle at most 4 blocks each: at most 256 of the 1024 blocks are read, never the whole
    assert 0 < len(set(computed)) <= 4 * 64
