import json
import logging
import os

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from deepspot_sd.models import (
    EnhancementModel,
    ModelConfig,
    available_models,
    build_model,
    calibrate_threshold,
    count_parameters,
    deepspot_loss,
    export_model,
    load_model,
    load_pretrained,
    simulate_training_sample,
    train,
    training_batches,
    validation_set,
)

TINY = ModelConfig(filters=(4, 8), bottleneck_filters=8, convs_per_level=1, tile_size=64, overlap=16, name="tiny")


# ------------------------------------------------------------------------------------------------ config
def test_config_defaults_and_presets():
    c = ModelConfig()
    assert c.architecture == "unet" and c.filters == (16, 32, 64) and c.bottleneck_filters == 128
    assert c.tile_size == 256 and c.size_multiple == 8
    p = ModelConfig.paper()
    assert (p.architecture, p.filters, p.n_res_blocks, p.dropout) == ("caso_resnet", (32, 64, 128), 10, 0.2)
    assert ModelConfig.preset("compact") == ModelConfig.compact()
    with pytest.raises(KeyError, match="Available presets"):
        ModelConfig.preset("huge")


def test_config_json_round_trip(tmp_path):
    c = ModelConfig.paper(threshold=187.5, extra={"note": "x"})
    assert ModelConfig.from_json(c.to_json()) == c
    c.to_json(tmp_path / "config.json")
    back = ModelConfig.from_json(tmp_path / "config.json")
    assert back == c and back.filters == (32, 64, 128) and back.extra == {"note": "x"}
    assert json.loads((tmp_path / "config.json").read_text())["filters"] == [32, 64, 128]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"architecture": "vgg"},
        {"tile_size": 250},
        {"overlap": 128},
        {"dropout": 1.0},
        {"threshold": 300.0},
        {"filters": ()},
        {"architecture": "caso_resnet", "filters": (32, 64)},
        {"norm_background_level": 210.0},
        {"min_distance": 0},
        {"bottleneck_filters": 2.5},
        {"convs_per_level": 0},
        {"upsampling": "nearest"},
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        ModelConfig(**kwargs)


def test_config_unknown_key():
    with pytest.raises(ValueError, match="Unknown config keys"):
        ModelConfig.from_dict({"tile_size": 256, "colour": "red"})


# ------------------------------------------------------------------------------------------------ network
@pytest.mark.parametrize("upsampling", ["bilinear", "transpose"])
def test_compact_starts_as_identity(upsampling):
    model = build_model(ModelConfig.compact(upsampling=upsampling))
    assert 4e5 < count_parameters(model) < 7e5
    x = np.random.default_rng(0).uniform(1.0, 254.0, (2, 64, 64, 1)).astype(np.float32)
    y = np.asarray(model(x, training=False))
    assert y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=0.02)


def test_bilinear_decoder_matches_tf_resize_on_any_size():
    import keras
    import tensorflow as tf

    from deepspot_sd.models._layers import BilinearUpsampling2x

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, BilinearUpsampling2x()(inputs))
    rng = np.random.default_rng(0)
    # several sizes through one compiled predict function: the size is unknown when it is traced
    for h, w in [(8, 8), (12, 20), (7, 5)]:
        x = rng.normal(size=(2, h, w, 3)).astype(np.float32)
        expected = tf.image.resize(x, (2 * h, 2 * w), method="bilinear").numpy()
        np.testing.assert_allclose(model.predict_on_batch(x), expected, atol=1e-5)
    trained_like = EnhancementModel.from_config(TINY)
    for side in (64, 128, 96):
        assert trained_like.predict_tile(np.full((1, side, side), 100.0, np.float32)).shape == (1, side, side)


def test_paper_network_builds():
    model = build_model(ModelConfig.paper())
    assert 3e6 < count_parameters(model) < 5e6
    y = np.asarray(model(np.full((1, 32, 48, 1), 100.0, np.float32), training=False))
    assert y.shape == (1, 32, 48, 1)
    # the output follows the input: a bright spot changes the output around it (a head cut off from the input,
    # e.g. a broken skip or rescaling, gives the same image whatever comes in)
    spot = np.full((1, 32, 48, 1), 100.0, np.float32)
    spot[0, 16, 24, 0] = 250.0
    y_spot = np.asarray(model(spot, training=False))
    assert np.abs(y_spot - y).max() > 1e-3


