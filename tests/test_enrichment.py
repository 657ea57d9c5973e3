import anndata as ad
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, box
from spatialdata import SpatialData
from spatialdata.models import Labels2DModel, PointsModel, ShapesModel, TableModel

import deepspot_sd as dsd
from deepspot_sd._coords import pixel_centre_transformations

# Cell 1: square rows/cols 2..60 (59 x 59 px) centred on pixel (31, 31), nucleus rows/cols 27..35 (9 x 9 px);
# cell 2: a small square without spots. Angles: atan2(dy, dx) in pixel coordinates, y pointing down.
CENTRE = 31.0
SPOTS = pd.DataFrame(
    {
        "x": [10, 12, 12, 8, 14, 6, 45, 50, 45, 31, 30, 62.2],
        "y": [31, 25, 37, 31, 29, 34, 10, 15, 50, 31, 32, 62.1],
    },
    dtype=float,
)
# with the reference to the left (180 deg) and 3 sectors: 6 spots in S0 [120, 240), 2 in S1 [240, 360)
# (up-right on screen), 1 in S2 [0, 120) (down-right), 2 in the nucleus, 1 outside any cell
LEFT_COUNTS = [6, 2, 1]


def _scene(chunks=None, genes=None):
    cells = np.zeros((64, 64), dtype=np.int32)
    cells[2:61, 2:61] = 1
    cells[61:64, 0:3] = 2
    nuclei = np.zeros_like(cells)
    nuclei[27:36, 27:36] = 1
    spots = SPOTS.copy()
    spots["gene"] = pd.Categorical(genes if genes is not None else ["actb"] * len(spots))
    kw = {} if chunks is None else {"chunks": chunks}
    sdata = SpatialData(
        labels={
            "cells": Labels2DModel.parse(cells, dims=("y", "x"), **kw),
            "nuclei": Labels2DModel.parse(nuclei, dims=("y", "x"), **kw),
        },
        points={
            "spots": PointsModel.parse(
                # pixel-index convention (x = col, y = row), like detect_spots output
                spots,
                coordinates={"x": "x", "y": "y"},
                feature_key="gene",
                transformations=pixel_centre_transformations(None),
            )
        },
        shapes={"wound": ShapesModel.parse(gpd.GeoDataFrame(geometry=[box(-20, 0, -10, 64)]))},
    )
    dsd.tl.assign_spots(sdata, "spots", "cells", nuclei_key="nuclei")
    return sdata


def _expected_areas(reference_deg, n_sectors):
    """Brute-force cytoplasm pixel counts per sector of cell 1 (independent formulation via angle differences)."""
    yy, xx = np.mgrid[2:61, 2:61]
    cyto = ~((yy >= 27) & (yy <= 35) & (xx >= 27) & (xx <= 35))
    theta = np.degrees(np.arctan2(yy[cyto] - CENTRE, xx[cyto] - CENTRE))
    width = 360.0 / n_sectors
    diff = (theta - reference_deg + width / 2) % 360.0
    return np.array([np.sum((diff >= k * width) & (diff < (k + 1) * width)) for k in range(n_sectors)])


def test_square_cell_exact_counts_and_relative_densities():
    sdata = _scene()
    dsd.tl.sector_enrichment(sdata, "cells_spots", reference=(-100.0, CENTRE))
    table = sdata.tables["cells_spots"]
    # cell 2 (rows 61..63, cols 0..2) is centred on (x, y) = (1, 62)
    angle2 = np.degrees(np.arctan2(CENTRE - 62.0, -100.0 - 1.0)) % 360
    np.testing.assert_allclose(table.obs["sector_reference_angle"], [180.0, angle2])
    counts = table.obsm["sector_counts"]
    np.testing.assert_array_equal(counts[0], LEFT_COUNTS)
    area = table.obsm["sector_area_px"]
    np.testing.assert_array_equal(area[0], _expected_areas(180.0, 3))
    assert area[0].sum() == 59 * 59 - 81 == table.obs["cytoplasm_area_px"].iloc[0]
    density = np.array(LEFT_COUNTS) / area[0]
    np.testing.assert_allclose(table.obsm["sector_density"][0], density)
    np.testing.assert_allclose(table.obsm["sector_relative_density"][0], density / (9 / area[0].sum()))
    # the empty cell is present: zero counts, an area, undefined relative density
    np.testing.assert_array_equal(counts[1], [0, 0, 0])
    assert area[1].sum() == 9
    assert np.isnan(table.obsm["sector_relative_density"][1]).all()
    assert table.uns["sector_params"]["n_sectors"] == 3


