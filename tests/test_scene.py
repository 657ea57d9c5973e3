import numpy as np
import pandas as pd
import pytest
import spatialdata as sd
from scipy import ndimage
from spatialdata.transformations import Translation, get_transformation

import deepspot_sd as dsd


@pytest.fixture(scope="module")
def scene():
    return dsd.datasets.wound_healing((600, 640), cell_spacing_px=150, chunks=256, seed=3)


def test_scene_elements(scene):
    assert set(scene.images) == {"smfish"}
    assert set(scene.labels) == {"cells", "nuclei"}
    assert set(scene.points) == {"true_spots"}
    assert set(scene.shapes) == {"wound"}
    assert set(scene.tables) == {"cell_truth"}
    image = scene.images["smfish"]
    assert image.dims == ("c", "y", "x")
    assert image.dtype == np.uint16
    assert image.data.chunksize == (1, 256, 256)


def test_scene_truth_is_consistent(scene):
    points = scene.points["true_spots"].compute()
    cells = scene.labels["cells"].data.compute()
    nuclei = scene.labels["nuclei"].data.compute()
    rows = np.floor(points["y"].to_numpy() + 0.5).astype(int)
    cols = np.floor(points["x"].to_numpy() + 0.5).astype(int)
    # every true spot lies in its own cell, and in its nucleus exactly when flagged
    np.testing.assert_array_equal(cells[rows, cols], points["cell_id"].to_numpy())
    np.testing.assert_array_equal(nuclei[rows, cols] > 0, points["in_nucleus"].to_numpy())
    # in spatialdata's "global" system (pixel (i, j) drawn over [j, j + 1) x [i, i + 1), identity labels) too
    assert get_transformation(scene.points["true_spots"], get_all=True) == {
        "global": Translation([0.5, 0.5], axes=("x", "y"))
    }
    assert get_transformation(scene.shapes["wound"], get_all=True) == {
        "global": Translation([0.5, 0.5], axes=("x", "y"))
    }
    glob = sd.transform(scene.points["true_spots"], to_coordinate_system="global").compute()
    grow, gcol = np.floor(glob["y"].to_numpy()).astype(int), np.floor(glob["x"].to_numpy()).astype(int)
    np.testing.assert_array_equal(cells[grow, gcol], points["cell_id"].to_numpy())
    np.testing.assert_array_equal(nuclei[grow, gcol] > 0, points["in_nucleus"].to_numpy())
    # and dsd.tl.assign_spots agrees exactly
    assigned = dsd.tl.assign_spots(scene, "true_spots", "cells", nuclei_key="nuclei", inplace=False)[0].compute()
    np.testing.assert_array_equal(assigned["cell_id"].to_numpy(), points["cell_id"].to_numpy())
    np.testing.assert_array_equal(assigned["compartment"] == "nucleus", points["in_nucleus"].to_numpy())
    # nuclei are inside their cells with the same label
    assert np.all(cells[nuclei > 0] == nuclei[nuclei > 0])
    obs = scene.tables["cell_truth"].obs
    assert obs["n_spots_true"].sum() == len(points)
    assert set(obs["group"]) == {"migrating", "control"}
    # the wound band has no cells
    wound_right = scene.shapes["wound"].geometry.iloc[0].bounds[2]
    assert cells[:, : int(wound_right)].max() == 0


def test_scene_does_not_depend_on_chunks():
    a = dsd.datasets.wound_healing((400, 400), cell_spacing_px=150, chunks=128, seed=1)
    b = dsd.datasets.wound_healing((400, 400), cell_spacing_px=150, chunks=400, seed=1)
    np.testing.assert_array_equal(a.labels["cells"].data.compute(), b.labels["cells"].data.compute())
    # noise differs per chunk layout, the noise-free parts do not: compare smoothed images (Gaussian, sigma 4 px).
    # Measured: mean |diff| 2.8, max 17 grey levels (image mean 422); texture restarting at each chunk: mean 29;
    # spots cut at chunk borders: max 63.
    ia = ndimage.gaussian_filter(a.images["smfish"].data.compute()[0].astype(float), 4.0)
    ib = ndimage.gaussian_filter(b.images["smfish"].data.compute()[0].astype(float), 4.0)
    diff = np.abs(ia - ib)
    assert diff.mean() < 0.01 * ia.mean()
    assert diff.max() < 0.07 * ia.mean()
    pd.testing.assert_frame_equal(a.points["true_spots"].compute(), b.points["true_spots"].compute())


def test_migrating_cells_are_enriched_toward_wound(scene):
    points = scene.points["true_spots"].compute()
    obs = scene.tables["cell_truth"].obs.set_index("cell_id")
    layout = dsd.datasets.wound_healing_layout((600, 640), cell_spacing_px=150, seed=3)
    centre = layout.centres[points["cell_id"].to_numpy() - 1]
    angle = np.arctan2(points["y"] - centre[:, 0], points["x"] - centre[:, 1])
    toward = np.abs(np.angle(np.exp(1j * (angle - np.pi)))) <= np.pi / 3
    cyto = ~points["in_nucleus"].to_numpy()
    group = obs.loc[points["cell_id"], "group"].to_numpy()
    frac_mig = toward[cyto & (group == "migrating")].mean()
    frac_ctl = toward[cyto & (group == "control")].mean()
    assert frac_mig > 0.5
    assert 0.2 < frac_ctl < 0.45


def test_scene_too_small_raises():
    with pytest.raises(ValueError, match="at least"):
        dsd.datasets.wound_healing((100, 100))
