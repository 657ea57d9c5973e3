import warnings

import numpy as np
import pandas as pd
import pytest
import spatialdata as sd
from spatialdata.models import Image2DModel
from spatialdata.transformations import Identity, Scale, Sequence, Translation, get_transformation

import deepspot_sd as dsd
from deepspot_sd.models import EnhancementModel, ModelConfig
from deepspot_sd.tl._detect import SPOT_COLUMNS

STAMP = np.array([[200.0, 230.0, 200.0], [230.0, 255.0, 230.0], [200.0, 230.0, 200.0]])
GOLDEN = [(1, 1), (10, 20), (31, 32), (32, 70), (50, 5), (63, 64), (80, 120), (94, 126)]


class _IdentityNet:
    """Stand-in network without TensorFlow: returns its (normalised) input."""

    def predict_on_batch(self, x):
        return x


def _stamped(shape=(96, 128), spots=GOLDEN, background=100.0):
    img = np.full(shape, background, np.float32)
    for i, j in spots:
        img[i - 1 : i + 2, j - 1 : j + 2] = STAMP
    return img


def _sdata(image, chunks=(1, 32, 32), transformations=None, key="img", **kwargs):
    image = image[None] if image.ndim == 2 else image
    el = Image2DModel.parse(image, dims=("c", "y", "x"), chunks=chunks, transformations=transformations, **kwargs)
    return sd.SpatialData(images={key: el})


def _points(sdata, key):
    return sdata.points[key].compute().reset_index(drop=True)


def test_golden_coordinates():
    img = _stamped()
    sdata = _sdata(img)
    dsd.tl.detect_spots(sdata, "img", threshold=240.0, show_progress_bar=False)
    df = _points(sdata, "img_spots")
    assert list(df.columns) == list(SPOT_COLUMNS)
    expected = np.array(sorted(GOLDEN), dtype=float)
    np.testing.assert_array_equal(df[["y", "x"]].to_numpy(), expected)  # row i -> y = i, col j -> x = j
    # identity image: the points carry the half-pixel translation onto spatialdata's pixel centres
    points = sdata.points["img_spots"]
    assert get_transformation(points, get_all=True) == {"global": Translation([0.5, 0.5], axes=("x", "y"))}
    np.testing.assert_allclose(_global(points), expected[:, ::-1] + 0.5)
    assert list(df["gene"].astype(str)) == ["0"] * len(GOLDEN)
    np.testing.assert_array_equal(df["intensity_raw"], 255.0)  # a raw image: its own values
    assert df["intensity_enhanced"].isna().all()
    np.testing.assert_array_equal(df["background"], 100.0)


def _global(points, cs="global"):
    return sd.transform(points, to_coordinate_system=cs).compute().sort_values(["y", "x"])[["x", "y"]].to_numpy()


def _pixel_box(raster, i, j, cs="global"):
    """Global ``(x_min, y_min, x_max, y_max)`` of the area where spatialdata draws pixel ``(i, j)`` of ``raster``."""
    m = get_transformation(raster, cs).to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y"))
    corners = np.array([[j, i, 1], [j + 1, i, 1], [j, i + 1, 1], [j + 1, i + 1, 1]], float) @ np.asarray(m).T
    return (*corners[:, :2].min(axis=0), *corners[:, :2].max(axis=0))


def _assert_in_pixels(xy, raster, pixels, cs="global"):
    """Every point ``xy[k]`` lies inside the area spatialdata draws pixel ``pixels[k] = (i, j)`` of ``raster`` on."""
    for (x, y), (i, j) in zip(xy, pixels, strict=True):
        x0, y0, x1, y1 = _pixel_box(raster, i, j, cs)
        assert x0 <= x < x1 and y0 <= y < y1, ((x, y), (i, j), (x0, y0, x1, y1))


T_GLOBAL = Sequence([Scale([2.0, 3.0], axes=("y", "x")), Translation([5.0, 7.0], axes=("y", "x"))])


def _t_global(x, y):
    """``T_GLOBAL`` applied to intrinsic ``(x, y)``."""
    return np.stack([3.0 * np.asarray(x) + 7.0, 2.0 * np.asarray(y) + 5.0], axis=-1)


def test_golden_coordinates_global_system():
    sdata = _sdata(_stamped(), transformations={"global": T_GLOBAL, "other": Identity()})
    dsd.tl.detect_spots(sdata, "img", threshold=240.0, show_progress_bar=False)
    points = sdata.points["img_spots"]
    # columns: pixel-index convention, whatever the transformations
    rc = np.array(sorted(GOLDEN), dtype=float)
    np.testing.assert_array_equal(_points(sdata, "img_spots")[["y", "x"]].to_numpy(), rc)
    # transformations: half a pixel onto spatialdata's pixel centres, then the image's transformation
    image = sdata.images["img"]
    assert set(get_transformation(points, get_all=True)) == {"global", "other"}
    assert get_transformation(points, "other") == Translation([0.5, 0.5], axes=("x", "y"))
    np.testing.assert_allclose(_global(points), _t_global(rc[:, 1] + 0.5, rc[:, 0] + 0.5))
    np.testing.assert_allclose(_global(points, "other"), rc[:, ::-1] + 0.5)
    # spatialdata's own pixel centres (the element's coordinates) and the pixel areas it draws agree
    ij = rc.astype(int)
    centres = _t_global(image.coords["x"].values[ij[:, 1]], image.coords["y"].values[ij[:, 0]])
    np.testing.assert_allclose(_global(points), centres)
    for cs in ("global", "other"):
        _assert_in_pixels(_global(points, cs), image, ij, cs)


