"""Shared helpers of the accuracy benchmarks: stratified simulated test sets and Markdown tables in docs.

Strata cross spot density (spots per 256 x 256 image) with SNR ranges (SNR as defined in
``deepspot_sd.datasets._simulate``). Every image has its own seed derived from ``(seed, stratum, image)``, so a
stratum's images do not change when the number of images or the list of strata changes.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import deepspot_sd as dsd

__all__ = [
    "DENSITIES",
    "DOCS_BENCHMARKS",
    "SNR_STRATA",
    "Stratum",
    "command_line",
    "limit_threads",
    "make_stratified_set",
    "markdown_table",
    "score_strata",
    "write_between_markers",
]

#: Spots per 256 x 256 image.
DENSITIES: tuple[int, ...] = (10, 50, 100, 200, 400)
#: SNR ranges (peak height above local background / noise std).
SNR_STRATA: tuple[tuple[float, float], ...] = ((3.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 40.0))
#: The benchmark page of the docs.
DOCS_BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


@dataclass
class Stratum:
    """Simulated images of one (density, SNR range) stratum."""

    n_spots: int
    snr_range: tuple[float, float]
    images: list[Any] = field(default_factory=list)

    @property
    def label(self) -> tuple[str, str]:
        """``(density, SNR)`` labels for tables."""
        lo, hi = self.snr_range
        return str(self.n_spots), f"{lo:g}–{hi:g}"


def make_stratified_set(
    *,
    n_images: int,
    seed: int,
    densities: Sequence[int] = DENSITIES,
    snr_strata: Sequence[tuple[float, float]] = SNR_STRATA,
    shape: tuple[int, int] = (256, 256),
    family: str = "hybrid",
    **simulate_kwargs: Any,
) -> list[Stratum]:
    """Simulate ``n_images`` images for every (density, SNR range) stratum.

    Image ``k`` of the stratum with density ``n`` and SNR range ``(lo, hi)`` uses the seed
    ``[seed, n, round(10 * lo), round(10 * hi), k]``; extra keyword arguments go to
    :func:`deepspot_sd.datasets.simulate_image`.
    """
    strata = []
    for n_spots in densities:
        for lo, hi in snr_strata:
            st = Stratum(int(n_spots), (float(lo), float(hi)))
            for k in range(n_images):
                rng = np.random.default_rng([seed, int(n_spots), round(10 * lo), round(10 * hi), k])
                st.images.append(
                    dsd.datasets.simulate_image(
                        shape,
                        n_spots=int(n_spots),
                        family=family,
                        snr_range=(float(lo), float(hi)),
                        seed=rng,
                        **simulate_kwargs,
                    )
                )
            strata.append(st)
    return strata


def score_strata(
    strata: Iterable[Stratum],
    detect: Callable[[Any], np.ndarray],
    *,
    radius: float = 3.0,
) -> pd.DataFrame:
    """Run ``detect(sim)`` on every image and score it per stratum (k-d tree and Hungarian, paper radius 3).

    Returns one row per stratum plus a row ``all`` (mean over all images): columns ``density, snr, n_images, f1,
    precision, recall, am_per_image, f1_hungarian`` (means over the stratum's images).
    """
    rows = []
    all_kd, all_hu = [], []
    for st in strata:
        preds = [detect(sim) for sim in st.images]
        trues = [sim.spots for sim in st.images]
        kd = dsd.metrics.score_images(trues, preds, method="kdtree", radius=radius)
        hu = dsd.metrics.score_images(trues, preds, method="hungarian", radius=radius)
        all_kd.append(kd)
        all_hu.append(hu)
        rows.append(_row(*st.label, kd, hu))
    rows.append(_row("all", "all", pd.concat(all_kd), pd.concat(all_hu)))
    return pd.DataFrame(rows)


def _row(density: str, snr: str, kd: pd.DataFrame, hu: pd.DataFrame) -> dict[str, Any]:
    mean = dsd.metrics.aggregate_scores(kd).loc["mean"]
    return {
        "density": density,
        "snr": snr,
        "n_images": len(kd),
        "f1": mean["f1"],
        "precision": mean["precision"],
        "recall": mean["recall"],
        "am_per_image": mean["am"],
        "f1_hungarian": dsd.metrics.aggregate_scores(hu).loc["mean", "f1"],
    }


def markdown_table(df: pd.DataFrame) -> str:
    """Format :func:`score_strata` output as a Markdown table (scores in percent, AM per image)."""
    lines = [
        "| spots / image | SNR | images | F1 (%) | precision (%) | recall (%) | AM / image | F1 Hungarian (%) |",
        "|---:|:---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in df.itertuples(index=False):
        bold = "**" if r.density == "all" else ""
        lines.append(
            f"| {bold}{r.density}{bold} | {r.snr} | {r.n_images} | {bold}{100 * r.f1:.1f}{bold} | "
            f"{100 * r.precision:.1f} | {100 * r.recall:.1f} | {r.am_per_image:.2f} | {100 * r.f1_hungarian:.1f} |"
        )
    return "\n".join(lines)


def write_between_markers(text: str, name: str, path: Path = DOCS_BENCHMARKS) -> Path:
    """Put ``text`` between ``<!-- {name}:start -->`` and ``<!-- {name}:end -->`` in ``path``.

    Only the text between the markers is replaced; when the file or the markers do not exist yet, they are created
    (the markers at the end of the file).
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.strip()}\n{end}"
    path = Path(path)
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), flags=re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: block, old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
    return path


def command_line() -> str:
    """The command that ran this script, relative to the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(Path(__file__).resolve().parents[1])
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def limit_threads(threads: int | None) -> None:
    """Limit TensorFlow's CPU threads (call before the first TensorFlow operation)."""
    if threads is None:
        return
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised: the environment variables above took effect or nothing can
        pass
