"""Public options a user relies on, each checked against a value it must change."""

import os

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shutil
from importlib.resources import files
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import spatialdata as sd
import tifffile
from spatialdata import SpatialData
from spatialdata.models import Image2DModel, PointsModel, TableModel
from spatialdata.transformations import Scale, get_transformation

import deepspot_sd as dsd
from deepspot_sd.models import EnhancementModel, ModelConfig
from deepspot_sd.pp import apply_normalization, normalization_stats

TINY = ModelConfig(filters=(4, 8), bottleneck_filters=8, convs_per_level=1, tile_size=64, overlap=16, name="tiny")


@pytest.fixture(scope="module")
def sim():
    return dsd.datasets.simulate_image((96, 96), n_spots=25, snr_range=(8.0, 20.0), seed=5)


def _sdata(image, **kwargs):
    return SpatialData(images={"img": Image2DModel.parse(np.asarray(image)[None], dims=("c", "y", "x"), **kwargs)})


def _values(sdata, key):
    return sdata.images[key].data.compute()


# --------------------------------------------------------------------------------- enhance(model=<name or folder>)
def test_enhance_model_by_name_and_by_folder(sim, tmp_path):
    sdata = _sdata(sim.image)
    kw = {"show_progress_bar": False}
    dsd.tl.enhance(sdata, "img", key_added="default", **kw)
    dsd.tl.enhance(sdata, "img", model="deepspot_v1", key_added="by_name", **kw)
    shipped = tmp_path / "shipped_copy"
    shutil.copytree(Path(str(files("deepspot_sd.models") / "deepspot_v1")), shipped)
    dsd.tl.enhance(sdata, "img", model=shipped, key_added="by_folder", **kw)
    # a folder of another model (an untrained tiny U-Net: identity on the normalised image) is that model
    tiny_dir = tmp_path / "tiny"
    tiny_dir.mkdir()
    tiny = EnhancementModel.from_config(TINY)
    TINY.to_json(tiny_dir / "config.json")
    tiny.keras_model.save_weights(str(tiny_dir / "tiny.weights.h5"))
    dsd.tl.enhance(sdata, "img", model=str(tiny_dir), key_added="by_own_folder", **kw)

    default = _values(sdata, "default")
    np.testing.assert_array_equal(_values(sdata, "by_name"), default)
    np.testing.assert_array_equal(_values(sdata, "by_folder"), default)
    own = _values(sdata, "by_own_folder")
    assert np.abs(own - default).max() > 10.0  # not the shipped model
    expected = dsd.tl.enhance_array(sim.image, tiny)
    np.testing.assert_allclose(own[0], expected, atol=1e-3)
    with pytest.raises(KeyError, match="neither a shipped model nor a model folder"):
        dsd.tl.enhance(sdata, "img", model=str(tmp_path / "missing"), key_added="x", **kw)


# --------------------------------------------------------------------------------- detect_spots(raw_image_key=)
def test_detect_spots_raw_image_key(sim):
    sdata = _sdata(sim.image.astype(np.float32))
    sdata.images["img_x3"] = Image2DModel.parse(3.0 * sim.image.astype(np.float32)[None], dims=("c", "y", "x"))
    dsd.tl.enhance(sdata, "img", show_progress_bar=False)
    kw = {"min_amplitude": None}
    dsd.tl.detect_spots(sdata, "img_enhanced", key_added="from_source", **kw)
    dsd.tl.detect_spots(sdata, "img_enhanced", key_added="from_x3", raw_image_key="img_x3", **kw)
    a, b = sdata.points["from_source"].compute(), sdata.points["from_x3"].compute()
    assert len(a) > 10
    np.testing.assert_array_equal(a[["y", "x"]].to_numpy(), b[["y", "x"]].to_numpy())  # same detections
    # the raw columns come from the image named: three times the source image's
    for column in ("intensity_raw", "background", "amplitude"):
        np.testing.assert_allclose(b[column].to_numpy(), 3.0 * a[column].to_numpy(), rtol=1e-5)
    # and at each spot, intensity_raw is the raw pixel there
    rows = np.floor(a["y"].to_numpy() + 0.5).astype(int)
    cols = np.floor(a["x"].to_numpy() + 0.5).astype(int)
    np.testing.assert_allclose(a["intensity_raw"].to_numpy(), sim.image[rows, cols], rtol=1e-5)


