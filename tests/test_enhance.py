import os

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import dask.array as da
import numpy as np
import pytest
import spatialdata as sd
from spatialdata.models import Image2DModel, Image3DModel, Labels2DModel
from spatialdata.transformations import Scale, Sequence, Translation, get_transformation

import deepspot_sd as dsd
from deepspot_sd.models import EnhancementModel, ModelConfig
from deepspot_sd.pp import apply_normalization, normalization_stats
from deepspot_sd.tl import _enhance

TILE, OVERLAP = 64, 8  # small tiles keep the tests fast; 5 x 5 receptive field (2 px) < overlap


def _conv_model(kernel: int = 5, seed: int = 1):
    import keras

    inp = keras.Input((None, None, 1))
    init = keras.initializers.RandomUniform(0.0, 2.0 / kernel**2, seed=seed)
    x = keras.layers.Conv2D(2, kernel, padding="same", kernel_initializer=init, bias_initializer="zeros")(inp)
    x = keras.layers.ReLU()(x)
    out = keras.layers.Conv2D(1, 1, kernel_initializer="ones", bias_initializer="zeros")(x)
    return keras.Model(inp, out, name="standin")


@pytest.fixture(autouse=True)
def _small_auto_tiles(request, monkeypatch):
    """Tests on the small stand-in network get automatic tiles of at most 64 px, so several tiles and chunks."""
    if "conv_model" in request.fixturenames:
        monkeypatch.setattr(_enhance, "AUTO_TILE_MAX", TILE)


@pytest.fixture(scope="module")
def conv_model():
    return EnhancementModel(_conv_model(), ModelConfig(tile_size=TILE, overlap=OVERLAP, threshold=150.0))


class _Boom(Exception):
    pass


class _FailingNet:
    """A 'network' that fails on its second batch (after part of the output was written)."""

    def __init__(self):
        self.calls = 0

    def predict_on_batch(self, x):
        self.calls += 1
        if self.calls > 1:
            raise _Boom("network failure")
        return x


@pytest.fixture
def raw():
    sim = dsd.datasets.simulate_image((120, 136), n_spots=20, seed=3)
    return (sim.image * 7 + 300).astype(np.uint16)  # uint16 with an offset and a gain


def _sdata(image, chunks=(1, 48, 48), transformations=None, c_coords=None):
    image = image[None] if image.ndim == 2 else image
    el = Image2DModel.parse(
        image, dims=("c", "y", "x"), chunks=chunks, transformations=transformations, c_coords=c_coords
    )
    return sd.SpatialData(images={"img": el})


def _whole_image_prediction(net, image, config):
    """Network on the whole normalised image at once (its own zero padding only affects a 2-px border)."""
    norm = apply_normalization(image, normalization_stats(image, **config.normalization_kwargs))
    m = config.size_multiple
    h, w = image.shape
    padded = np.pad(norm, ((0, (-h) % m), (0, (-w) % m)), mode="symmetric")
    return np.asarray(net(padded[None, ..., None]))[0, :h, :w, 0]


