"""Self-consistency of detection on real images (no annotations exist, so the image is compared with itself).

For each real image in ``shared/data/real_unlabeled/`` the shipped model and its one fixed detector setting
detect spots on the image as it is and on three modified copies: extra Poisson–Gaussian-like noise that lowers
its SNR to 0.8x (Gaussian noise with the image's own fitted noise model, so the total noise std is 1.25x), the
image multiplied by 4, and the image offset by +1000 counts. The F1 (k-d tree, r = 3 px) of each copy's
detections against the original's measures how stable detection is; it says nothing about correctness.

A symmetric F1 counts every spot near the threshold that crosses it, which extra noise makes some spots do whatever
the detector. The column *confident kept (noise)* separates that from instability of the network: the fraction of
the confident detections of the original (enhanced value in the upper half of the range above the threshold,
``>= (threshold + 255) / 2``) that are still detected in the noisier copy.

The peers of the accuracy benchmark (Big-FISH with its automatic threshold, U-FISH; ``--peers none`` to skip) take
the same test on the same modified copies, as a reference for how stable a detector can be on each image: spots
near an image's detection limit flip under extra noise whatever the detector.

    python benchmarks/real_consistency.py [--model deepspot_v1] [--data ../shared/data/real_unlabeled] [--peers ...]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import tifffile
from _common import DOCS_BENCHMARKS, command_line, write_between_markers
from accuracy import centre_values, deepspot_detect
from scipy import ndimage

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from peers import load_peers

import deepspot_sd as dsd


def training_backgrounds(model: dsd.models.EnhancementModel) -> set[str] | None:
    """The real images whose spot-suppressed backgrounds trained ``model``, as its config records them."""
    names = model.config.extra.get("training", {}).get("backgrounds")
    return None if names is None else set(names)


def usable_cores() -> int:
    """CPU cores this process may run on (measured, not assumed)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def variants(image: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The modified copies of a raw image."""
    img = image.astype(np.float64)
    noise = dsd.datasets.estimate_noise_model(img)
    level = ndimage.median_filter(img, size=11)
    # SNR x 0.8 <=> noise std x 1.25: add independent noise of std 0.75 * sigma(level)
    noisy = img + rng.normal(size=img.shape) * 0.75 * noise.std(level)
    return {
        "noise (SNR x0.8)": np.clip(np.round(noisy), 0, 65535).astype(np.uint16),
        "x4": img * 4.0,
        "+1000": img + 1000.0,
    }


def main() -> None:
    """Run the benchmark and write its table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_unlabeled"
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--model", default="deepspot_v1", help="shipped model name or model folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peers", default="bigfish,ufish", help="comma-separated peers, or 'none'")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    model = dsd.models.load_model(args.model) if Path(args.model).is_dir() else dsd.models.load_pretrained(args.model)
    peers, notes = load_peers([] if args.peers == "none" else args.peers.split(","))
    trained_on = training_backgrounds(model)
    rng = np.random.default_rng(args.seed)
    rows, peer_rows, panels = [], [], []
    for path in sorted(args.data.glob("*.tif")):
        image = tifffile.imread(path)
        start = time.perf_counter()
        reference, enhanced = deepspot_detect(model, image)
        panels.append((path.stem, image, enhanced, reference))
        seconds = time.perf_counter() - start
        row = {
            "image": path.stem,
            "used in training": "not recorded"
            if trained_on is None
            else ("background" if path.stem in trained_on else "no"),
            "spots": len(reference),
            "spots / 100 px²": 100.0 * len(reference) / image.size,
        }
        copies = variants(image, rng)
        confident = reference[centre_values(enhanced, reference) >= (model.config.threshold + 255.0) / 2]
        for name, copy in copies.items():
            spots, _ = deepspot_detect(model, copy)
            row[f"F1 {name}"] = dsd.metrics.match_kdtree(reference, spots, radius=3.0).f1
            if name.startswith("noise"):
                row["confident kept (noise)"] = dsd.metrics.match_kdtree(confident, spots, radius=3.0).recall
        row["s / MPix"] = seconds / (image.size / 1e6)
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False), flush=True)
        for peer in peers:
            peer_reference = peer.detect(image)
            peer_row = {"image": path.stem, "detector": peer.name, "spots": len(peer_reference)}
            for name, copy in copies.items():
                peer_row[f"F1 {name}"] = dsd.metrics.match_kdtree(peer_reference, peer.detect(copy), radius=3.0).f1
            peer_rows.append(peer_row)
            print(pd.DataFrame([peer_row]).to_string(index=False), flush=True)

    table = pd.DataFrame(rows)
    f1_cols = [c for c in table.columns if c.startswith("F1")]
    verdict = (table[f1_cols] >= 0.95).all(axis=1)
    table["all F1 >= 0.95"] = np.where(verdict, "yes", "no")
    text = "\n".join(
        [
            f"Command: `{command_line()}` (model `{args.model}`, threshold {model.config.threshold:g}, "
            f"{time.strftime('%Y-%m-%d')}, {usable_cores()} CPU cores)",
            "",
            table.to_markdown(index=False, floatfmt=".3f"),
        ]
    )
    if peer_rows:
        text += (
            "\n\nThe peers on the same modified copies (each against its own detections on the unmodified image):\n\n"
            + pd.DataFrame(peer_rows).to_markdown(index=False, floatfmt=".3f")
        )
    text += "".join(f"\n\n{note}" for note in notes)
    figure = DOCS_BENCHMARKS.parent / "_static" / "real_detections.png"
    text += "\n\n![raw crop, enhanced crop and detections on each real image](_static/real_detections.png)"
    print(text)
    if not args.no_write:
        fig, axes = plt.subplots(len(panels), 3, figsize=(13, 4.3 * len(panels)))
        for ax_row, (name, raw, enhanced, spots) in zip(axes, panels, strict=True):
            h, w = raw.shape
            r0, c0 = max(h // 2 - 96, 0), max(w // 2 - 96, 0)
            crop = (slice(r0, r0 + 192), slice(c0, c0 + 192))
            lo, hi = np.percentile(raw[crop], [0.5, 99.8])
            ax_row[0].imshow(raw[crop], cmap="gray", vmin=lo, vmax=hi)
            ax_row[1].imshow(enhanced[crop], cmap="magma", vmin=0, vmax=255)
            ax_row[2].imshow(raw[crop], cmap="gray", vmin=lo, vmax=hi)
            inside = (spots[:, 0] >= r0) & (spots[:, 0] < r0 + 192) & (spots[:, 1] >= c0) & (spots[:, 1] < c0 + 192)
            ax_row[2].scatter(spots[inside, 1] - c0, spots[inside, 0] - r0, s=30, facecolors="none", edgecolors="c")
            for ax, title in zip(ax_row, ("raw", "enhanced", f"{inside.sum()} detections"), strict=True):
                ax.set_title(f"{name[:30]}: {title}", fontsize=9)
                ax.axis("off")
        fig.tight_layout()
        fig.savefig(figure, dpi=55)
        write_between_markers(text, "real_consistency")


if __name__ == "__main__":
    main()