def test_golden_coordinates_multiscale():
    spots = [(10, 20), (30, 64), (60, 100), (80, 40)]
    el = Image2DModel.parse(
        _stamped(spots=spots)[None],
        dims=("c", "y", "x"),
        scale_factors=[2],
        chunks=(1, 32, 32),
        transformations={"global": T_GLOBAL},
    )
    sdata = sd.SpatialData(images={"img": el})
    rc = np.array(sorted(spots), dtype=float)
    level0, level1 = (next(iter(el[k].values())) for k in ("scale0", "scale1"))
    dsd.tl.detect_spots(sdata, "img", threshold=240.0, show_progress_bar=False)
    np.testing.assert_array_equal(_points(sdata, "img_spots")[["y", "x"]].to_numpy(), rc)
    np.testing.assert_allclose(_global(sdata.points["img_spots"]), _t_global(rc[:, 1] + 0.5, rc[:, 0] + 0.5))
    _assert_in_pixels(_global(sdata.points["img_spots"]), level0, rc.astype(int))

    # on the half-resolution level, pixel-index columns of that level; its transformation (downscaling included)
    # puts each spot near the centre of its full-resolution pixel (within the coarse pixel's centroid error)
    threshold = 0.5 * (100.0 + level1.values.max())
    dsd.tl.detect_spots(sdata, "img", scale=1, threshold=threshold, key_added="s1", show_progress_bar=False)
    df = _points(sdata, "s1")
    assert len(df) == len(spots)
    # level-1 pixel k covers level-0 pixels 2k, 2k + 1: the spot pixel (i, j) is centred at index (i - 0.5) / 2
    np.testing.assert_allclose(df[["y", "x"]].to_numpy(), (rc - 0.5) / 2.0, atol=0.15)
    xy = _global(sdata.points["s1"])
    expected = _t_global(rc[:, 1] + 0.5, rc[:, 0] + 0.5)
    assert np.all(np.abs(xy - expected) <= 0.25 * np.array([3.0, 2.0]))  # a quarter of a full-resolution pixel
    _assert_in_pixels(xy, level1, (rc // 2).astype(int))


def test_local_max_does_not_depend_on_chunks():
    sim = dsd.datasets.simulate_image((160, 200), n_spots=60, seed=5)
    image = sim.target
    expected = dsd.tl.find_spots_local_max(image, threshold=240.0, min_distance=2)
    frames = []
    for chunks in [(1, 32, 32), (1, 64, 48), (1, 160, 200)]:
        points = dsd.tl.detect_spots(
            _sdata(image, chunks=chunks), "img", threshold=240.0, min_distance=2, inplace=False, show_progress_bar=False
        )
        frames.append(points.compute().reset_index(drop=True))
    assert len(frames[0]) == len(expected) >= 40
    np.testing.assert_allclose(frames[0][["y", "x"]].to_numpy(), expected)
    for df in frames[1:]:
        pd.testing.assert_frame_equal(df, frames[0])


def test_wavelet_does_not_depend_on_chunks():
    sim = dsd.datasets.simulate_image((256, 320), n_spots=60, seed=6)
    sens = {2: 100.0, 3: 50.0}
    expected = dsd.tl.find_spots_wavelet(sim.target, sensitivities=sens)
    frames = []
    for chunks in [(1, 32, 32), (1, 256, 320)]:
        points = dsd.tl.detect_spots(
            _sdata(sim.target, chunks=chunks),
            "img",
            method="wavelet",
            sensitivities=sens,
            inplace=False,
            show_progress_bar=False,
        )
        frames.append(points.compute().reset_index(drop=True))
    assert len(expected) >= 30
    np.testing.assert_allclose(frames[0][["y", "x"]].to_numpy(), expected, atol=1e-9)
    pd.testing.assert_frame_equal(frames[1], frames[0], atol=1e-9)


def test_enhanced_pipeline_columns_and_defaults(tmp_path):
    sim = dsd.datasets.simulate_image((96, 112), n_spots=20, seed=2)
    raw = (sim.image * 3 + 200).astype(np.uint16)
    image = np.stack([raw, raw[:, ::-1].copy()])
    sdata = _sdata(image, chunks=(1, 48, 48), key="raw", c_coords=["actb", "gapdh"])
    path = tmp_path / "d.zarr"
    sdata.write(path)
    model = EnhancementModel(_IdentityNet(), ModelConfig(tile_size=64, overlap=8, threshold=180.0))
    dsd.tl.enhance(sdata, "raw", model=model, show_progress_bar=False)
    dsd.tl.detect_spots(sdata, "raw_enhanced", show_progress_bar=False)  # threshold 180 from the model config
    df = _points(sdata, "raw_enhanced_spots")
    enhanced = sdata.images["raw_enhanced"].values
    assert set(df["gene"]) == {"actb", "gapdh"}
    ci = df["gene"].map({"actb": 0, "gapdh": 1}).to_numpy()
    r, c = np.floor(df["y"] + 0.5).astype(int), np.floor(df["x"] + 0.5).astype(int)
    np.testing.assert_array_equal(df["intensity_raw"], image[ci, r, c])  # from the recorded source image
    np.testing.assert_allclose(df["intensity_enhanced"], enhanced[ci, r, c], rtol=1e-6)
    assert (df["intensity_enhanced"] >= 180.0).all()
    assert (df["background"] < df["intensity_raw"]).all()
    expected = dsd.tl.find_spots_local_max(enhanced[0], threshold=180.0)
    np.testing.assert_allclose(df.loc[df["gene"] == "actb", ["y", "x"]].to_numpy(), expected, atol=1e-9)

    # reopened from the store: the provenance (threshold, raw image) comes from sdata.attrs
    back = sd.read_zarr(path)
    pd.testing.assert_frame_equal(_points(back, "raw_enhanced_spots"), df)
    dsd.tl.detect_spots(back, "raw_enhanced", key_added="again", show_progress_bar=False)
    pd.testing.assert_frame_equal(_points(back, "again"), df)
    assert back.attrs["deepspot_sd"]["again"]["threshold"] == 180.0

    # normalize -> enhance(normalized=True): the raw intensities still come from the original image
    mem = sd.SpatialData(images={"raw": sdata.images["raw"]})  # unbacked: everything stays lazy
    dsd.pp.normalize(mem, "raw", model_config=model.config, show_progress_bar=False)
    dsd.tl.enhance(mem, "raw_normalized", model=model, normalized=True, key_added="enh2", show_progress_bar=False)
    points = dsd.tl.detect_spots(mem, "enh2", inplace=False, show_progress_bar=False)
    pd.testing.assert_frame_equal(points.compute().reset_index(drop=True), df)
    on_normalized = dsd.tl.detect_spots(mem, "raw_normalized", threshold=180.0, inplace=False).compute()
    ci = on_normalized["gene"].map({"actb": 0, "gapdh": 1}).to_numpy()
    r, c = np.floor(on_normalized["y"] + 0.5).astype(int), np.floor(on_normalized["x"] + 0.5).astype(int)
    np.testing.assert_array_equal(on_normalized["intensity_raw"], image[ci, r, c])
    assert on_normalized["intensity_enhanced"].isna().all()


def test_empty_image_gives_empty_points_with_schema():
    sdata = _sdata(np.full((64, 64), 100.0, np.float32))
    with pytest.warns(UserWarning, match="No spots found"):
        dsd.tl.detect_spots(sdata, "img", threshold=200.0, show_progress_bar=False)
    df = _points(sdata, "img_spots")
    assert len(df) == 0
    assert list(df.columns) == list(SPOT_COLUMNS)
    assert df["gene"].dtype == "category"
    assert df["x"].dtype == np.float64


def test_implausible_density_warns():
    noise = np.random.default_rng(0).normal(100.0, 10.0, (64, 64)).astype(np.float32)
    with pytest.warns(UserWarning, match="Implausibly many spots"):
        dsd.tl.detect_spots(_sdata(noise), "img", threshold=90.0, inplace=False, show_progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dsd.tl.detect_spots(_sdata(_stamped()), "img", threshold=240.0, inplace=False, show_progress_bar=False)


def test_detect_errors():
    sdata = _sdata(_stamped())
    sdata.images["other"] = Image2DModel.parse(np.zeros((1, 10, 10), np.float32), dims=("c", "y", "x"))
    with pytest.raises(KeyError, match="Available keys"):
        dsd.tl.detect_spots(sdata, "nope", threshold=1.0)
    with pytest.raises(ValueError, match="threshold="):
        dsd.tl.detect_spots(sdata, "img")  # not an enhanced image: no model threshold known
    with pytest.raises(ValueError, match="method"):
        dsd.tl.detect_spots(sdata, "img", method="blob", threshold=1.0)
    with pytest.raises(ValueError, match="sensitivities"):
        dsd.tl.detect_spots(sdata, "img", method="wavelet", threshold=1.0)
    with pytest.raises(ValueError, match="needs an image of more than"):
        dsd.tl.detect_spots(sdata, "img", method="wavelet")  # scale 7 on 96 x 128 px
    with pytest.raises(ValueError, match="should match"):
        dsd.tl.detect_spots(sdata, "img", threshold=240.0, raw_image_key="other")
    with pytest.raises(KeyError, match="Available keys"):
        dsd.tl.detect_spots(sdata, "img", threshold=240.0, raw_image_key="missing")
    with pytest.raises(TypeError, match="threshold"):
        dsd.tl.detect_spots(sdata, "img", threshold="high")
    with pytest.raises(ValueError, match="min_distance"):
        dsd.tl.detect_spots(sdata, "img", threshold=240.0, min_distance=0)
    assert list(sdata.points) == []
