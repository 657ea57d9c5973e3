import os

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pickle

import numpy as np
import pytest

import deepspot_sd as dsd
from deepspot_sd.models import EnhancementModel, ModelConfig, OnnxNetwork, export_onnx

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _tiles(n=2, size=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(100.0, 25.0, size=(n, size, size)).clip(0, 255).astype(np.float32)
    x[:, 10:13, 20:23] = 230.0
    x[:, 40:44, 5:9] = 250.0
    return x


@pytest.fixture(scope="module")
def shipped():
    return dsd.models.load_pretrained()


def test_shipped_model_has_its_onnx_export(shipped):
    assert shipped.onnx_path is not None and shipped.onnx_path.name == "deepspot_v1.onnx"
    assert shipped.onnx_path.parent.name == "deepspot_v1"


def test_shipped_onnx_equals_the_keras_model(shipped):
    # the shipped file is in sync with the shipped weights: same outputs up to float rounding
    x = _tiles(size=128)
    reference = shipped.predict_tile(x)
    got = shipped.onnx_network().predict_tiles(x)
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, reference, atol=2e-3)
    assert reference.max() > 200  # the stamps are there: the comparison is not on a flat output
    # rectangular input, any size divisible by 8, like the automatic tiles
    rect = _tiles(n=1, size=96)[:, :, :72]
    np.testing.assert_allclose(shipped.onnx_network().predict_tiles(rect), shipped.predict_tile(rect), atol=2e-3)


@pytest.mark.parametrize("upsampling", ["bilinear", "transpose"])
def test_export_of_a_trained_looking_unet(tmp_path, upsampling):
    import keras

    config = ModelConfig(
        filters=(4, 8), bottleneck_filters=8, upsampling=upsampling, name="tiny", tile_size=64, overlap=8
    )
    model = EnhancementModel.from_config(config)
    rng = np.random.default_rng(1)
    for layer in model.keras_model.layers:  # random weights everywhere, so every layer matters
        weights = layer.get_weights()
        if weights:
            new = [rng.normal(0, 0.3, w.shape).astype(np.float32) for w in weights]
            if isinstance(layer, keras.layers.BatchNormalization):
                new[3] = np.abs(new[3]) + 0.5  # a positive variance
            layer.set_weights(new)
    path = export_onnx(model, tmp_path / "tiny.onnx")
    assert path.is_file()
    x = _tiles(size=64)
    np.testing.assert_allclose(OnnxNetwork(path).predict_tiles(x), model.predict_tile(x), atol=2e-3)


def test_export_refuses_other_architectures():
    model = EnhancementModel.from_config(ModelConfig.paper(filters=(4, 8, 8), bottleneck_filters=8, n_res_blocks=0))
    with pytest.raises(ValueError, match="unet"):
        export_onnx(model, None)


def test_model_folder_with_an_export_and_pickling(shipped):
    # a model folder with <name>.onnx gets it, one session per model
    folder = shipped.onnx_path.parent
    model = dsd.models.load_model(folder)
    assert model.onnx_path == shipped.onnx_path
    net = model.onnx_network()
    assert model.onnx_network() is net  # one session per model
    clone = pickle.loads(pickle.dumps(net))  # the session is made again (dask.distributed ships the network)
    x = _tiles(n=1)
    np.testing.assert_array_equal(clone.predict_tiles(x), net.predict_tiles(x))
    assert clone.threads == net.threads
    bare = EnhancementModel.from_config(ModelConfig.compact())
    assert bare.onnx_path is None
    with pytest.raises(FileNotFoundError, match="no ONNX export"):
        bare.onnx_network()


def test_runtimes_give_the_same_spots(shipped):
    sim = dsd.datasets.simulate_image((300, 340), n_spots=120, seed=11)
    image = np.round(sim.image).astype(np.uint16)
    c = shipped.config
    onnx = dsd.tl.enhance_array(image, shipped, runtime="onnx")
    # the former default: Keras on TensorFlow, fixed 256-px tiles
    old = dsd.tl.enhance_array(image, shipped, runtime="tensorflow", tile_size=256)
    np.testing.assert_allclose(onnx, old, atol=2e-2)
    a = dsd.tl.find_spots_local_max(onnx, threshold=c.threshold, min_distance=c.min_distance)
    b = dsd.tl.find_spots_local_max(old, threshold=c.threshold, min_distance=c.min_distance)
    assert len(a) > 50
    assert dsd.metrics.match_kdtree(a, b, radius=1.0).f1 == 1.0
