"""Detection limit: recall and enhanced value as a function of spot SNR, for the shipped model and the peers.

Every image holds 50 spots of one SNR (peak height above the local background / noise std, as in
``deepspot_sd.datasets.simulate_image``), PSF sigma 0.7–2.5 px, on the simulator's textured background with
Poisson noise; 8 images of 256 x 256 per SNR level, from a seed never used in training (515151). For each level
the table gives the recall and precision of each method (k-d tree, r = 3 px) and the DeepSpot enhanced value at the
true spot centres; below it, the SNR at which each method's recall crosses 50 % and 90 % (linear interpolation).

A spot whose SNR is near the detection limit is found or missed by chance, so under extra noise an image with many
such spots loses and gains detections whatever the detector (``real_consistency.py``). ::

    python benchmarks/detection_limit.py [--model deepspot_v1] [--peers bigfish,ufish | none] [--no-write]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from _common import command_line, limit_threads, write_between_markers
from accuracy import centre_values, deepspot_detect, load_enhancement_model
from peers import load_peers

import deepspot_sd as dsd

SNR_LEVELS: tuple[float, ...] = (2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0)
TEST_SEED = 515151


def crossing(snr: np.ndarray, recall: np.ndarray, level: float) -> float:
    """The SNR at which ``recall`` first reaches ``level`` (linear interpolation; NaN if it never does)."""
    above = np.flatnonzero(recall >= level)
    if len(above) == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(snr[0])
    s0, s1, r0, r1 = snr[i - 1], snr[i], recall[i - 1], recall[i]
    return float(s0 + (level - r0) * (s1 - s0) / (r1 - r0))


def main() -> None:
    """Run the benchmark and write its table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="deepspot_v1", help="shipped name or model folder")
    parser.add_argument("--n-images", type=int, default=8, help="images per SNR level")
    parser.add_argument("--peers", default="bigfish,ufish", help="comma-separated peers, or 'none'")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow / onnxruntime threads")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    limit_threads(args.threads)

    started = time.perf_counter()
    model, description = load_enhancement_model(args.model)
    peers, notes = load_peers([] if args.peers == "none" else args.peers.split(","), threads=args.threads)
    rows = []
    for level_index, snr in enumerate(SNR_LEVELS):
        rng = np.random.default_rng([TEST_SEED, level_index])
        for _ in range(args.n_images):
            sim = dsd.datasets.simulate_image((256, 256), n_spots=50, snr_range=(snr, snr), seed=rng)
            spots, enhanced = deepspot_detect(model, sim.image)
            found = {"DeepSpot": spots}
            found.update({peer.name: peer.detect(sim.image) for peer in peers})
            for method, pred in found.items():
                match = dsd.metrics.match_kdtree(sim.spots, pred, radius=3.0)
                row = {"SNR": snr, "method": method, "recall": match.recall, "precision": match.precision}
                if method == "DeepSpot":
                    row["centre"] = float(np.mean(centre_values(enhanced, sim.spots)))
                rows.append(row)
    per_image = pd.DataFrame(rows)
    methods = list(dict.fromkeys(per_image["method"]))
    summary = per_image.groupby(["SNR", "method"], sort=False).mean(numeric_only=True).reset_index()

    snr = np.asarray(SNR_LEVELS)
    table = pd.DataFrame({"SNR": list(SNR_LEVELS)})
    limits = []
    for method in methods:
        part = summary[summary["method"] == method].set_index("SNR").loc[list(SNR_LEVELS)]
        recall = part["recall"].to_numpy()
        table[f"recall {method} (%)"] = 100 * recall
        table[f"precision {method} (%)"] = 100 * part["precision"].to_numpy()
        limits.append(
            {
                "method": method,
                "SNR at 50 % recall": crossing(snr, recall, 0.5),
                "SNR at 90 % recall": crossing(snr, recall, 0.9),
            }
        )
    deepspot = summary[summary["method"] == "DeepSpot"].set_index("SNR")
    table["DeepSpot enhanced centre (mean)"] = deepspot.loc[list(SNR_LEVELS), "centre"].to_numpy()

    seconds = time.perf_counter() - started
    text = "\n".join(
        [
            f"Command: `{command_line()}` ({time.strftime('%Y-%m-%d %H:%M')}, {seconds:.0f} s on this machine). "
            f"{args.n_images} images of 256 x 256 with 50 spots per SNR level, seed {TEST_SEED}; "
            f"DeepSpot: {description}.",
            "",
            table.to_markdown(index=False, floatfmt=".1f"),
            "",
            pd.DataFrame(limits).to_markdown(index=False, floatfmt=".2f"),
            *[f"\n{note}" for note in notes],
        ]
    )
    print(text)
    if not args.no_write:
        write_between_markers(text, "detection_limit")


if __name__ == "__main__":
    main()
