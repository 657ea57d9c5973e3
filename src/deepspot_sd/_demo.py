"""The main job: the embedded default scene, written to zarr and analysed end to end."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from ._logging import logger
from ._store import get_provenance


def run_demo(
    out: str | Path,
    *,
    size: int = 2048,
    chunks: int = 1024,
    seed: int = 0,
    model: str | None = None,
    show_progress_bar: bool = True,
) -> str:
    """Simulate the wound-healing scene and run the whole pipeline on it from its zarr store.

    Steps: simulate → write zarr → reopen → :func:`~deepspot_sd.tl.enhance` → :func:`~deepspot_sd.tl.detect_spots`
    → score against the true spots → :func:`~deepspot_sd.tl.assign_spots` → :func:`~deepspot_sd.tl.sector_enrichment`
    toward the wound → :func:`~deepspot_sd.tl.polarity_index` per group of cells. Every result is written back
    into the store, and the QC figure (the image with its spots, a zoomed crop, the brightness histogram with the
    molecule decision) to ``{out}/qc.png``.

    Parameters
    ----------
    out
        Output folder; ``{out}/wound_healing.zarr`` is (re)created.
    size
        Image side in pixels.
    chunks
        Chunk side in pixels.
    seed
        Scene seed.
    model
        Model name or folder for :func:`~deepspot_sd.tl.enhance` (default: the shipped model).
    show_progress_bar
        Show the progress bar of the enhancement (it advances chunk by chunk).

    Returns
    -------
    A short plain-text summary.
    """
    import spatialdata as sd

    from . import metrics, tl
    from ._cli._qc import qc_figure
    from .datasets import wound_healing

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "wound_healing.zarr"
    if store.exists():
        shutil.rmtree(store)
    timings = {}
    start = time.perf_counter()
    wound_healing((size, size), chunks=chunks, seed=seed).write(store)
    sdata = sd.read_zarr(store)
    timings["simulate + write"] = time.perf_counter() - start

    start = time.perf_counter()
    tl.enhance(sdata, "smfish", model=model, show_progress_bar=show_progress_bar)
    timings["enhance"] = time.perf_counter() - start
    start = time.perf_counter()
    tl.detect_spots(sdata, "smfish_enhanced", key_added="spots", show_progress_bar=False)
    timings["detect"] = time.perf_counter() - start

    found = sdata.points["spots"].compute()
    decisions = get_provenance(sdata, "spots", sdata.points["spots"]).get("molecule_decision", {})
    truth = sdata.points["true_spots"].compute()
    scores = metrics.match_kdtree(truth[["y", "x"]].to_numpy(), found[["y", "x"]].to_numpy(), radius=3.0)

    start = time.perf_counter()
    tl.assign_spots(sdata, "spots", "cells", nuclei_key="nuclei", table_key="cells_spots")
    table = sdata.tables["cells_spots"]
    cell_truth = sdata.tables["cell_truth"].obs.set_index("cell_id")
    table.obs["group"] = cell_truth.loc[table.obs["cell_id"].to_numpy(), "group"].to_numpy()
    table.obs["group"] = table.obs["group"].astype("category")
    tl.sector_enrichment(sdata, "cells_spots", reference="wound")
    tl.polarity_index(sdata, "cells_spots", groupby="group")
    timings["cells"] = time.perf_counter() - start
    # each step rewrites the table in the store and in `sdata`: read the final one
    table = sdata.tables["cells_spots"]

    start = time.perf_counter()
    qc = qc_figure(
        sdata, "smfish", "spots", out / "qc.png", title=f"wound-healing scene, {size} x {size} px, seed {seed}"
    )
    timings["qc figure"] = time.perf_counter() - start

    count_error = table.obs["n_spots"].to_numpy() - cell_truth.loc[table.obs["cell_id"].to_numpy(), "n_spots_true"]
    pi = table.uns["polarity_index"]
    logger.info("Timings (s): %s", {k: round(v, 1) for k, v in timings.items()})
    lines = [
        f"scene: {store}",
        f"QC figure: {qc}",
        f"image: {tuple(sdata.images['smfish'].shape)} {sdata.images['smfish'].dtype}, "
        f"chunks {sdata.images['smfish'].data.chunksize}",
        f"spots: {len(found)} detected, {len(truth)} true; precision {scores.precision:.3f}, "
        f"recall {scores.recall:.3f}, F1 {scores.f1:.3f} (k-d tree, r = 3 px)",
        *(f"molecule decision ({channel}): {d['reason']}" for channel, d in decisions.items()),
        f"cells: {table.n_obs}; per-cell count error: mean {np.mean(count_error):+.2f}, "
        f"mean absolute {np.mean(np.abs(count_error)):.2f} spots",
    ]
    for group, row in pi.iterrows():
        lines.append(
            f"polarity index ({group}): {row['pi']:+.2f} (bootstrap median {row['boot_median']:+.2f} "
            f"± {row['boot_std']:.2f}, {int(row['n_cells'])} cells)"
        )
    lines.append("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return "\n".join(lines)
