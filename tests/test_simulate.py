import numpy as np
import pytest

import deepspot_sd as dsd
from deepspot_sd.datasets import STAMP


@pytest.mark.parametrize("family", ["fixed", "variable", "hybrid"])
@pytest.mark.parametrize("n_spots", [0, 20, 137])
def test_spot_count_equals_request(family, n_spots):
    sim = dsd.datasets.simulate_image((96, 80), n_spots=n_spots, family=family, seed=1)
    assert sim.image.shape == (96, 80)
    assert sim.spots.shape == (n_spots, 2)
    assert len(sim.snr) == len(sim.heights) == len(sim.sigmas) == n_spots
    if n_spots:
        assert sim.spots.min() >= 0
        assert np.all(sim.spots <= np.array([95, 79]))


def test_dense_images_with_touching_spots():
    sim = dsd.datasets.simulate_image((256, 256), n_spots=450, cluster_fraction=0.3, seed=3)
    assert len(sim.spots) == 450
    from scipy.spatial import cKDTree

    nearest = cKDTree(sim.spots).query(sim.spots, k=2)[0][:, 1]
    assert nearest.min() >= 2.0 - 1e-9
    assert np.sum(nearest < 4.0) > 20  # touching spots exist


def test_same_seed_same_image_different_seed_differs():
    a = dsd.datasets.simulate_image((64, 64), n_spots=20, seed=7)
    b = dsd.datasets.simulate_image((64, 64), n_spots=20, seed=7)
    c = dsd.datasets.simulate_image((64, 64), n_spots=20, seed=8)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.spots, b.spots)
    assert not np.array_equal(a.image, c.image)


def test_generator_seed_is_used():
    rng = np.random.default_rng(5)
    a = dsd.datasets.simulate_image((64, 64), n_spots=5, seed=rng)
    b = dsd.datasets.simulate_image((64, 64), n_spots=5, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(a.image, b.image)


@pytest.mark.parametrize("snr_range", [(3.0, 5.0), (10.0, 40.0)])
def test_measured_snr_lies_in_requested_range(snr_range):
    sim = dsd.datasets.simulate_image(
        (256, 256), n_spots=60, family="hybrid", snr_range=snr_range, min_spot_distance_px=15, seed=2
    )
    assert np.all((sim.snr >= snr_range[0]) & (sim.snr <= snr_range[1]))
    # measure: the noise std from the background residual, the height at each spot's brightest pixel
    spot_free = dsd.datasets.render_spots(sim.image.shape, sim.spots, np.ones(60), sim.sigmas) < 1e-3
    residual = (sim.image - sim.background)[spot_free]
    noise = residual.std()
    assert noise == pytest.approx(sim.noise_std, rel=0.15)
    clean = dsd.datasets.render_spots(sim.image.shape, sim.spots, sim.heights, sim.sigmas)
    measured = []
    for row, col in sim.spots:
        r, c = int(np.floor(row + 0.5)), int(np.floor(col + 0.5))
        window = (slice(max(r - 1, 0), r + 2), slice(max(c - 1, 0), c + 2))
        peak = np.unravel_index(np.argmax(clean[window]), clean[window].shape)
        rr, cc = window[0].start + peak[0], window[1].start + peak[1]
        measured.append((sim.image[rr, cc] - sim.background[rr, cc]) / noise)
    measured = np.asarray(measured)
    # single-pixel measurements carry noise of 1 std (plus Poisson noise of the spot itself)
    assert snr_range[0] - 1.5 <= np.median(measured) <= snr_range[1] + 1.5
    assert np.mean(measured) == pytest.approx(np.mean(sim.snr), abs=1.0 + 0.05 * np.mean(sim.snr))


def test_background_mean_in_range():
    for seed in range(5):
        sim = dsd.datasets.simulate_image((128, 128), n_spots=0, background_mean_range=(80, 150), seed=seed)
        assert 80 - 3 <= sim.image.mean() <= 150 + 3
        assert sim.params["background_mean"] == pytest.approx(sim.background.mean(), abs=1.0)


def test_target_equals_input_except_stamps():
    sim = dsd.datasets.simulate_image((64, 64), n_spots=15, min_spot_distance_px=5, seed=4)
    centres = np.floor(sim.spots + 0.5).astype(int)
    stamped = np.zeros(sim.image.shape, bool)
    for r, c in centres:
        stamped[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = True
    np.testing.assert_array_equal(sim.target[~stamped], sim.image[~stamped])
    np.testing.assert_array_equal(sim.target[centres[:, 0], centres[:, 1]], 255.0)
    interior = [(r, c) for r, c in centres if 1 <= r < 63 and 1 <= c < 63]
    r, c = interior[0]
    np.testing.assert_array_equal(sim.target[r - 1 : r + 2, c - 1 : c + 2], STAMP)


def test_target_cap_limits_non_spot_pixels_only():
    sim = dsd.datasets.simulate_image(
        (128, 128), n_spots=10, n_blobs=5, blob_snr_range=(20, 30), target_cap=150, seed=0
    )
    centres = np.floor(sim.spots + 0.5).astype(int)
    assert sim.target.max() == 255.0
    mask = np.ones(sim.image.shape, bool)
    for r, c in centres:
        mask[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = False
    assert sim.target[mask].max() <= 150.0
    assert sim.image.max() > 200  # the blobs are really bright in the input


def test_camera_model_is_affine():
    a = dsd.datasets.simulate_image((64, 64), n_spots=10, seed=9)
    b = dsd.datasets.simulate_image((64, 64), n_spots=10, seed=9, camera_gain=4.0, camera_offset=1000.0)
    np.testing.assert_allclose(b.image, 1000.0 + 4.0 * a.image, rtol=1e-6)
    np.testing.assert_array_equal(a.target, b.target)


def test_fixed_family_has_one_peak_intensity():
    sim = dsd.datasets.simulate_image(
        (128, 128), n_spots=30, family="fixed", background_mean_range=(100, 100), texture_std_range=(0, 0), seed=11
    )
    peaks = sim.heights + 100.0
    assert np.ptp(peaks) < 1e-3
    assert 160 <= peaks[0] <= 220


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"family": "bogus"}, "family"),
        ({"shape": (4, 64)}, "at least 8"),
        ({"snr_range": (40, 10)}, "low <= high"),
        ({"n_spots": 5000, "shape": (32, 32)}, "Could not place"),
        ({"n_spots": -1}, "n_spots"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dsd.datasets.simulate_image(**{"shape": (64, 64), **kwargs})