@pytest.mark.parametrize("config", [TINY, ModelConfig.paper(filters=(4, 8, 8), bottleneck_filters=8, n_res_blocks=1)])
def test_training_step_changes_weights(config):
    import keras

    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=deepspot_loss, run_eagerly=True)
    x, y = next(training_batches(batch_size=2, tile_size=64, seed=0))
    before = [w.copy() for w in model.get_weights()]
    loss = float(model.train_on_batch(x, y))
    assert np.isfinite(loss) and loss > 0
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))


# ------------------------------------------------------------------------------------------------ loss
def test_loss_known_values():
    half = np.full((2, 4, 4, 1), 127.5, np.float32)
    assert float(deepspot_loss(half, half)) == pytest.approx(np.log(2.0), abs=1e-5)
    target = np.full((2, 4, 4, 1), 127.5, np.float32)
    target[0, 1, 1, 0] = 255.0  # image 0: max 1.0 vs predicted 0.5 -> 0.25; image 1: max 0.5 vs 0.5 -> 0
    target[0, 2, 2, 0] = 0.0  # BCE of t against p = 0.5 is ln 2 whatever t is
    assert float(deepspot_loss(target, half)) == pytest.approx(np.log(2.0) + 0.125, abs=1e-5)
    zeros = np.zeros((1, 4, 4, 1), np.float32)
    assert float(deepspot_loss(zeros, zeros)) == pytest.approx(0.0, abs=1e-5)


def test_loss_spot_term_weighs_every_spot_peak_within_one_pixel():
    target = np.full((1, 8, 8, 1), 100.0, np.float32)
    target[0, 2, 2, 0] = target[0, 5, 5, 0] = 255.0  # two stamp centres
    pred = np.full((1, 8, 8, 1), 127.5, np.float32)
    pred[0, 1, 3, 0] = 255.0  # spot (2, 2) peaks one pixel off: reached; spot (5, 5) at 0.5: (1 - 0.5)^2 = 0.25
    extra = float(deepspot_loss(target, pred, spot_weight=2.0)) - float(deepspot_loss(target, pred))
    assert extra == pytest.approx(2.0 * 0.25 / 2, abs=1e-5)
    no_spots = np.full((1, 8, 8, 1), 100.0, np.float32)
    assert float(deepspot_loss(no_spots, pred, spot_weight=2.0)) == pytest.approx(float(deepspot_loss(no_spots, pred)))


def test_loss_background_term_averages_over_offending_pixels_away_from_spots():
    from deepspot_sd.models._loss import BACKGROUND_CEILING

    target = np.full((1, 12, 12, 1), 100.0, np.float32)
    target[0, 2, 2, 0] = 255.0  # a stamp centre: pixels within 2 px of it are exempt
    pred = np.full((1, 12, 12, 1), 120.0, np.float32)
    pred[0, 4, 4, 0] = 255.0  # 2 px from the spot: exempt
    pred[0, 9, 9, 0] = pred[0, 9, 3, 0] = 255.0  # two false spots, each 1 - ceiling above it
    extra = float(deepspot_loss(target, pred, background_weight=3.0)) - float(deepspot_loss(target, pred))
    assert extra == pytest.approx(3.0 * (1.0 - BACKGROUND_CEILING) ** 2, rel=1e-4)
    quiet = np.full((1, 12, 12, 1), 120.0, np.float32)
    assert float(deepspot_loss(target, quiet, background_weight=3.0)) == pytest.approx(
        float(deepspot_loss(target, quiet))
    )


# ------------------------------------------------------------------------------------------------ data
def test_training_batches_shapes_and_determinism():
    a = next(training_batches(batch_size=2, tile_size=64, seed=5))
    b = next(training_batches(batch_size=2, tile_size=64, seed=5))
    c = next(training_batches(batch_size=2, tile_size=64, seed=6))
    assert a[0].shape == a[1].shape == (2, 64, 64, 1) and a[0].dtype == np.float32
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].min() >= 0 and a[0].max() <= 255