@pytest.mark.parametrize("tile_size", [None, TILE, 32])
def test_enhance_array_equals_whole_image_prediction(conv_model, raw, tile_size):
    tiled = dsd.tl.enhance_array(raw, conv_model, tile_size=tile_size)
    whole = _whole_image_prediction(conv_model.keras_model, raw, conv_model.config)
    assert tiled.shape == raw.shape
    assert tiled.dtype == np.float32
    # no seams: the tiles (automatic, or fixed 64 / 32 px) agree with the whole-image prediction away from the border
    np.testing.assert_allclose(tiled[2:-2, 2:-2], whole[2:-2, 2:-2], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(
    ("length", "tile"),
    [(2048, 784), (4096, 920), (928, 1024), (929, 568), (1024, 608), (100, 200), (16384, 1008), (1, 104)],
)
def test_automatic_tiles(length, tile):
    # the fewest tiles of at most 1024 px (48-px halo) covering the axis, each as small as that allows
    assert _enhance._axis_tile(length, None, 48, 8) == tile
    step = tile - 96
    n = -(-length // step)
    assert tile <= _enhance.AUTO_TILE_MAX and tile % 8 == 0
    assert n * step >= length and (n - 1) * step < length  # covers the axis, no tile wasted
    assert n == -(-length // (_enhance.AUTO_TILE_MAX - 96))  # as few tiles as the largest allows
    assert _enhance._axis_tile(length, 256, 48, 8) == 256  # a fixed tile is kept


def test_automatic_tiles_follow_the_image_not_the_chunks(conv_model, raw):
    # the grid depends on the image size only: chunked and whole-image results agree, fixed tiles agree too
    auto = dsd.tl.enhance_array(raw, conv_model)
    fixed = dsd.tl.enhance_array(raw, conv_model, tile_size=TILE)
    np.testing.assert_allclose(auto, fixed, rtol=1e-5, atol=1e-3)
    for chunks in [(1, 30, 70), (1, 120, 136)]:
        out = dsd.tl.enhance(_sdata(raw, chunks=chunks), "img", model=conv_model, inplace=False)
        np.testing.assert_allclose(out.values[0], auto, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("chunks", [(1, 48, 48), (1, 100, 60)])
def test_enhance_does_not_depend_on_chunks(conv_model, raw, chunks):
    sdata = _sdata(raw, chunks=chunks)
    out = dsd.tl.enhance(sdata, "img", model=conv_model, inplace=False)
    expected = dsd.tl.enhance_array(raw, conv_model)
    assert out.data.chunks == sdata.images["img"].data.chunks  # the input's chunks are kept
    np.testing.assert_allclose(out.values[0], expected, rtol=1e-5, atol=1e-3)


def test_enhance_keeps_layout_and_transformations(conv_model, raw):
    t = Sequence([Scale([0.5, 0.25], axes=("y", "x")), Translation([10.0, -3.0], axes=("y", "x"))])
    image = np.stack([raw, raw[::-1].copy()])
    sdata = _sdata(image, chunks=(1, 64, 64), transformations={"global": t, "aligned": Scale([2.0, 2.0], ("y", "x"))})
    dsd.tl.enhance(sdata, "img", model=conv_model, show_progress_bar=False)
    out = sdata.images["img_enhanced"]
    assert out.dims == ("c", "y", "x")
    assert out.shape == image.shape
    assert out.dtype == np.float32
    assert list(out.coords["c"].values) == [0, 1]
    assert out.data.chunks == sdata.images["img"].data.chunks
    assert get_transformation(out, get_all=True) == get_transformation(sdata.images["img"], get_all=True)
    # channels are enhanced independently (each with its own normalisation)
    np.testing.assert_allclose(out.values[1], dsd.tl.enhance_array(raw[::-1].copy(), conv_model), atol=1e-3)
    record = out.attrs["deepspot_sd"]
    assert record["source_image"] == "img"
    assert record["threshold"] == 150.0
    assert record["tile_size"] == "auto" and record["overlap"] == OVERLAP
    assert record["tiles"] == [56, 64]  # 3 x 3 tiles of at most 64 px: centres of 40 and 48 px cover 120 x 136
    assert record["runtime"] == "tensorflow"  # a model without an ONNX export


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_enhance_dtypes_and_normalized_input(conv_model, raw, dtype):
    image = (raw // 20).astype(dtype) if dtype == np.uint8 else raw.astype(dtype)
    sdata = _sdata(image)
    out = dsd.tl.enhance(sdata, "img", model=conv_model, inplace=False).values[0]
    np.testing.assert_allclose(out, dsd.tl.enhance_array(image, conv_model), atol=1e-3)
    # normalized=True skips the normalisation: same result as normalising first with dsd.pp.normalize
    dsd.pp.normalize(sdata, "img", model_config=conv_model.config)
    again = dsd.tl.enhance(sdata, "img_normalized", model=conv_model, normalized=True, inplace=False).values[0]
    np.testing.assert_allclose(again, out, atol=1e-3)


def test_enhance_multiscale_level(conv_model, raw):
    el = Image2DModel.parse(raw[None], dims=("c", "y", "x"), scale_factors=[2], chunks=(1, 64, 64))
    sdata = sd.SpatialData(images={"img": el})
    full = dsd.tl.enhance(sdata, "img", model=conv_model, inplace=False)
    assert full.shape == (1, 120, 136)
    level1 = dsd.tl.enhance(sdata, "img", model=conv_model, scale=1, inplace=False)
    assert level1.shape == (1, 60, 68)
    src = next(iter(el["scale1"].values()))
    np.testing.assert_allclose(level1.values[0], dsd.tl.enhance_array(src.values[0], conv_model), atol=1e-3)
    # the level's downscaling is kept: pixel 10 of scale1 maps to 20 in "global"
    t = get_transformation(level1, "global")
    np.testing.assert_allclose(t.to_affine_matrix(("y", "x"), ("y", "x"))[:2, :2], np.diag([2.0, 2.0]))
    with pytest.raises(KeyError, match="Available scales"):
        dsd.tl.enhance(sdata, "img", model=conv_model, scale=3)


def test_enhance_tiny_image_and_bare_keras_model(raw):
    net = _conv_model()
    small = raw[:20, :30]
    out = dsd.tl.enhance(_sdata(small), "img", model=net, tile_size=TILE, overlap=OVERLAP, inplace=False)
    assert out.shape == (1, 20, 30)
    expected = dsd.tl.enhance_array(small, net, tile_size=TILE, overlap=OVERLAP, show_progress_bar=True)
    np.testing.assert_allclose(out.values[0], expected, atol=1e-3)
    whole = _whole_image_prediction(net, small, ModelConfig())
    np.testing.assert_allclose(expected[2:-2, 2:-2], whole[2:-2, 2:-2], atol=1e-3)


def test_enhance_backed_store(tmp_path, conv_model, raw):
    sdata = _sdata(raw, transformations={"global": Scale([2.0, 3.0], axes=("y", "x"))})
    path = tmp_path / "data.zarr"
    sdata.write(path)
    dsd.tl.enhance(sdata, "img", model=conv_model, key_added="enh", show_progress_bar=False)
    expected = dsd.tl.enhance_array(raw, conv_model)
    # the in-memory element is read back from the store (nothing is computed twice)
    assert "from-zarr" in sdata.images["enh"].data.name or "read" in str(sdata.images["enh"].data.dask)
    back = sd.read_zarr(path)
    assert "enh" in back.images
    np.testing.assert_allclose(back.images["enh"].values[0], expected, atol=1e-3)
    assert get_transformation(back.images["enh"], "global") == get_transformation(back.images["img"], "global")
    assert back.attrs["deepspot_sd"]["enh"]["threshold"] == 150.0
    assert not any("tmp" in p.name for p in (path / "images").iterdir())
    assert [p.name for p in tmp_path.iterdir()] == ["data.zarr"]  # nothing is left beside the store

    # overwrite with another model: replaced in memory and in the store
    other = EnhancementModel(_conv_model(seed=7), conv_model.config)
    dsd.tl.enhance(sdata, "img", model=other, key_added="enh", show_progress_bar=False)
    back = sd.read_zarr(path)
    np.testing.assert_allclose(back.images["enh"].values[0], dsd.tl.enhance_array(raw, other), atol=1e-3)
    np.testing.assert_allclose(sdata.images["enh"].values[0], back.images["enh"].values[0])


def test_failed_enhance_leaves_object_and_store_unchanged(tmp_path, conv_model, raw):
    sdata = _sdata(raw, chunks=(1, 48, 48))
    path = tmp_path / "data.zarr"
    sdata.write(path)
    dsd.tl.enhance(sdata, "img", model=conv_model, key_added="enh", show_progress_bar=False)
    before = sdata.images["enh"].values.copy()
    folders = sorted(p.name for p in (path / "images").iterdir())
    attrs = dict(sdata.attrs)

    failing = EnhancementModel(_FailingNet(), conv_model.config)
    for key in ("enh", "new"):
        with pytest.raises(_Boom):
            dsd.tl.enhance(sdata, "img", model=failing, key_added=key, batch_size=1, show_progress_bar=False)
        failing.keras_model.calls = 0
        assert sorted(sdata.images) == ["enh", "img"]
        assert sorted(p.name for p in (path / "images").iterdir()) == folders
        assert sdata.attrs == attrs
        np.testing.assert_array_equal(sdata.images["enh"].values, before)
        back = sd.read_zarr(path)
        assert sorted(back.images) == ["enh", "img"]
        np.testing.assert_array_equal(back.images["enh"].values, before)
        assert [p.name for p in tmp_path.iterdir()] == ["data.zarr"]  # nothing is left beside the store


def test_write_in_regions_computes_each_block_once(tmp_path):
    import dask.array as da
    import zarr

    from deepspot_sd._store import write_in_regions

    calls = []

    def double(block):
        calls.append(block.shape)
        return 2 * block

    x = da.from_array(np.arange(3 * 50 * 70, dtype=np.float32).reshape(3, 50, 70), chunks=(1, 20, 30))
    meta = np.empty((0, 0, 0), dtype=np.float32)
    lazy = da.map_overlap(double, x, depth={0: 0, 1: 2, 2: 2}, boundary="reflect", dtype=np.float32, meta=meta)
    # regions of about 40 px (2 x 2 regions of whole chunks) into an array whose chunks do not line up with them
    target = zarr.create_array(store=str(tmp_path / "t.zarr"), shape=x.shape, chunks=(1, 25, 25), dtype=np.float32)
    write_in_regions(lazy, target, region_px=40, show_progress_bar=False)
    np.testing.assert_array_equal(target[:], 2 * x.compute())
    assert len(calls) == x.npartitions  # no block computed twice across region borders


def test_store_element_fill_needs_a_backed_object(raw):
    import dask.array as da

    from deepspot_sd._store import store_element

    sdata = _sdata(raw)
    element = sdata.images["img"].copy(data=da.zeros_like(sdata.images["img"].data))
    with pytest.raises(ValueError, match="backed"):
        store_element(sdata, "new", element, kind="images", fill=lambda target: None)
    assert "new" not in sdata.images


def test_enhance_not_inplace_and_unbacked(conv_model, raw):
    sdata = _sdata(raw)
    out = dsd.tl.enhance(sdata, "img", model=conv_model, inplace=False)
    assert list(sdata.images) == ["img"]
    assert isinstance(out.data, da.Array)
    assert dsd.tl.enhance(sdata, "img", model=conv_model) is None
    assert list(sdata.images) == ["img", "img_enhanced"]
    assert isinstance(sdata.images["img_enhanced"].data, da.Array)  # lazy on an unbacked object


def test_enhance_errors(conv_model, raw):
    sdata = _sdata(raw)
    sdata.labels["cells"] = Labels2DModel.parse(np.zeros((10, 10), np.int32), dims=("y", "x"))
    with pytest.raises(KeyError, match="Available keys"):
        dsd.tl.enhance(sdata, "nope", model=conv_model)
    with pytest.raises(KeyError, match="labels element"):
        dsd.tl.enhance(sdata, "cells", model=conv_model)
    with pytest.raises(KeyError, match="Available models"):
        dsd.tl.enhance(sdata, "img", model="no_such_model")
    with pytest.raises(TypeError, match="Parameter model"):
        dsd.tl.enhance(sdata, "img", model=3)
    with pytest.raises(ValueError, match="differ from image_key"):
        dsd.tl.enhance(sdata, "img", model=conv_model, key_added="img")
    with pytest.raises(ValueError, match="unique across element types"):
        dsd.tl.enhance(sdata, "img", model=conv_model, key_added="cells")
    with pytest.raises(ValueError, match="tile_size"):
        dsd.tl.enhance(sdata, "img", model=conv_model, tile_size=60)
    with pytest.raises(ValueError, match="batch_size"):
        dsd.tl.enhance(sdata, "img", model=conv_model, batch_size=0)
    with pytest.raises(ValueError, match="runtime"):
        dsd.tl.enhance(sdata, "img", model=conv_model, runtime="torch")
    with pytest.raises(ValueError, match="ONNX export"):  # this model has none
        dsd.tl.enhance_array(raw, conv_model, runtime="onnx")

    sdata.images["vol"] = Image3DModel.parse(np.zeros((1, 3, 8, 8), np.uint16), dims=("c", "z", "y", "x"))
    with pytest.raises(ValueError, match="project the z axis"):
        dsd.tl.enhance(sdata, "vol", model=conv_model)

    with_nan = raw.astype(np.float32)
    with_nan[5, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dsd.tl.enhance(_sdata(with_nan), "img", model=conv_model)
    with pytest.raises(ValueError, match="NaN"):
        dsd.tl.enhance_array(with_nan, conv_model)

    with pytest.warns(UserWarning, match="no contrast"):
        out = dsd.tl.enhance(_sdata(np.full((40, 40), 500, np.uint16)), "img", model=conv_model, inplace=False)
    assert np.ptp(out.values[0, 4:-4, 4:-4]) < 1e-3  # a constant image stays constant


def test_normalize_element(tmp_path, conv_model, raw):
    t = {"global": Scale([2.0, 2.0], axes=("y", "x"))}
    sdata = _sdata(np.stack([raw, raw // 2]), chunks=(1, 32, 40), transformations=t, c_coords=["a", "b"])
    sdata.write(tmp_path / "d.zarr")
    dsd.pp.normalize(sdata, "img", model_config=conv_model.config, show_progress_bar=False)
    out = sdata.images["img_normalized"]
    assert out.dtype == np.float32
    assert out.data.chunks == sdata.images["img"].data.chunks
    assert list(out.coords["c"].values) == ["a", "b"]
    for cs, tr in get_transformation(sdata.images["img"], get_all=True).items():  # read back: (c, y, x) axes
        mine = get_transformation(out, cs).to_affine_matrix(("y", "x"), ("y", "x"))
        np.testing.assert_allclose(mine, tr.to_affine_matrix(("y", "x"), ("y", "x")))
    for i, channel in enumerate([raw, raw // 2]):  # statistics over each whole channel, not per chunk
        stats = normalization_stats(channel, **conv_model.config.normalization_kwargs)
        np.testing.assert_allclose(out.values[i], apply_normalization(channel, stats), rtol=1e-6)
    assert "img_normalized" in sd.read_zarr(tmp_path / "d.zarr").images
    with pytest.warns(UserWarning, match="normalized=True"):
        dsd.tl.enhance(sdata, "img_normalized", model=conv_model, inplace=False)
    single = dsd.pp.normalize(sdata, "img", model_config=conv_model.config, inplace=False)
    assert sorted(sdata.images) == ["img", "img_normalized"]
    np.testing.assert_allclose(single.values, out.values)
    with pytest.raises(KeyError, match="Available keys"):
        dsd.pp.normalize(sdata, "nope")


def test_backed_pipeline_on_a_distributed_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    sim = dsd.datasets.simulate_image((400, 520), n_spots=80, seed=4)
    image = (sim.image * 5 + 200).astype(np.uint16)
    results = {}
    for name in ("threads", "cluster"):
        sdata = _sdata(image, chunks=(1, 128, 128))
        sdata.write(tmp_path / f"{name}.zarr")
        if name == "threads":
            dsd.tl.enhance(sdata, "img", show_progress_bar=False)
            dsd.tl.detect_spots(sdata, "img_enhanced", show_progress_bar=False)
        else:
            with (
                distributed.LocalCluster(
                    n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
                ) as cluster,
                distributed.Client(cluster),
            ):
                dsd.tl.enhance(sdata, "img", show_progress_bar=False)
                dsd.tl.detect_spots(sdata, "img_enhanced", show_progress_bar=False)
        back = sd.read_zarr(tmp_path / f"{name}.zarr")
        spots = back.points["img_enhanced_spots"].compute()[["y", "x"]].to_numpy()
        results[name] = (back.images["img_enhanced"].values[0], spots)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.zarr", "threads.zarr"]  # nothing else left
    np.testing.assert_allclose(results["cluster"][0], results["threads"][0], atol=1e-3)
    assert len(results["threads"][1]) > 40
    match = dsd.metrics.match_kdtree(results["threads"][1], results["cluster"][1], radius=0.5)
    assert match.f1 == 1.0


def test_pipeline_on_a_store_in_the_zarr_v2_format(tmp_path):
    import anndata as ad
    from spatialdata._io.format import RasterFormatV01, SpatialDataContainerFormatV01

    from deepspot_sd._store import store_element

    sim = dsd.datasets.simulate_image((200, 240), n_spots=40, seed=2)
    image = (sim.image * 5 + 100).astype(np.uint16)
    path = tmp_path / "old.zarr"
    _sdata(image, chunks=(1, 128, 128)).write(path, sdata_formats=[RasterFormatV01(), SpatialDataContainerFormatV01()])
    with pytest.warns(UserWarning, match="most current format"):
        sdata = sd.read_zarr(path)
    dsd.tl.enhance(sdata, "img", show_progress_bar=False)
    dsd.tl.detect_spots(sdata, "img_enhanced", show_progress_bar=False)
    assert (path / "images" / "img_enhanced" / ".zattrs").exists()  # written in the store's own (zarr v2) format
    with pytest.warns(UserWarning, match="most current format"):
        back = sd.read_zarr(path)
    np.testing.assert_allclose(back.images["img_enhanced"].values[0], dsd.tl.enhance_array(image), atol=1e-3)
    assert len(back.points["img_enhanced_spots"]) == len(sdata.points["img_enhanced_spots"]) > 20
    assert back.attrs["deepspot_sd"]["img_enhanced_spots"]["function"] == "detect_spots"
    store_element(sdata, "counts", ad.AnnData(np.ones((3, 2), dtype=np.float32)), kind="tables")
    with pytest.warns(UserWarning, match="most current format"):
        assert sd.read_zarr(path).tables["counts"].shape == (3, 2)
