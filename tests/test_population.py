"""The molecule decision: ``tl.split_populations`` on hand-made detection tables and through ``tl.detect_spots``."""

import logging
import warnings

import numpy as np
import pytest
import spatialdata as sd
from spatialdata.models import Image2DModel

import deepspot_sd as dsd

MOLECULE = 1000.0


def _molecules(rng, n, spread=0.3):
    return rng.lognormal(np.log(MOLECULE), spread, n)


def _puncta(rng, n):
    """Dim puncta at 0.03–0.3 of a molecule, cut at a detection limit of 0.05 molecules, with additive noise."""
    amp = MOLECULE * np.exp(rng.uniform(np.log(0.03), np.log(0.3), 4 * n)) + rng.normal(0, 10, 4 * n)
    return amp[amp > 0.05 * MOLECULE][:n]


@pytest.mark.parametrize("n_puncta", [100, 500, 1500])
def test_two_populations_remove_the_dim_one(n_puncta):
    rng = np.random.default_rng(n_puncta)
    amplitude = np.concatenate([_molecules(rng, 300), _puncta(rng, n_puncta)])
    split = dsd.tl.split_populations(amplitude)
    assert split.n_components == 2 and split.cut is not None
    assert split.keep[:300].mean() >= 0.99  # the molecules stay
    assert split.keep[300:].mean() <= 0.01  # the puncta go
    assert split.n_removed == int((~split.keep).sum())
    assert 0.3 * MOLECULE < split.cut < 0.6 * MOLECULE
    assert "removed" in split.reason and str(split.n_removed) in split.reason


@pytest.mark.parametrize("spread", [0.2, 0.5, 0.8])
def test_one_population_is_left_untouched(spread):
    rng = np.random.default_rng(1)
    split = dsd.tl.split_populations(_molecules(rng, 500, spread))
    assert split.keep.all() and split.cut is None
    assert "all 500 kept" in split.reason


@pytest.mark.parametrize("n", [0, 1, 5])
def test_few_detections_are_kept_and_say_so(n):
    split = dsd.tl.split_populations(np.linspace(10.0, 1000.0, n))
    assert split.keep.shape == (n,) and split.keep.all()
    assert "too few" in split.reason and split.n_components == 0


def test_non_positive_and_nan_amplitudes():
    rng = np.random.default_rng(2)
    amplitude = np.concatenate([_molecules(rng, 300), _puncta(rng, 600), [-5.0, 0.0, np.nan]])
    split = dsd.tl.split_populations(amplitude)
    assert split.cut is not None
    assert not split.keep[-3] and not split.keep[-2]  # at or below the background: not molecules
    assert split.keep[-1]  # unknown amplitude: kept
    # without a dim population, non-positive amplitudes are not removed either
    assert dsd.tl.split_populations(np.concatenate([_molecules(rng, 300), [-5.0]])).keep.all()


@pytest.mark.parametrize("seed", range(5))
def test_clusters_brighter_than_one_molecule_keep_the_molecules(seed):
    rng = np.random.default_rng(seed)
    molecules = _molecules(rng, 500)
    loose = MOLECULE * np.exp(rng.uniform(np.log(2), np.log(30), 50)) * rng.lognormal(0, 0.15, 50)
    small = MOLECULE * rng.integers(2, 6, 100) * rng.lognormal(0, 0.15, 100)
    sites = MOLECULE * rng.integers(10, 31, 15) * rng.lognormal(0, 0.15, 15)
    for clusters in (loose, small, sites):
        split = dsd.tl.split_populations(np.concatenate([molecules, clusters]))
        assert split.keep.all(), split.reason


def test_puncta_molecules_and_clusters():
    rng = np.random.default_rng(3)
    molecules = _molecules(rng, 400)
    clusters = MOLECULE * rng.integers(2, 6, 40) * rng.lognormal(0, 0.15, 40)
    amplitude = np.concatenate([molecules, clusters, _puncta(rng, 800)])
    split = dsd.tl.split_populations(amplitude)
    assert split.keep[:440].mean() >= 0.99  # molecules and clusters
    assert split.keep[440:].mean() <= 0.01


