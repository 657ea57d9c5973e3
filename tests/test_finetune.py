import os

import numpy as np
import pytest

import deepspot_sd as dsd

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


@pytest.fixture(scope="module")
def scene():
    return dsd.datasets.wound_healing((384, 384), cell_spacing_px=150, chunks=192, seed=2)


def test_calibrate_recovers_scene_microscope(scene):
    calib = dsd.models.calibrate(scene, "smfish")
    # the scene: camera gain 4 counts/photon, offset 100, PSF sigma 1.0-1.8 px, SNR 6-30
    lo, hi = calib.psf_sigma_range_px
    assert 0.8 <= lo <= hi <= 2.1
    assert calib.snr_range[1] > 10
    assert calib.n_reference_spots >= 20
    raw = scene.images["smfish"].data.compute()
    level = float(np.median(raw))
    # Poisson noise through a gain of 4: variance = 4 * (level - offset)
    assert calib.noise.std(level) == pytest.approx(np.sqrt(4.0 * (level - 100.0)), rel=0.35)
    assert len(calib.backgrounds) == 1
    kwargs = calib.simulation_kwargs((64, 64))
    sim = dsd.datasets.simulate_image(**kwargs, seed=0)
    assert sim.image.shape == (64, 64)
    # the calibrated simulation reproduces the scene's raw intensity level within a factor 1.5
    assert 1 / 1.5 < np.median(sim.image) / level < 1.5


def test_calibrate_errors(scene):
    with pytest.raises(KeyError, match="Available keys"):
        dsd.models.calibrate(scene, "nope")
    with pytest.raises(KeyError, match="Channel"):
        dsd.models.calibrate(scene, "smfish", channel="xyz")


def test_fine_tune_end_to_end_tiny_budget(scene, tmp_path):
    calib = dsd.models.calibrate(scene, "smfish")
    start = dsd.models.EnhancementModel.from_config(dsd.models.ModelConfig.compact(convs_per_level=1))
    start_weights = [np.array(w) for w in start.keras_model.trainable_weights]
    tuned = dsd.models.fine_tune(
        calib,
        model=start,
        output_dir=tmp_path,
        epochs=1,
        steps_per_epoch=1,
        batch_size=2,
        validation_images=2,
    )
    assert (tmp_path / "model" / "config.json").exists()
    assert (tmp_path / "checkpoints" / "history.csv").exists()
    # training happened: the trainable weights moved away from the starting model's (Adam moves each by ~lr); the
    # batch-norm statistics are left out, they move without any optimiser step
    tuned_weights = [np.array(w) for w in tuned.keras_model.trainable_weights]
    assert len(tuned_weights) == len(start_weights)
    assert max(np.abs(a - b).max() for a, b in zip(tuned_weights, start_weights, strict=True)) > 1e-6
    # and the written model folder holds the tuned weights
    reloaded = dsd.models.load_model(tmp_path / "model")
    for a, b in zip(reloaded.keras_model.get_weights(), tuned.keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # the result plugs into the pipeline
    dsd.tl.enhance(scene, "smfish", model=tuned, key_added="tuned", show_progress_bar=False)
    assert scene.images["tuned"].shape == scene.images["smfish"].shape
    # resuming the finished run does not train again and returns the same weights
    again = dsd.models.fine_tune(
        calib, model=start, output_dir=tmp_path, epochs=1, steps_per_epoch=1, batch_size=2, validation_images=2
    )
    for a, b in zip(tuned.keras_model.get_weights(), again.keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
