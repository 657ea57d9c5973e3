"""Scale benchmark (issue 5): throughput, peak memory and distributed execution of the SpatialData pipeline.

One run reports:

1. **Throughput** on one ``N x N`` wound-healing image read from zarr (default ``N = 4096``): ``dsd.tl.enhance`` end
   to end with its defaults (read from zarr, normalise, automatic tiles of at most 1024 px on the runtime it chooses,
   ONNX Runtime on a CPU; the enhanced element written into the store) versus the bare network (the same runtime on
   tiles of the same size covering ``N²`` pixels), both in MPix/s, and their ratio per *output* pixel (includes the
   tiling overlap: every tile keeps only its central ``tile - 2 * overlap`` px) and per *network* pixel (pure
   pipeline overhead); and ``enhance(..., tile_size=256)``, the former default, with the largest difference of its
   result from the default's. The same image is also
   detected with ``dsd.tl.detect_spots`` and with the peers of the accuracy benchmark (``benchmarks/peers.py``:
   Big-FISH with its automatic threshold, U-FISH; optional), which get the raw image as one numpy array (U-FISH, which
   runs the whole array through its network at about 0.8 kB per pixel, its top-left 2048² crop by default).
2. **Peak memory** (RSS high-water mark, ``ru_maxrss``) of the whole pipeline ``read_zarr -> enhance (written to the
   store) -> detect_spots`` at two image sizes with the same chunk size, each case in a fresh subprocess; the scene
   is generated and written to zarr beforehand, in its own subprocess (its peak memory is reported too). The large
   size would take tens of minutes on a CPU with the real network, so by default it runs with an *identity stand-in*
   (``--memory-model identity``): an :class:`~deepspot_sd.models.EnhancementModel` whose network is a single 3 x 3
   convolution initialised to the identity, with the real model's config (tiles, overlap, normalisation,
   threshold), run on TensorFlow (it has no ONNX export); the pipeline and its memory behaviour are exercised, the
   network cost is not. The small size is run with both the real network and the stand-in.
3. **Distributed**: the same pipeline on a ``dask.distributed`` ``LocalCluster`` (2 worker processes, 1 thread each,
   the network's runtime limited to 1 thread per worker) versus the local threaded scheduler (the runtime's default
   threads) on the same image: spot counts, F1 of matching the two spot sets (k-d tree, radius 1 px), whether they
   are identical, the largest difference of the two enhanced images, and the wall time of each. Float32 network
   results depend on the thread count in the last bits, so the enhanced images may differ by ~1e-5 and the refined
   spot positions by a tiny amount; with ``--threads 1`` (1 thread everywhere) they are bitwise equal.

Scenes: ``--scene wound_healing`` (default) writes :func:`deepspot_sd.datasets.wound_healing` (all elements; the
16384² scene takes about 45 min to generate and write on 2 cores); ``--scene tiles`` writes only the smFISH image,
each chunk an independent :func:`deepspot_sd.datasets.simulate_image` (uint16, 1900 spots / MPix, a seed per chunk),
in a few minutes at 16384²: the same pipeline and memory behaviour, no true spots or cells.

Run from the repository root::

    python benchmarks/scale.py --quick --no-write          # development: 1024² and 2048², a few minutes
    python benchmarks/scale.py                             # full run: 4096² and 16384², writes docs/benchmarks.md
                                                           # (estimated 25-30 min on 2 cores: the 16384² scene
                                                           #  alone takes ~10 min to generate and write)
    python benchmarks/scale.py --scene tiles --peers none  # 4096² and 16384² on the quick scene, ~15 min
    python benchmarks/scale.py --malloc-mmap-threshold 131072   # memory cases without glibc heap fragmentation
    python benchmarks/scale.py --model /tmp/dsd_dev_model  # a model folder instead of the shipped model

``--model`` takes a shipped model name (default ``deepspot_v1``), a model folder (``config.json`` +
``<name>.weights.h5``), or ``untrained`` (``ModelConfig.compact(convs_per_level=1)`` with random weights, for
development only: same speed as the trained network, meaningless spots). The scenes are written to ``--workdir``
(default ``/tmp/dsd_scale``; the 16384² store takes a few GB) and deleted at the end unless ``--keep``. The tables go
between the ``scale`` markers of ``docs/benchmarks.md``.

Internally the script calls itself with ``--case {write,throughput,peer,memory,distributed}``; each case prints one
``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import DOCS_BENCHMARKS, command_line, write_between_markers
from dask.callbacks import Callback

BATCH = 8
CHUNK = 1024
#: Spots per MPix of the ``tiles`` scene (about the wound-healing density).
TILES_SPOTS_PER_MPIX = 1900
SEED = 0
RESULT_PREFIX = "RESULT "
MATCH_RADIUS_PX = 1.0
UNTRAINED = "untrained"
DEFAULT_WORKDIR = Path("/tmp/dsd_scale")
#: U-FISH runs a whole image through one ONNX call: 3.7 GB peak RSS at 2048² (about 0.8 kB per pixel), so about
#: 14 GB at 4096²; by default it gets the top-left crop of this size (``--peer-size`` overrides).
UFISH_MAX_SIZE = 2048
#: ``dsd.pp.normalization_stats`` materialises images of at most this many pixels; larger ones are sampled.
WHOLE_IMAGE_STATS_PX = 2**22


# ==================================================================================================== helpers
def max_rss_mib() -> float:
    """High-water mark of this process's resident set size in MiB (Linux: ``ru_maxrss`` is in KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def emit(result: dict[str, Any]) -> None:
    """Print the result line of a case (parsed by :func:`run_case`)."""
    result.setdefault("max_rss_mib", max_rss_mib())
    print(RESULT_PREFIX + json.dumps(result), flush=True)


