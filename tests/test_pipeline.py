"""End-to-end checks of the shipped model inside the SpatialData pipeline (issues 6 and 7)."""

import os

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")

import numpy as np
import pytest

import deepspot_sd as dsd


@pytest.fixture(scope="module")
def model():
    return dsd.models.load_pretrained()


@pytest.fixture(scope="module")
def analysed_scene(model):
    sdata = dsd.datasets.wound_healing((1024, 1024), cell_spacing_px=120, chunks=512, seed=5)
    dsd.tl.enhance(sdata, "smfish", model=model, show_progress_bar=False)
    dsd.tl.detect_spots(sdata, "smfish_enhanced", key_added="spots", show_progress_bar=False)
    dsd.tl.assign_spots(sdata, "spots", "cells", nuclei_key="nuclei", table_key="cells_spots")
    table = sdata.tables["cells_spots"]
    truth = sdata.tables["cell_truth"].obs.set_index("cell_id")
    table.obs["group"] = truth.loc[table.obs["cell_id"].to_numpy(), "group"].astype(str).to_numpy()
    dsd.tl.sector_enrichment(sdata, "cells_spots", reference="wound")
    dsd.tl.polarity_index(sdata, "cells_spots", groupby="group")
    return sdata


def test_pipeline_spots_match_truth(analysed_scene):
    found = analysed_scene.points["spots"].compute()[["y", "x"]].to_numpy()
    true = analysed_scene.points["true_spots"].compute()[["y", "x"]].to_numpy()
    scores = dsd.metrics.match_kdtree(true, found, radius=3.0)
    assert scores.f1 > 0.9


def test_pipeline_per_cell_counts_match_truth(analysed_scene):
    obs = analysed_scene.tables["cells_spots"].obs
    truth = analysed_scene.tables["cell_truth"].obs.set_index("cell_id")
    true_counts = truth.loc[obs["cell_id"].to_numpy(), "n_spots_true"].to_numpy()
    relative_error = np.abs(obs["n_spots"].to_numpy() - true_counts) / np.maximum(true_counts, 1)
    assert np.median(relative_error) < 0.1
    assert np.corrcoef(obs["n_spots"].to_numpy(), true_counts)[0, 1] > 0.9


def test_pipeline_polarity_separates_migrating_from_control(analysed_scene):
    pi = analysed_scene.tables["cells_spots"].uns["polarity_index"]
    migrating, control = pi.loc["migrating"], pi.loc["control"]
    assert migrating["pi"] > 0.5
    assert abs(control["pi"]) < 0.4
    # bootstrap intervals separate the groups
    assert migrating["boot_median"] - 2 * migrating["boot_std"] > control["boot_median"] + 2 * control["boot_std"]


@pytest.mark.parametrize("seed", [0, 1])
def test_bright_non_spot_structures_give_few_false_spots(model, seed):
    # 1 MPix of background with nuclei-like regions, bright debris and haze, and no spot at all
    sim = dsd.datasets.simulate_image(
        (1024, 1024), n_spots=0, n_blobs=40, blob_snr_range=(5, 60), n_regions=6, haze_fraction=0.5, seed=seed
    )
    enhanced = model.enhance_array(sim.image)
    spots = dsd.tl.find_spots_local_max(enhanced, threshold=model.config.threshold)
    assert len(spots) <= 5  # false spots per megapixel


def test_background_only_gives_almost_no_spots(model):
    sim = dsd.datasets.simulate_image((1024, 1024), n_spots=0, camera_gain=4.0, camera_offset=500.0, seed=3)
    enhanced = model.enhance_array(np.round(sim.image).astype(np.uint16))
    spots = dsd.tl.find_spots_local_max(enhanced, threshold=model.config.threshold)
    assert len(spots) <= 2


@pytest.mark.parametrize("level", [130.0, 160.0, 190.0])
def test_bright_flat_region_gives_no_spot_lattice(model, level):
    # a transposed-convolution decoder turned flat bright regions into an 8-px grid of false spots
    rng = np.random.default_rng(0)
    image = np.full((512, 512), 100.0)
    image[128:384, 128:384] = level
    image += rng.normal(0.0, 3.0, image.shape)
    enhanced = model.enhance_array(image.astype(np.float32))
    spots = dsd.tl.find_spots_local_max(enhanced, threshold=model.config.threshold)
    assert len(spots) <= 6  # the square's 4 sharp corners may respond; a lattice would give ~1000 spots
