import dask.array as da
import numpy as np
import pandas as pd
import pytest
import spatialdata as sd
import tifffile
from spatialdata.models import PointsModel
from spatialdata.transformations import Identity, Scale, Sequence, Translation, get_transformation

import deepspot_sd as dsd


@pytest.fixture
def stack():
    # z, c, y, x
    return np.random.default_rng(0).integers(0, 4000, (3, 2, 40, 50)).astype(np.uint16)


def _image(sdata, key="image"):
    return sdata.images[key]


def test_read_tiff_2d(tmp_path, stack):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, stack[0, 0])
    sdata = dsd.io.read_tiff(path, chunks=16)
    img = _image(sdata)
    assert img.dims == ("c", "y", "x")
    assert img.shape == (1, 40, 50)
    assert img.dtype == np.uint16
    assert isinstance(img.data, da.Array)
    assert img.data.chunksize == (1, 16, 16)
    np.testing.assert_array_equal(img.values[0], stack[0, 0])
    assert isinstance(get_transformation(img, "global"), Identity)


def test_read_ome_tiff_channels_and_max_projection(tmp_path, stack):
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, stack, ome=True, metadata={"axes": "ZCYX", "Channel": {"Name": ["actb", "gapdh"]}})
    sdata = dsd.io.read_tiff(path, image_key="smfish")
    img = _image(sdata, "smfish")
    assert list(img.coords["c"].values) == ["actb", "gapdh"]
    np.testing.assert_array_equal(img.values, stack.max(axis=0))

    plane = _image(dsd.io.read_tiff(path, z_projection=1, channel_names=["a", "b"]))
    np.testing.assert_array_equal(plane.values, stack[1])
    assert list(plane.coords["c"].values) == ["a", "b"]

    with pytest.raises(ValueError, match="z-stack of 3 planes"):
        dsd.io.read_tiff(path, z_projection=None)
    with pytest.raises(ValueError, match="out of range"):
        dsd.io.read_tiff(path, z_projection=5)
    with pytest.raises(ValueError, match="2 distinct channel names"):
        dsd.io.read_tiff(path, channel_names=["only_one"])


def test_read_tiff_ambiguous_stack_needs_axes(tmp_path, stack):
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, stack[:, 0], photometric="minisblack")  # a page axis tifffile cannot name ("Q")
    with pytest.raises(ValueError, match="axes="):
        dsd.io.read_tiff(path)
    as_z = _image(dsd.io.read_tiff(path, axes="ZYX"))
    np.testing.assert_array_equal(as_z.values[0], stack[:, 0].max(axis=0))
    as_c = _image(dsd.io.read_tiff(path, axes="CYX"))
    assert as_c.shape == (3, 40, 50)
    np.testing.assert_array_equal(as_c.values, stack[:, 0])
    with pytest.raises(ValueError, match="one distinct letter per dimension"):
        dsd.io.read_tiff(path, axes="YX")


def test_read_tiff_rgb_and_scale(tmp_path, stack):
    rgb = np.moveaxis(stack[0, :, :, :].repeat(2, axis=0)[:3], 0, -1).astype(np.uint8)  # (y, x, 3)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    img = _image(dsd.io.read_tiff(path, scale_um=(0.5, 0.25)))
    assert img.shape == (3, 40, 50)
    np.testing.assert_array_equal(img.values, np.moveaxis(rgb, -1, 0))
    t = get_transformation(img, "global")
    assert isinstance(t, Scale)
    # pixel (row 4, col 8) lies at y = 2 um, x = 2 um in "global"
    pts = PointsModel.parse(pd.DataFrame({"x": [8.0], "y": [4.0]}), transformations={"global": t})
    out = sd.transform(pts, to_coordinate_system="global").compute()
    np.testing.assert_allclose(out[["x", "y"]].to_numpy(), [[2.0, 2.0]])


