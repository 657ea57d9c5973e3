"""The command line: ``python -m deepspot_sd demo`` on a small scene, as a user runs it."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import spatialdata as sd


@pytest.mark.slow
def test_demo_command_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # a clean shell: nothing set
    env |= {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"}
    cmd = [sys.executable, "-m", "deepspot_sd", "demo", "--size", "512", "--chunks", "256", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # quiet by default: no start-up lines of TensorFlow, absl, CUDA or ome_zarr in what the user sees
    noise = re.compile(r"tensorflow|absl|cuda|cuInit|oneDNN|ome_zarr|^[IWEF]\d{4} ", flags=re.IGNORECASE | re.MULTILINE)
    assert not noise.search(proc.stderr + proc.stdout), (proc.stderr + proc.stdout)[-3000:]
    assert (tmp_path / "qc.png").is_file()
    out = proc.stdout
    store = tmp_path / "wound_healing.zarr"
    assert f"scene: {store}" in out
    assert "image: (1, 512, 512) uint16, chunks (1, 256, 256)" in out
    spots = re.search(r"spots: (\d+) detected, (\d+) true; precision ([\d.]+), recall ([\d.]+), F1 ([\d.]+)", out)
    assert spots, out
    n_found, n_true = int(spots[1]), int(spots[2])
    precision, recall, f1 = (float(spots[i]) for i in (3, 4, 5))
    assert f1 > 0.9 and precision > 0.9 and recall > 0.9
    cells = re.search(r"cells: (\d+); per-cell count error: mean ([-+][\d.]+), mean absolute ([\d.]+)", out)
    assert cells, out
    groups = dict(re.findall(r"polarity index \((\w+)\): ([-+][\d.]+)", out))
    assert set(groups) == {"control", "migrating"}
    assert all(-1.0 <= float(v) <= 1.0 for v in groups.values())  # (too few cells at 512 px to separate them)
    assert re.search(r"timings \(s\): simulate \+ write [\d.]+, enhance [\d.]+, detect [\d.]+, cells [\d.]+", out)

    # what it printed is what it wrote
    sdata = sd.read_zarr(store)
    assert {"smfish", "smfish_enhanced"} <= set(sdata.images)
    assert sdata.images["smfish_enhanced"].shape == (1, 512, 512)
    found = sdata.points["spots"].compute()
    assert len(found) == n_found
    assert len(sdata.points["true_spots"]) == n_true
    table = sdata.tables["cells_spots"]
    assert table.n_obs == int(cells[1])
    truth = sdata.tables["cell_truth"].obs.set_index("cell_id")
    error = table.obs["n_spots"].to_numpy() - truth.loc[table.obs["cell_id"].to_numpy(), "n_spots_true"].to_numpy()
    assert f"{np.mean(error):+.2f}" == cells[2] and f"{np.mean(np.abs(error)):.2f}" == cells[3]
    pi = table.uns["polarity_index"]
    for group, value in groups.items():
        assert f"{pi.loc[group, 'pi']:+.2f}" == value


def test_command_line_usage():
    from deepspot_sd.__main__ import main

    with pytest.raises(SystemExit) as err:
        main([])
    assert err.value.code == 2  # argparse: a sub-command is required
