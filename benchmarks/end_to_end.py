"""End to end: run the README set-up's main job (``python -m deepspot_sd demo``) and write its output to the docs.

The block between the ``end_to_end`` markers of ``docs/benchmarks.md`` is this script's output: the demo's summary
as it printed it, the machine it ran on (measured), the model and the command.

    python benchmarks/end_to_end.py [--size 2048] [--chunks 1024] [--out output/demo] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _common import DOCS_BENCHMARKS, command_line, write_between_markers

import deepspot_sd as dsd


def machine() -> str:
    """CPU cores usable by this process and the GPUs TensorFlow sees, measured."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    gpu = f"{len(gpus)} GPU(s) visible to TensorFlow" if gpus else "no GPU"
    return f"{cores} CPU cores usable ({platform.machine()}), {gpu}"


def main(argv: list[str] | None = None) -> int:
    """Run the demo in a fresh process, print its output and write it between the markers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="image side in pixels (the demo's default)")
    parser.add_argument("--chunks", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("output/demo"))
    parser.add_argument("--docs", type=Path, default=DOCS_BENCHMARKS)
    parser.add_argument("--no-write", action="store_true", help="print only, do not update the Markdown file")
    args = parser.parse_args(argv)

    demo = [sys.executable, "-m", "deepspot_sd", "demo", "--size", str(args.size), "--chunks", str(args.chunks)]
    demo += ["--seed", str(args.seed), "--out", str(args.out)]
    start = time.perf_counter()
    proc = subprocess.run(demo, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout + proc.stderr, file=sys.stderr)
        return proc.returncode
    # the first line names the local store path: not a result
    summary = "\n".join(line for line in proc.stdout.strip().splitlines() if not line.startswith("scene: "))
    config = dsd.models.load_pretrained().config
    text = "\n".join(
        [
            "## End to end: the README set-up command",
            "",
            f"`bash scripts/setup.sh` runs `python -m deepspot_sd demo` on the embedded default scene "
            f"(`dsd.datasets.wound_healing()`, {args.size} × {args.size}, uint16): simulate → write zarr → reopen → "
            "enhance → detect → score against the true spots → assign to cells → sectors toward the wound → "
            "polarity index. Its output, as printed:",
            "",
            "```",
            summary,
            "```",
            "",
            f"Machine: {machine()}. Model: shipped `{config.name}` {config.version}, threshold {config.threshold:g}. "
            f"Run on {time.strftime('%Y-%m-%d %H:%M')}, {elapsed:.0f} s with the process start.",
            "",
            "Per-cell counts are compared with the simulated truth (`cell_truth`); with the true spots instead of "
            "detected ones the per-cell counts of this scene are exact "
            "(`tests/test_enrichment.py::test_scene_counts_match_truth`). The command line itself is tested on a "
            "512-px scene in `tests/test_cli.py`.",
            "",
            f"Command: `{command_line()}`",
        ]
    )
    print(text)
    if not args.no_write:
        path = write_between_markers(text, "end_to_end", args.docs)
        print(f"\nWrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
