"""End-to-end CPU speed against the peers: raw uint16 image to spot coordinates, timed in one run, interleaved.

Every method gets the same raw ``uint16`` simulated image (:func:`deepspot_sd.datasets.simulate_image`, 2048² and
4096² px, about 1900 spots per MPix) as one numpy array and returns ``(row, col)`` coordinates, with its defaults:

* **deepspot_sd**: ``dsd.tl.enhance_array(image, model)`` (normalisation statistics over the image, normalisation,
  tiled network) then ``dsd.tl.find_spots_local_max`` at the model's threshold and minimum distance;
* **U-FISH** and **Big-FISH**: see ``benchmarks/peers.py``.

Every method runs once on every image untimed (warm-up: sessions, compiled functions, shape-specific buffers),
then ``--rounds`` rounds time each method on each image, in a rotating order, so that the load of a shared machine
hits all methods alike; per image the median over rounds is reported, and the ratio deepspot_sd / U-FISH is the
median of the per-round ratios. The *levers* (``--levers``; timed in the first round only, interleaved with the
rest) are the alternatives that were measured to choose the defaults: the former default (fixed 256-px tiles on
TensorFlow, 0.5.0), 256-px tiles on ONNX Runtime, automatic tiles on TensorFlow, on TensorFlow with XLA
(``jit_compile``), and on ONNX Runtime with the network quantised to int8 (measured, not shipped). The default's
time is split into its steps by one more, separately timed call per image.

Acceptance: deepspot_sd <= 0.5x U-FISH's time on both images, and the same spots as the former default (256-px
tiles): F1 >= 0.999 (k-d tree, radius 1 px).

Run from the repository root (peers: ``pip install -e ".[bench]" && pip install --no-deps ufish``)::

    python benchmarks/speed.py                          # 2048² and 4096², 3 rounds, writes docs/benchmarks.md
    python benchmarks/speed.py --sizes 1024 --rounds 1 --no-levers --no-write
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import DOCS_BENCHMARKS, command_line, limit_threads, write_between_markers

SPOTS_PER_MPIX = 1900  # about the density of the wound-healing scene (7647 spots on 2048²)
MATCH_RADIUS_PX = 1.0
F1_MIN = 0.999
RATIO_MAX = 0.5


def simulate(size: int, seed: int) -> tuple[np.ndarray, int]:
    """A raw ``uint16`` image of ``size``² px and its number of true spots."""
    import deepspot_sd as dsd

    n_spots = int(round(SPOTS_PER_MPIX * size * size / 1e6))
    sim = dsd.datasets.simulate_image((size, size), n_spots=n_spots, seed=seed)
    image = np.clip(np.round(sim.image), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    return image, len(sim.spots)


def deepspot_methods(levers: bool) -> tuple[dict[str, Callable], dict[str, str]]:
    """``{name: detect(image)}`` of the default and, with ``levers``, the alternatives; and their descriptions."""
    import deepspot_sd as dsd

    model = dsd.models.load_pretrained()
    c = model.config

    def pipeline(net_model, **kwargs) -> Callable[[np.ndarray], np.ndarray]:
        def detect(image: np.ndarray) -> np.ndarray:
            enhanced = dsd.tl.enhance_array(image, net_model, **kwargs)
            return dsd.tl.find_spots_local_max(enhanced, threshold=c.threshold, min_distance=c.min_distance)

        return detect

    methods = {"deepspot_sd": pipeline(model)}
    notes = {
        "deepspot_sd": "deepspot_sd defaults: `dsd.tl.enhance_array(image)` (automatic tiles of at most "
        f"{dsd.tl._enhance.AUTO_TILE_MAX} px, overlap {c.overlap} px, ONNX Runtime) + `find_spots_local_max"
        f"(threshold={c.threshold:g}, min_distance={c.min_distance})`"
    }
    if levers:
        methods["256 px, TensorFlow (0.5.0)"] = pipeline(model, tile_size=256, batch_size=8, runtime="tensorflow")
        methods["256 px, ONNX Runtime"] = pipeline(model, tile_size=256, batch_size=8, runtime="onnx")
        methods["auto tiles, TensorFlow"] = pipeline(model, runtime="tensorflow")
        xla = dsd.models.load_pretrained(cache=False)
        xla.onnx_path = None  # TensorFlow only
        xla.keras_model.compile(jit_compile=True)
        methods["auto tiles, TensorFlow + XLA"] = pipeline(xla, runtime="tensorflow")
        int8 = int8_model(model)
        if int8 is not None:
            methods["auto tiles, ONNX Runtime int8 (not shipped)"] = pipeline(int8, runtime="onnx")
            notes["auto tiles, ONNX Runtime int8 (not shipped)"] = (
                "the ONNX export quantised to int8 by `onnxruntime.quantization.quantize_static` (QOperator, "
                "per-channel int8 weights, uint8 activations, MinMax calibration on 16 normalised simulated 256² "
                "images of another seed)"
            )
    else:
        methods["256 px, TensorFlow (0.5.0)"] = pipeline(model, tile_size=256, batch_size=8, runtime="tensorflow")
    return methods, notes


def int8_model(model):
    """The shipped model with an int8-quantised ONNX export (a lever, not shipped), or ``None`` without the tools."""
    import tempfile

    import deepspot_sd as dsd
    from deepspot_sd.pp import normalize_array

    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        return None
    c = model.config
    feeds = []
    for k in range(16):
        sim = dsd.datasets.simulate_image((256, 256), n_spots=20 + 25 * k, seed=9000 + k)
        feeds.append({"image": normalize_array(sim.image, **c.normalization_kwargs).astype(np.float32)[None, None]})

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    folder = Path(tempfile.mkdtemp(prefix="dsd_int8_"))
    pre, out = folder / "pre.onnx", folder / f"{c.name}.onnx"
    quant_pre_process(str(model.onnx_path), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(out),
        Reader(),
        quant_format=QuantFormat.QOperator,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv"],
    )
    return dsd.models.EnhancementModel(model.keras_model, c, onnx_path=out)


def breakdown(image: np.ndarray) -> dict[str, float]:
    """Seconds of each step of the default pipeline on ``image``."""
    import deepspot_sd as dsd
    from deepspot_sd.pp import apply_normalization, normalization_stats
    from deepspot_sd.tl._enhance import _choose_runtime, _enhance_padded, _network, _tiles_for

    model = dsd.models.load_pretrained()
    c = model.config
    out = {}
    t0 = time.perf_counter()
    stats = normalization_stats(image, **c.normalization_kwargs)
    out["normalisation statistics"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    norm = apply_normalization(image, stats)
    padded = np.pad(norm, c.overlap, mode="symmetric")
    out["normalisation + padding"] = time.perf_counter() - t0
    net = _network(model, _choose_runtime("auto", model))
    t0 = time.perf_counter()
    enhanced = _enhance_padded(padded, net, tiles=_tiles_for(image.shape, c, None), overlap=c.overlap, batch_size=None)
    out["network (tiles)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dsd.tl.find_spots_local_max(enhanced, threshold=c.threshold, min_distance=c.min_distance)
    out["detection"] = time.perf_counter() - t0
    return out


def run(args: argparse.Namespace) -> tuple[list[dict], list[dict], list[str], dict[str, str]]:
    """Time everything; return (rows per image and method, breakdown rows, notes, descriptions)."""
    from peers import load_peers

    import deepspot_sd as dsd

    methods, descriptions = deepspot_methods(args.levers)
    peers, notes = load_peers(["ufish", "bigfish"], threads=args.threads)
    for p in peers:
        methods[p.name] = p.detect
        descriptions[p.name] = p.description
    main = ["deepspot_sd", *[p.name for p in peers]]
    images = {}
    for k, size in enumerate(args.sizes):
        t0 = time.perf_counter()
        images[size] = simulate(size, args.seed + k)
        print(f"simulated {size}² ({images[size][1]} spots) in {time.perf_counter() - t0:.0f} s", flush=True)

    times: dict[tuple[int, str], list[float]] = {}
    spots: dict[tuple[int, str], np.ndarray] = {}
    for image, _ in images.values():  # warm-up, untimed: every method on every image (XLA compiles per shape)
        for name in methods:
            methods[name](image)
    for r in range(args.rounds):
        for size, (image, _) in images.items():
            names = list(methods) if r == 0 else main
            names = names[r % len(names) :] + names[: r % len(names)]  # rotate the order between rounds
            for name in names:
                t0 = time.perf_counter()
                found = methods[name](image)
                dt = time.perf_counter() - t0
                times.setdefault((size, name), []).append(dt)
                spots[(size, name)] = found
                print(f"round {r + 1} {size}² {name}: {dt:.2f} s ({dt / (size * size / 1e6):.3f} s/MPix)", flush=True)

    rows, parts = [], []
    for size, (image, n_true) in images.items():
        mpix = size * size / 1e6
        ufish = times.get((size, "U-FISH"))
        for name in methods:
            t = times[(size, name)]
            row = {
                "image": f"{size}²",
                "method": name,
                "rounds": len(t),
                "median_s": float(np.median(t)),
                "s_per_mpix": float(np.median(t)) / mpix,
                "spots": len(spots[(size, name)]),
                "true": n_true,
            }
            if ufish:
                paired = [a / b for a, b in zip(t, ufish, strict=False)]
                row["ratio_ufish"] = float(np.median(paired))
            row["f1_old"] = float(
                dsd.metrics.match_kdtree(
                    spots[(size, "256 px, TensorFlow (0.5.0)")], spots[(size, name)], radius=MATCH_RADIUS_PX
                ).f1
            )
            rows.append(row)
        steps = breakdown(image)
        per_mpix = {k: v / mpix for k, v in steps.items()}
        parts.append({"image": f"{size}²", **per_mpix, "total": sum(per_mpix.values())})
    return rows, parts, notes, descriptions


def markdown(rows: list[dict], parts: list[dict]) -> str:
    lines = [
        "| image | method | s / MPix | time (s) | vs U-FISH | spots (true) | F1 vs 256-px tiles (1 px) | rounds |",
        "|:---|:---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['ratio_ufish']:.2f}x" if "ratio_ufish" in r else "—"
        strong = "**" if r["method"] == "deepspot_sd" else ""
        lines.append(
            f"| {r['image']} | {strong}{r['method']}{strong} | {strong}{r['s_per_mpix']:.3f}{strong} | "
            f"{r['median_s']:.2f} | {strong}{ratio}{strong} | {r['spots']} ({r['true']}) | {r['f1_old']:.4f} | "
            f"{r['rounds']} |"
        )
    keys = [k for k in parts[0] if k != "image"]
    lines += ["", "Where the time of the default goes (s / MPix, one separate call per image):", ""]
    lines += ["| image | " + " | ".join(keys) + " |", "|:---|" + "---:|" * len(keys)]
    for p in parts:
        lines.append(f"| {p['image']} | " + " | ".join(f"{p[k]:.3f}" for k in keys) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096], help="image sides (default 2048 4096)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; medians are reported (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed of the first image (default 0)")
    parser.add_argument("--no-levers", dest="levers", action="store_false", help="time only defaults and peers")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of every runtime (default: all)")
    parser.add_argument("--docs", type=Path, default=DOCS_BENCHMARKS, help="Markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print only, do not update the Markdown file")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1.")
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    limit_threads(args.threads)
    import onnxruntime
    import tensorflow as tf

    t_run = time.perf_counter()
    rows, parts, notes, descriptions = run(args)
    elapsed = time.perf_counter() - t_run
    checks = []
    for size in args.sizes:
        mine = next(r for r in rows if r["image"] == f"{size}²" and r["method"] == "deepspot_sd")
        ratio = mine.get("ratio_ufish", float("nan"))
        ok_speed = ratio <= RATIO_MAX
        ok_f1 = mine["f1_old"] >= F1_MIN
        checks.append(
            f"- {size}²: deepspot_sd / U-FISH = **{ratio:.2f}x** (goal <= {RATIO_MAX}x: "
            f"{'PASS' if ok_speed else 'FAIL'}); F1 vs the 256-px tiling = {mine['f1_old']:.4f} (goal >= {F1_MIN}: "
            f"{'PASS' if ok_f1 else 'FAIL'})"
        )
    threads = "library defaults" if args.threads is None else str(args.threads)
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = "\n".join(
        [
            "## Speed against the peers: raw image to spot coordinates (CPU)",
            "",
            f"Simulated raw uint16 images (`dsd.datasets.simulate_image`, {SPOTS_PER_MPIX} spots / MPix), each "
            "method from the numpy array to coordinates with its defaults, all in one run: one untimed warm-up "
            f"call per method and image, then {args.rounds} rounds in rotating order (the levers: first round "
            "only); medians over rounds, *vs U-FISH* = median of the per-round ratios. F1: k-d tree matching at "
            f"{MATCH_RADIUS_PX:g} px against the spots of the former default (256-px tiles, TensorFlow). "
            f"TensorFlow {tf.__version__}, ONNX Runtime {onnxruntime.__version__}, threads: {threads}, "
            f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); other jobs share the CPU.",
            "",
            *[f"- {name}: {text}" for name, text in descriptions.items()],
            *[f"- {n}" for n in notes],
            "",
            "**Acceptance (computed):**",
            *checks,
            "",
            markdown(rows, parts),
            "",
            f"Command: `{command_line()}` ({date}, {elapsed / 60:.1f} min on this machine).",
        ]
    )
    print()
    print(text)
    if not args.no_write:
        path = write_between_markers(text, "speed", args.docs)
        print(f"\nWrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
