"""Scoring an enhancement network during training: prediction, fixed-threshold evaluation, threshold calibration.

The detector is :func:`deepspot_sd.tl.find_spots_local_max` (from the low-level :mod:`deepspot_sd._detection`) and
the matching :func:`deepspot_sd.metrics.match_kdtree`; nothing here needs SpatialData.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import pandas as pd

__all__ = ["DEFAULT_THRESHOLDS", "calibrate_threshold", "evaluate_enhanced", "predict_images"]

#: Default threshold grid of the calibration, on the enhanced 0–255 scale.
DEFAULT_THRESHOLDS = tuple(float(t) for t in np.arange(120.0, 252.5, 5.0))


def predict_images(model: keras.Model, images: Sequence[np.ndarray], *, batch_size: int = 8) -> list[np.ndarray]:
    """Enhance normalised images of equal, network-compatible size (sides divisible by 8) with a Keras model.

    Parameters
    ----------
    model
        The enhancement network.
    images
        ``(y, x)`` float images on the normalised 0–255 scale.
    batch_size
        Images per forward pass.

    Returns
    -------
    The enhanced ``float32 (y, x)`` images.
    """
    if len(images) == 0:
        return []
    x = np.stack([np.asarray(im, dtype=np.float32) for im in images])[..., None]
    out = []
    for start in range(0, len(x), batch_size):
        out.append(np.asarray(model.predict_on_batch(x[start : start + batch_size])))
    y = np.concatenate(out)[..., 0]
    return list(y)


def evaluate_enhanced(
    enhanced: Sequence[np.ndarray],
    true_spots: Sequence[np.ndarray],
    *,
    threshold: float,
    min_distance: int = 1,
    radius: float = 3.0,
) -> dict[str, float]:
    """Detect spots on enhanced images with one fixed setting and score them (mean over images).

    Detection is :func:`deepspot_sd.tl.find_spots_local_max` with ``threshold`` and ``min_distance``; matching is
    :func:`deepspot_sd.metrics.match_kdtree` with ``radius`` (paper §4.1).

    Returns
    -------
    ``{"f1", "precision", "recall", "am"}``: means over the images (``am``: ambiguous matches per image).
    """
    from deepspot_sd._detection import find_spots_local_max
    from deepspot_sd.metrics import match_kdtree

    scores = []
    for img, truth in zip(enhanced, true_spots, strict=True):
        pred = find_spots_local_max(np.asarray(img), threshold=float(threshold), min_distance=int(min_distance))
        res = match_kdtree(np.asarray(truth).reshape(-1, 2), pred, radius=radius)
        scores.append((res.f1, res.precision, res.recall, res.am))
    if not scores:
        return {"f1": float("nan"), "precision": float("nan"), "recall": float("nan"), "am": float("nan")}
    f1, precision, recall, am = np.mean(np.asarray(scores, dtype=np.float64), axis=0)
    return {"f1": float(f1), "precision": float(precision), "recall": float(recall), "am": float(am)}


def calibrate_threshold(
    enhanced: Sequence[np.ndarray],
    true_spots: Sequence[np.ndarray],
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    min_distance: int = 1,
    radius: float = 3.0,
) -> tuple[float, pd.DataFrame]:
    """Pick the detection threshold that maximises the mean F1 on a labelled (validation) set.

    Parameters
    ----------
    enhanced
        Enhanced ``(y, x)`` images (network output, 0–255).
    true_spots
        ``(n, 2)`` true centres ``(row, col)`` per image.
    thresholds
        Candidate thresholds on the enhanced scale.
    min_distance, radius
        Detector and matching settings, see :func:`evaluate_enhanced`.

    Returns
    -------
    ``(best_threshold, table)``: the threshold with the highest mean F1 (ties: the middle of the tied run of
    thresholds, which is the most robust choice), and a :class:`pandas.DataFrame` with one row per threshold
    (``threshold``, ``f1``, ``precision``, ``recall``, ``am``). Store the threshold in the model config with
    ``config.replace(threshold=best_threshold)``.
    """
    import pandas as pd

    if len(thresholds) == 0:
        raise ValueError("Please provide at least one threshold.")
    rows = [
        {"threshold": float(t)}
        | evaluate_enhanced(enhanced, true_spots, threshold=float(t), min_distance=min_distance, radius=radius)
        for t in sorted(thresholds)
    ]
    table = pd.DataFrame(rows)
    f1 = table["f1"].to_numpy()
    best = np.flatnonzero(f1 >= np.nanmax(f1) - 1e-12)
    # middle of the first run of tied maxima
    run = [best[0]]
    for i in best[1:]:
        if i != run[-1] + 1:
            break
        run.append(i)
    return float(table["threshold"].iloc[run[len(run) // 2]]), table
