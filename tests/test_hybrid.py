import numpy as np
import pytest

import deepspot_sd as dsd


def _camera_image(seed=0, gain=3.0, offset=500.0, n_spots=40):
    sim = dsd.datasets.simulate_image((160, 160), n_spots=n_spots, snr_range=(8, 20), n_regions=2, seed=seed)
    rng = np.random.default_rng(seed)
    # a Poisson-Gaussian camera: photons * gain + offset + read noise
    clean = sim.background + dsd.datasets.render_spots(sim.image.shape, sim.spots, sim.heights, sim.sigmas)
    raw = offset + gain * rng.poisson(clean) + rng.normal(0, 4.0, size=clean.shape)
    return raw, sim


def test_noise_model_recovers_gain():
    raw, _ = _camera_image(n_spots=0)
    model = dsd.datasets.estimate_noise_model(raw)
    assert model.gain == pytest.approx(3.0, rel=0.25)
    std = model.std(500 + 3 * 100)
    assert std == pytest.approx(np.sqrt(3.0 * 3.0 * 100 + 16), rel=0.2)


def test_noise_model_of_a_low_count_integer_image():
    # about one count of noise: the plain MAD of integer differences would be stuck at whole steps
    rng = np.random.default_rng(0)
    level = np.linspace(0.5, 2.5, 192)[None, :] * np.ones((192, 1))
    raw = rng.poisson(level).astype(np.uint8)
    model = dsd.datasets.estimate_noise_model(raw)
    for mean in (1.0, 2.0):
        assert model.std(mean) == pytest.approx(np.sqrt(mean + 1.0 / 12.0), rel=0.15)


def test_suppress_spots_removes_spots_and_keeps_background():
    raw, sim = _camera_image()
    background, mask, _ = dsd.datasets.suppress_spots(raw, spot_sigma_px=1.5)
    centres = np.floor(sim.spots + 0.5).astype(int)
    assert mask[centres[:, 0], centres[:, 1]].mean() > 0.9
    # spot peaks are gone: the excess over the true background at the centres shrinks to noise level
    true_bg = 500 + 3 * sim.background
    excess_before = (raw - true_bg)[centres[:, 0], centres[:, 1]]
    excess_after = (background - true_bg)[centres[:, 0], centres[:, 1]]
    assert np.median(excess_after) < 0.2 * np.median(excess_before)
    # untouched pixels are unchanged
    np.testing.assert_allclose(background[~mask], raw[~mask], rtol=1e-6)


def test_hybrid_image_has_known_spots_on_real_background():
    raw, _ = _camera_image(n_spots=0)
    background, _, noise = dsd.datasets.suppress_spots(raw)
    hyb = dsd.datasets.hybrid_image(background, noise, shape=(96, 96), n_spots=25, snr_range=(10, 20), seed=1)
    assert hyb.image.shape == (96, 96)
    assert hyb.spots.shape == (25, 2)
    r0, c0 = hyb.params["crop_origin"]
    crop = background[r0 : r0 + 96, c0 : c0 + 96]
    centres = np.floor(hyb.spots + 0.5).astype(int)
    lift = (hyb.image - crop)[centres[:, 0], centres[:, 1]]
    assert np.median(lift / hyb.noise_std) > 5
    again = dsd.datasets.hybrid_image(background, noise, shape=(96, 96), n_spots=25, snr_range=(10, 20), seed=1)
    np.testing.assert_array_equal(hyb.image, again.image)


def test_hybrid_image_crop_too_large_raises():
    with pytest.raises(ValueError, match="smaller than the requested crop"):
        dsd.datasets.hybrid_image(np.ones((50, 50)), dsd.datasets.NoiseModel(1.0, 0.0, 1.0), shape=(64, 64))


def test_hybrid_image_extra_noise_lowers_the_recorded_snr():
    raw, _ = _camera_image(n_spots=0)
    background, _, noise = dsd.datasets.suppress_spots(raw)
    kwargs = {"shape": (128, 128), "n_spots": 0, "seed": 3}
    plain = dsd.datasets.hybrid_image(background, noise, **kwargs)
    noisier = dsd.datasets.hybrid_image(background, noise, extra_noise=1.0, **kwargs)
    assert noisier.params["crop_origin"] == plain.params["crop_origin"]
    added = noisier.image.astype(np.float64) - plain.image
    expected = noise.std(plain.background)
    assert np.std(added / expected) == pytest.approx(1.0, rel=0.05)
    # spot heights are set against the total noise
    assert noisier.noise_std == pytest.approx(np.sqrt(2.0) * plain.noise_std)
    with pytest.raises(ValueError, match="extra_noise"):
        dsd.datasets.hybrid_image(background, noise, extra_noise=-0.5, **kwargs)