class HeldArrays(Callback):
    """Dask local-scheduler callback: peak bytes of the numpy results the scheduler holds between tasks.

    Sampled after every ``every``-th task. Zarr arrays and other lazy objects in the cache do not count (a zarr array
    reports the size of the whole array as ``nbytes`` without holding it).
    """

    def __init__(self, every: int = 4) -> None:
        super().__init__()
        self.every, self.n_tasks, self.peak_bytes = every, 0, 0

    def _posttask(self, key: Any, result: Any, dsk: Any, state: dict, worker_id: Any) -> None:
        self.n_tasks += 1
        if self.n_tasks % self.every == 0:
            held = sum(v.nbytes for v in state["cache"].values() if isinstance(v, np.ndarray))
            self.peak_bytes = max(self.peak_bytes, held)

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 2**20


def limit_threads(threads: int | None) -> None:
    """Limit TensorFlow's CPU threads (before the first TensorFlow operation)."""
    if threads is None:
        return
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def model_folder(spec: str) -> Path:
    """Folder of a shipped model name or of a model folder."""
    from importlib.resources import files

    from deepspot_sd.models import available_models

    if spec in available_models():
        return Path(str(files("deepspot_sd.models") / spec))
    return Path(spec)


def load_enhancement_model(spec: str) -> Any:
    """Load a shipped model name or a model folder."""
    from deepspot_sd.models import available_models, load_model, load_pretrained

    return load_pretrained(spec) if spec in available_models() else load_model(spec)


def identity_standin(config: Any) -> Any:
    """An :class:`EnhancementModel` with the real ``config`` whose network is one 3x3 conv set to the identity."""
    import keras

    from deepspot_sd.models import EnhancementModel

    inputs = keras.Input((None, None, 1), name="tile")
    outputs = keras.layers.Conv2D(1, 3, padding="same", use_bias=False, name="identity_conv")(inputs)
    net = keras.Model(inputs, outputs, name="identity_standin")
    kernel = np.zeros((3, 3, 1, 1), dtype=np.float32)
    kernel[1, 1, 0, 0] = 1.0
    net.get_layer("identity_conv").set_weights([kernel])
    return EnhancementModel(net, config.replace(name="identity_standin"))


def resolve_model_spec(spec: str, workdir: Path) -> tuple[str, str]:
    """Return ``(spec for the cases, description)``; ``untrained`` is written to a model folder in ``workdir``."""
    from deepspot_sd.models import available_models

    if spec == UNTRAINED:
        from deepspot_sd.models import EnhancementModel, ModelConfig

        folder = workdir / "untrained_model"
        config = ModelConfig.compact(convs_per_level=1, name="untrained_compact")
        if not (folder / "config.json").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            model = EnhancementModel.from_config(config)
            model.keras_model.save_weights(str(folder / f"{config.name}.weights.h5"))
            config.to_json(folder / "config.json")
        return str(folder), "UNTRAINED `ModelConfig.compact(convs_per_level=1)` with random weights (development only)"
    if spec in available_models():
        return spec, f"shipped model `{spec}`"
    if (Path(spec) / "config.json").is_file():
        return str(Path(spec).resolve()), f"model folder `{spec}`"
    raise SystemExit(
        f"Model {spec!r} is neither a shipped model ({available_models()}) nor a model folder with config.json. "
        "Export a training checkpoint (`python scripts/train.py --out checkpoints/deepspot_v1 --export "
        f"/tmp/dsd_dev_model`) and pass `--model /tmp/dsd_dev_model`, or pass `--model {UNTRAINED}`."
    )


def enhance_tiles(size: int, config: Any, tile_size: int | None = None) -> int:
    """Tile side ``dsd.tl.enhance`` uses on a ``size x size`` image (``tile_size=None``: the automatic one)."""
    from deepspot_sd.tl._enhance import _tiles_for

    return _tiles_for((size, size), config, tile_size)[0]


def network_tiles(size: int, chunk: int, config: Any, tile_size: int | None = None) -> int:
    """Number of network tiles ``dsd.tl.enhance`` runs on a ``size x size`` image with ``chunk`` px input chunks."""
    from deepspot_sd.tl._enhance import _axis_chunks

    step = enhance_tiles(size, config, tile_size) - 2 * config.overlap
    per_axis = sum(math.ceil(c / step) for c in _axis_chunks(size, chunk, step, config.overlap))
    return per_axis * per_axis


def runtime_network(model: Any) -> tuple[str, Any]:
    """``(runtime, network)`` that ``dsd.tl.enhance`` chooses for ``model`` (``runtime="auto"``)."""
    from deepspot_sd.tl._enhance import _choose_runtime, _network

    runtime = _choose_runtime("auto", model)
    return runtime, _network(model, runtime)


