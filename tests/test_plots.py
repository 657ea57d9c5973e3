import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from spatialdata import SpatialData
from spatialdata.models import Image2DModel, Labels2DModel, PointsModel

import deepspot_sd as dsd
from deepspot_sd._coords import pixel_centre_transformations

matplotlib.use("Agg")  # headless


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def sdata():
    rng = np.random.default_rng(0)
    image = rng.uniform(90, 110, size=(1, 48, 64)).astype(np.float32)
    spot_rc = np.array([[10, 20], [30, 40], [25, 12], [40, 50]])
    image[0, spot_rc[:, 0], spot_rc[:, 1]] = 250.0
    enhanced = image.copy()
    enhanced[0, spot_rc[:, 0], spot_rc[:, 1]] = 255.0
    cells = np.zeros((48, 64), dtype=np.int32)
    cells[4:44, 4:30] = 1
    cells[4:44, 34:60] = 2
    nuclei = np.zeros_like(cells)
    nuclei[20:28, 13:21] = 1
    nuclei[20:28, 43:51] = 2
    points = pd.DataFrame(
        {
            "x": spot_rc[:, 1].astype(float),
            "y": spot_rc[:, 0].astype(float),
            "gene": pd.Categorical(["actb"] * len(spot_rc)),
        }
    )
    sd = SpatialData(
        images={
            "raw": Image2DModel.parse(image, dims=("c", "y", "x"), c_coords=["actb"]),
            "raw_enhanced": Image2DModel.parse(enhanced, dims=("c", "y", "x"), c_coords=["actb"]),
        },
        labels={
            "cells": Labels2DModel.parse(cells, dims=("y", "x")),
            "nuclei": Labels2DModel.parse(nuclei, dims=("y", "x")),
        },
        points={
            "spots": PointsModel.parse(
                # pixel-index convention (x = col, y = row), like detect_spots output
                points,
                coordinates={"x": "x", "y": "y"},
                feature_key="gene",
                transformations=pixel_centre_transformations(None),
            )
        },
    )
    dsd.tl.assign_spots(sd, "spots", "cells", nuclei_key="nuclei")
    sd.tables["cells_spots"].obs["group"] = pd.Categorical(["migrating", "control"])
    dsd.tl.sector_enrichment(sd, "cells_spots", reference=180.0)
    dsd.tl.polarity_index(sd, "cells_spots", groupby="group")
    return sd


def test_raw_vs_enhanced(sdata, tmp_path):
    path = tmp_path / "rve.png"
    fig = dsd.pl.raw_vs_enhanced(sdata, "raw", "raw_enhanced", crop=(8, 4, 40, 36), save=path)
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    assert len(axes) == 2
    for ax in axes:
        assert ax.images[0].get_array().shape == (32, 32)
        # pixel centres on integer coordinates, y pointing down
        assert ax.images[0].get_extent() == [7.5, 39.5, 35.5, 3.5]
    # raw on the left, enhanced on the right, each the crop rows 4:36, columns 8:40 (the two differ at the spots)
    raw = sdata.images["raw"].data[0, 4:36, 8:40].compute()
    enhanced = sdata.images["raw_enhanced"].data[0, 4:36, 8:40].compute()
    assert not np.array_equal(raw, enhanced)
    np.testing.assert_array_equal(np.asarray(axes[0].images[0].get_array()), raw)
    np.testing.assert_array_equal(np.asarray(axes[1].images[0].get_array()), enhanced)
    assert path.exists() and path.stat().st_size > 0


