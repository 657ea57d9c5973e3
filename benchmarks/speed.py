"""CPU inference speed of the bare enhancement network, in megapixels per second.

For each configuration (the compact default ``ModelConfig.compact()`` and the paper's network ``ModelConfig.paper()``,
random weights: speed does not depend on them) the script builds the network, runs ``--warmup`` untimed forward
passes on a batch of 8 tiles of 256 x 256 px (normalised 0–255 scale), then times ``--repeats`` passes of the same
batch through :meth:`deepspot_sd.models.EnhancementModel.predict_tile` (one ``predict_on_batch`` of 8 tiles) and
reports the median. Normalisation, tiling and detection are not included (see ``benchmarks/accuracy.py`` for the
time per megapixel of the whole pipeline).

Run from the repository root::

    python benchmarks/speed.py                 # both configs, library-default threads, writes docs/benchmarks.md
    python benchmarks/speed.py --threads 1 --repeats 3 --no-write

The table is printed and written between the ``speed`` markers of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import time
from pathlib import Path

import numpy as np
from _common import DOCS_BENCHMARKS, command_line, limit_threads, write_between_markers

BATCH = 8
TILE = 256
CONFIGS = ("shipped", "compact", "paper")


def time_config(name: str, *, warmup: int, repeats: int, seed: int = 0) -> dict[str, float | int | str]:
    """Median seconds of one forward pass of ``BATCH`` tiles through the bare network of preset ``name``.

    ``"shipped"`` is the shipped default model (``deepspot_v1``, trained weights); presets use random weights.
    """
    from deepspot_sd.models import EnhancementModel, ModelConfig, count_parameters, load_pretrained

    if name == "shipped":
        model = load_pretrained()
        config = model.config
    else:
        config = ModelConfig.preset(name)
        model = EnhancementModel.from_config(config)
    rng = np.random.default_rng(seed)
    batch = rng.normal(100.0, 10.0, size=(BATCH, TILE, TILE)).clip(0, 255).astype(np.float32)
    for _ in range(warmup):
        model.predict_tile(batch, batch_size=BATCH)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = model.predict_tile(batch, batch_size=BATCH)
        times.append(time.perf_counter() - t0)
    if out.shape != batch.shape:
        raise RuntimeError(f"Unexpected output shape {out.shape} for input {batch.shape}.")
    median = float(np.median(times))
    mpix = BATCH * TILE * TILE / 1e6
    return {
        "config": name,
        "architecture": config.architecture,
        "parameters": count_parameters(model.keras_model),
        "median_s": median,
        "min_s": float(np.min(times)),
        "max_s": float(np.max(times)),
        "ms_per_tile": 1e3 * median / BATCH,
        "mpix_per_s": mpix / median,
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| config | architecture | parameters | batch of 8 x 256² median (s) | min–max (s) | ms / tile | MPix / s |",
        "|:---|:---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['architecture']} | {r['parameters'] / 1e6:.2f} M | {r['median_s']:.3f} | "
            f"{r['min_s']:.3f}–{r['max_s']:.3f} | {r['ms_per_tile']:.1f} | **{r['mpix_per_s']:.2f}** |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated presets (compact,paper)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes first (default 2)")
    parser.add_argument("--repeats", type=int, default=7, help="timed passes; the median is reported (default 7)")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow intra-op threads (default: all)")
    parser.add_argument("--docs", type=Path, default=DOCS_BENCHMARKS, help="Markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print only, do not update the Markdown file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0.")

    limit_threads(args.threads)
    import tensorflow as tf

    t_run = time.perf_counter()
    rows = []
    for name in [c.strip() for c in args.configs.split(",") if c.strip()]:
        row = time_config(name, warmup=args.warmup, repeats=args.repeats)
        print(f"{name}: {row['mpix_per_s']:.2f} MPix/s ({row['ms_per_tile']:.1f} ms per 256² tile)")
        rows.append(row)
    elapsed = time.perf_counter() - t_run
    threads = "TensorFlow default" if args.threads is None else str(args.threads)
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = "\n".join(
        [
            f"CPU inference speed of the bare network (random weights), one `predict_on_batch` of {BATCH} tiles of "
            f"{TILE} x {TILE} px, {args.warmup} warm-up passes excluded, median of {args.repeats} timed passes. "
            f"TensorFlow {tf.__version__}, intra-op threads: {threads}, {os.cpu_count()} CPUs "
            f"({platform.processor() or platform.machine()}); other jobs may share the CPU.",
            "",
            markdown(rows),
            "",
            f"Command: `{command_line()}` ({date}, {elapsed:.0f} s on this machine).",
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