def tiles_scene(size: int, chunk: int) -> Any:
    """A SpatialData object with one lazy uint16 ``smfish`` image: every chunk an independent simulated image."""
    import dask.array as da
    from spatialdata import SpatialData
    from spatialdata.models import Image2DModel

    import deepspot_sd as dsd

    def block(block_info: Any = None) -> np.ndarray:
        info = block_info[None]
        _, (y0, y1), (x0, x1) = info["array-location"]
        shape = (y1 - y0, x1 - x0)
        n_spots = max(1, round(TILES_SPOTS_PER_MPIX * shape[0] * shape[1] / 1e6))
        seed = SEED + 1 + info["chunk-location"][1] * 100_003 + info["chunk-location"][2]
        sim = dsd.datasets.simulate_image(shape, n_spots=n_spots, seed=seed)
        return np.clip(np.round(sim.image), 0, np.iinfo(np.uint16).max).astype(np.uint16)[None]

    chunks = ((1,), *(tuple(min(chunk, size - i) for i in range(0, size, chunk)),) * 2)
    image = da.map_blocks(block, chunks=chunks, dtype=np.uint16, meta=np.empty((0, 0, 0), np.uint16))
    element = Image2DModel.parse(image, dims=("c", "y", "x"), c_coords=["smfish"])
    return SpatialData(images={"smfish": element})


def spot_rows_cols(points: Any) -> np.ndarray:
    """``(n, 2)`` (row, col) = (y, x) of a points element, sorted."""
    df = points.compute() if hasattr(points, "compute") else points
    rc = df[["y", "x"]].to_numpy(dtype=np.float64)
    return rc[np.lexsort((rc[:, 1], rc[:, 0]))] if len(rc) else rc.reshape(0, 2)


# ==================================================================================================== cases
def case_write(args: argparse.Namespace) -> None:
    """Generate the wound-healing scene lazily and write it to zarr (all elements), chunk by chunk."""
    import deepspot_sd as dsd

    store = Path(args.store)
    if store.exists():
        shutil.rmtree(store)
    t0 = time.perf_counter()
    if args.scene == "tiles":
        sdata = tiles_scene(args.size, args.chunk)
    else:
        sdata = dsd.datasets.wound_healing((args.size, args.size), chunks=args.chunk, seed=SEED)
    t_layout = time.perf_counter() - t0
    baseline = max_rss_mib()
    sdata.write(store)
    wall = time.perf_counter() - t0
    emit(
        {
            "case": "write",
            "size": args.size,
            "chunk": args.chunk,
            "wall_s": wall,
            "layout_s": t_layout,
            "n_true_spots": len(sdata.points["true_spots"]) if "true_spots" in sdata.points else None,
            "elements": sorted([*sdata.images, *sdata.labels, *sdata.points, *sdata.shapes, *sdata.tables]),
            "baseline_rss_mib": baseline,
        }
    )


def case_throughput(args: argparse.Namespace) -> None:
    """Bare network vs. ``dsd.tl.enhance`` end to end, then ``dsd.tl.detect_spots``, on one image from zarr."""
    from spatialdata import read_zarr

    import deepspot_sd as dsd
    from deepspot_sd.tl._enhance import _predict_tiles

    model = load_enhancement_model(args.model)
    config = model.config
    runtime, net = runtime_network(model)
    tile = enhance_tiles(args.size, config)
    n_px = args.size * args.size
    n_bare = math.ceil(n_px / (tile * tile))
    n_net = network_tiles(args.size, args.chunk, config)
    rng = np.random.default_rng(SEED)
    tiles = rng.normal(100.0, 10.0, size=(n_bare, tile, tile)).clip(0, 255).astype(np.float32)
    _predict_tiles(net, tiles[:1], batch_size=None)  # warm-up: session, buffers of this tile shape

    def bare() -> float:
        t = time.perf_counter()
        out = _predict_tiles(net, tiles, batch_size=None)
        dt = time.perf_counter() - t
        if out.shape != tiles.shape:
            raise RuntimeError(f"Unexpected output shape {out.shape}.")
        return dt

    bare_before = bare()
    sdata = read_zarr(args.store)
    key = "smfish_enhanced_throughput"
    t = time.perf_counter()
    dsd.tl.enhance(sdata, "smfish", model=model, key_added=key, show_progress_bar=False)
    t_enhance = time.perf_counter() - t
    # the former default: fixed tiles of the model config (256 px), the same overlap; the same result
    fixed = config.tile_size
    key_fixed = f"{key}_t{fixed}"
    t = time.perf_counter()
    dsd.tl.enhance(
        sdata, "smfish", model=model, tile_size=fixed, batch_size=BATCH, key_added=key_fixed, show_progress_bar=False
    )
    t_enhance_fixed = time.perf_counter() - t
    fixed_diff = float(abs(sdata.images[key_fixed] - sdata.images[key]).max().compute())
    bare_after = bare()
    t = time.perf_counter()
    dsd.tl.detect_spots(sdata, key, show_progress_bar=False)
    t_detect = time.perf_counter() - t
    n_spots = len(sdata.points[f"{key}_spots"])
    emit(
        {
            "case": "throughput",
            "size": args.size,
            "chunk": args.chunk,
            "tile": tile,
            "runtime": runtime,
            "runtime_version": runtime_version(runtime),
            "overlap": config.overlap,
            "n_tiles_bare": n_bare,
            "n_tiles_enhance": n_net,
            "bare_s": [bare_before, bare_after],
            "enhance_s": t_enhance,
            "fixed_tile": fixed,
            "n_tiles_enhance_fixed": network_tiles(args.size, args.chunk, config, fixed),
            "enhance_fixed_s": t_enhance_fixed,
            "fixed_max_diff": fixed_diff,
            "detect_s": t_detect,
            "n_spots": n_spots,
            "n_true_spots": len(sdata.points["true_spots"]) if "true_spots" in sdata.points else None,
            "gpus": gpu_count(),
        }
    )


