"""Real images with spots clicked by people: what a person counts, against each method's defaults.

For every ``<name>.tif`` + ``<name>.csv`` (columns ``x, y``: 0-based pixel centres) in ``--data`` (default
``../shared/data/real_annotated`` next to the repository), the script scores with k-d tree matching at 3 px
(:func:`deepspot_sd.metrics.match_kdtree`):

* **deepspot_sd defaults**: the raw image as a SpatialData image element, ``dsd.tl.enhance`` then
  ``dsd.tl.detect_spots`` with every default (the molecule decision ``min_amplitude="auto"`` included);
* **deepspot_sd, no molecule decision**: the same detections with ``min_amplitude=None`` (what 0.5.0 reported);
* **Big-FISH** with its automatic threshold and **U-FISH** with its defaults (``benchmarks/peers.py``), when
  installed;
* **LoG oracle**: a Laplacian of Gaussian whose sigma (0.8–2.0 px) and threshold are chosen *on this image against
  its annotations*, the best any single LoG setting can do (not a method: a ceiling for a classical detector).

No parameter of the package is set per image. Run from the repository root::

    python benchmarks/real_annotated.py              # writes the table into docs/benchmarks.md
    python benchmarks/real_annotated.py --peers none --no-write

The exit status is 1 when an acceptance check (issue 17: ``iss_rnd0_ch3`` F1 >= 0.85, ``beads_lung`` F1 >= 0.95)
fails.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from _common import command_line, limit_threads, write_between_markers
from classical_baseline import SIGMAS, _candidates
from peers import load_peers

import deepspot_sd as dsd
from deepspot_sd.metrics import match_kdtree

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_annotated"
#: Acceptance of issue 17 (F1, k-d tree at 3 px, package defaults).
ACCEPTANCE = {"iss_rnd0_ch3": 0.85, "beads_lung": 0.95}
RADIUS = 3.0


def load_images(folder: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(name, image, true (row, col) centres)]`` for every annotated image of ``folder``."""
    out = []
    for tif in sorted(folder.glob("*.tif")):
        csv = tif.with_suffix(".csv")
        if not csv.exists():
            continue
        points = pd.read_csv(csv)
        out.append((tif.stem, tifffile.imread(tif), points[["y", "x"]].to_numpy(dtype=np.float64)))
    if not out:
        raise FileNotFoundError(f"No <name>.tif with a <name>.csv in {folder}.")
    return out


def deepspot_defaults(image: np.ndarray, model: str = "deepspot_v1") -> tuple[dict[str, np.ndarray], str]:
    """Spots of the package's defaults, with and without the molecule decision, and the decision's log line."""
    from spatialdata import SpatialData
    from spatialdata.models import Image2DModel

    sdata = SpatialData(images={"raw": Image2DModel.parse(image[None], dims=("c", "y", "x"))})
    dsd.tl.enhance(sdata, "raw", model=model, show_progress_bar=False)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for label, option in (("deepspot_sd defaults", "auto"), ("deepspot_sd, no molecule decision", None)):
            points = dsd.tl.detect_spots(
                sdata, "raw_enhanced", min_amplitude=option, inplace=False, show_progress_bar=False
            )
            df = points.compute()
            out[label] = df[["y", "x"]].to_numpy(dtype=np.float64)
            if option == "auto":
                reason = points.attrs["deepspot_sd"]["molecule_decision"]["0"]["reason"]
    return out, reason


def log_oracle(image: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, str]:
    """The LoG setting (sigma, threshold) with the best F1 on this image against its own annotations."""
    best = (-1.0, None, "")
    for sigma in SIGMAS:
        values, centres = _candidates(image.astype(np.float64), sigma)
        order = np.argsort(values)[::-1]
        values, centres = values[order], centres[order]
        for t in np.unique(np.quantile(values, np.linspace(0.0, 1.0, 301))):
            pred = centres[values >= t]
            f1 = match_kdtree(truth, pred, radius=RADIUS).f1
            if f1 > best[0]:
                best = (f1, pred, f"sigma {sigma:g} px, threshold {t:.4g}")
    return best[1], best[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of <name>.tif + <name>.csv")
    parser.add_argument("--model", default="deepspot_v1", help="shipped model name or model folder")
    parser.add_argument("--peers", default="bigfish,ufish", help="comma-separated peers, or 'none'")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow / onnxruntime threads")
    parser.add_argument("--no-write", action="store_true", help="print only, do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    names = [] if args.peers == "none" else [p.strip() for p in args.peers.split(",") if p.strip()]
    peers, notes = load_peers(names, threads=args.threads)

    t_run = time.perf_counter()
    rows, decisions = [], []
    for name, image, truth in load_images(args.data):
        results, reason = deepspot_defaults(image, args.model)
        decisions.append(f"- `{name}`: {reason}")
        for peer in peers:
            results[peer.name] = peer.detect(image)
        oracle, setting = log_oracle(image, truth)
        results[f"LoG oracle ({setting})"] = oracle
        for method, pred in results.items():
            m = match_kdtree(truth, pred, radius=RADIUS)
            rows.append(
                {
                    "image": name,
                    "method": method,
                    "annotated": len(truth),
                    "detected": len(pred),
                    "precision": m.precision,
                    "recall": m.recall,
                    "f1": m.f1,
                }
            )
            print(f"{name:14s} {method:45s} n={len(pred):5d} P={m.precision:.3f} R={m.recall:.3f} F1={m.f1:.3f}")
    df = pd.DataFrame(rows)

    checks = []
    for name, minimum in ACCEPTANCE.items():
        sel = df[(df.image == name) & (df.method == "deepspot_sd defaults")]
        if len(sel):
            f1 = float(sel.f1.iloc[0])
            checks.append((f"`{name}` F1 with defaults >= {minimum:g}: {f1:.3f}", f1 >= minimum))

    lines = [
        "| image | method | annotated | detected | precision | recall | F1 |",
        "|:---|:---|---:|---:|---:|---:|---:|",
    ]
    for r in df.itertuples(index=False):
        bold = "**" if r.method == "deepspot_sd defaults" else ""
        lines.append(
            f"| `{r.image}` | {bold}{r.method}{bold} | {r.annotated} | {r.detected} | {r.precision:.3f} | "
            f"{r.recall:.3f} | {bold}{r.f1:.3f}{bold} |"
        )
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = "\n".join(
        [
            "Real images with spots clicked by people (`../shared/data/real_annotated/`, see its README), each "
            f"method's defaults, k-d tree matching at {RADIUS:g} px. No package parameter is set per image; the LoG "
            "oracle's setting is chosen on each image against its own annotations (a ceiling, not a method).",
            "",
            "\n".join(lines),
            "",
            "Molecule decision of `tl.detect_spots` (the log line):",
            "",
            *decisions,
            "",
            *(f"- {'PASS' if ok else 'FAIL'}: {what}" for what, ok in checks),
            *(f"- {note}" for note in notes),
            "",
            f"Command: `{command_line()}` ({date}, {time.perf_counter() - t_run:.0f} s on this machine).",
        ]
    )
    print()
    print(text)
    if not args.no_write:
        print(f"\nWrote {write_between_markers(text, 'real_annotated')}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