def test_reference_kinds_agree():
    """A far point on the left, the angle 180 and the wound polygon on the left give the same sectors."""
    sdata = _scene()
    results = []
    for ref in ((-1e6, CENTRE), 180.0, "wound", LineString([(-5, -100), (-5, 200)])):
        out = dsd.tl.sector_enrichment(sdata, "cells_spots", reference=ref, inplace=False)
        results.append(out.obsm["sector_counts"][0])
        np.testing.assert_allclose(out.obs["sector_reference_angle"].iloc[0], 180.0, atol=1e-4)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    assert "sector_counts" not in sdata.tables["cells_spots"].obsm  # inplace=False left the table alone


def test_left_vs_right_swaps_sectors():
    sdata = _scene()
    left = dsd.tl.sector_enrichment(sdata, "cells_spots", reference=180.0, n_sectors=2, inplace=False)
    right = dsd.tl.sector_enrichment(sdata, "cells_spots", reference=0.0, n_sectors=2, inplace=False)
    np.testing.assert_array_equal(left.obsm["sector_counts"][0], [6, 3])
    np.testing.assert_array_equal(right.obsm["sector_counts"][0], [3, 6])
    np.testing.assert_array_equal(left.obsm["sector_area_px"][0], right.obsm["sector_area_px"][0][::-1])
    np.testing.assert_allclose(left.obsm["sector_relative_density"][0], right.obsm["sector_relative_density"][0][::-1])
    # 3 sectors, reference to the right: S0 [-60, 60) gets the 3 right-hand spots (-56.3, -40.1, 53.6 degrees);
    # of the 6 left-hand ones, those at 162.5 and 173.1 degrees fall in S1 [60, 180), the other 4 in S2
    right3 = dsd.tl.sector_enrichment(sdata, "cells_spots", reference=(1e6, CENTRE), inplace=False)
    np.testing.assert_array_equal(right3.obsm["sector_counts"][0], [3, 2, 4])
    np.testing.assert_array_equal(right3.obsm["sector_area_px"][0], _expected_areas(0.0, 3))


def test_rotating_the_reference_rotates_sectors():
    sdata = _scene()
    a = dsd.tl.sector_enrichment(sdata, "cells_spots", reference=180.0, n_sectors=4, inplace=False)
    b = dsd.tl.sector_enrichment(sdata, "cells_spots", reference=270.0, n_sectors=4, inplace=False)
    # sectors are ordered by increasing angle: S1 of the 180-degree reference is S0 of the 270-degree one
    np.testing.assert_array_equal(np.roll(a.obsm["sector_counts"][0], -1), b.obsm["sector_counts"][0])
    np.testing.assert_array_equal(a.obsm["sector_area_px"][0], _expected_areas(180.0, 4))
    np.testing.assert_array_equal(b.obsm["sector_area_px"][0], _expected_areas(270.0, 4))


def test_nuclear_spots_excluded_and_gene_selection():
    genes = ["actb"] * 6 + ["gapdh"] * 6
    sdata = _scene(genes=genes)
    out = dsd.tl.sector_enrichment(sdata, "cells_spots", reference=180.0, genes="actb", inplace=False)
    np.testing.assert_array_equal(out.obsm["sector_counts"][0], [6, 0, 0])
    out = dsd.tl.sector_enrichment(sdata, "cells_spots", reference=180.0, genes=["gapdh"], inplace=False)
    # gapdh: 2 up-right, 1 down-right, 2 nuclear (excluded), 1 outside the cell (excluded)
    np.testing.assert_array_equal(out.obsm["sector_counts"][0], [0, 2, 1])