def runtime_version(runtime: str) -> str:
    """``"ONNX Runtime x.y.z"`` or ``"TensorFlow x.y.z"``."""
    if runtime == "onnx":
        import onnxruntime

        return f"ONNX Runtime {onnxruntime.__version__}"
    import tensorflow as tf

    return f"TensorFlow {tf.__version__}"


def gpu_count() -> int:
    """GPUs TensorFlow sees."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def case_peer(args: argparse.Namespace) -> None:
    """One peer detector on the raw image (or its top-left crop) as a numpy array."""
    from peers import load_peers
    from spatialdata import read_zarr

    sdata = read_zarr(args.store)
    crop = args.crop or args.size
    raw = np.asarray(sdata.images["smfish"].data[0, :crop, :crop].compute())
    del sdata
    peers, notes = load_peers([args.peer], threads=args.threads)
    if not peers:
        emit({"case": "peer", "peer": args.peer, "skipped": notes[0] if notes else "not available"})
        return
    peer = peers[0]
    if peer.warmup:
        peer.detect(raw[:256, :256])
    baseline = max_rss_mib()
    t = time.perf_counter()
    spots = peer.detect(raw)
    wall = time.perf_counter() - t
    emit(
        {
            "case": "peer",
            "peer": peer.name,
            "description": peer.description,
            "size": crop,
            "wall_s": wall,
            "n_spots": len(spots),
            "baseline_rss_mib": baseline,
        }
    )


def case_memory(args: argparse.Namespace) -> None:
    """``read_zarr -> enhance (written to the store) -> detect_spots``; peak RSS of this fresh process."""
    from spatialdata import read_zarr

    import deepspot_sd as dsd
    from deepspot_sd.models import ModelConfig

    if args.memory_model == "real":
        model = load_enhancement_model(args.model)
    else:
        model = identity_standin(ModelConfig.from_json(model_folder(args.model) / "config.json"))
    from deepspot_sd.tl._enhance import _predict_tiles

    runtime, net = runtime_network(model)
    tile = enhance_tiles(args.size, model.config)
    _predict_tiles(net, np.full((1, tile, tile), 100.0, np.float32), batch_size=None)  # warm-up: one tile
    baseline = max_rss_mib()
    t0 = time.perf_counter()
    sdata = read_zarr(args.store)
    key = f"smfish_enhanced_mem_{args.memory_model}"
    held = HeldArrays()
    with held:
        dsd.tl.enhance(sdata, "smfish", model=model, key_added=key, show_progress_bar=False)
    t_enhance = time.perf_counter() - t0
    rss_enhance = max_rss_mib()
    t = time.perf_counter()
    dsd.tl.detect_spots(sdata, key, show_progress_bar=False)
    t_detect = time.perf_counter() - t
    n_spots = len(sdata.points[f"{key}_spots"])
    emit(
        {
            "case": "memory",
            "size": args.size,
            "chunk": args.chunk,
            "memory_model": args.memory_model,
            "runtime": runtime,
            "tile": tile,
            "wall_s": time.perf_counter() - t0,
            "enhance_s": t_enhance,
            "detect_s": t_detect,
            "n_spots": n_spots,
            "baseline_rss_mib": baseline,
            "after_enhance_rss_mib": rss_enhance,
            "enhance_held_mib": held.peak_mib,
            "enhance_tasks": held.n_tasks,
        }
    )


def _pipeline(sdata: Any, model: str, key: str) -> tuple[float, Any]:
    import deepspot_sd as dsd

    t = time.perf_counter()
    dsd.tl.enhance(sdata, "smfish", model=model, key_added=key, show_progress_bar=False)
    dsd.tl.detect_spots(sdata, key, show_progress_bar=False)
    spots = spot_rows_cols(sdata.points[f"{key}_spots"])
    return time.perf_counter() - t, spots


def case_distributed(args: argparse.Namespace) -> None:
    """The pipeline with the local threaded scheduler, then on a 2-process LocalCluster; compare the spots."""
    import dask
    from distributed import Client, LocalCluster
    from spatialdata import read_zarr

    from deepspot_sd.metrics import match_kdtree

    sdata = read_zarr(args.store)
    t_threads, spots_threads = _pipeline(sdata, args.model, "smfish_enhanced_threads")
    threads = str(args.threads or 1)
    workers_env = {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": threads}
    t = time.perf_counter()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=workers_env
        ) as cluster,
        Client(cluster),
    ):
        t_cluster = time.perf_counter() - t
        sdata = read_zarr(args.store)
        t_dist, spots_dist = _pipeline(sdata, args.model, "smfish_enhanced_distributed")
    with dask.config.set(scheduler="threads"):
        sdata = read_zarr(args.store)
        a = np.asarray(sdata.images["smfish_enhanced_threads"].data.compute())
        b = np.asarray(sdata.images["smfish_enhanced_distributed"].data.compute())
    match = match_kdtree(spots_threads, spots_dist, radius=MATCH_RADIUS_PX)
    identical = spots_threads.shape == spots_dist.shape and bool(np.array_equal(spots_threads, spots_dist))
    emit(
        {
            "case": "distributed",
            "size": args.size,
            "chunk": args.chunk,
            "threads_s": t_threads,
            "distributed_s": t_dist,
            "cluster_start_s": t_cluster,
            "n_spots_threads": len(spots_threads),
            "n_spots_distributed": len(spots_dist),
            "f1": float(match.f1),
            "identical": identical,
            "worker_threads": int(threads),
            "threads_arg": args.threads,
            "max_shift_px": float(np.max(match.distances)) if len(match.distances) else 0.0,
            "max_abs_diff_enhanced": float(np.max(np.abs(a - b))) if a.size else 0.0,
        }
    )


#: Cases whose peak memory is reported (``--malloc-mmap-threshold`` applies to them).
MEMORY_CASES = ("write", "memory")

CASES = {
    "write": case_write,
    "throughput": case_throughput,
    "peer": case_peer,
    "memory": case_memory,
    "distributed": case_distributed,
}


# ==================================================================================================== driver
def run_case(case: str, args: argparse.Namespace, **options: Any) -> dict[str, Any]:
    """Run one case in a fresh subprocess; return its result (``{"error": ...}`` if it failed)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", case, "--model", args.model_spec]
    cmd += ["--chunk", str(args.chunk), "--scene", args.scene]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    for name, value in options.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    label = " ".join(f"{k}={v}" for k, v in options.items() if k != "store")
    print(f"[scale] {case} {label} ...", flush=True)
    env = dict(os.environ)
    if case in MEMORY_CASES and args.malloc_mmap_threshold is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        print(f"[scale]   FAILED (exit {proc.returncode}) after {time.perf_counter() - t:.0f} s:\n{tail}", flush=True)
        return {"case": case, "error": f"exit {proc.returncode}: {tail.splitlines()[-1] if tail else ''}", **options}
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    print(f"[scale]   done in {time.perf_counter() - t:.0f} s: {result}", flush=True)
    return result


