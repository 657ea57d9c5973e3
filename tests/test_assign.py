import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from spatialdata import SpatialData
from spatialdata.models import Labels2DModel, PointsModel
from spatialdata.transformations import Identity, Scale, get_transformation

import deepspot_sd as dsd
from deepspot_sd._coords import pixel_centre_transformations

# spots in the pixel-index convention (x = col, y = row of the pixel they are centred on), like detect_spots output
INDEX = pixel_centre_transformations(None)


def _hand_made(chunks=None):
    """Cell 1: 40x40 square with a centred 10x10 nucleus; cell 7: a 6x6 square without spots or nucleus."""
    cells = np.zeros((60, 60), dtype=np.int32)
    cells[10:50, 10:50] = 1
    cells[52:58, 2:8] = 7
    nuclei = np.zeros_like(cells)
    nuclei[25:35, 25:35] = 3  # nucleus ids need not match cell ids
    spots = pd.DataFrame(
        {
            # cytoplasm, cytoplasm, nucleus, background, outside the image, rounds into the cell, rounds out
            "x": [12.0, 45.2, 30.0, 55.0, -3.0, 9.6, 9.4],
            "y": [12.0, 40.7, 31.0, 5.0, 20.0, 20.0, 20.0],
            "gene": pd.Categorical(["a", "b", "a", "a", "b", "b", "a"], categories=["a", "b", "c"]),
        }
    )
    kw = {} if chunks is None else {"chunks": chunks}
    return SpatialData(
        labels={
            "cells": Labels2DModel.parse(cells, dims=("y", "x"), **kw),
            "nuclei": Labels2DModel.parse(nuclei, dims=("y", "x"), **kw),
        },
        points={
            "spots": PointsModel.parse(
                spots, coordinates={"x": "x", "y": "y"}, feature_key="gene", transformations=INDEX
            )
        },
    )