def test_points_in_spatialdata_convention_give_the_same_sectors():
    """Foreign points at spatialdata's pixel centres (no translation) are the same spots as ours."""
    ours = _scene()
    foreign = _scene()
    shifted = SPOTS.assign(x=SPOTS["x"] + 0.5, y=SPOTS["y"] + 0.5, gene=pd.Categorical(["actb"] * len(SPOTS)))
    foreign.points["spots"] = PointsModel.parse(shifted, coordinates={"x": "x", "y": "y"}, feature_key="gene")
    dsd.tl.assign_spots(foreign, "spots", "cells", nuclei_key="nuclei")
    for ref in (180.0, (1e6, CENTRE), "wound"):
        a = dsd.tl.sector_enrichment(ours, "cells_spots", reference=ref, inplace=False)
        b = dsd.tl.sector_enrichment(foreign, "cells_spots", reference=ref, inplace=False)
        np.testing.assert_array_equal(a.obsm["sector_counts"], b.obsm["sector_counts"])
    np.testing.assert_array_equal(b.obsm["sector_counts"][0], LEFT_COUNTS)  # the wound is on the left


def test_chunked_equals_single_chunk():
    one = _scene()
    many = _scene(chunks=(16, 24))
    assert many.labels["cells"].data.numblocks == (4, 3)
    for sdata in (one, many):
        dsd.tl.sector_enrichment(sdata, "cells_spots", reference="wound")
    for key in ("sector_counts", "sector_area_px", "sector_density", "sector_relative_density"):
        np.testing.assert_array_equal(one.tables["cells_spots"].obsm[key], many.tables["cells_spots"].obsm[key])


def test_sector_errors():
    sdata = _scene()
    with pytest.raises(KeyError, match="Available keys"):
        dsd.tl.sector_enrichment(sdata, "cells_spot", reference=0.0)
    with pytest.raises(KeyError, match="Available keys"):
        dsd.tl.sector_enrichment(sdata, "cells_spots", reference="wounds")
    with pytest.raises(ValueError, match="at least 2"):
        dsd.tl.sector_enrichment(sdata, "cells_spots", reference=0.0, n_sectors=1)
    with pytest.raises(TypeError, match="reference"):
        dsd.tl.sector_enrichment(sdata, "cells_spots", reference=[1.0, 2.0, 3.0])
    with pytest.warns(UserWarning, match="undefined"):
        out = dsd.tl.sector_enrichment(sdata, "cells_spots", reference=box(0, 0, 64, 64), inplace=False)
    assert np.isnan(out.obs["sector_reference_angle"]).all()
    assert np.isnan(out.obsm["sector_relative_density"]).all()
    sdata.tables["plain"] = TableModel.parse(ad.AnnData(obs=pd.DataFrame(index=["a"])))
    with pytest.raises(KeyError, match="assign_spots"):
        dsd.tl.sector_enrichment(sdata, "plain", reference=0.0)


# ---------------------------------------------------------------------------------------------------------------
# polarity index
# ---------------------------------------------------------------------------------------------------------------
def _table_sdata(rel, groups=None):
    adata = ad.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(len(rel))]))
    adata.obsm["sector_relative_density"] = np.asarray(rel, dtype=float)
    if groups is not None:
        adata.obs["group"] = pd.Categorical(groups)
    return SpatialData(tables={"t": TableModel.parse(adata)})


def test_polarity_all_enriched_is_one():
    sdata = _table_sdata([[1.6, 0.8, 0.7]] * 50)
    res = dsd.tl.polarity_index(sdata, "t", inplace=False)
    row = res.loc["all"]
    assert row["n_cells"] == 50
    assert row["pi"] == 1.0
    assert row["boot_median"] == 1.0
    assert row["boot_std"] == 0.0
    # other sectors are depleted: PI of sector 1 is -1
    assert dsd.tl.polarity_index(sdata, "t", sector=1, inplace=False).loc["all", "pi"] == -1.0


