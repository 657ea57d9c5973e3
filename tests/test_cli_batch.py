"""``deepspot-sd detect`` on a small batch of TIFFs made here: outputs, failures, reruns, same spots as the API."""

import json

import numpy as np
import pandas as pd
import pytest
import spatialdata as sd
import tifffile

import deepspot_sd as dsd
from deepspot_sd.__main__ import build_parser, main

SIDE = 160


def _plane(seed: int) -> np.ndarray:
    sim = dsd.datasets.simulate_image((SIDE, SIDE), n_spots=25, seed=seed)
    return np.clip(sim.image, 0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A folder with one-channel, two-channel (OME, pixel size), z-stack and broken TIFFs, and one CLI run on it."""
    root = tmp_path_factory.mktemp("batch")
    images = root / "images"
    images.mkdir()
    tifffile.imwrite(images / "one.tif", _plane(0))
    two = np.stack([_plane(1), _plane(2)])
    tifffile.imwrite(
        images / "two.ome.tif",
        two,
        ome=True,
        metadata={"axes": "CYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25, "Channel": {"Name": ["actb", "gapdh"]}},
    )
    stack = np.stack([_plane(3), _plane(4) // 2, _plane(5) // 3])
    tifffile.imwrite(images / "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    (images / "broken.tif").write_bytes(b"this is not a TIFF file")
    out = root / "out"
    code = main(["detect", str(images), "--out", str(out), "-q"])
    return images, out, code


def test_outputs_exist(batch):
    _, out, _ = batch
    for name in ("one", "two", "stack"):
        folder = out / name
        for file in ("spots.csv", "qc.png", "done.json", f"{name}.zarr"):
            assert (folder / file).exists(), (name, file)
        sdata = sd.read_zarr(folder / f"{name}.zarr")
        assert {"image", "image_enhanced"} <= set(sdata.images)
        assert "spots" in sdata.points
    assert (out / "summary.csv").is_file()
    assert (out / "overview.png").is_file()
    assert not (out / "broken").exists()
    assert not list(out.glob(".*.partial"))  # no half-written folder left


def test_csv_equals_points_element(batch):
    _, out, _ = batch
    for name in ("one", "two", "stack"):
        csv = pd.read_csv(out / name / "spots.csv")
        points = sd.read_zarr(out / name / f"{name}.zarr").points["spots"].compute().reset_index(drop=True)
        assert len(csv) == len(points) > 0
        for column in points.columns:
            expected = points[column].astype(str) if column == "gene" else points[column]
            got = csv[column].astype(str) if column == "gene" else csv[column]
            np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy(), err_msg=f"{name}/{column}")
        assert list(csv.columns[:4]) == ["x", "y", "x_um", "y_um"]


def test_channels_z_and_pixel_size(batch):
    _, out, _ = batch
    summary = pd.read_csv(out / "summary.csv")
    two = summary[summary["image"] == "two"]
    assert sorted(two["channel"]) == ["actb", "gapdh"]  # the OME channel names
    assert np.allclose(two["pixel_size_um"], 0.25)
    csv = pd.read_csv(out / "two" / "spots.csv")
    np.testing.assert_allclose(csv["x_um"], (csv["x"] + 0.5) * 0.25)  # the 'global' system of the store, in µm
    one = pd.read_csv(out / "one" / "spots.csv")
    np.testing.assert_allclose(one["x_um"], one["x"] + 0.5)  # no pixel size: 'global' is in pixels
    stack = sd.read_zarr(out / "stack" / "stack.zarr").images["image"]
    assert stack.shape == (1, SIDE, SIDE)  # the z-stack, max-projected


def test_broken_file_reported_and_exit_code(batch):
    images, out, code = batch
    assert code == 1
    summary = pd.read_csv(out / "summary.csv")
    broken = summary[summary["image"] == "broken"]
    assert len(broken) == 1 and broken["status"].iloc[0] == "failed"
    assert isinstance(broken["error"].iloc[0], str) and broken["error"].iloc[0]
    assert set(summary.loc[summary["image"] != "broken", "status"]) == {"done"}


def test_rerun_skips_finished_images(batch, capsys):
    images, out, _ = batch
    before = (out / "one" / "done.json").stat().st_mtime_ns
    code = main(["detect", str(images), "--out", str(out), "-q"])
    assert code == 1  # the broken file fails again
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.loc[summary["image"] != "broken", "status"]) == {"skipped"}
    assert (out / "one" / "done.json").stat().st_mtime_ns == before
    assert "3 skipped, 1 failed" in capsys.readouterr().out


def test_half_written_folder_is_not_finished(batch, tmp_path):
    images, _, _ = batch
    out = tmp_path / "out"
    (out / "one").mkdir(parents=True)  # a folder without its marker, as an interrupted run of an old version left
    (out / "one" / "spots.csv").write_text("x,y\n")
    assert main(["detect", str(images / "one.tif"), "--out", str(out), "-q"]) == 0
    assert json.loads((out / "one" / "done.json").read_text())["rows"][0]["status"] == "done"


def test_same_spots_as_the_api(batch):
    images, out, _ = batch
    sdata = dsd.io.read_tiff(images / "two.ome.tif", image_key="image")
    dsd.tl.enhance(sdata, "image", show_progress_bar=False)
    dsd.tl.detect_spots(sdata, "image_enhanced", key_added="spots", show_progress_bar=False)
    api = sdata.points["spots"].compute().reset_index(drop=True)
    csv = pd.read_csv(out / "two" / "spots.csv")
    assert len(api) == len(csv) > 0
    for column in ("x", "y", "intensity_enhanced", "amplitude", "molecule"):
        np.testing.assert_array_equal(csv[column].to_numpy(), api[column].to_numpy(), err_msg=column)
    np.testing.assert_array_equal(csv["gene"].astype(str).to_numpy(), api["gene"].astype(str).to_numpy())


def test_every_option_has_help():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert {"detect", "demo", "train", "calibrate", "fine-tune"} <= set(subparsers)
    for name, sub in subparsers.items():
        for action in sub._actions:
            assert action.help, f"deepspot-sd {name}: option {action.option_strings or action.dest} has no help"
