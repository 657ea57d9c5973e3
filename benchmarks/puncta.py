"""Molecules among dim puncta: does the molecule decision of ``tl.detect_spots`` count only the molecules?

Simulated 256 x 256 images (:func:`deepspot_sd.datasets.simulate_image`, family ``"hybrid"``, molecule SNR 10–40,
held-out seed 515151): ``n`` molecules per image (10, 50, 150, 300) and ``ratio x n`` dim puncta (ratio 0, 0.5,
1, 3; peak 0.03–0.3 of the molecules' typical peak, PSF-sized to 1.5x wider), plus, in images with puncta,
``n / 4`` out-of-focus molecules (2–3x wider, peak 0.11–0.25). Only the molecules are true spots.

Methods, on the same enhanced images: the package's defaults (the shipped model, its fixed threshold, then the
molecule decision ``min_amplitude="auto"``: ``benchmarks/accuracy.py:deepspot_detect``) and the same detections
without the decision (``min_amplitude=None``). Scores: k-d tree matching at 3 px, means over images.

Acceptance (issue 17): mean F1 against the molecules >= 0.95 for every puncta ratio; on images without puncta the
molecule decision removes < 1 % of the true spots that were detected. The exit status is 1 when a check fails.

Run from the repository root::

    python benchmarks/puncta.py                      # 6 images per cell (96 images), writes docs/benchmarks.md
    python benchmarks/puncta.py --n-images 1 --no-write
"""

from __future__ import annotations

import argparse
import datetime as _dt
import time

import numpy as np
import pandas as pd
from _common import command_line, limit_threads, write_between_markers
from accuracy import load_enhancement_model

import deepspot_sd as dsd
from deepspot_sd.metrics import match_kdtree

TEST_SEED = 515151
DENSITIES = (10, 50, 150, 300)
RATIOS = (0.0, 0.5, 1.0, 3.0)
SHAPE = (256, 256)
RADIUS = 3.0
TARGET_F1 = 0.95
MAX_REMOVED_WITHOUT_PUNCTA = 0.01


def simulate(n_spots: int, ratio: float, index: int) -> dsd.datasets.SimulatedImage:
    """One test image; its seed depends only on (density, ratio, index)."""
    seed = np.random.SeedSequence([TEST_SEED, n_spots, int(100 * ratio), index])
    return dsd.datasets.simulate_image(
        SHAPE,
        n_spots=n_spots,
        family="hybrid",
        n_puncta=int(round(ratio * n_spots)),
        n_out_of_focus=n_spots // 4 if ratio > 0 else 0,
        seed=np.random.default_rng(seed),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deepspot_v1", help="shipped model name or model folder")
    parser.add_argument("--n-images", type=int, default=6, help="images per (density, ratio) cell")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow threads")
    parser.add_argument("--no-write", action="store_true", help="print only, do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    model, label = load_enhancement_model(args.model)
    label = label.split(":")[0]  # "shipped model `deepspot_v1`"

    t_run = time.perf_counter()
    rows = []
    for ratio in RATIOS:
        for n_spots in DENSITIES:
            for k in range(args.n_images):
                sim = simulate(n_spots, ratio, k)
                enhanced = model.enhance_array(sim.image)
                spots = dsd.tl.find_spots_local_max(
                    enhanced, threshold=model.config.threshold, min_distance=model.config.min_distance
                )
                split = dsd.tl.split_populations(dsd.tl.measure_spots(sim.image, spots)["amplitude"].to_numpy())
                before = match_kdtree(sim.spots, spots, radius=RADIUS)
                after = match_kdtree(sim.spots, spots[split.keep], radius=RADIUS)
                rows.append(
                    {
                        "ratio": ratio,
                        "density": n_spots,
                        "image": k,
                        "f1": after.f1,
                        "precision": after.precision,
                        "recall": after.recall,
                        "f1_no_decision": before.f1,
                        "split": split.cut is not None,
                        "true_detected": before.tp,
                        "true_removed": before.tp - after.tp,
                    }
                )
        sel = pd.DataFrame([r for r in rows if r["ratio"] == ratio])
        print(f"ratio {ratio:g}: F1 {sel.f1.mean():.3f} (no decision {sel.f1_no_decision.mean():.3f})")
    df = pd.DataFrame(rows)

    cells = df.groupby(["ratio", "density"]).agg(
        f1=("f1", "mean"),
        precision=("precision", "mean"),
        recall=("recall", "mean"),
        f1_no_decision=("f1_no_decision", "mean"),
        split=("split", "mean"),
        images=("image", "size"),
    )
    per_ratio = df.groupby("ratio").agg(f1=("f1", "mean"), f1_no_decision=("f1_no_decision", "mean"))
    clean = df[df.ratio == 0]
    removed = clean.true_removed.sum() / max(clean.true_detected.sum(), 1)
    checks = [
        (f"mean F1 >= {TARGET_F1:g} at puncta ratio {r:g}: {row.f1:.3f}", bool(row.f1 >= TARGET_F1))
        for r, row in per_ratio.iterrows()
    ]
    checks.append(
        (
            f"without puncta the decision removes < {100 * MAX_REMOVED_WITHOUT_PUNCTA:g} % of the detected true spots: "
            f"{100 * removed:.2f} % ({int(clean.true_removed.sum())} of {int(clean.true_detected.sum())})",
            bool(removed < MAX_REMOVED_WITHOUT_PUNCTA),
        )
    )

    lines = [
        "| puncta per molecule | molecules / image | images | F1 defaults | precision | recall | F1 without decision "
        "| images split |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (ratio, density), r in cells.iterrows():
        lines.append(
            f"| {ratio:g} | {density} | {int(r.images)} | **{r.f1:.3f}** | {r.precision:.3f} | {r.recall:.3f} | "
            f"{r.f1_no_decision:.3f} | {100 * r.split:.0f} % |"
        )
    for ratio, r in per_ratio.iterrows():
        lines.append(
            f"| **{ratio:g}** | all | {int((df.ratio == ratio).sum())} | **{r.f1:.3f}** | | | "
            f"{r.f1_no_decision:.3f} | |"
        )
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = "\n".join(
        [
            f"Molecules among dim puncta (simulated, seed {TEST_SEED}; {label}): molecules of SNR 10–40, "
            "`ratio x n` dim puncta with a peak of 0.03–0.3 of the molecules' and, where there are puncta, `n / 4` "
            "out-of-focus molecules; only the molecules count. k-d tree matching at 3 px, means over images. "
            '"Images split": share of the images where the decision found a separate dim population.',
            "",
            "\n".join(lines),
            "",
            *(f"- {'PASS' if ok else 'FAIL'}: {what}" for what, ok in checks),
            "",
            f"Command: `{command_line()}` ({date}, {time.perf_counter() - t_run:.0f} s on this machine).",
        ]
    )
    print()
    print(text)
    if not args.no_write:
        print(f"\nWrote {write_between_markers(text, 'puncta')}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