def test_record_is_json_friendly():
    import json

    rng = np.random.default_rng(4)
    split = dsd.tl.split_populations(np.concatenate([_molecules(rng, 300), _puncta(rng, 300)]))
    record = json.loads(json.dumps(split.record()))
    assert record["n_removed"] == split.n_removed and record["cut"] == pytest.approx(split.cut)
    assert len(record["means"]) == 2 and record["ratio"] > 3


# ----------------------------------------------------------------------------------------------- measure_spots
def test_measure_spots_of_a_known_spot():
    rng = np.random.default_rng(5)
    image = 100.0 + rng.normal(0, 2.0, (40, 40))
    rows, cols = np.mgrid[:40, :40]
    image += 80.0 * np.exp(-((rows - 20) ** 2 + (cols - 15) ** 2) / (2 * 1.2**2))
    m = dsd.tl.measure_spots(image, np.array([[20.0, 15.0], [20.2, 14.9]]))
    assert list(m.columns) == ["intensity_raw", "background", "amplitude", "integrated_intensity", "snr"]
    assert m.loc[0].tolist() == m.loc[1].tolist()  # measured at the nearest pixel
    assert m.background[0] == pytest.approx(100.0, abs=1.0)
    assert m.amplitude[0] == pytest.approx(80.0, abs=5.0)
    # the disc of radius 3 px holds ~96 % of a sigma-1.2 Gaussian's integral 2 pi sigma² h
    assert m.integrated_intensity[0] == pytest.approx(0.96 * 2 * np.pi * 1.2**2 * 80.0, rel=0.1)
    assert m.snr[0] == pytest.approx(80.0 / 2.0, rel=0.3)


def test_measure_spots_empty_and_border():
    image = np.full((16, 16), 5.0)
    assert len(dsd.tl.measure_spots(image, np.zeros((0, 2)))) == 0
    m = dsd.tl.measure_spots(image, np.array([[0.0, 0.0], [15.0, 15.0]]))
    assert (m.background == 5.0).all() and (m.amplitude == 0.0).all()
    assert m.snr.isna().all()  # a flat ring has no noise to divide by


# ----------------------------------------------------------------------------------------------- detect_spots
def _scene(seed=0, shape=(256, 256), n_spots=60, n_puncta=180, camera_gain=20.0):
    """A raw uint16 image with molecules and dim puncta (detected directly: a raw image carries its amplitudes)."""
    sim = dsd.datasets.simulate_image(
        shape,
        n_spots=n_spots,
        snr_range=(20.0, 40.0),
        n_puncta=n_puncta,
        puncta_amplitude_range=(0.1, 0.2),
        camera_gain=camera_gain,
        camera_offset=500.0,
        seed=seed,
    )
    return sim, np.round(sim.image).astype(np.uint16)