def _mpix(n_px: float, seconds: float) -> float:
    return n_px / 1e6 / seconds if seconds > 0 else float("nan")


def throughput_table(r: dict[str, Any], peers: list[dict[str, Any]]) -> str:
    n = r["size"]
    tile = r["tile"]
    n_px = n * n
    t_bare = float(np.mean(r["bare_s"]))
    t_bare_per_tile = t_bare / r["n_tiles_bare"]
    bare_px = r["n_tiles_bare"] * tile * tile
    net_px = r["n_tiles_enhance"] * tile * tile
    t_enh = r["enhance_s"]
    ratio_out = t_enh / (t_bare_per_tile * n_px / (tile * tile))
    ratio_net = t_enh / (t_bare_per_tile * r["n_tiles_enhance"])
    step = tile - 2 * r["overlap"]
    fixed, t_fixed = r["fixed_tile"], r["enhance_fixed_s"]
    fixed_step = fixed - 2 * r["overlap"]
    true_spots = "" if r.get("n_true_spots") is None else f"; {r['n_true_spots']} true spots in the full image"
    lines = [
        f"**Throughput** on one {n} x {n} px image ({n_px / 1e6:.1f} MPix, chunks {r['chunk']} px): `dsd.tl.enhance` "
        f"with its defaults (automatic tiles: {tile} px on this image, {r['overlap']} px overlap; "
        f"{r['runtime_version']}).",
        "",
        "| what | network tiles | time (s) | MPix/s per output pixel | MPix/s per network pixel |",
        "|:---|---:|---:|---:|---:|",
        f"| bare network ({r['runtime_version']}) on {r['n_tiles_bare']} tiles of {tile}² (≈ {n}² px; "
        f"mean of {len(r['bare_s'])} runs: {', '.join(f'{s:.1f}' for s in r['bare_s'])} s) | {r['n_tiles_bare']} | "
        f"{t_bare:.1f} | {_mpix(bare_px, t_bare):.2f} | {_mpix(bare_px, t_bare):.2f} |",
        f"| `dsd.tl.enhance` end to end, defaults (read zarr, normalise, tiled network, write zarr) | "
        f"{r['n_tiles_enhance']} of {tile}² | {t_enh:.1f} | **{_mpix(n_px, t_enh):.2f}** | "
        f"{_mpix(net_px, t_enh):.2f} |",
        f"| `dsd.tl.enhance(..., tile_size={fixed}, batch_size={BATCH})`, the former default (largest difference "
        f"from the default's result: {r['fixed_max_diff']:.1e}) | {r['n_tiles_enhance_fixed']} of {fixed}² | "
        f"{t_fixed:.1f} | {_mpix(n_px, t_fixed):.2f} | "
        f"{_mpix(r['n_tiles_enhance_fixed'] * fixed * fixed, t_fixed):.2f} |",
        "",
        f"- Ratio per **output pixel** (enhance time / bare-network time for {n}² px): **{ratio_out:.2f}x**. This "
        f"includes the tiling overlap: each tile keeps its central {step}² px, so `enhance` runs the network on "
        f"{r['n_tiles_enhance']} tiles of {tile}² ({net_px / n_px:.2f}x the output area; ({tile}/{step})² = "
        f"{(tile / step) ** 2:.2f}x without edge rounding). The overlap is what keeps the result free of seams (see "
        f"the seams benchmark); with the former {fixed}-px tiles it costs ({fixed}/{fixed_step})² = "
        f"{(fixed / fixed_step) ** 2:.2f}x ({r['n_tiles_enhance_fixed'] * fixed * fixed / n_px:.2f}x here) and "
        f"`enhance` took {t_fixed / t_enh:.2f}x the default's time.",
        f"- Ratio per **network pixel** (enhance time / bare-network time for the same {r['n_tiles_enhance']} tiles): "
        f"**{ratio_net:.2f}x**, the pipeline's own overhead (reading, normalisation, tile cutting, writing); goal "
        f"<= 1.25x: **{'PASS' if ratio_net <= 1.25 else 'FAIL'}**.",
        "",
        f"**Detection on the same image** (the peers get the raw image as one numpy array{true_spots}).",
        "",
        "| method | image | time (s) | MPix/s | spots |",
        "|:---|---:|---:|---:|---:|",
        f"| `dsd.tl.detect_spots` (local max on the enhanced image, from zarr, points written to zarr) | {n}² | "
        f"{r['detect_s']:.1f} | {_mpix(n_px, r['detect_s']):.2f} | {r['n_spots']} |",
        f"| DeepSpot pipeline: `enhance` + `detect_spots` | {n}² | {t_enh + r['detect_s']:.1f} | "
        f"{_mpix(n_px, t_enh + r['detect_s']):.2f} | {r['n_spots']} |",
    ]
    notes = []
    for p in peers:
        if "skipped" in p:
            notes.append(f"- {p['peer']}: {p['skipped']}")
        elif "error" in p:
            notes.append(f"- {p.get('peer')}: failed ({p['error']})")
        else:
            lines.append(
                f"| {p['peer']} | {p['size']}² | {p['wall_s']:.1f} | {_mpix(p['size'] ** 2, p['wall_s']):.2f} | "
                f"{p['n_spots']} |"
            )
            notes.append(f"- {p['peer']}: {p['description']}; peak RSS {p['max_rss_mib']:.0f} MiB.")
    return "\n".join(lines + ([""] + notes if notes else []))


