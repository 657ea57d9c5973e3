"""Accuracy benchmark: the shipped model + ONE fixed detector setting vs. a classical baseline and peers (issue 4).

Held-out simulated test set, seed **424242** (never used in training: training draws from
``SeedSequence([seed, epoch])`` with small seeds, validation from ``SeedSequence([7919001, seed])``, the classical
baseline's training set from seed 1). 256 x 256 images from :func:`deepspot_sd.datasets.simulate_image`:

* family ``"hybrid"`` (each spot's SNR drawn in its stratum), densities 10, 50, 100, 150 spots per image x SNR
  strata 3–5, 5–10, 10–20, 20–40 (``--n-images`` per stratum, default 10: 160 images);
* families ``"fixed"`` and ``"variable"`` (the paper's DSfixed / DSvar: absolute spot peak 160–220, one per image /
  one per spot), the same densities (``--n-family`` per density and family, default ``n_images // 2``: 40 images);
* a dense regime: 300 spots per image, hybrid, the four SNR strata (``--n-dense`` per stratum, default
  ``n_images // 2``: 20 images), reported separately.

Methods, on the same images in the same run:

(a) DeepSpot: ``model.enhance_array(image)`` then ``find_spots_local_max`` at the model's ``config.threshold`` and
    ``config.min_distance``, one fixed setting for every image, then the molecule decision of ``tl.detect_spots``'
    defaults (``deepspot_detect``);
(b) classical: LoG + local maxima with one global (sigma, threshold) chosen by ``classical_baseline.choose_parameters``
    on a separate training set of the same design (seed 1, ``--n-train`` images per stratum);
(c) Big-FISH with its automatic threshold, and (d) U-FISH with the pretrained ONNX weights of its wheel
    (``benchmarks/peers.py``; optional, skipped with a note when not installed).

Scores: k-d tree matching at radius 3 px (paper §4.1), means over images of F1, precision, recall and ambiguous
matches (AM) per image; DeepSpot's enhanced value at every true spot's centre pixel (paper Table 2: 241–255); time
per megapixel of every method (wall clock of the detection call on each image, one warm-up call excluded). The
acceptance checks (DeepSpot mean F1 >= 0.97 over the main set; DeepSpot beats the classical baseline in every
density x SNR stratum; dense F1 >= 0.90) are computed and printed as PASS / FAIL.

Install the peers and run from the repository root::

    pip install -e ".[bench]" && pip install --no-deps ufish
    python benchmarks/accuracy.py                                # default: 220 images, writes docs/benchmarks.md
    python benchmarks/accuracy.py --n-images 1 --peers none --no-write    # quick check
    python benchmarks/accuracy.py --model path/to/model_folder   # a user-trained model folder

``--model`` takes a shipped model name (default ``deepspot_v1``), a model folder, or ``untrained:compact`` /
``untrained:paper`` (random weights, for development only). The tables go between the ``accuracy`` markers of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import (
    DOCS_BENCHMARKS,
    SNR_STRATA,
    command_line,
    limit_threads,
    make_stratified_set,
    write_between_markers,
)
from classical_baseline import SIGMAS, THRESHOLDS, choose_parameters

import deepspot_sd as dsd
from deepspot_sd.metrics import match_kdtree

#: Held-out test seed (never used in training).
TEST_SEED = 424242
#: Seed of the classical baseline's training set.
TRAIN_SEED = 1
DENSITIES: tuple[int, ...] = (10, 50, 100, 150)
DENSE_SPOTS = 300
FAMILIES: tuple[str, ...] = ("fixed", "variable")
_FAMILY_CODE = {"fixed": 1, "variable": 2}
SHAPE = (256, 256)
RADIUS = 3.0
TARGET_F1 = 0.97
TARGET_DENSE_F1 = 0.90

DEEPSPOT = "DeepSpot"
CLASSICAL = "classical"


@dataclass
class Group:
    """Images of one stratum: a family, a density and (hybrid only) an SNR range."""

    family: str
    n_spots: int
    snr: str
    regime: str  # "main" or "dense"
    images: list[Any] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- data
def build_groups(*, n_images: int, n_family: int, n_dense: int, seed: int) -> list[Group]:
    """Simulate the stratified test (or training) set; every image has its own seed derived from ``seed``."""
    groups = []
    for st in make_stratified_set(n_images=n_images, seed=seed, densities=DENSITIES, shape=SHAPE):
        groups.append(Group("hybrid", st.n_spots, st.label[1], "main", st.images))
    for family in FAMILIES:
        for n_spots in DENSITIES:
            g = Group(family, n_spots, "—", "main")
            for k in range(n_family):
                rng = np.random.default_rng([seed, _FAMILY_CODE[family], n_spots, k])
                g.images.append(dsd.datasets.simulate_image(SHAPE, n_spots=n_spots, family=family, seed=rng))
            if g.images:
                groups.append(g)
    if n_dense > 0:
        for st in make_stratified_set(n_images=n_dense, seed=seed, densities=(DENSE_SPOTS,), shape=SHAPE):
            groups.append(Group("hybrid", st.n_spots, st.label[1], "dense", st.images))
    return groups


# --------------------------------------------------------------------------------------------- methods


def load_enhancement_model(spec: str) -> tuple[dsd.models.EnhancementModel, str]:
    """Load ``spec``: a shipped model name, a model folder, or ``untrained:<preset>``; return it and a description."""
    models = dsd.models
    if spec.startswith("untrained:"):
        model = models.EnhancementModel.from_config(models.ModelConfig.preset(spec.split(":", 1)[1]))
        where = f"`{spec}` (random weights: development only, scores meaningless)"
    elif Path(spec).is_dir():
        model = models.load_model(spec)
        where = f"model folder `{spec}`"
    else:
        model = models.load_pretrained(spec)
        where = f"shipped model `{spec}`"
    c = model.config
    desc = (
        f"{where}: {c.name} v{c.version}, {c.architecture} {list(c.filters)}/{c.bottleneck_filters}, "
        f"`find_spots_local_max(threshold={c.threshold:g}, min_distance={c.min_distance})`"
    )
    return model, desc


def deepspot_detect(model: dsd.models.EnhancementModel, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalise, enhance and detect as ``tl.detect_spots``' defaults do; returns ``(spots, enhanced)``.

    The model's one fixed setting finds the local maxima; the molecule decision (``min_amplitude="auto"``:
    :func:`deepspot_sd.tl.split_populations` on the raw amplitudes of :func:`deepspot_sd.tl.measure_spots`) then
    removes a separate dim population where the image has one.
    """
    enhanced = model.enhance_array(image)
    spots = dsd.tl.find_spots_local_max(
        enhanced, threshold=model.config.threshold, min_distance=model.config.min_distance
    )
    amplitude = dsd.tl.measure_spots(image, spots)["amplitude"].to_numpy()
    return spots[dsd.tl.split_populations(amplitude).keep], enhanced


