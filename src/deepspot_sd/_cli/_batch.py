"""``deepspot-sd detect``: spots in a batch of TIFF / OME-TIFF files or SpatialData zarr stores.

Every image is processed in a hidden folder ``{out}/.{name}.partial`` that is renamed to ``{out}/{name}`` when
everything in it is written, the marker ``done.json`` last: an interrupted run (Ctrl-C, a crash) leaves no folder
that looks finished, and a rerun skips exactly the images whose folder has the marker.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepspot_sd._logging import logger

__all__ = ["add_parsers", "detect_batch", "run"]

#: Name of the marker written last into a finished image folder.
MARKER = "done.json"
#: Element names in every output store.
IMAGE_KEY, ENHANCED_KEY, POINTS_KEY = "image", "image_enhanced", "spots"
_TIFF_SUFFIXES = (".tif", ".tiff")

DESCRIPTION = """\
Detect RNA spots in a batch of images: TIFF / OME-TIFF files (one field of view each; channels, a z-stack) or
SpatialData zarr stores. A folder given as IMAGE stands for the .tif/.tiff files and .zarr stores in it.

For every image, {out}/{name}/ holds:
  {name}.zarr   SpatialData store: images['image'] (the input, the chosen channels), images['image_enhanced'],
                points['spots'] (and labels['cells'] / ['nuclei'], tables['cells_spots'] with --cells)
  spots.csv     one row per spot: x, y (pixels, x = column, y = row, 0-based pixel centres), x_um, y_um (in the
                image's 'global' coordinate system: µm when the pixel size is known, else pixels), gene (channel)
                and the per-spot columns of `dsd.tl.detect_spots` (intensity_raw, intensity_enhanced, background,
                amplitude, integrated_intensity, snr, molecule)
  cells.csv     with --cells: spots per cell and channel
  qc.png        per channel: the image with its molecules, a zoomed crop, the brightness histogram with the
                molecule / dim-puncta decision
  done.json     written last: the image's summary rows
Over the batch: {out}/summary.csv (one row per image and channel: molecules, their median brightness, the
decision, warnings, time; a failed image has status 'failed' and its error) and {out}/overview.png.

A file that fails (unreadable, wrong axes, NaN) is reported in the summary and the others go on; the exit code is
1 if any failed. Running the same command again skips the finished images (--overwrite redoes them).
"""


def add_parsers(sub: Any, **kwargs: Any) -> None:
    """Add the ``detect`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser("detect", help="detect spots in a batch of TIFF / OME-TIFF images or zarr stores", **kwargs)
    p.description = DESCRIPTION
    p.add_argument("images", nargs="+", metavar="IMAGE", help="TIFF / OME-TIFF files, .zarr stores or folders")
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")

    g = p.add_argument_group("input")
    g.add_argument(
        "--channels",
        nargs="+",
        default=None,
        metavar="C",
        help="channels to analyse, by index (0-based) or name (default: all)",
    )
    g.add_argument(
        "--channel-names",
        nargs="+",
        default=None,
        metavar="NAME",
        help="one name per channel of the file, e.g. the genes (default: the OME channel names, else 0, 1, ...)",
    )
    g.add_argument(
        "--z",
        default="max",
        metavar="{max,N}",
        help="z-stacks: 'max' for the maximum intensity projection, or the index N of one plane",
    )
    g.add_argument(
        "--axes",
        default=None,
        help="axis letters of the TIFF files when their metadata is missing or wrong, e.g. ZYX, CYX, ZCYX",
    )
    g.add_argument(
        "--pixel-size",
        type=float,
        default=None,
        metavar="UM",
        help="pixel size in µm (default: the OME-TIFF PhysicalSizeX/Y when present, else coordinates stay in px)",
    )
    g.add_argument(
        "--image-key",
        default=None,
        help="image element of zarr stores to analyse (default: the store's only image)",
    )
    g.add_argument("--chunks", type=int, default=1024, help="chunk side in px of the written store")

    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, help="model name or folder (default: the shipped model)")
    g.add_argument(
        "--runtime",
        choices=("auto", "onnx", "tensorflow"),
        default="auto",
        help="network runtime: auto = ONNX Runtime on a CPU, TensorFlow with a GPU",
    )
    g.add_argument("--tile-size", type=int, default=None, help="tile side in px (default: automatic)")
    g.add_argument("--batch-size", type=int, default=None, help="tiles per network call (default: automatic)")

    g = p.add_argument_group("detection")
    g.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="threshold on the enhanced image (default: the model's calibrated threshold)",
    )
    g.add_argument("--min-distance", type=int, default=None, help="minimal distance between spots in px")
    g.add_argument(
        "--min-amplitude",
        default="auto",
        metavar="{auto,none,VALUE}",
        help="which detections are molecules: auto = remove a separate population of dim puncta when there is "
        "one; none = keep all; a number = keep amplitude >= VALUE (raw units)",
    )
    g.add_argument(
        "--keep-rejected",
        action="store_true",
        help="keep the rejected dim puncta in the points and the CSV, with molecule = False",
    )

    g = p.add_argument_group("cells")
    g.add_argument(
        "--cells",
        default=None,
        metavar="TEMPLATE",
        help="cell label image per input: a path with {stem} (e.g. masks/{stem}_cells.tif), or a labels element "
        "of zarr inputs; spots are then counted per cell (tables['cells_spots'], cells.csv)",
    )
    g.add_argument("--nuclei", default=None, metavar="TEMPLATE", help="nucleus label image, like --cells")

    g = p.add_argument_group("outputs")
    g.add_argument("--overwrite", action="store_true", help="redo images that are already finished")
    g.add_argument("--parquet", action="store_true", help="also write spots.parquet")
    g.add_argument("--no-qc", action="store_true", help="do not draw the QC figures")
    p.set_defaults(run=run)


# ------------------------------------------------------------------------------------------------------ inputs
def _stem(path: Path) -> str:
    name = path.name.rstrip("/")
    lower = name.lower()
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".zarr"):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def expand_inputs(items: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files and stores to process: folders that are not zarr stores stand for the images inside them."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir() and not _is_zarr(path):
            found = sorted(
                p
                for p in path.iterdir()
                if not p.name.startswith(".")
                and ((p.is_file() and p.suffix.lower() in _TIFF_SUFFIXES) or (p.is_dir() and _is_zarr(p)))
            )
            if not found:
                logger.warning("No .tif/.tiff file or .zarr store in folder %s.", path)
            out.extend(found)
        else:
            out.append(path)
    return out


def _is_zarr(path: Path) -> bool:
    return path.suffix.lower() == ".zarr" or (path / ".zgroup").is_file() or (path / "zarr.json").is_file()


def _names(paths: Sequence[Path]) -> list[str]:
    """One output name per input: the file stem, with ``_2``, ``_3``, ... for repeated stems."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        stem = _stem(path)
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names


_UNITS_UM = {"µm": 1.0, "um": 1.0, "micron": 1.0, "nm": 1e-3, "mm": 1e3, "m": 1e6, "pm": 1e-6}


def ome_pixel_size_um(path: str | os.PathLike[str]) -> tuple[float, float] | None:
    """``(y, x)`` pixel size in µm from an OME-TIFF's ``PhysicalSizeY/X`` (default unit µm), or ``None``."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.is_ome or not tif.ome_metadata:
            return None
        try:
            image = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
            pixels = (image[0] if isinstance(image, list) else image)["Pixels"]
        except (KeyError, TypeError, ValueError):
            return None
    sizes = []
    for axis in ("Y", "X"):
        value = pixels.get(f"PhysicalSize{axis}")
        unit = str(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if value is None or unit not in _UNITS_UM:
            return None
        sizes.append(float(value) * _UNITS_UM[unit])
    if not all(s > 0 and math.isfinite(s) for s in sizes):
        return None
    return sizes[0], sizes[1]


def _z_option(value: str) -> str | int:
    if value == "max":
        return "max"
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"Option --z should be 'max' or a plane index, got {value!r}.") from None


def _min_amplitude(value: str) -> str | float | None:
    if value.lower() == "auto":
        return "auto"
    if value.lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"Option --min-amplitude should be 'auto', 'none' or a number, got {value!r}.") from None


def _select_channels(element: Any, channels: Sequence[str] | None) -> Any:
    """Keep only the chosen channels (indices or names) of an image element."""
    if not channels:
        return element
    from spatialdata.models import Image2DModel
    from spatialdata.transformations import get_transformation

    names = [str(c) for c in element.coords["c"].values]
    idx = []
    for c in channels:
        if str(c) in names:
            idx.append(names.index(str(c)))
        elif str(c).lstrip("-").isdigit() and -len(names) <= int(c) < len(names):
            idx.append(int(c) % len(names))
        else:
            raise KeyError(f"Channel {c!r} not found. Available channels: {names} (or indices 0-{len(names) - 1}).")
    return Image2DModel.parse(
        element.data[idx],
        dims=("c", "y", "x"),
        c_coords=[names[i] for i in idx],
        transformations=get_transformation(element, get_all=True),
    )


def _read_input(path: Path, args: argparse.Namespace) -> tuple[Any, Any, tuple[float, float] | None]:
    """``(image element, source SpatialData or None, pixel size (y, x) µm or None)`` of one input."""
    import spatialdata as sd

    from deepspot_sd.io import read_tiff

    if not path.exists():
        raise FileNotFoundError(f"No such file or store: {path}")
    if path.is_dir():
        if not _is_zarr(path):
            raise ValueError(f"{path} is a folder but not a zarr store.")
        source = sd.read_zarr(path)
        keys = list(source.images)
        key = args.image_key
        if key is None:
            if len(keys) != 1:
                raise ValueError(f"The store holds {len(keys)} images {keys}; please choose one with --image-key.")
            key = keys[0]
        if key not in source.images:
            raise KeyError(f"Key {key!r} not found in `sdata.images` of {path}. Available keys: {keys}.")
        from deepspot_sd._validation import get_image_element

        element, _ = get_image_element(source, key)
        from spatialdata.models import Image2DModel
        from spatialdata.transformations import get_transformation

        element = Image2DModel.parse(
            element.data,
            dims=("c", "y", "x"),
            c_coords=[str(c) for c in element.coords["c"].values],
            transformations=get_transformation(source.images[key], get_all=True),
        )
        scale = _scale_of(element)
        return _select_channels(element, args.channels), source, scale
    if args.pixel_size is not None:
        scale = (float(args.pixel_size), float(args.pixel_size))
    else:
        scale = ome_pixel_size_um(path)
    sdata = read_tiff(
        path,
        image_key=IMAGE_KEY,
        z_projection=_z_option(args.z),
        channel_names=args.channel_names,
        chunks=args.chunks,
        scale_um=scale,
        axes=args.axes,
    )
    return _select_channels(sdata.images[IMAGE_KEY], args.channels), None, scale


def _scale_of(element: Any) -> tuple[float, float] | None:
    """Return the ``(y, x)`` scale of the ``global`` transformation if it is a pure scale, else ``None``."""
    import numpy as np
    from spatialdata.transformations import get_transformation

    try:
        t = get_transformation(element, "global")
    except (KeyError, ValueError):
        return None
    m = np.asarray(t.to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")))
    if not (np.allclose(m[0, 1], 0) and np.allclose(m[1, 0], 0) and np.allclose(m[:2, 2], 0)):
        return None
    sx, sy = float(m[0, 0]), float(m[1, 1])
    return None if np.isclose(sx, 1.0) and np.isclose(sy, 1.0) else (sy, sx)


def _labels(template: str, path: Path, source: Any, image: Any) -> Any:
    """Return the label element ``template`` names for input ``path``: a zarr input's element or a TIFF file."""
    import numpy as np
    from spatialdata.models import Labels2DModel
    from spatialdata.transformations import get_transformation

    if source is not None and template in source.labels:
        return source.labels[template]
    file = Path(template.format(stem=_stem(path), name=path.name, parent=str(path.parent)))
    if not file.is_file():
        raise FileNotFoundError(f"No label image {file} (from template {template!r}).")
    import tifffile

    arr = np.squeeze(tifffile.imread(file))
    if arr.ndim != 2 or arr.shape != tuple(image.shape[1:]):
        raise ValueError(f"Label image {file} has shape {arr.shape}; the image is {tuple(image.shape[1:])} (y, x).")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"Label image {file} has dtype {arr.dtype}; labels must be integers.")
    return Labels2DModel.parse(arr, dims=("y", "x"), transformations=get_transformation(image, get_all=True))


# ------------------------------------------------------------------------------------------------------ one image
def _spot_table(sdata: Any) -> Any:
    """Return the points as a table, with ``x_um``, ``y_um`` (``global`` coordinates) after ``x``, ``y``."""
    import numpy as np
    from spatialdata.transformations import get_transformation

    points = sdata.points[POINTS_KEY]
    df = points.compute().reset_index(drop=True)
    m = np.asarray(get_transformation(points, "global").to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")))
    xy = np.stack([df["x"].to_numpy(float), df["y"].to_numpy(float), np.ones(len(df))])
    gx, gy, _ = m @ xy
    cols = list(df.columns)
    df.insert(cols.index("y") + 1 if "y" in cols else 0, "y_um", gy)
    df.insert(cols.index("y") + 1 if "y" in cols else 0, "x_um", gx)
    first = [c for c in ("x", "y", "x_um", "y_um") if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def process_image(path: Path, name: str, out: Path, args: argparse.Namespace, *, show: bool) -> list[dict[str, Any]]:
    """Process one input into ``{out}/{name}`` (see the module notes); returns its summary rows."""
    import numpy as np
    import spatialdata as sd

    from deepspot_sd import tl
    from deepspot_sd._store import get_provenance

    from ._qc import qc_figure

    final = out / name
    tmp = out / f".{name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image, source, scale = _read_input(path, args)
            sdata = sd.SpatialData(images={IMAGE_KEY: image})
            store = tmp / f"{name}.zarr"
            sdata.write(store)
            sdata = sd.read_zarr(store)
            tl.enhance(
                sdata,
                IMAGE_KEY,
                model=args.model,
                runtime=args.runtime,
                tile_size=args.tile_size,
                batch_size=args.batch_size,
                key_added=ENHANCED_KEY,
                show_progress_bar=show,
            )
            tl.detect_spots(
                sdata,
                ENHANCED_KEY,
                threshold=args.threshold,
                min_distance=args.min_distance,
                min_amplitude=_min_amplitude(args.min_amplitude),
                keep_rejected=args.keep_rejected,
                key_added=POINTS_KEY,
                show_progress_bar=False,
            )
            n_cells = None
            if args.cells:
                sdata["cells"] = _labels(args.cells, path, source, sdata.images[IMAGE_KEY])
                sdata.write_element("cells")
                nuclei_key = None
                if args.nuclei:
                    sdata["nuclei"] = _labels(args.nuclei, path, source, sdata.images[IMAGE_KEY])
                    sdata.write_element("nuclei")
                    nuclei_key = "nuclei"
                tl.assign_spots(sdata, POINTS_KEY, "cells", nuclei_key=nuclei_key, table_key="cells_spots")
                table = sdata.tables["cells_spots"]
                n_cells = int(table.n_obs)
                counts = table.to_df()
                counts.insert(0, "cell_id", table.obs["cell_id"].to_numpy())
                counts.to_csv(tmp / "cells.csv", index=False)
            df = _spot_table(sdata)
            df.to_csv(tmp / "spots.csv", index=False)
            if args.parquet:
                df.to_parquet(tmp / "spots.parquet", index=False)
            if not args.no_qc:
                qc_figure(sdata, IMAGE_KEY, POINTS_KEY, tmp / "qc.png", title=f"{name} ({path.name})")
        noise = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)  # libraries' own, not the image's
        messages = list(
            dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, noise))
        )
        for message in messages:  # warnings always show, with the image they concern
            logger.warning("%s: %s", name, message)
        decisions = get_provenance(sdata, POINTS_KEY, sdata.points[POINTS_KEY]).get("molecule_decision", {})
        seconds = round(time.perf_counter() - start, 2)
        rows = []
        molecule = df["molecule"].to_numpy(bool) if "molecule" in df.columns else np.ones(len(df), bool)
        for channel in [str(c) for c in sdata.images[IMAGE_KEY].coords["c"].values]:
            sel = (df["gene"].astype(str) == channel).to_numpy() & molecule
            decision = decisions.get(channel, {})
            rows.append(
                {
                    "image": name,
                    "path": str(path),
                    "status": "done",
                    "channel": channel,
                    "n_molecules": int(sel.sum()),
                    "n_rejected": int(decision.get("n_removed", 0) or 0),
                    "molecule_amplitude_median": float(np.median(df["amplitude"][sel])) if sel.any() else math.nan,
                    "decision": str(decision.get("reason", "")),
                    "n_cells": n_cells,
                    "shape_yx": "x".join(str(s) for s in sdata.images[IMAGE_KEY].shape[1:]),
                    "pixel_size_um": None if scale is None else float(scale[1]),
                    "warnings": " | ".join(messages),
                    "seconds": seconds,
                    "error": "",
                    "output": str(final),
                }
            )
        # the marker last: a folder without it is never taken for a finished one
        (tmp / MARKER).write_text(json.dumps({"rows": rows}, indent=1, default=str), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return rows
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _failed_row(path: Path, name: str, error: BaseException, seconds: float) -> dict[str, Any]:
    reason = f"{type(error).__name__}: {error}".strip()
    return {
        "image": name,
        "path": str(path),
        "status": "failed",
        "channel": "",
        "n_molecules": None,
        "n_rejected": None,
        "molecule_amplitude_median": None,
        "decision": "",
        "n_cells": None,
        "shape_yx": "",
        "pixel_size_um": None,
        "warnings": "",
        "seconds": round(seconds, 2),
        "error": " ".join(reason.split()),
        "output": "",
    }


# ------------------------------------------------------------------------------------------------------ the batch
def detect_batch(args: argparse.Namespace) -> tuple[list[dict[str, Any]], int]:
    """Process every input of ``args``; returns the summary rows and the number of failed images."""
    import pandas as pd

    paths = expand_inputs(args.images)
    names = _names(paths)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    show = not args.quiet
    bar = None
    if show and len(paths) > 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc="images", unit="image", position=0)
    rows: list[dict[str, Any]] = []
    n_failed = 0
    try:
        for path, name in zip(paths, names, strict=True):
            if bar is not None:
                bar.set_postfix_str(name)
            marker = out / name / MARKER
            if marker.is_file() and not args.overwrite:
                kept = json.loads(marker.read_text(encoding="utf-8"))["rows"]
                rows.extend({**row, "status": "skipped"} for row in kept)
                logger.info("%s: finished before, skipped (--overwrite redoes it).", name)
            else:
                start = time.perf_counter()
                try:
                    rows.extend(process_image(path, name, out, args, show=show))
                except Exception as error:  # noqa: BLE001 - one failing file is reported, the batch goes on
                    n_failed += 1
                    rows.append(_failed_row(path, name, error, time.perf_counter() - start))
                    logger.error("%s failed: %s: %s", path, type(error).__name__, error)
                    logger.debug("%s", traceback.format_exc())
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if rows:
            pd.DataFrame(rows).to_csv(out / "summary.csv", index=False)
    if rows and not args.no_qc:
        from ._qc import overview_figure

        overview_figure(rows, out / "overview.png")
    return rows, n_failed


def run(args: argparse.Namespace) -> int:
    """Run ``deepspot-sd detect``; prints one line per image and the summary's path."""
    rows, n_failed = detect_batch(args)
    by_image: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_image.setdefault(row["image"], []).append(row)
    for name, image_rows in by_image.items():
        first = image_rows[0]
        if first["status"] == "failed":
            print(f"{name}: FAILED ({first['error']})")
        else:
            counts = ", ".join(f"{r['channel']} {r['n_molecules']}" for r in image_rows)
            print(f"{name}: {first['status']}, molecules per channel: {counts}")
    n_images = len(by_image)
    n_skipped = sum(rs[0]["status"] == "skipped" for rs in by_image.values())
    print(
        f"{n_images} image(s): {n_images - n_failed - n_skipped} done, {n_skipped} skipped, {n_failed} failed; "
        f"summary {args.out / 'summary.csv'}"
    )
    return 1 if n_failed else 0
