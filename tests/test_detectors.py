import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial import cKDTree

import deepspot_sd as dsd
from deepspot_sd._detection import (
    b3_wavelet_coefficients,
    combine_wavelet_statistics,
    wavelet_halo_px,
    wavelet_statistics,
    wavelet_thresholds,
)
from deepspot_sd.datasets import render_spots, stamp_target

DETECTORS = {
    "wavelet": lambda img: dsd.tl.find_spots_wavelet(img, sensitivities={2: 100.0}),
    "local_max": lambda img: dsd.tl.find_spots_local_max(img, threshold=150.0),
    "log": lambda img: dsd.tl.find_spots_log(img, sigma=1.2, threshold=20.0),
}


def _gaussian_image(seed=0, shape=(128, 128), sigma=1.2):
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(16, 128, 24), np.arange(16, 128, 24), indexing="ij"), -1).reshape(-1, 2)
    spots = grid + rng.uniform(-0.5, 0.5, grid.shape)
    clean = 100.0 + render_spots(shape, spots, np.full(len(spots), 100.0), np.full(len(spots), sigma))
    return (clean + rng.normal(0.0, 2.0, shape)).astype(np.float32), spots


def _stamp_image(seed=0, shape=(512, 512), n=60):
    """Stamps on a noisy, textured background, like an ideal enhanced image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    bg = 110 + 10 * np.sin(yy / 37.0) * np.cos(xx / 23.0) + rng.normal(0, 4, shape)
    spots = rng.uniform(3, np.array(shape) - 4, size=(n, 2)).round()
    return stamp_target(bg, spots), spots


# ---------------------------------------------------------------------------------------------------------------------
# all detectors
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(DETECTORS))
def test_gaussian_spots_subpixel(name):
    img, spots = _gaussian_image()
    found = DETECTORS[name](img)
    assert found.dtype == np.float64 and found.shape == (len(spots), 2)
    dist, idx = cKDTree(found).query(spots)
    assert len(set(idx)) == len(spots)
    assert dist.max() < 0.3


@pytest.mark.parametrize("name", list(DETECTORS))
@pytest.mark.parametrize("value", [100.0, 0.1, 7])
def test_constant_image_no_spots(name, value):
    img = np.full((140, 140), value, dtype=np.float64 if isinstance(value, float) else np.uint16)
    found = DETECTORS[name](img)
    assert found.shape == (0, 2) and found.dtype == np.float64


@pytest.mark.parametrize("name", list(DETECTORS))
def test_invalid_image(name):
    with pytest.raises(ValueError, match="2D"):
        DETECTORS[name](np.zeros((2, 64, 64)))
    with pytest.raises(ValueError, match="NaN"):
        DETECTORS[name](np.full((64, 64), np.nan))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_clean_stamps_exact(dtype):
    spots = np.array([[10, 10], [20, 20], [20, 22], [40, 5], [0, 30], [63, 63]], dtype=float)
    img = stamp_target(np.full((64, 64), 100.0), spots).astype(dtype)
    found = dsd.tl.find_spots_local_max(img, threshold=240)
    assert_array_equal(found, spots[np.lexsort((spots[:, 1], spots[:, 0]))])


# ---------------------------------------------------------------------------------------------------------------------
# local maxima
# ---------------------------------------------------------------------------------------------------------------------
def test_local_max_plateau_one_peak():
    img = np.zeros((9, 9))
    img[4, 3:5] = 10.0  # two-pixel plateau
    found = dsd.tl.find_spots_local_max(img, threshold=5.0)
    assert_allclose(found, [[4.0, 3.5]])
    # a plateau next to a higher pixel is not a peak
    img[4, 5] = 11.0
    assert_allclose(dsd.tl.find_spots_local_max(img, threshold=5.0), [[4.0, 5.0 - 10.0 / 21.0]])


def test_local_max_threshold_inclusive_and_min_distance():
    spots = np.array([[20.0, 20.0], [20.0, 22.0]])
    img = stamp_target(np.full((40, 40), 100.0), spots)
    img[20, 22] = 250.0  # the second stamp is dimmer
    assert len(dsd.tl.find_spots_local_max(img, threshold=250.0)) == 2
    assert len(dsd.tl.find_spots_local_max(img, threshold=250.5)) == 1
    kept = dsd.tl.find_spots_local_max(img, threshold=240.0, min_distance=2)
    assert_allclose(kept[:, 0], [20.0])
    assert kept[0, 1] < 21.0  # the brighter stamp wins


def test_local_max_exclude_border():
    spots = np.array([[0.0, 10.0], [10.0, 10.0], [19.0, 1.0]])
    img = stamp_target(np.full((20, 20), 100.0), spots)
    assert len(dsd.tl.find_spots_local_max(img, threshold=240.0)) == 3
    assert_allclose(dsd.tl.find_spots_local_max(img, threshold=240.0, exclude_border=True), [[10.0, 10.0]])
    with pytest.raises(ValueError, match="min_distance"):
        dsd.tl.find_spots_local_max(img, threshold=240.0, min_distance=0)
    with pytest.raises(TypeError, match="threshold"):
        dsd.tl.find_spots_local_max(img, threshold="high")


# ---------------------------------------------------------------------------------------------------------------------
# wavelet transform
# ---------------------------------------------------------------------------------------------------------------------
def _naive_b3(image, scale):
    """Direct à trous smoothing with explicit symmetric-periodic indexing (reference)."""
    kernel = np.array([1, 4, 6, 4, 1]) / 16.0
    a = image.astype(np.float64)
    for s in range(1, scale + 1):
        step = 2 ** (s - 1)
        for axis in (0, 1):
            n = a.shape[axis]
            out = np.zeros_like(a)
            for k, w in zip(range(-2, 3), kernel, strict=True):
                idx = (np.arange(n) + k * step) % (2 * n)
                idx = np.where(idx >= n, 2 * n - 1 - idx, idx)
                out += w * np.take(a, idx, axis=axis)
            a = out
        if s == scale - 1:
            prev = a.copy()
    return (image.astype(np.float64) if scale == 1 else prev) - a


@pytest.mark.parametrize("shape", [(7, 5), (32, 40), (3, 1)])
def test_b3_coefficients_match_reference_any_size(shape):
    img = np.random.default_rng(3).normal(100, 10, shape)
    coeffs = b3_wavelet_coefficients(img, scales=(1, 2, 3, 4))
    for s in (1, 2, 3, 4):
        assert_allclose(coeffs[s], _naive_b3(img, s), atol=1e-10)
    assert wavelet_halo_px((3, 7)) == 254


def test_wavelet_too_small_for_scale():
    img, _ = _gaussian_image()  # 128 x 128 = 4**7 pixels: scale 7 is undefined
    with pytest.raises(ValueError, match="scale 7"):
        dsd.tl.find_spots_wavelet(img)
    with pytest.raises(ValueError, match="at least one"):
        dsd.tl.find_spots_wavelet(img, sensitivities={})
    with pytest.raises(ValueError, match="sensitivities"):
        dsd.tl.find_spots_wavelet(img, sensitivities={2: 0.0})


def _tiles(shape, core, halo):
    for r in range(0, shape[0], core):
        for c in range(0, shape[1], core):
            rows, cols = slice(r, min(r + core, shape[0])), slice(c, min(c + core, shape[1]))
            yield rows, cols, (slice(r, rows.stop + 2 * halo), slice(c, cols.stop + 2 * halo))


def test_wavelet_statistics_from_tiles_equal_whole():
    img, _ = _stamp_image(shape=(400, 360))
    scales = (3, 7)
    halo = wavelet_halo_px(scales)
    padded = np.pad(img, halo, mode="symmetric")  # the whole image's own border rule
    tiles = list(_tiles(img.shape, 200, halo))
    whole = wavelet_statistics(img, scales=scales)

    def core(rows, cols):
        return (slice(halo, halo + rows.stop - rows.start), slice(halo, halo + cols.stop - cols.start))

    pass1 = combine_wavelet_statistics(
        wavelet_statistics(padded[win], scales=scales, region=core(r, c)) for r, c, win in tiles
    )
    with pytest.raises(ValueError, match="pass 2"):
        _ = pass1.mads
    pass2 = combine_wavelet_statistics(
        wavelet_statistics(padded[win], scales=scales, region=core(r, c), center=pass1.means) for r, c, win in tiles
    )
    assert pass2.n_pixels == img.size
    for s in scales:
        assert_allclose(pass2.means[s], whole.means[s], rtol=1e-9, atol=1e-12)
        assert_allclose(pass2.mads[s], whole.mads[s], rtol=1e-9)
    sens = {3: 20.0, 7: 100.0}
    assert_allclose(
        list(wavelet_thresholds(pass2, sensitivities=sens).values()),
        list(wavelet_thresholds(whole, sensitivities=sens).values()),
        rtol=1e-9,
    )


def test_wavelet_tiles_equal_whole_with_thresholds():
    img, spots = _stamp_image(seed=1)
    sens = {2: 100.0, 3: 50.0}
    whole = dsd.tl.find_spots_wavelet(img, sensitivities=sens)
    dist, _ = cKDTree(whole).query(spots)
    assert len(whole) == len(spots) and dist.max() < 0.2  # stamps found at their centres
    thr = wavelet_thresholds(wavelet_statistics(img, scales=sens), sensitivities=sens)
    halo = wavelet_halo_px(sens) + 10  # + room for a spot's extent
    padded = np.pad(img, halo, mode="symmetric")
    found = []
    for rows, cols, win in _tiles(img.shape, 200, halo):
        local = dsd.tl.find_spots_wavelet(padded[win], thresholds=thr) + (rows.start - halo, cols.start - halo)
        inside = (local[:, 0] >= rows.start - 0.5) & (local[:, 0] < rows.stop - 0.5)
        inside &= (local[:, 1] >= cols.start - 0.5) & (local[:, 1] < cols.stop - 0.5)
        found.append(local[inside])
    tiled = np.concatenate(found)
    tiled = tiled[np.lexsort((tiled[:, 1], tiled[:, 0]))]
    assert_allclose(tiled, whole, atol=1e-9)
    # without the shared thresholds, a tile thresholds on its own statistics, which are not the image's
    tile = padded[: 200 + 2 * halo, : 200 + 2 * halo]
    own_thr = wavelet_thresholds(wavelet_statistics(tile, scales=sens), sensitivities=sens)
    assert all(abs(own_thr[s] / thr[s] - 1.0) > 0.1 for s in sens)
    assert_allclose(
        dsd.tl.find_spots_wavelet(tile, sensitivities=sens), dsd.tl.find_spots_wavelet(tile, thresholds=own_thr)
    )
    # and the thresholds passed are the ones applied (the stamps here clear both sets, so raise them past all)
    assert len(dsd.tl.find_spots_wavelet(tile, thresholds=dict.fromkeys(sens, 1e6))) == 0


def test_wavelet_thresholds_mapping_types():
    img, _ = _stamp_image(shape=(140, 140), n=10)
    with pytest.raises(TypeError, match="thresholds"):
        dsd.tl.find_spots_wavelet(img, thresholds=[1.0])
    with pytest.raises(ValueError, match="finite"):
        dsd.tl.find_spots_wavelet(img, thresholds={2: np.nan})
    assert dsd.tl.find_spots_wavelet(img, thresholds={2: 1e9}).shape == (0, 2)
