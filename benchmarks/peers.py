"""Peer spot detectors for the accuracy benchmark, behind one small interface: ``detector(image) -> (n, 2) centres``.

* **Big-FISH** (``big-fish``, Imbert et al. 2022): LoG filter + local maxima with its *automatic* threshold (the kink
  of the spot-count-vs-threshold curve), chosen per image by ``bigfish.detection.detect_spots(...,
  return_threshold=True)``. Spot size: ``voxel_size=(100, 100)`` nm and ``spot_radius=(150, 150)`` nm, i.e. a LoG
  sigma and a minimum distance of 1.5 px, the middle of the simulator's PSF sigma range (0.7–2.5 px).
* **U-FISH** (``ufish``, Xu et al. 2024): its pretrained ONNX network (the weights file shipped inside the wheel,
  ``ufish/model/weights/*.onnx``; nothing is downloaded) and its default spot calling
  (``UFish.predict(image, axes="yx")``: percentile rescale to 0–255, enhancement, Laplace + local maxima above 0.5).

Both are optional: :func:`load_peers` skips a peer whose import fails and returns a note saying why. Install with::

    pip install -e ".[bench]" && pip install --no-deps ufish

(U-FISH's own dependency list pins torch and other heavy packages that the ONNX path does not need.)
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Peer", "load_bigfish", "load_peers", "load_ufish"]

#: Big-FISH spot size: LoG sigma = minimum distance = spot_radius / voxel_size = 1.5 px.
BIGFISH_VOXEL_SIZE_NM = (100, 100)
BIGFISH_SPOT_RADIUS_NM = (150, 150)


@dataclass
class Peer:
    """A peer detector: ``detect(image)`` returns ``float64 (n, 2)`` ``(row, col)`` centres of a raw 2D image."""

    name: str
    detect: Callable[[np.ndarray], np.ndarray]
    description: str
    warmup: bool = False  # run once before timing (network sessions)


def load_bigfish() -> Peer:
    """Big-FISH LoG + local maxima with its automatic per-image threshold."""
    import bigfish
    import bigfish.detection as bf_detection

    def detect(image: np.ndarray) -> np.ndarray:
        img = np.asarray(image)
        if img.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
            img = img.astype(np.float32)
        spots, _threshold = bf_detection.detect_spots(
            images=img,
            return_threshold=True,
            voxel_size=BIGFISH_VOXEL_SIZE_NM,
            spot_radius=BIGFISH_SPOT_RADIUS_NM,
        )
        return np.asarray(spots, dtype=np.float64).reshape(-1, 2)

    version = getattr(bigfish, "__version__", "?")
    return Peer(
        "Big-FISH",
        detect,
        f"Big-FISH {version} `detect_spots` with its automatic threshold per image (LoG sigma and minimum "
        "distance 1.5 px: voxel_size=(100, 100) nm, spot_radius=(150, 150) nm)",
    )


def ufish_weights() -> str:
    """Path of the ONNX weights shipped inside the installed ``ufish`` package."""
    import ufish

    found = sorted(glob.glob(os.path.join(os.path.dirname(ufish.__file__), "model", "weights", "*.onnx")))
    if not found:
        raise FileNotFoundError("No ufish/model/weights/*.onnx in the installed ufish package.")
    return found[-1]


def load_ufish(*, threads: int | None = None) -> Peer:
    """U-FISH with the pretrained ONNX weights of its wheel, CPU only, default spot calling.

    Parameters
    ----------
    threads
        onnxruntime intra-op threads (``None``: onnxruntime's default).
    """
    import onnxruntime
    from loguru import logger as loguru_logger
    from ufish.api import UFish

    loguru_logger.disable("ufish")  # its INFO lines on every call
    weights = ufish_weights()
    model = UFish(cuda=False)
    model.load_weights_from_path(weights)
    if threads is not None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        model.ort_session = onnxruntime.InferenceSession(weights, options, providers=["CPUExecutionProvider"])

    def detect(image: np.ndarray) -> np.ndarray:
        df, _enhanced = model.predict(np.asarray(image), axes="yx", blend_3d=False)
        return df[["axis-0", "axis-1"]].to_numpy(dtype=np.float64).reshape(-1, 2)

    return Peer(
        "U-FISH",
        detect,
        f"U-FISH {_version('ufish')} pretrained `{os.path.basename(weights)}` (shipped in the wheel) on "
        f"onnxruntime {onnxruntime.__version__} CPU, default `UFish.predict` spot calling",
        warmup=True,
    )


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def load_peers(names: list[str], *, threads: int | None = None) -> tuple[list[Peer], list[str]]:
    """Load the requested peers (``"bigfish"``, ``"ufish"``); return ``(peers, notes on skipped ones)``."""
    loaders: dict[str, Callable[[], Peer]] = {
        "bigfish": load_bigfish,
        "ufish": lambda: load_ufish(threads=threads),
    }
    peers, notes = [], []
    for name in names:
        if name not in loaders:
            raise ValueError(f"Unknown peer {name!r}. Available peers: {sorted(loaders)}.")
        try:
            peers.append(loaders[name]())
        except (ImportError, OSError, RuntimeError) as err:  # optional: a missing peer only drops its column
            notes.append(
                f"{name} skipped ({type(err).__name__}: {err}); install with "
                '`pip install -e ".[bench]" && pip install --no-deps ufish`.'
            )
    return peers, notes