def test_hand_made_counts_and_columns():
    sdata = _hand_made()
    dsd.tl.assign_spots(sdata, "spots", "cells", nuclei_key="nuclei")
    points = sdata.points["spots"].compute()
    np.testing.assert_array_equal(points["cell_id"], [1, 1, 1, 0, 0, 1, 0])
    assert list(points["compartment"]) == ["cytoplasm", "cytoplasm", "nucleus", "none", "none", "cytoplasm", "none"]
    assert points["gene"].dtype == "category"
    assert get_transformation(sdata.points["spots"], get_all=True).keys() == {"global"}

    table = sdata.tables["cells_spots"]
    assert table.uns["spatialdata_attrs"] == {"region": "cells", "region_key": "region", "instance_key": "cell_id"}
    assert list(table.obs_names) == ["1", "7"]
    assert list(table.var_names) == ["a", "b", "c"]
    np.testing.assert_array_equal(table.X.toarray(), [[2, 2, 0], [0, 0, 0]])
    np.testing.assert_array_equal(table.layers["nucleus"].toarray(), [[1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(table.layers["cytoplasm"].toarray(), [[1, 2, 0], [0, 0, 0]])
    obs = table.obs
    np.testing.assert_array_equal(obs["cell_id"], [1, 7])
    np.testing.assert_array_equal(obs["area_px"], [1600, 36])
    np.testing.assert_array_equal(obs["nucleus_area_px"], [100, 0])
    np.testing.assert_array_equal(obs["cytoplasm_area_px"], [1500, 36])
    np.testing.assert_array_equal(obs["n_spots"], [4, 0])
    np.testing.assert_array_equal(obs["n_spots_cytoplasm"], [3, 0])
    np.testing.assert_array_equal(obs["n_spots_nucleus"], [1, 0])
    np.testing.assert_allclose(table.obsm["spatial"], [[29.5, 29.5], [4.5, 54.5]])
    # cell 7 has no nucleus: its nucleus centroid is its centroid
    np.testing.assert_allclose(table.obsm["nucleus_centroid"], [[29.5, 29.5], [4.5, 54.5]])
    np.testing.assert_array_equal(table.obsm["bbox"], [[10, 10, 49, 49], [2, 52, 7, 57]])
    assert table.uns["assign_spots"] == {
        "points_key": "spots",
        "labels_key": "cells",
        "nuclei_key": "nuclei",
        "feature_key": "gene",
    }


def test_points_provenance_is_kept():
    sdata = _hand_made()
    sdata.points["spots"].attrs["deepspot_sd"] = {"function": "detect_spots", "n_spots": 7}
    dsd.tl.assign_spots(sdata, "spots", "cells")
    assert sdata.points["spots"].attrs["deepspot_sd"] == {"function": "detect_spots", "n_spots": 7}


def test_table_key_clash_raises_before_writing():
    sdata = _hand_made()
    with pytest.raises(ValueError, match="already names an element"):
        dsd.tl.assign_spots(sdata, "spots", "cells", table_key="nuclei")
    assert "cell_id" not in sdata.points["spots"].columns


def test_boolean_mask_is_one_cell():
    sdata = _hand_made()
    mask = sdata.labels["cells"].data.compute() == 1
    sdata.labels["mask"] = Labels2DModel.parse(mask, dims=("y", "x"))
    dsd.tl.assign_spots(sdata, "spots", "mask")
    np.testing.assert_array_equal(sdata.tables["mask_spots"].obs["n_spots"], [4])


def test_multiscale_labels_use_full_resolution():
    sdata = _hand_made()
    cells = sdata.labels["cells"].data.compute()
    sdata.labels["pyramid"] = Labels2DModel.parse(cells, dims=("y", "x"), scale_factors=[2], chunks=16)
    dsd.tl.assign_spots(sdata, "spots", "pyramid")
    np.testing.assert_array_equal(sdata.tables["pyramid_spots"].obs["area_px"], [1600, 36])
    np.testing.assert_array_equal(sdata.tables["pyramid_spots"].obs["n_spots"], [4, 0])


def test_without_nuclei_and_without_feature():
    sdata = _hand_made()
    dsd.tl.assign_spots(sdata, "spots", "cells", feature_key=None, table_key="t")
    table = sdata.tables["t"]
    assert list(table.var_names) == ["spots"]
    np.testing.assert_array_equal(table.X.toarray().ravel(), [4, 0])
    np.testing.assert_array_equal(table.obs["n_spots_cytoplasm"], [4, 0])
    np.testing.assert_array_equal(table.obs["nucleus_area_px"], [0, 0])
    np.testing.assert_allclose(table.obsm["nucleus_centroid"], table.obsm["spatial"])
    assert "nucleus" not in table.layers
    assert set(sdata.points["spots"]["compartment"].compute()) == {"cytoplasm", "none"}


def _random_scene(seed=0, shape=(150, 230), n_cells=12, n_spots=400, id_scale=1):
    """Voronoi cells clipped to discs, elliptic-ish nuclei, uniform random spots (two genes)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform([10, 10], [shape[0] - 10, shape[1] - 10], size=(n_cells, 2))
    yy, xx = np.indices(shape)
    d = np.hypot(yy[..., None] - centres[:, 0], xx[..., None] - centres[:, 1])
    owner = d.argmin(-1)
    dist = d.min(-1)
    cells = np.where(dist < 30, owner + 1, 0).astype(np.int64) * id_scale
    nuclei = np.where(dist < 8, owner + 1, 0).astype(np.int64) * id_scale
    spots = pd.DataFrame(
        {
            "x": rng.uniform(-2, shape[1] + 1, n_spots),
            "y": rng.uniform(-2, shape[0] + 1, n_spots),
            "gene": pd.Categorical(rng.choice(["g1", "g2"], n_spots)),
        }
    )
    return cells, nuclei, spots


def _sdata_from(cells, nuclei, spots, chunks):
    return SpatialData(
        labels={
            "cells": Labels2DModel.parse(cells, dims=("y", "x"), chunks=chunks),
            "nuclei": Labels2DModel.parse(nuclei, dims=("y", "x"), chunks=chunks),
        },
        points={
            "spots": PointsModel.parse(
                spots.copy(), coordinates={"x": "x", "y": "y"}, feature_key="gene", transformations=INDEX
            )
        },
    )


def test_chunked_equals_single_chunk_and_brute_force():
    cells, nuclei, spots = _random_scene()
    one = _sdata_from(cells, nuclei, spots, chunks=cells.shape)
    many = _sdata_from(cells, nuclei, spots, chunks=(40, 64))
    assert many.labels["cells"].data.numblocks == (4, 4)
    for sdata in (one, many):
        dsd.tl.assign_spots(sdata, "spots", "cells", nuclei_key="nuclei")
    a, b = one.tables["cells_spots"], many.tables["cells_spots"]
    pd.testing.assert_frame_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.X.toarray(), b.X.toarray())
    for key in ("spatial", "nucleus_centroid", "bbox"):
        np.testing.assert_allclose(a.obsm[key], b.obsm[key])
    pa, pb = one.points["spots"].compute(), many.points["spots"].compute()
    pd.testing.assert_frame_equal(pa, pb)

    # brute force on the whole arrays
    ids = np.unique(cells[cells > 0])
    np.testing.assert_array_equal(a.obs["cell_id"], ids)
    np.testing.assert_array_equal(a.obs["area_px"], ndimage.sum_labels(np.ones_like(cells), cells, ids))
    com = np.array(ndimage.center_of_mass(np.ones_like(cells), cells, ids))
    np.testing.assert_allclose(a.obsm["spatial"], com[:, ::-1])
    nuc_com = np.array(ndimage.center_of_mass(nuclei > 0, cells, ids))
    np.testing.assert_allclose(a.obsm["nucleus_centroid"], nuc_com[:, ::-1])
    r = np.floor(spots["y"].to_numpy() + 0.5).astype(int)
    c = np.floor(spots["x"].to_numpy() + 0.5).astype(int)
    inside = (r >= 0) & (r < cells.shape[0]) & (c >= 0) & (c < cells.shape[1])
    expected = np.zeros(len(spots), dtype=np.int64)
    expected[inside] = cells[r[inside], c[inside]]
    np.testing.assert_array_equal(pa["cell_id"], expected)
    # per-cell counts, brute force: every cell's spots counted one cell at a time
    brute = np.array([(expected == cell).sum() for cell in ids])
    assert brute.min() < brute.max() and brute.sum() > 0  # the scene has cells with different counts
    np.testing.assert_array_equal(a.obs["n_spots"].to_numpy(), brute)


def test_large_sparse_label_ids():
    cells, nuclei, spots = _random_scene(seed=1)
    base = _sdata_from(cells, nuclei, spots, chunks=(64, 64))
    big = _sdata_from(cells, nuclei, spots, chunks=(64, 64))
    big.labels["cells"] = Labels2DModel.parse(cells * 1_000_003, dims=("y", "x"), chunks=(64, 64))
    for sdata in (base, big):
        dsd.tl.assign_spots(sdata, "spots", "cells", nuclei_key="nuclei")
    a, b = base.tables["cells_spots"], big.tables["cells_spots"]
    np.testing.assert_array_equal(b.obs["cell_id"], a.obs["cell_id"] * 1_000_003)
    np.testing.assert_array_equal(a.obs["n_spots"], b.obs["n_spots"])
    np.testing.assert_allclose(a.obsm["nucleus_centroid"], b.obsm["nucleus_centroid"])


def test_points_in_other_units_are_mapped_to_the_label_grid():
    sdata = _hand_made()
    spots = sdata.points["spots"].compute()
    # the same spots in micrometres (0.5 um per pixel) in spatialdata's convention (pixel (i, j) centred on
    # ((j + 0.5) / 2, (i + 0.5) / 2) um), with a scale to the shared "global" system
    um = spots.assign(x=(spots["x"] + 0.5) * 0.5, y=(spots["y"] + 0.5) * 0.5)
    sdata.points["spots_um"] = PointsModel.parse(
        um, coordinates={"x": "x", "y": "y"}, feature_key="gene", transformations={"global": Scale([2, 2], ("x", "y"))}
    )
    dsd.tl.assign_spots(sdata, "spots", "cells", nuclei_key="nuclei")
    dsd.tl.assign_spots(sdata, "spots_um", "cells", nuclei_key="nuclei")
    np.testing.assert_array_equal(sdata.tables["cells_spots"].X.toarray(), sdata.tables["cells_spots_um"].X.toarray())
    # original coordinates and transformation are kept
    out = sdata.points["spots_um"].compute()
    np.testing.assert_allclose(out["x"], um["x"])
    assert isinstance(get_transformation(sdata.points["spots_um"]), Scale)


def test_foreign_points_in_spatialdata_convention():
    """Points without the half-pixel translation, at spatialdata's pixel centres, land on their pixels."""
    cells, _, _ = _random_scene(seed=3, shape=(40, 50))
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 40, 200), rng.integers(0, 50, 200)
    # at (j + 0.5, i + 0.5) plus up to +-0.49 px: all inside the area where spatialdata draws pixel (i, j)
    jitter = rng.uniform(-0.49, 0.49, (2, 200))
    foreign = pd.DataFrame({"x": cols + 0.5 + jitter[0], "y": rows + 0.5 + jitter[1]})
    sdata = SpatialData(
        labels={"cells": Labels2DModel.parse(cells, dims=("y", "x"), chunks=(16, 16))},
        points={"spots": PointsModel.parse(foreign, coordinates={"x": "x", "y": "y"})},
    )
    assert isinstance(get_transformation(sdata.points["spots"]), Identity)
    dsd.tl.assign_spots(sdata, "spots", "cells", feature_key=None)
    np.testing.assert_array_equal(sdata.points["spots"]["cell_id"].compute(), cells[rows, cols])
    # the pixel edges: (j, i) is the top-left corner of pixel (i, j), (j + 1, i + 1) belongs to pixel (i + 1, j + 1)
    edges = pd.DataFrame({"x": [0.0, 10.0, 49.999, 50.0, -1e-9], "y": [0.0, 20.0, 39.999, 0.0, 5.0]})
    sdata.points["edges"] = PointsModel.parse(edges, coordinates={"x": "x", "y": "y"})
    points, _ = dsd.tl.assign_spots(sdata, "edges", "cells", feature_key=None, inplace=False)
    expected = [cells[0, 0], cells[20, 10], cells[39, 49], 0, 0]  # the last two lie outside the image
    np.testing.assert_array_equal(points["cell_id"].compute(), expected)


def test_no_shared_coordinate_system_raises():
    sdata = _hand_made()
    spots = sdata.points["spots"].compute()
    sdata.points["other"] = PointsModel.parse(
        spots, coordinates={"x": "x", "y": "y"}, feature_key="gene", transformations={"microscope": Identity()}
    )
    with pytest.raises(ValueError, match="share no coordinate system"):
        dsd.tl.assign_spots(sdata, "other", "cells")


def test_bad_inputs():
    sdata = _hand_made()
    with pytest.raises(KeyError, match="Available keys"):
        dsd.tl.assign_spots(sdata, "spots", "cell")
    with pytest.raises(KeyError, match="feature_key=None"):
        dsd.tl.assign_spots(sdata, "spots", "cells", feature_key="target")
    sdata.labels["small"] = Labels2DModel.parse(np.zeros((30, 30), dtype=np.int32), dims=("y", "x"))
    with pytest.raises(ValueError, match="same shape"):
        dsd.tl.assign_spots(sdata, "spots", "cells", nuclei_key="small")
    with pytest.raises(TypeError, match="should be a"):
        dsd.tl.assign_spots(sdata, 3, "cells")
    assert "cells_spots" not in sdata.tables
    assert "cell_id" not in sdata.points["spots"].columns


def test_not_inplace_leaves_sdata_unchanged():
    sdata = _hand_made()
    points, table = dsd.tl.assign_spots(sdata, "spots", "cells", nuclei_key="nuclei", inplace=False)
    assert "cell_id" in points.columns
    assert table.n_obs == 2
    assert len(sdata.tables) == 0
    assert "cell_id" not in sdata.points["spots"].columns


def test_backed_sdata_is_written(tmp_path):
    from spatialdata import read_zarr

    sdata = _hand_made()
    sdata.write(tmp_path / "scene.zarr")
    sdata = read_zarr(tmp_path / "scene.zarr")
    dsd.tl.assign_spots(sdata, "spots", "cells", nuclei_key="nuclei")
    back = read_zarr(tmp_path / "scene.zarr")
    np.testing.assert_array_equal(back.tables["cells_spots"].obs["n_spots"], [4, 0])
    assert list(back.points["spots"]["compartment"].compute())[:3] == ["cytoplasm", "cytoplasm", "nucleus"]
    # the downstream steps work on the re-read object and update the store too
    dsd.tl.sector_enrichment(back, "cells_spots", reference=180.0)
    dsd.tl.polarity_index(back, "cells_spots")
    table = read_zarr(tmp_path / "scene.zarr", selection=("tables",)).tables["cells_spots"]
    np.testing.assert_array_equal(table.obsm["sector_counts"], back.tables["cells_spots"].obsm["sector_counts"])
    assert table.uns["polarity_index"].loc["all", "n_cells"] == 1


def test_table_works_with_squidpy():
    sq = pytest.importorskip("squidpy")
    cells, nuclei, spots = _random_scene(seed=2)
    sdata = _sdata_from(cells, nuclei, spots, chunks=(64, 64))
    dsd.tl.assign_spots(sdata, "spots", "cells", nuclei_key="nuclei")
    adata = sdata.tables["cells_spots"]
    sq.gr.spatial_neighbors(adata, coord_type="generic", n_neighs=3)
    conn = adata.obsp["spatial_connectivities"]
    assert conn.shape == (adata.n_obs, adata.n_obs)
    # each cell's 3 neighbours are its 3 nearest centroids
    xy = adata.obsm["spatial"]
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).T).T
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :3]
    for i in range(adata.n_obs):
        assert set(nearest[i]) <= set(conn[i].indices) | set(conn[:, i].nonzero()[0])