def test_spots_are_drawn_on_their_pixels(sdata, tmp_path):
    path = tmp_path / "spots.pdf"
    ax = dsd.pl.spots(sdata, "raw", "spots", crop=(10, 5, 45, 35), channel="actb", save=path)
    assert isinstance(ax, Axes)
    assert path.exists()
    x0, x1, y1, y0 = ax.images[0].get_extent()
    arr = ax.images[0].get_array()
    offsets = ax.collections[0].get_offsets()
    # spots inside the crop: (x=20, y=10), (x=40, y=30), (x=12, y=25); (x=50, y=40) is outside
    np.testing.assert_array_equal(np.asarray(offsets), [[20, 10], [40, 30], [12, 25]])
    for x, y in np.asarray(offsets):
        # the image pixel whose centre is at (x, y) is the bright spot pixel
        col, row = int(x - (x0 + 0.5)), int(y - (y0 + 0.5))
        assert arr[row, col] == 250.0
    assert ax.get_xlim() == (9.5, 44.5)
    assert ax.get_ylim() == (34.5, 4.5)


def test_foreign_points_are_drawn_where_spatialdata_draws_them(sdata):
    # the same spots in spatialdata's convention: (j + 0.5, i + 0.5), no translation
    df = sdata.points["spots"].compute()[["x", "y"]] + 0.5
    sdata.points["foreign"] = PointsModel.parse(df, coordinates={"x": "x", "y": "y"})
    ax = dsd.pl.spots(sdata, "raw", "foreign", crop=(10, 5, 45, 35))
    np.testing.assert_allclose(np.asarray(ax.collections[0].get_offsets()), [[20, 10], [40, 30], [12, 25]])


def test_spots_color_by_and_existing_axes(sdata):
    fig, ax = plt.subplots()
    out = dsd.pl.spots(sdata, "raw", "spots", color_by="compartment", ax=ax)
    assert out is ax
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["nucleus", "cytoplasm", "none"]


def test_cell_sectors(sdata, tmp_path):
    path = tmp_path / "sectors.png"
    fig = dsd.pl.cell_sectors(sdata, "cells_spots", cell_ids=[2, 1], ncols=2, save=path)
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["cell 2", "cell 1"]
    # 3 sector borders per cell, and the counts shown as text
    counts = sdata.tables["cells_spots"].obsm["sector_counts"]
    assert len(visible[1].lines) == 3
    shown = sorted(t.get_text() for t in visible[1].texts if t.get_text())  # the arrow is an empty annotation
    assert shown == sorted(str(c) for c in counts[0])
    # the cytoplasmic spots of cell 1 are drawn at their x, y columns, on the imshow pixel grid
    dots = np.asarray(visible[1].collections[0].get_offsets())
    np.testing.assert_allclose(dots[np.lexsort(dots.T)], [[20, 10], [12, 25]])
    assert path.exists()
    fig = dsd.pl.cell_sectors(sdata, "cells_spots", max_cells=1)
    assert len([ax for ax in fig.get_axes() if ax.get_visible()]) == 1
    with pytest.raises(KeyError, match="not found"):
        dsd.pl.cell_sectors(sdata, "cells_spots", cell_ids=[5])


def test_polarity(sdata, tmp_path):
    path = tmp_path / "pi.svg"
    ax = dsd.pl.polarity(sdata, "cells_spots", save=path)
    assert isinstance(ax, Axes)
    res = sdata.tables["cells_spots"].uns["polarity_index"]
    bars = ax.patches
    assert len(bars) == len(res)
    np.testing.assert_allclose([b.get_height() for b in bars], res["boot_median"])
    assert [t.get_text() for t in ax.get_xticklabels()] == list(res.index)
    assert path.exists()


def test_plot_errors(sdata):
    with pytest.raises(KeyError, match="Available keys"):
        dsd.pl.spots(sdata, "rawx", "spots")
    with pytest.raises(KeyError, match="Available channels"):
        dsd.pl.spots(sdata, "raw", "spots", channel="gapdh")
    with pytest.raises(ValueError, match="does not overlap"):
        dsd.pl.raw_vs_enhanced(sdata, "raw", "raw_enhanced", crop=(100, 100, 200, 200))
    with pytest.raises(KeyError, match="polarity_index"):
        dsd.pl.polarity(sdata, "cells_spots", key="other")
    with pytest.raises(KeyError, match="sector_enrichment"):
        dsd.pl.cell_sectors(sdata, "cells_spots", key="other")