def test_polarity_balanced_population_and_bootstrap_spread():
    n = 400
    rel = np.array([[1.2, 0.9, 0.9], [0.8, 1.1, 1.1]] * (n // 2))
    sdata = _table_sdata(rel)
    res = dsd.tl.polarity_index(sdata, "t", n_boot=2000, seed=1, inplace=False).loc["all"]
    assert res["pi"] == 0.0
    assert abs(res["boot_median"]) <= 0.02
    # resampled PI = 2 * Binomial(n, 1/2) / n - 1 has standard deviation 1 / sqrt(n) = 0.05
    assert 0.045 < res["boot_std"] < 0.055
    assert res["boot_low"] < 0 < res["boot_high"]
    again = dsd.tl.polarity_index(sdata, "t", n_boot=2000, seed=1, inplace=False).loc["all"]
    assert again["boot_std"] == res["boot_std"]


def test_polarity_versus_rest_or_max_groups_and_nan():
    rel = [
        [1.2, 1.3, 0.5],  # denser than the rest of the cell, not than sector 1
        [1.5, 0.7, 0.8],  # polarized either way
        [0.9, 1.0, 1.1],  # not polarized
        [np.nan, np.nan, np.nan],  # no cytoplasmic spot: left out
    ]
    sdata = _table_sdata(rel, groups=["a", "a", "b", "b"])
    rest = dsd.tl.polarity_index(sdata, "t", groupby="group", inplace=False)
    assert list(rest.index) == ["a", "b"]
    np.testing.assert_array_equal(rest["n_cells"], [2, 1])
    np.testing.assert_array_equal(rest["pi"], [1.0, -1.0])
    strict = dsd.tl.polarity_index(sdata, "t", groupby="group", versus="max", inplace=False)
    np.testing.assert_array_equal(strict["pi"], [0.0, -1.0])
    dsd.tl.polarity_index(sdata, "t", groupby="group")
    pd.testing.assert_frame_equal(sdata.tables["t"].uns["polarity_index"], rest)


def test_polarity_errors():
    sdata = _table_sdata([[1.0, 1.0, 1.0]])
    with pytest.raises(KeyError, match="sector_enrichment"):
        dsd.tl.polarity_index(sdata, "t", key="other")
    with pytest.raises(ValueError, match="sector"):
        dsd.tl.polarity_index(sdata, "t", sector=3)
    with pytest.raises(ValueError, match="versus"):
        dsd.tl.polarity_index(sdata, "t", versus="mean")
    with pytest.raises(KeyError, match="Available keys"):
        dsd.tl.polarity_index(sdata, "t", groupby="condition")


# ---------------------------------------------------------------------------------------------------------------
# the simulated wound-healing scene
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wound_scene():
    sdata = dsd.datasets.wound_healing((640, 640), cell_spacing_px=100, chunks=256, seed=0)
    dsd.tl.assign_spots(sdata, "true_spots", "cells", nuclei_key="nuclei")
    return sdata


def test_scene_counts_match_truth(wound_scene):
    table = wound_scene.tables["cells_true_spots"]
    truth = wound_scene.tables["cell_truth"].obs.set_index("cell_id")
    np.testing.assert_array_equal(table.obs["cell_id"], truth.index)
    np.testing.assert_array_equal(table.obs["n_spots"], truth["n_spots_true"])
    np.testing.assert_array_equal(table.obs["n_spots_cytoplasm"], truth["n_spots_cytoplasm_true"])
    # nuclei are ellipses centred on the cell centres of the layout
    layout = dsd.datasets.wound_healing_layout((640, 640), cell_spacing_px=100, seed=0)
    np.testing.assert_allclose(table.obsm["nucleus_centroid"], layout.centres[:, ::-1], atol=0.3)


def test_scene_polarity_separates_groups(wound_scene):
    table = wound_scene.tables["cells_true_spots"]
    table.obs["group"] = wound_scene.tables["cell_truth"].obs["group"].to_numpy()
    dsd.tl.sector_enrichment(wound_scene, "cells_true_spots", reference="wound")
    # the wound is the band along the left edge: every cell faces 180 degrees
    np.testing.assert_allclose(table.obs["sector_reference_angle"], 180.0)
    dsd.tl.polarity_index(wound_scene, "cells_true_spots", groupby="group", n_boot=200)
    res = table.uns["polarity_index"]
    mig, ctl = res.loc["migrating"], res.loc["control"]
    assert mig["n_cells"] >= 10 and ctl["n_cells"] >= 10
    assert mig["pi"] > 0.6
    assert abs(ctl["pi"]) < 0.5
    assert mig["boot_low"] > ctl["boot_high"]