def memory_table(
    writes: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    chunk: int,
    mmap_threshold: int | None,
    scene: str = "wound_healing",
) -> str:
    allocator = (
        "glibc malloc with its default dynamic mmap threshold"
        if mmap_threshold is None
        else f"glibc malloc with `MALLOC_MMAP_THRESHOLD_={mmap_threshold}`"
    )
    lines = [
        f"**Peak memory** (RSS high-water mark `ru_maxrss` of a fresh process per row; chunks {chunk} x {chunk} px; "
        f"baseline = after imports, model loading and one warm-up batch, before the data is touched; {allocator}). "
        "The peak of the pipeline rows is reached during `enhance` (column 'enhance peak') or `detect_spots`.",
        "",
        "| step | image | network | wall (s) | baseline (MiB) | enhance peak (MiB) | peak (MiB) | "
        "peak − baseline (MiB) | enhance: dask-held peak (MiB) | enhance: tasks | spots |",
        "|:---|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in writes:
        if "error" in w:
            lines.append(f"| generate + write scene | {w.get('size')}² | — | failed: {w['error']} | | | | | | | |")
            continue
        lines.append(
            f"| generate scene lazily + `sdata.write` ({len(w['elements'])} elements) | {w['size']}² | — | "
            f"{w['wall_s']:.0f} | {w['baseline_rss_mib']:.0f} | — | {w['max_rss_mib']:.0f} | "
            f"{w['max_rss_mib'] - w['baseline_rss_mib']:.0f} | — | — | "
            f"{'—' if w.get('n_true_spots') is None else str(w['n_true_spots']) + ' true'} |"
        )
    for r in runs:
        if "error" in r:
            lines.append(
                f"| pipeline | {r.get('size')}² | {r.get('memory_model')} | failed: {r['error']} | | | | | | | |"
            )
            continue
        net = "real" if r["memory_model"] == "real" else "identity stand-in"
        net += f" ({'ONNX Runtime' if r.get('runtime') == 'onnx' else 'TensorFlow'}, tiles {r.get('tile', '?')} px)"
        lines.append(
            f"| `read_zarr` → `enhance` (to zarr) → `detect_spots` | {r['size']}² | {net} | {r['wall_s']:.0f} | "
            f"{r['baseline_rss_mib']:.0f} | {r['after_enhance_rss_mib']:.0f} | {r['max_rss_mib']:.0f} | "
            f"{r['max_rss_mib'] - r['baseline_rss_mib']:.0f} | {r['enhance_held_mib']:.0f} | {r['enhance_tasks']} | "
            f"{r['n_spots']} |"
        )
    ok = [r for r in runs if "error" not in r]
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in ok:
        by_model.setdefault(r["memory_model"], []).append(r)
    lines.append("")
    for name, rs in by_model.items():
        if len(rs) < 2:
            continue
        small, large = min(rs, key=lambda r: r["size"]), max(rs, key=lambda r: r["size"])
        ratio = large["max_rss_mib"] / small["max_rss_mib"]
        inc_small = small["max_rss_mib"] - small["baseline_rss_mib"]
        inc_large = large["max_rss_mib"] - large["baseline_rss_mib"]
        lines.append(
            f"- Pipeline, {name} network: {large['size']}² ({(large['size'] / small['size']) ** 2:.0f}x the pixels) "
            f"vs {small['size']}²: peak {large['max_rss_mib']:.0f} vs {small['max_rss_mib']:.0f} MiB, ratio "
            f"**{ratio:.2f}x** (peak − baseline: {inc_large:.0f} vs {inc_small:.0f} MiB, "
            f"{inc_large / inc_small if inc_small > 0 else float('nan'):.2f}x)."
        )
    ws = [w for w in writes if "error" not in w]
    if len(ws) >= 2:
        small, large = min(ws, key=lambda w: w["size"]), max(ws, key=lambda w: w["size"])
        lines.append(
            f"- Scene generation + write: {large['size']}² vs {small['size']}²: peak {large['max_rss_mib']:.0f} vs "
            f"{small['max_rss_mib']:.0f} MiB, ratio **{large['max_rss_mib'] / small['max_rss_mib']:.2f}x**"
            + (
                " (the layout, i.e. the true spots and cells, is held in memory and grows with the area)."
                if scene == "wound_healing"
                else " (every chunk simulated on its own: nothing grows with the area)."
            )
        )
    if any(r["size"] ** 2 <= WHOLE_IMAGE_STATS_PX for r in ok):
        lines.append(
            f"- Images of at most {WHOLE_IMAGE_STATS_PX} px (2048²) are normalised with statistics of the whole image "
            "(`dsd.pp.normalization_stats` materialises it, so that part grows with the area up to 2048²), larger "
            "ones from 64 windows of 256² px; compare peaks between sizes above 2048² only."
        )
    if any(r["memory_model"] == "identity" for r in ok):
        lines.append(
            "- *Identity stand-in*: a 1-layer 3 x 3 convolution set to the identity with the real model's config "
            "(tiles, overlap, normalisation, threshold), run on TensorFlow (no ONNX export), so the pipeline's data "
            "flow and memory are exercised without the network's cost; its spots are local maxima >= threshold of the "
            "normalised raw image."
        )
    lines.append(
        "- *dask-held peak*: the most bytes of numpy results the local scheduler held between tasks during `enhance` "
        "(halo slices and rechunk pieces waiting for their consumers). `enhance` computes a backed element region "
        "by region (at most 4096 px on a side) straight into the element's zarr array "
        "(`deepspot_sd._store.write_in_regions`), so these and the task graph are bounded by the region, not by "
        "the image."
    )
    if mmap_threshold is None:
        lines.append(
            "- glibc's dynamic mmap threshold keeps freed large arrays in the heap, so the RSS of the threaded "
            "pipeline can creep up with the number of chunks processed although the live data stays bounded; "
            "`--malloc-mmap-threshold 131072` measures the pipeline without that allocator effect."
        )
    lines.append(
        f"- One {chunk}² chunk: {chunk * chunk * 2 / 2**20:.0f} MiB raw (uint16), {chunk * chunk * 4 / 2**20:.0f} "
        "MiB enhanced (float32)."
    )
    return "\n".join(lines)


def distributed_table(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"**Distributed**: failed ({r['error']})."
    return "\n".join(
        [
            f"**Distributed** (`read_zarr` → `enhance` → `detect_spots` on one {r['size']} x {r['size']} px image "
            f"from zarr, chunks {r['chunk']} px; model passed by name/folder, loaded once per process, loading "
            "included in the times).",
            "",
            "| scheduler | wall (s) | spots |",
            "|:---|---:|---:|",
            f"| dask threaded (local, default) | {r['threads_s']:.1f} | {r['n_spots_threads']} |",
            f"| `distributed.LocalCluster`, 2 worker processes x 1 thread (network runtime {r['worker_threads']} "
            f"thread(s) each; cluster start {r['cluster_start_s']:.1f} s not included) | {r['distributed_s']:.1f} | "
            f"{r['n_spots_distributed']} |",
            "",
            f"- F1 of matching the two spot sets (k-d tree, radius {MATCH_RADIUS_PX:g} px): **{r['f1']:.4f}**; "
            f"identical coordinates: **{'yes' if r['identical'] else 'no'}** (largest shift of a matched spot "
            f"{r['max_shift_px']:.2g} px); largest difference of the two enhanced images: "
            f"{r['max_abs_diff_enhanced']:.3g} (0–255 scale). The network's float32 results depend on its thread "
            "count in the last bits (local: the runtime's default threads; workers: the number above)"
            + (
                "; this run used `--threads 1` (one thread everywhere): images and spots bitwise "
                f"**{'identical' if r['identical'] and r['max_abs_diff_enhanced'] == 0 else 'NOT identical'}**."
                if r.get("threads_arg") == 1
                else "; whether `--threads 1` (one thread everywhere) makes them bitwise identical is not measured by "
                "this run."
            ),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (1024², 2048²) for development")
    parser.add_argument("--model", default="deepspot_v1", help=f"shipped model name, model folder, or {UNTRAINED!r}")
    parser.add_argument(
        "--memory-model",
        choices=("real", "identity"),
        default="identity",
        help="network for the large memory case (default identity: 1-layer stand-in, network cost removed)",
    )
    parser.add_argument(
        "--malloc-mmap-threshold",
        type=int,
        default=None,
        help="set glibc's MALLOC_MMAP_THRESHOLD_ (bytes) for the memory cases (default: glibc's dynamic threshold)",
    )
    parser.add_argument(
        "--scene",
        choices=("wound_healing", "tiles"),
        default="wound_healing",
        help="scenes: the wound-healing scene (default) or the smFISH image only, simulated chunk by chunk (fast)",
    )
    parser.add_argument("--chunk", type=int, default=CHUNK, help=f"chunk size in px of the scenes (default {CHUNK})")
    parser.add_argument("--peers", default="bigfish,ufish", help="comma-separated peers, or 'none'")
    parser.add_argument("--peer-size", type=int, default=None, help="crop side for the peers (default: the image)")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow / onnxruntime threads (default: all)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="folder for the zarr stores")
    parser.add_argument("--keep", action="store_true", help="keep the zarr stores")
    parser.add_argument("--reuse-scenes", action="store_true", help="reuse existing scene stores (development)")
    parser.add_argument("--docs", type=Path, default=DOCS_BENCHMARKS, help="Markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print only, do not update the Markdown file")
    # internal: one case in this process
    parser.add_argument("--case", choices=sorted(CASES), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--store", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--peer", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--crop", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    limit_threads(args.threads)
    if args.case is not None:
        CASES[args.case](args)
        return 0

    t_run = time.perf_counter()
    if args.quick:
        size_throughput, sizes_memory, size_distributed = 2048, (1024, 2048), 1024
    else:
        size_throughput, sizes_memory, size_distributed = 4096, (4096, 16384), 2048
    workdir = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    args.model_spec, model_description = resolve_model_spec(args.model, workdir)

    def store(size: int) -> Path:
        return workdir / f"{args.scene}_{size}_c{args.chunk}.zarr"

    writes = []
    for size in sorted({size_throughput, size_distributed, *sizes_memory}):
        if args.reuse_scenes and (store(size) / "zarr.json").exists():
            print(f"[scale] reusing {store(size)}")
            continue
        writes.append(run_case("write", args, size=size, store=store(size)))

    throughput = run_case("throughput", args, size=size_throughput, store=store(size_throughput))
    peer_results = []
    peer_names = [] if args.peers.strip().lower() == "none" else [p.strip() for p in args.peers.split(",") if p]
    for name in peer_names:
        crop = args.peer_size or (min(size_throughput, UFISH_MAX_SIZE) if name == "ufish" else size_throughput)
        peer_results.append(
            run_case("peer", args, size=size_throughput, store=store(size_throughput), peer=name, crop=crop)
        )

    small, large = sizes_memory
    memory_runs = [run_case("memory", args, size=small, store=store(small), memory_model="real")]
    if args.memory_model != "real":
        memory_runs.append(run_case("memory", args, size=small, store=store(small), memory_model=args.memory_model))
    memory_runs.append(run_case("memory", args, size=large, store=store(large), memory_model=args.memory_model))

    distributed = run_case("distributed", args, size=size_distributed, store=store(size_distributed))

    elapsed = time.perf_counter() - t_run
    gpus = throughput.get("gpus", 0)
    scene = (
        f"`dsd.datasets.wound_healing` (seed {SEED})"
        if args.scene == "wound_healing"
        else f"the smFISH image only, every chunk an independent `dsd.datasets.simulate_image` (uint16, "
        f"{TILES_SPOTS_PER_MPIX} spots / MPix; `--scene tiles`)"
    )
    machine = (
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"{'no GPU' if not gpus else f'{gpus} GPU(s)'}, shared with other jobs"
    )
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [
        f"Model: {model_description}. Machine: {machine}; {throughput.get('runtime_version', '?')}, threads: "
        f"{'library defaults' if args.threads is None else args.threads}. Scenes: {scene} written to zarr with chunks "
        f"{args.chunk} px." + (" **Quick run (`--quick`): small sizes.**" if args.quick else ""),
        "",
        throughput_table(throughput, peer_results)
        if "error" not in throughput
        else f"Throughput failed: {throughput['error']}",
        "",
        memory_table(writes, memory_runs, args.chunk, args.malloc_mmap_threshold, args.scene),
        "",
        distributed_table(distributed),
        "",
        f"Command: `{command_line()}` ({date}, {elapsed / 60:.1f} min on this machine).",
    ]
    text = "\n".join(parts)
    print()
    print(text)
    if not args.no_write:
        path = write_between_markers(text, "scale", args.docs)
        print(f"\nWrote {path}")
    if not args.keep:
        for size in sorted({size_throughput, size_distributed, *sizes_memory}):
            shutil.rmtree(store(size), ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
