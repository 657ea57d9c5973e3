"""Classical baseline: Laplacian of Gaussian + local maxima with ONE global (sigma, threshold), no enhancement.

The point of DeepSpot (paper §4.2) is that one fixed detector setting works on every image. This script measures
how far a classical detector gets under the same rule: the LoG sigma and the response threshold are chosen once,
on a separate simulated training set (its own seed), to maximise the mean F1 over its images; then they are applied
unchanged to simulated test sets stratified by spot density and SNR (family ``"hybrid"``, SNR-controlled spots).
Scores: k-d tree matching at radius 3 px (paper §4.1), means over images; Hungarian F1 for reference.

Run from the repository root::

    python benchmarks/classical_baseline.py                 # 20 test images per stratum (400 in all)
    python benchmarks/classical_baseline.py --n-images 3 --n-train 2 --no-write   # quick check

The table is printed and written into ``docs/benchmarks.md`` between the ``classical_baseline`` markers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import (
    DOCS_BENCHMARKS,
    command_line,
    make_stratified_set,
    markdown_table,
    score_strata,
    write_between_markers,
)
from scipy import ndimage

import deepspot_sd as dsd
from deepspot_sd._detection import _peak_table, refine_centroid
from deepspot_sd.metrics import match_kdtree

SIGMAS = (0.8, 1.0, 1.3, 1.6, 2.0)
THRESHOLDS = np.geomspace(2.0, 200.0, 41)


def _candidates(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """All LoG peaks down to the smallest threshold: (response values, refined centres).

    ``find_spots_log(image, sigma=sigma, threshold=t)`` equals the centres whose value is ``>= t`` (min_distance 1),
    which makes the grid search one LoG per (image, sigma).
    """
    response = -(sigma**2) * ndimage.gaussian_laplace(image.astype(np.float64), sigma=sigma, mode="reflect")
    table = _peak_table(response, threshold=float(THRESHOLDS[0]), min_distance=1)
    return table[:, 0], refine_centroid(image, table[:, 1:3].astype(np.intp))


def choose_parameters(train_images: list) -> tuple[float, float, float, np.ndarray]:
    """Grid search of (sigma, threshold) maximising the mean F1 over the training images."""
    f1 = np.zeros((len(SIGMAS), len(THRESHOLDS)))
    for i, sigma in enumerate(SIGMAS):
        for sim in train_images:
            values, centres = _candidates(sim.image, sigma)
            for j, t in enumerate(THRESHOLDS):
                f1[i, j] += match_kdtree(sim.spots, centres[values >= t], radius=3.0).f1
    f1 /= len(train_images)
    i, j = np.unravel_index(np.argmax(f1), f1.shape)
    sigma, threshold = SIGMAS[i], float(THRESHOLDS[j])
    # the shortcut must agree with the public detector
    sim = train_images[0]
    values, centres = _candidates(sim.image, sigma)
    direct = dsd.tl.find_spots_log(sim.image, sigma=sigma, threshold=threshold)
    fast = centres[values >= threshold]
    np.testing.assert_allclose(direct, fast[np.lexsort((fast[:, 1], fast[:, 0]))])
    return sigma, threshold, float(f1[i, j]), f1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=20, help="test images per stratum (default 20)")
    parser.add_argument("--n-train", type=int, default=5, help="training images per stratum (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the test set (default 0)")
    parser.add_argument("--train-seed", type=int, default=1, help="seed of the training set (default 1)")
    parser.add_argument("--no-write", action="store_true", help=f"do not update {DOCS_BENCHMARKS.name}")
    args = parser.parse_args(argv)
    if args.seed == args.train_seed:
        parser.error("--seed and --train-seed must differ: the threshold is chosen on a separate set.")

    t0 = time.perf_counter()
    train = [sim for st in make_stratified_set(n_images=args.n_train, seed=args.train_seed) for sim in st.images]
    sigma, threshold, train_f1, _ = choose_parameters(train)
    t_train = time.perf_counter() - t0
    print(
        f"chosen on {len(train)} training images: sigma={sigma} px, threshold={threshold:.3g} (train F1 {train_f1:.3f})"
    )

    test = make_stratified_set(n_images=args.n_images, seed=args.seed)
    scores = score_strata(test, lambda sim: dsd.tl.find_spots_log(sim.image, sigma=sigma, threshold=threshold))
    elapsed = time.perf_counter() - t0

    cmd = command_line()
    text = "\n".join(
        [
            "LoG + local maxima (`dsd.tl.find_spots_log`) on the raw simulated images, one global setting: "
            f"sigma = {sigma} px, threshold = {threshold:.3g} (scale-normalised LoG response), chosen by grid search "
            f"({len(SIGMAS)} sigmas x {len(THRESHOLDS)} thresholds) to maximise mean F1 on {len(train)} training "
            f"images (seed {args.train_seed}; train F1 {100 * train_f1:.1f} %). "
            f"Test: `simulate_image(family='hybrid')`, 256 x 256, {args.n_images} images per stratum "
            f"(seed {args.seed}). k-d tree matching at radius 3 px "
            "(paper §4.1), means over images; AM = ambiguous matches per image.",
            "",
            markdown_table(scores),
            "",
            f"Command: `{cmd}` ({elapsed:.0f} s on this machine, of which {t_train:.0f} s choosing the parameters).",
        ]
    )
    print()
    print(text)
    if not args.no_write:
        path = write_between_markers(text, "classical_baseline")
        print(f"\nWrote {path}")


if __name__ == "__main__":
    main()