def test_read_tiff_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        dsd.io.read_tiff(tmp_path / "missing.tif")
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16))
    with pytest.raises(ValueError, match="z_projection"):
        dsd.io.read_tiff(path, z_projection="mean")


def test_spots_csv_round_trip(tmp_path):
    df = pd.DataFrame({"col": [1.5, 7.0, 3.0], "row": [2.0, 4.0, 9.0], "target": ["a", "b", "a"], "score": [1, 2, 3]})
    path = tmp_path / "spots.csv"
    df.to_csv(path, index=False)
    points = dsd.io.read_spots_csv(path, x="col", y="row", gene="target")
    got = points.compute()
    np.testing.assert_array_equal(got["x"].to_numpy(), [1.5, 7.0, 3.0])
    np.testing.assert_array_equal(got["y"].to_numpy(), [2.0, 4.0, 9.0])
    assert got["gene"].dtype == "category"
    assert list(got["gene"]) == ["a", "b", "a"]
    assert points.attrs["spatialdata_attrs"]["feature_key"] == "gene"

    sdata = sd.SpatialData(points={"spots": points})
    out = tmp_path / "out.csv"
    dsd.io.write_spots_csv(sdata, "spots", out)
    back = pd.read_csv(out)
    assert list(back.columns[:2]) == ["x", "y"]
    assert set(back.columns) == {"x", "y", "gene", "score"}
    np.testing.assert_array_equal(back["score"].to_numpy(), [1, 2, 3])

    again = dsd.io.read_spots_csv(out).compute()
    np.testing.assert_array_equal(again["x"].to_numpy(), got["x"].to_numpy())


def test_spots_csv_pixel_convention(tmp_path):
    # a spot centred on pixel (row 4, col 8) of an image with 0.5 um pixels, and 2 um pixels in another system
    path = tmp_path / "spots.csv"
    pd.DataFrame({"x": [8.0], "y": [4.0], "gene": ["a"]}).to_csv(path, index=False)
    image_t = {"global": Scale([0.5, 0.5], axes=("x", "y")), "coarse": Scale([2.0, 2.0], axes=("x", "y"))}
    # "index" (default): columns kept, half a pixel onto spatialdata's pixel centre, then the image's transformation
    points = dsd.io.read_spots_csv(path, transformations=image_t)
    np.testing.assert_array_equal(points.compute()[["x", "y"]].to_numpy(), [[8.0, 4.0]])
    for cs, px in (("global", 0.5), ("coarse", 2.0)):
        t = get_transformation(points, cs)
        assert t == Sequence([Translation([0.5, 0.5], axes=("x", "y")), image_t[cs]])
        out = sd.transform(points, to_coordinate_system=cs).compute()
        np.testing.assert_allclose(out[["x", "y"]].to_numpy(), [[8.5 * px, 4.5 * px]])
    assert get_transformation(dsd.io.read_spots_csv(path)) == Translation([0.5, 0.5], axes=("x", "y"))
    # "spatialdata": the coordinates are spatialdata-intrinsic already, the transformations are used unchanged
    foreign = dsd.io.read_spots_csv(path, transformations=image_t, convention="spatialdata")
    assert get_transformation(foreign, get_all=True) == image_t
    assert isinstance(get_transformation(dsd.io.read_spots_csv(path, convention="spatialdata")), Identity)
    with pytest.raises(ValueError, match="convention"):
        dsd.io.read_spots_csv(path, convention="pixel")


def test_spots_csv_errors(tmp_path):
    path = tmp_path / "spots.csv"
    pd.DataFrame({"x": [1.0], "y": [2.0]}).to_csv(path, index=False)
    with pytest.raises(KeyError, match="Available keys"):
        dsd.io.read_spots_csv(path)  # no "gene" column
    points = dsd.io.read_spots_csv(path, gene=None).compute()
    assert list(points.columns) == ["x", "y"]
    with pytest.raises(KeyError, match="Available keys"):
        dsd.io.write_spots_csv(sd.SpatialData(), "nope", tmp_path / "o.csv")