@pytest.mark.parametrize("seed", range(4))
def test_sample_target_stamps_follow_augmented_spots(seed):
    s = simulate_training_sample(
        np.random.default_rng(seed), shape=(64, 48), target_cap=150.0, simulation_overrides={"n_spots": 12}
    )
    assert s.image.shape == s.target.shape
    ij = np.floor(s.spots + 0.5).astype(int)
    np.testing.assert_array_equal(s.target[ij[:, 0], ij[:, 1]], 255.0)
    stamped = np.zeros(s.target.shape, bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            r, c = np.clip(ij[:, 0] + dr, 0, s.target.shape[0] - 1), np.clip(ij[:, 1] + dc, 0, s.target.shape[1] - 1)
            stamped[r, c] = True
    assert s.target[~stamped].max() <= 150.0
    np.testing.assert_array_equal(s.target[~stamped], np.minimum(s.image[~stamped], 150.0))


def test_validation_set_is_fixed():
    a = validation_set(2, tile_size=64, seed=1)
    b = validation_set(2, tile_size=64, seed=1)
    np.testing.assert_array_equal(a[1].image, b[1].image)
    np.testing.assert_array_equal(a[1].spots, b[1].spots)


# ------------------------------------------------------------------------------------------------ calibration
def test_calibrate_threshold_picks_between_false_peaks_and_stamps():
    rng = np.random.default_rng(0)
    images, truths = [], []
    for _ in range(3):
        img = np.full((40, 40), 100.0)
        spots = rng.integers(4, 36, (5, 2)).astype(float) * [1, 0] + np.arange(5)[:, None] * [0, 7] + [0, 4]
        img[spots[:, 0].astype(int), spots[:, 1].astype(int)] = 255.0
        img[2, 2] = img[37, 37] = 170.0  # false peaks
        images.append(img)
        truths.append(spots)
    best, table = calibrate_threshold(images, truths, thresholds=[150.0, 160.0, 180.0, 200.0, 240.0, 250.0])
    assert table.loc[table["threshold"] == 150.0, "f1"].iloc[0] < 1.0
    assert table["f1"].max() == 1.0
    assert best in (200.0, 240.0)


# ------------------------------------------------------------------------------------------------ train / resume
def test_train_resume_continues_and_is_deterministic(tmp_path, caplog, capsys):
    kw = {"steps_per_epoch": 1, "batch_size": 2, "validation_images": 2, "prefetch": 1, "seed": 3, "run_eagerly": True}
    h1 = train(TINY, output_dir=tmp_path / "a", epochs=1, **kw)
    assert list(h1["epoch"]) == [1]
    assert "epoch 1/1" in capsys.readouterr().err  # the progress bar over the steps
    h2 = train(TINY, output_dir=tmp_path / "a", epochs=2, show_progress_bar=False, **kw)
    assert "epoch 2/2" not in capsys.readouterr().err
    assert list(h2["epoch"]) == [1, 2] and list(h2["steps"]) == [1, 2]
    state = json.loads((tmp_path / "a" / "state.json").read_text())
    assert state["epoch"] == 2
    for name in ("last.weights.h5", "best.weights.h5", "best_config.json", "history.csv", "last_optimizer.npz"):
        assert (tmp_path / "a" / name).exists()
    # an uninterrupted run ends with the same weights
    train(TINY, output_dir=tmp_path / "b", epochs=2, **kw)
    ma, mb = build_model(TINY), build_model(TINY)
    ma.load_weights(str(tmp_path / "a" / "last.weights.h5"))
    mb.load_weights(str(tmp_path / "b" / "last.weights.h5"))
    for wa, wb in zip(ma.get_weights(), mb.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    # a resumed run takes the learning rate it is given, not the stored one
    with caplog.at_level(logging.INFO, logger="deepspot_sd"):
        train(TINY, output_dir=tmp_path / "a", epochs=2, learning_rate=3e-4, **kw)
    assert "learning rate 0.0003" in caplog.text
    with pytest.raises(ValueError, match="another config"):
        train(TINY.replace(bottleneck_filters=16), output_dir=tmp_path / "a", epochs=3, **kw)
    with pytest.raises(ValueError, match="resume"):
        train(TINY, output_dir=tmp_path / "a", epochs=3, resume=False, **kw)
    with pytest.raises(ValueError, match="spot_weight"):
        train(TINY, output_dir=tmp_path / "a", epochs=3, spot_weight=1.0, **kw)
    with pytest.raises(ValueError, match="background_weight"):
        train(TINY, output_dir=tmp_path / "a", epochs=3, background_weight=1.0, **kw)

    # export the best checkpoint and load it back as a model folder
    dst = export_model(tmp_path / "a", tmp_path / "my_model")
    model = load_model(dst)
    assert model.config.name == "my_model" and (dst / "my_model.weights.h5").exists()
    assert model.config.threshold == state["best_threshold"]
    ref = build_model(TINY)
    ref.load_weights(str(tmp_path / "a" / "best.weights.h5"))
    x = np.random.default_rng(0).uniform(50, 250, (1, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(model.predict_tile(x), np.asarray(ref(x[..., None], training=False))[..., 0], atol=1e-4)
    # the last epoch exports with its own training and validation records
    last = load_model(export_model(tmp_path / "a", tmp_path / "last_model", which="last"))
    assert last.config.extra["training"]["epoch"] == 2 and last.config.extra["training"]["seed"] == 3
    assert last.config.extra["validation"]["f1"] == pytest.approx(float(h2["val_f1"].iloc[-1]))


def test_batch_pool_is_seeded_and_independent_of_worker_count():
    from deepspot_sd.models._training_data import BatchPool

    kw = {"batch_size": 2, "tile_size": 32}
    with BatchPool(1, **kw) as one, BatchPool(2, **kw) as two:
        a = list(one.batches(np.random.SeedSequence([5, 0]), 3))
        b = list(two.batches(np.random.SeedSequence([5, 0]), 3))
        c = list(two.batches(np.random.SeedSequence([5, 1]), 1))
    assert len(a) == 3 and a[0][0].shape == (2, 32, 32, 1)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], a[1][0]) and not np.array_equal(a[0][0], c[0][0])


def test_train_with_workers_and_time_budget(tmp_path, caplog):
    kw = {"steps_per_epoch": 1, "batch_size": 2, "validation_images": 2, "seed": 3, "run_eagerly": True, "workers": 1}
    with caplog.at_level(logging.INFO, logger="deepspot_sd"):
        history = train(TINY, output_dir=tmp_path / "w", epochs=5, max_seconds=0.0, **kw)
    assert list(history["epoch"]) == [1]  # the budget is checked before each epoch after the first
    assert "time budget" in caplog.text
    assert json.loads((tmp_path / "w" / "train_args.json").read_text())["parallel_stream"] is True
    with pytest.raises(ValueError, match="parallel_stream"):  # the data stream of a checkpoint cannot change
        train(TINY, output_dir=tmp_path / "w", epochs=2, **{**kw, "workers": 0})


# ------------------------------------------------------------------------------------------------ loading
def test_enhancement_model_pads_odd_sizes():
    model = EnhancementModel.from_config(TINY)
    img = np.random.default_rng(0).uniform(5, 250, (37, 50)).astype(np.float32)
    out = model.predict_image(img)
    assert out.shape == img.shape
    np.testing.assert_allclose(out, img, atol=0.02)  # untrained U-Net = identity
    with pytest.raises(ValueError, match="divisible"):
        model.predict_tile(img[None])


def test_load_pretrained_unknown_name_lists_models():
    assert "deepspot_v1" in available_models()
    with pytest.raises(KeyError, match=r"Available models: \['deepspot_v1'"):
        load_pretrained("no_such_model")


def test_shipped_config_names_its_real_backgrounds():
    extra = load_pretrained().config.extra
    for record in (extra["training"], extra["threshold_calibration"]):
        assert len(record["backgrounds"]) == record["n_backgrounds"] == 3
        assert all(isinstance(name, str) and name for name in record["backgrounds"])
    with pytest.raises(ValueError, match="background_names"):
        train(TINY, output_dir="unused", steps_per_epoch=1, epochs=1, background_names=["a"])


def test_load_pretrained_cache():
    cached = load_pretrained("deepspot_v1")
    assert load_pretrained("deepspot_v1") is cached  # one model per process for tiled inference
    fresh = load_pretrained("deepspot_v1", cache=False)
    assert fresh is not cached and fresh.keras_model is not cached.keras_model
    assert fresh.config == cached.config
    for a, b in zip(fresh.keras_model.get_weights(), cached.keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_import_does_not_load_tensorflow():
    import subprocess
    import sys

    code = "import sys, deepspot_sd; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