def centre_values(enhanced: np.ndarray, spots: np.ndarray) -> np.ndarray:
    """Enhanced values at the pixels that contain the true spot centres (pixel-centre convention)."""
    if len(spots) == 0:
        return np.zeros(0, dtype=np.float64)
    ij = np.floor(np.asarray(spots) + 0.5).astype(int)
    ij[:, 0] = ij[:, 0].clip(0, enhanced.shape[0] - 1)
    ij[:, 1] = ij[:, 1].clip(0, enhanced.shape[1] - 1)
    return enhanced[ij[:, 0], ij[:, 1]].astype(np.float64)


# --------------------------------------------------------------------------------------------- run
def run_methods(
    groups: list[Group],
    methods: dict[str, Callable[[np.ndarray], np.ndarray]],
    deepspot: dsd.models.EnhancementModel,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every method on every image; return the per-image scores and DeepSpot's centre values per image."""
    rows, centre_rows = [], []
    n_total = sum(len(g.images) for g in groups)
    done, t_start = 0, time.perf_counter()
    for gi, g in enumerate(groups):
        for k, sim in enumerate(g.images):
            mpix = sim.image.size / 1e6
            base = {
                "group": gi,
                "family": g.family,
                "density": g.n_spots,
                "snr": g.snr,
                "regime": g.regime,
                "image": k,
                "mpix": mpix,
            }
            t0 = time.perf_counter()
            pred, enhanced = deepspot_detect(deepspot, sim.image)
            seconds = time.perf_counter() - t0
            rows.append({**base, "method": DEEPSPOT, "seconds": seconds, **_scores(sim.spots, pred)})
            values = centre_values(enhanced, sim.spots)
            centre_rows.append({**base, "values": values})
            for name, detect in methods.items():
                t0 = time.perf_counter()
                pred = detect(sim.image)
                seconds = time.perf_counter() - t0
                rows.append({**base, "method": name, "seconds": seconds, **_scores(sim.spots, pred)})
            done += 1
        elapsed = time.perf_counter() - t_start
        print(f"  [{done}/{n_total} images, {elapsed:.0f} s] {g.regime} {g.family} {g.n_spots} spots SNR {g.snr}")
    per_image = pd.DataFrame(rows)
    centres = pd.DataFrame(centre_rows)
    return per_image, centres


def _scores(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    r = match_kdtree(true, pred, radius=RADIUS)
    return {
        "n_true": r.n_true,
        "n_pred": r.n_pred,
        "f1": r.f1,
        "precision": r.precision,
        "recall": r.recall,
        "am": r.am,
    }


def summarise(per_image: pd.DataFrame, regime: str) -> pd.DataFrame:
    """Per-stratum means per method, plus an ``all`` row per method (mean over all images of the regime)."""
    df = per_image[per_image["regime"] == regime]
    keys = ["family", "density", "snr"]
    metrics = ["f1", "precision", "recall", "am"]
    g = df.groupby([*keys, "method"], sort=False)
    strata = g[metrics].mean().join(g.size().rename("n_images")).reset_index()
    allrow = df.groupby("method", sort=False)[metrics].mean().join(df.groupby("method").size().rename("n_images"))
    allrow = allrow.reset_index().assign(family="all", density="all", snr="all")
    return pd.concat([strata, allrow[strata.columns]], ignore_index=True)


# --------------------------------------------------------------------------------------------- tables
def _pct(x: float) -> str:
    return "—" if pd.isna(x) else f"{100 * x:.1f}"


def f1_table(summary: pd.DataFrame, methods: list[str], centre_means: dict[tuple, float] | None = None) -> str:
    """Strata as rows, mean F1 (%) of every method as columns (best in bold), DeepSpot's centre value."""
    head = "| family | spots / image | SNR | images | " + " | ".join(f"F1 {m} (%)" for m in methods) + " |"
    sep = "|:---|---:|:---:|---:|" + "---:|" * len(methods)
    if centre_means is not None:
        head += " DeepSpot enhanced centre (mean) |"
        sep += "---:|"
    lines = [head, sep]
    wide = summary.pivot_table(index=["family", "density", "snr"], columns="method", values="f1", sort=False)
    sizes = summary.groupby(["family", "density", "snr"], sort=False)["n_images"].first()
    for key, row in wide.iterrows():
        best = max(row[m] for m in methods if m in row and not pd.isna(row[m]))
        cells = []
        for m in methods:
            v = row.get(m, np.nan)
            s = _pct(v)
            cells.append(f"**{s}**" if not pd.isna(v) and v == best else s)
        fam, dens, snr = key
        line = f"| {fam} | {dens} | {snr} | {sizes[key]} | " + " | ".join(cells) + " |"
        if centre_means is not None:
            cm = centre_means.get(key, np.nan)
            line += f" {cm:.1f} |" if not pd.isna(cm) else " — |"
        lines.append(line)
    return "\n".join(lines)


def detail_table(summary: pd.DataFrame, method: str) -> str:
    """F1, precision, recall and AM per image of one method, per stratum."""
    lines = [
        "| family | spots / image | SNR | images | F1 (%) | precision (%) | recall (%) | AM / image |",
        "|:---|---:|:---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary[summary["method"] == method].itertuples(index=False):
        b = "**" if r.family == "all" else ""
        lines.append(
            f"| {b}{r.family}{b} | {r.density} | {r.snr} | {r.n_images} | {b}{_pct(r.f1)}{b} | {_pct(r.precision)} | "
            f"{_pct(r.recall)} | {r.am:.2f} |"
        )
    return "\n".join(lines)


def speed_table(per_image: pd.DataFrame, methods: list[str]) -> str:
    """Time per megapixel of every method over all images of the run."""
    lines = ["| method | s / MPix | MPix / s | images |", "|:---|---:|---:|---:|"]
    for m in methods:
        d = per_image[per_image["method"] == m]
        s_per_mpix = d["seconds"].sum() / d["mpix"].sum()
        lines.append(f"| {m} | {s_per_mpix:.2f} | {1 / s_per_mpix:.2f} | {len(d)} |")
    return "\n".join(lines)


def margin_table(per_image: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> tuple[str, list[tuple]]:
    """DeepSpot minus classical F1 per main-set stratum, with a paired bootstrap 95 % interval over the images.

    A stratum of 5 images x 10 spots moves by 2 F1 points per spot, so a margin alone does not say whether a
    difference is larger than the draw of the images. Returns the Markdown table and the strata where DeepSpot is
    behind with an interval entirely below 0.
    """
    df = per_image[(per_image["regime"] == "main") & per_image["method"].isin([DEEPSPOT, CLASSICAL])]
    wide = df.pivot_table(index=["family", "density", "snr", "image"], columns="method", values="f1", sort=False)
    rng = np.random.default_rng(seed)
    lines = [
        "| family | spots / image | SNR | images | DeepSpot − classical (F1 points) | 95 % interval |",
        "|:---|---:|:---:|---:|---:|:---:|",
    ]
    clearly_behind = []
    for key, g in wide.groupby(level=["family", "density", "snr"], sort=False):
        diff = (g[DEEPSPOT] - g[CLASSICAL]).to_numpy()
        boot = diff[rng.integers(len(diff), size=(n_boot, len(diff)))].mean(axis=1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        if hi < 0:
            clearly_behind.append(key)
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {len(diff)} | {100 * diff.mean():+.1f} | "
            f"{100 * lo:+.1f} … {100 * hi:+.1f} |"
        )
    return "\n".join(lines), clearly_behind


# --------------------------------------------------------------------------------------------- checks
def acceptance(summary_main: pd.DataFrame, summary_dense: pd.DataFrame | None) -> list[tuple[str, bool, str]]:
    """The issue-4 acceptance checks, computed: (name, passed, detail)."""
    out = []
    f1_all = summary_main.query("family == 'all' and method == @DEEPSPOT")["f1"].iloc[0]
    out.append((f"DeepSpot mean F1 >= {TARGET_F1} (main set)", bool(f1_all >= TARGET_F1), f"F1 = {f1_all:.4f}"))

    strata = summary_main[summary_main["family"] != "all"]
    wide = strata.pivot_table(index=["family", "density", "snr"], columns="method", values="f1", sort=False)
    if CLASSICAL in wide:
        # "beats": strictly higher mean F1; a tie at a perfect 1.0 cannot be beaten and counts as beaten
        beat = (wide[DEEPSPOT] > wide[CLASSICAL]) | ((wide[DEEPSPOT] >= 1.0) & (wide[CLASSICAL] >= 1.0))
        margin = wide[DEEPSPOT] - wide[CLASSICAL]
        hybrid = wide.index.get_level_values("family") == "hybrid"
        for label, mask in (
            ("every density x SNR stratum (hybrid)", hybrid),
            ("every fixed / variable stratum", ~hybrid),
        ):
            if not mask.any():
                continue
            worst = margin[mask].idxmin()
            out.append(
                (
                    f"DeepSpot beats the classical baseline in {label}",
                    bool(beat[mask].all()),
                    f"{int(beat[mask].sum())}/{int(mask.sum())} strata; smallest margin "
                    f"{100 * margin[mask].min():+.1f} F1 points at {'/'.join(map(str, worst))}",
                )
            )
    if summary_dense is not None and len(summary_dense):
        f1_dense = summary_dense.query("family == 'all' and method == @DEEPSPOT")["f1"].iloc[0]
        out.append(
            (
                f"DeepSpot F1 >= {TARGET_DENSE_F1} at {DENSE_SPOTS} spots / image (aim)",
                bool(f1_dense >= TARGET_DENSE_F1),
                f"F1 = {f1_dense:.4f}",
            )
        )
    return out


# --------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deepspot_v1", help="shipped name, model folder or untrained:<preset>")
    parser.add_argument("--n-images", type=int, default=10, help="hybrid images per density x SNR stratum (10)")
    parser.add_argument("--n-family", type=int, default=None, help="fixed/variable images per density (n_images//2)")
    parser.add_argument("--n-dense", type=int, default=None, help=f"{DENSE_SPOTS}-spot images per SNR stratum")
    parser.add_argument("--n-train", type=int, default=3, help="classical training images per stratum (3)")
    parser.add_argument("--seed", type=int, default=TEST_SEED, help=f"test seed (default {TEST_SEED}, held out)")
    parser.add_argument("--train-seed", type=int, default=TRAIN_SEED, help="classical training seed (1)")
    parser.add_argument("--peers", default="bigfish,ufish", help="comma-separated peers, or 'none'")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow / onnxruntime threads (default: all)")
    parser.add_argument("--csv", type=Path, default=None, help="also write the per-image scores to this CSV")
    parser.add_argument("--docs", type=Path, default=DOCS_BENCHMARKS, help="Markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print only, do not update the Markdown file")
    args = parser.parse_args(argv)
    if args.seed == args.train_seed:
        parser.error("--seed and --train-seed must differ: the classical threshold is chosen on a separate set.")
    n_family = max(1, args.n_images // 2) if args.n_family is None else args.n_family
    n_dense = args.n_images // 2 if args.n_dense is None else args.n_dense
    n_dense = max(n_dense, 1) if args.n_dense is None else n_dense

    t_run = time.perf_counter()
    limit_threads(args.threads)
    try:
        model, model_desc = load_enhancement_model(args.model)
    except (KeyError, FileNotFoundError) as err:
        parser.error(f"{err} Pass --model with a model folder, a shipped name, or untrained:compact for development.")
    print(f"DeepSpot: {model_desc}")

    # (b) classical baseline: one global (sigma, threshold) chosen on a separate training set of the same design
    t0 = time.perf_counter()
    train = build_groups(n_images=args.n_train, n_family=max(1, args.n_train // 2), n_dense=0, seed=args.train_seed)
    train_images = [sim for g in train for sim in g.images]
    sigma, threshold, train_f1, _ = choose_parameters(train_images)
    t_train = time.perf_counter() - t0
    print(
        f"classical: sigma={sigma} px, threshold={threshold:.3g} on {len(train_images)} training images "
        f"(train F1 {train_f1:.3f}, {t_train:.0f} s)"
    )

    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        CLASSICAL: lambda img: dsd.tl.find_spots_log(img, sigma=sigma, threshold=threshold)
    }
    peer_names = [] if args.peers.strip().lower() == "none" else [p.strip() for p in args.peers.split(",") if p]
    from peers import load_peers

    peers, notes = load_peers(peer_names, threads=args.threads)
    for note in notes:
        print(f"NOTE: {note}")
    for p in peers:
        methods[p.name] = p.detect
        print(f"{p.name}: {p.description}")

    t0 = time.perf_counter()
    groups = build_groups(n_images=args.n_images, n_family=n_family, n_dense=n_dense, seed=args.seed)
    n_main = sum(len(g.images) for g in groups if g.regime == "main")
    n_dense_total = sum(len(g.images) for g in groups if g.regime == "dense")
    print(f"simulated {n_main} main + {n_dense_total} dense test images in {time.perf_counter() - t0:.0f} s")

    # warm-up (not timed): one call of every method on the first image
    warm = groups[0].images[0].image
    model.enhance_array(warm)
    for detect in methods.values():
        detect(warm)

    per_image, centres = run_methods(groups, methods, model)
    if args.csv is not None:
        per_image.to_csv(args.csv, index=False)
    names = [DEEPSPOT, *methods]
    summary_main = summarise(per_image, "main")
    summary_dense = summarise(per_image, "dense") if n_dense_total else None

    main_centres = centres[centres["regime"] == "main"]
    values = np.concatenate(main_centres["values"].to_list()) if len(main_centres) else np.zeros(0)
    centre_means = {
        (r.family, r.density, r.snr): float(np.mean(r.values)) if len(r.values) else np.nan
        for r in main_centres.groupby(["family", "density", "snr"], sort=False)["values"]
        .apply(lambda s: np.concatenate(s.to_list()))
        .reset_index()
        .itertuples(index=False)
    }
    centre_means[("all", "all", "all")] = float(values.mean()) if len(values) else np.nan
    p5, p95 = np.percentile(values, [5, 95]) if len(values) else (np.nan, np.nan)
    thr = model.config.threshold
    frac_above = float(np.mean(values >= thr)) if len(values) else np.nan

    checks = acceptance(summary_main, summary_dense)
    elapsed = time.perf_counter() - t_run
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    threads = "library defaults" if args.threads is None else f"{args.threads}"
    parts = [
        f"Held-out simulated test set, seed {args.seed} (never used in training), 256 x 256 images: family "
        f"`hybrid` with {len(DENSITIES)} densities x {len(SNR_STRATA)} SNR strata x {args.n_images} images, families "
        f"`fixed` and `variable` with {n_family} images per density, {n_main} images in all"
        + (f"; dense regime {DENSE_SPOTS} spots / image, {n_dense_total} images" if n_dense_total else "")
        + ". All methods on the same images in the same run; "
        f"k-d tree matching at radius {RADIUS:g} px (paper §4.1), means over images.",
        "",
        f"- **DeepSpot**: {model_desc}; one setting for every image.",
        f"- **classical**: `find_spots_log` with one global sigma = {sigma} px, threshold = {threshold:.3g}, chosen by "
        f"`classical_baseline.choose_parameters` ({len(SIGMAS)} x {len(THRESHOLDS)} grid) on {len(train_images)} "
        f"training images of the same design (seed {args.train_seed}; train F1 {100 * train_f1:.1f} %).",
        *[f"- **{p.name}**: {p.description}." for p in peers],
        *[f"- {note}" for note in notes],
        "",
        "**Acceptance (computed):**",
        "",
        *[f"- {'PASS' if ok else 'FAIL'}: {name} ({detail})" for name, ok, detail in checks],
        "",
        "Mean F1 per stratum (best in bold); last column: DeepSpot's enhanced value at the true spot centre pixels "
        "(mean):",
        "",
        f1_table(summary_main, names, centre_means),
        "",
        f"DeepSpot enhanced value at the {len(values)} true spot centre pixels of the main set: mean "
        f"{np.mean(values):.1f}, std {np.std(values):.1f}, 5th–95th percentile {p5:.1f}–{p95:.1f}, "
        f"{100 * frac_above:.1f} % at or above the detection threshold {thr:g} (paper Table 2: mean 241–255).",
    ]
    if summary_dense is not None:
        parts += [
            "",
            f"Dense regime, {DENSE_SPOTS} spots per 256 x 256 image (mean F1 per SNR stratum):",
            "",
            f1_table(summary_dense, names),
        ]
    margins, clearly_behind = margin_table(per_image)
    behind = ", ".join("/".join(map(str, k)) for k in clearly_behind) or "none"
    parts += [
        "",
        "DeepSpot minus classical per stratum, paired over the same images, with a bootstrap 95 % interval "
        "(2000 resamples of the images; a rough interval where a stratum has 5 images). Strata where DeepSpot "
        f"is behind with the whole interval below 0: {behind}.",
        "",
        "<details><summary>Margins per stratum</summary>",
        "",
        margins,
        "",
        "</details>",
        "",
        f"Time per megapixel (wall clock of each method's call per image, warm-up excluded; threads: {threads}; "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; other jobs may share the CPU):",
        "",
        speed_table(per_image, names),
        "",
        "<details><summary>Precision, recall and ambiguous matches per method</summary>",
        "",
    ]
    for m in names:
        parts += [f"**{m}** (main set)", "", detail_table(summary_main, m), ""]
        if summary_dense is not None:
            parts += [f"**{m}** (dense, {DENSE_SPOTS} spots / image)", "", detail_table(summary_dense, m), ""]
    parts += [
        "</details>",
        "",
        f"Command: `{command_line()}` ({date}, {elapsed:.0f} s on this machine, of which {t_train:.0f} s choosing "
        "the classical parameters).",
    ]
    text = "\n".join(parts)
    print()
    print(text)
    print()
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {name} ({detail})")
    if not args.no_write:
        path = write_between_markers(text, "accuracy", args.docs)
        print(f"\nWrote {path}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