# --------------------------------------------------------------------------------- pp.normalize(scale=, key_added=)
def test_normalize_scale_and_key_added(sim):
    image = np.tile(sim.image, (2, 2))  # 192 x 192: level 1 is 96 x 96
    sdata = _sdata(image, scale_factors=[2])
    config = dsd.models.load_pretrained().config
    dsd.pp.normalize(sdata, "img", scale=1, key_added="level1", show_progress_bar=False)
    assert "level1" in sdata.images and "img_normalized" not in sdata.images
    level1 = sd.get_pyramid_levels(sdata.images["img"], n=1)
    out = sdata.images["level1"]
    assert out.shape == level1.shape == (1, 96, 96)
    raw1 = level1.data.compute()[0]
    expected = apply_normalization(raw1, normalization_stats(raw1, **config.normalization_kwargs))
    np.testing.assert_allclose(out.data.compute()[0], expected, rtol=1e-6, atol=1e-4)
    # the level's transformation: its pixels are twice the size of the full-resolution ones
    matrix = get_transformation(out, "global").to_affine_matrix(("y", "x"), ("y", "x"))
    np.testing.assert_allclose(np.diag(matrix)[:2], [2.0, 2.0])
    by_name = dsd.pp.normalize(sdata, "img", scale="scale1", inplace=False)
    np.testing.assert_array_equal(by_name.data.compute(), out.data.compute())
    full = dsd.pp.normalize(sdata, "img", inplace=False)
    assert full.shape == (1, 192, 192)


# --------------------------------------------------------------------------------- io.read_tiff(scale_um=<float>)
def test_read_tiff_scale_um_float(tmp_path):
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, np.arange(40 * 50, dtype=np.uint16).reshape(40, 50))
    img = next(iter(dsd.io.read_tiff(path, scale_um=0.25).images.values()))
    t = get_transformation(img, "global")
    assert isinstance(t, Scale)
    pts = PointsModel.parse(pd.DataFrame({"x": [8.0], "y": [4.0]}), transformations={"global": t})
    out = sd.transform(pts, to_coordinate_system="global").compute()
    np.testing.assert_allclose(out[["x", "y"]].to_numpy(), [[2.0, 1.0]])  # both axes 0.25 um per pixel


# --------------------------------------------------------------------------------- polarity_index(ci=)
def test_polarity_index_ci():
    n = 400
    rel = np.array([[1.2, 0.9, 0.9], [0.8, 1.1, 1.1]] * (n // 2))
    adata = ad.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(n)]))
    adata.obsm["sector_relative_density"] = rel
    sdata = SpatialData(tables={"t": TableModel.parse(adata)})
    kw = {"n_boot": 2000, "seed": 1, "inplace": False}
    wide = dsd.tl.polarity_index(sdata, "t", ci=0.95, **kw).loc["all"]
    narrow = dsd.tl.polarity_index(sdata, "t", ci=0.5, **kw).loc["all"]
    # resampled PI ~ Normal(0, 0.05): half-widths 1.96 x 0.05 = 0.098 (95 %) and 0.674 x 0.05 = 0.034 (50 %)
    for row, half in ((wide, 0.098), (narrow, 0.034)):
        assert row["boot_low"] == pytest.approx(-half, abs=0.015)
        assert row["boot_high"] == pytest.approx(half, abs=0.015)
    assert wide["boot_std"] == narrow["boot_std"]  # the same resamples, only the interval changes


# --------------------------------------------------------------------------------- models.load_real_backgrounds
def test_load_real_backgrounds(tmp_path):
    a = dsd.datasets.simulate_image((128, 128), n_spots=30, snr_range=(15.0, 30.0), seed=1)
    b = dsd.datasets.simulate_image((96, 160), n_spots=10, snr_range=(15.0, 30.0), seed=2)
    paths = []
    for name, s in (("a", a), ("b", b)):
        paths.append(tmp_path / f"{name}.tif")
        tifffile.imwrite(paths[-1], np.clip(np.round(s.image), 0, 65535).astype(np.uint16))
    backgrounds = dsd.models.load_real_backgrounds(paths, seed=0)
    assert [bg.shape for bg, _ in backgrounds] == [(128, 128), (96, 160)]  # in the order given
    for (bg, noise), s in zip(backgrounds, (a, b), strict=True):
        raw = tifffile.imread(paths[(s is b) * 1]).astype(np.float64)
        ij = np.floor(s.spots + 0.5).astype(int)
        ij = ij[(ij >= 0).all(1) & (ij[:, 0] < raw.shape[0]) & (ij[:, 1] < raw.shape[1])]
        local = np.median(raw)
        # the spots are gone: at their centres the background is near the image's level, the raw image far above
        assert np.median(raw[ij[:, 0], ij[:, 1]] - local) > 5 * noise.std(local)
        assert np.median(np.abs(bg[ij[:, 0], ij[:, 1]] - local)) < 2 * noise.std(local)
        # away from the spots the image is kept as it is
        far = np.ones(raw.shape, bool)
        for i, j in ij:
            far[max(i - 6, 0) : i + 7, max(j - 6, 0) : j + 7] = False
        assert np.mean(bg[far] == raw[far]) > 0.8
    again = dsd.models.load_real_backgrounds(paths[:1], seed=0)
    np.testing.assert_array_equal(again[0][0], backgrounds[0][0])