def _detect(sdata, key, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return dsd.tl.detect_spots(sdata, key, show_progress_bar=False, **kwargs)


def _threshold(sim, camera_gain=20.0):
    """A raw-image threshold that finds the molecules and most visible puncta (several noise sigmas)."""
    return 500.0 + camera_gain * (sim.params["background_mean"] + 5.0 * sim.noise_std)


def test_detect_spots_removes_the_puncta_of_each_channel(caplog):
    sim_a, raw_a = _scene(seed=0)
    sim_b, raw_b = _scene(seed=1, n_puncta=0)
    image = Image2DModel.parse(np.stack([raw_a, raw_b]), dims=("c", "y", "x"), c_coords=["a", "b"])
    sdata = sd.SpatialData(images={"raw": image})
    threshold = max(_threshold(sim_a), _threshold(sim_b))
    with caplog.at_level(logging.INFO, logger="deepspot_sd"):
        _detect(sdata, "raw", threshold=threshold, keep_rejected=True, key_added="all")
    df = sdata.points["all"].compute()
    for column in ("amplitude", "integrated_intensity", "snr", "molecule"):
        assert column in df.columns
    decision = sdata["all"].attrs["deepspot_sd"]["molecule_decision"]
    assert decision["a"]["cut"] is not None and decision["b"]["cut"] is None  # decided per channel
    assert decision["a"]["n_removed"] == int((~df[df.gene == "a"].molecule).sum()) > 0
    assert df[df.gene == "b"].molecule.all()
    assert sum("Molecule decision" in r.message for r in caplog.records) == 2  # one line per channel

    a = df[df.gene == "a"]
    molecules = dsd.metrics.match_kdtree(sim_a.spots, a[a.molecule][["y", "x"]].to_numpy(), radius=3.0)
    everything = dsd.metrics.match_kdtree(sim_a.spots, a[["y", "x"]].to_numpy(), radius=3.0)
    assert everything.precision < 0.8  # the puncta were detected...
    assert molecules.precision > 0.97 and molecules.recall >= everything.recall - 0.02  # ...and removed

    # default: the rejected detections are dropped, the kept ones are the same
    _detect(sdata, "raw", threshold=threshold, key_added="kept")
    kept = sdata.points["kept"].compute()
    assert kept.molecule.all() and len(kept) == int(df.molecule.sum())


def test_min_amplitude_by_hand_and_off():
    sim, raw = _scene(seed=2)
    sdata = sd.SpatialData(images={"raw": Image2DModel.parse(raw[None], dims=("c", "y", "x"))})
    threshold = _threshold(sim)
    _detect(sdata, "raw", threshold=threshold, min_amplitude=None, key_added="off")
    off = sdata.points["off"].compute()
    assert off.molecule.all()
    assert sdata["off"].attrs["deepspot_sd"]["molecule_decision"]["0"]["mode"] == "off"
    cut = float(np.median(off.amplitude))
    _detect(sdata, "raw", threshold=threshold, min_amplitude=cut, key_added="manual")
    manual = sdata.points["manual"].compute()
    assert (manual.amplitude >= cut).all() and len(manual) == int((off.amplitude >= cut).sum())
    _detect(sdata, "raw", threshold=threshold, min_amplitude={"0": cut}, key_added="mapping")
    assert len(sdata.points["mapping"]) == len(manual)


@pytest.mark.parametrize("bad", ["median", np.nan, [1.0], {"other": 1.0}, True])
def test_min_amplitude_is_checked(bad):
    _, raw = _scene(seed=3, shape=(64, 64), n_spots=5, n_puncta=0)
    sdata = sd.SpatialData(images={"raw": Image2DModel.parse(raw[None], dims=("c", "y", "x"))})
    with pytest.raises((ValueError, KeyError), match="min_amplitude"):
        _detect(sdata, "raw", threshold=1000.0, min_amplitude=bad)
    assert "raw_spots" not in sdata.points


def test_enhanced_image_without_raw_skips_the_decision():
    stamp = np.full((64, 64), 100.0, np.float32)
    stamp[10, 10] = stamp[40, 50] = 255.0
    sdata = sd.SpatialData(images={"raw": Image2DModel.parse(stamp[None], dims=("c", "y", "x"))})
    sdata.images["raw"].attrs["deepspot_sd"] = {"function": "enhance", "threshold": 230.0}
    _detect(sdata, "raw")
    record = sdata["raw_spots"].attrs["deepspot_sd"]["molecule_decision"]["0"]
    assert record["mode"] == "skipped" and len(sdata.points["raw_spots"]) == 2


def test_simulator_puncta_are_not_spots():
    sim = dsd.datasets.simulate_image((128, 128), n_spots=20, n_puncta=30, n_out_of_focus=5, seed=0)
    plain = dsd.datasets.simulate_image((128, 128), n_spots=20, seed=0)
    assert sim.puncta.shape == (35, 2) and sim.spots.shape == (20, 2)
    np.testing.assert_array_equal(sim.spots, plain.spots)  # the molecules are drawn first, unchanged
    assert plain.puncta.shape == (0, 2)
    # the target stamps the molecules only: a punctum's pixel keeps its (dim) image value
    i, j = np.floor(sim.puncta[0] + 0.5).astype(int)
    far = np.min(np.hypot(*(sim.spots - sim.puncta[0]).T)) > 3
    if far:
        assert sim.target[i, j] < 200.0
    with pytest.raises(ValueError, match="puncta_amplitude_range"):
        dsd.datasets.simulate_image((32, 32), n_spots=2, n_puncta=3, puncta_amplitude_range=(0.0, 0.3), seed=0)


def test_spot_brightness_plot_shows_the_decision():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sim, raw = _scene(seed=0)
    sdata = sd.SpatialData(images={"raw": Image2DModel.parse(raw[None], dims=("c", "y", "x"))})
    _detect(sdata, "raw", threshold=_threshold(sim), keep_rejected=True, key_added="spots")
    df = sdata.points["spots"].compute()
    record = sdata["spots"].attrs["deepspot_sd"]["molecule_decision"]["0"]
    axes = dsd.pl.spot_brightness(sdata, "spots", image_key="raw", crop=(0, 0, 128, 128))
    hist_ax, image_ax = axes
    heights = [p.get_height() for p in hist_ax.patches]
    assert sum(heights) == int((df.amplitude > 0).sum())  # every detection with a positive amplitude is drawn
    (cut_line,) = [line for line in hist_ax.lines if line.get_linestyle() == "--"]
    assert cut_line.get_xdata()[0] == pytest.approx(record["cut"])
    in_crop = (df.x < 127.5) & (df.y < 127.5)
    kept, rejected = image_ax.collections
    assert len(kept.get_offsets()) == int((in_crop & df.molecule).sum())
    assert len(rejected.get_offsets()) == int((in_crop & ~df.molecule).sum()) > 0
    plt.close("all")
    with pytest.raises(ValueError, match="no molecule decision"):
        sdata.points["copy"] = sdata.points["spots"]
        sdata.points["copy"].attrs.pop("deepspot_sd", None)
        dsd.pl.spot_brightness(sdata, "copy")


def test_rejected_detections_are_not_counted_per_cell():
    sdata = dsd.datasets.wound_healing((256, 256), cell_spacing_px=120, seed=0)
    points = sdata.points["true_spots"].compute().reset_index(drop=True)
    points["molecule"] = np.arange(len(points)) % 3 != 0  # flag a third as rejected
    from spatialdata.models import PointsModel
    from spatialdata.transformations import get_transformation

    sdata.points["flagged"] = PointsModel.parse(
        points,
        coordinates={"x": "x", "y": "y"},
        transformations=get_transformation(sdata.points["true_spots"], get_all=True),
    )
    dsd.tl.assign_spots(sdata, "true_spots", "cells", nuclei_key="nuclei", feature_key=None, table_key="all")
    dsd.tl.assign_spots(sdata, "flagged", "cells", nuclei_key="nuclei", feature_key=None, table_key="molecules")
    everything = sdata.tables["all"].obs.set_index("cell_id")["n_spots"]
    molecules = sdata.tables["molecules"].obs.set_index("cell_id")["n_spots"]
    flagged = sdata.points["flagged"].compute()
    expected = flagged[flagged.molecule & (flagged.cell_id > 0)].groupby("cell_id").size()
    np.testing.assert_array_equal(molecules.reindex(expected.index).to_numpy(), expected.to_numpy())
    assert molecules.sum() < everything.sum()
    assert (flagged.loc[~flagged.molecule, "cell_id"] > 0).any()  # rejected rows still get their cell
    # sector enrichment counts the same molecules: every counted cytoplasmic molecule lies in one sector
    dsd.tl.sector_enrichment(sdata, "molecules", reference="wound")
    table = sdata.tables["molecules"]
    sector_total = np.asarray(table.obsm["sector_counts"]).sum(axis=1)
    np.testing.assert_array_equal(sector_total, table.obs["n_spots_cytoplasm"].to_numpy())


def test_puncta_per_spot_draws_relative_counts():
    base = dsd.datasets.simulate_image((96, 96), n_spots=20, seed=1)
    sim = dsd.datasets.simulate_image((96, 96), n_spots=20, puncta_per_spot=1.5, out_of_focus_per_spot=0.25, seed=1)
    assert len(sim.puncta) == 30 + 5
    np.testing.assert_array_equal(sim.spots, base.spots)
    drawn = dsd.datasets.simulate_image((96, 96), n_spots=20, puncta_per_spot=(0.0, 3.0), seed=2)
    assert 0 <= len(drawn.puncta) <= 60
    with pytest.raises(ValueError, match="puncta_per_spot"):
        dsd.datasets.simulate_image((32, 32), n_spots=2, puncta_per_spot=(2.0, 1.0), seed=0)
