"""The DeepSpot training loss (paper §3.2.2): pixel-wise BCE plus a squared error on the image maxima.

Two optional terms (ours, not the paper's) ask every spot, not only the brightest one, to reach 255, and every pixel
away from spots to stay below a ceiling.
"""

from __future__ import annotations

from typing import Any

__all__ = ["deepspot_loss"]

_EPS = 1e-7
#: Target pixels at or above this value (0–1 scale) are stamp centres: the stamp's 255 centre is the only target
#: value above 230 once non-spot pixels are capped (``target_cap``).
_CENTRE = 254.5 / 255.0
#: Pixels more than 2 px from every spot should stay below this enhanced value (0–1 scale), under any threshold the
#: detector is calibrated to (shipped thresholds lie in 180–250).
BACKGROUND_CEILING = 170.0 / 255.0


def deepspot_loss(y_true: Any, y_pred: Any, spot_weight: float = 0.0, background_weight: float = 0.0) -> Any:
    """Return the DeepSpot loss of a batch, both images on the 0–255 scale.

    With ``t = y_true / 255`` and ``p = clip(y_pred / 255, 1e-7, 1 - 1e-7)`` (shape ``(batch, y, x, 1)``)::

        loss = mean_pixels_and_batch(-(t log p + (1 - t) log(1 - p)))
             + mean_batch((max_pixels(t) - max_pixels(p)) ** 2)

    The second term drives the brightest pixel of every enhanced image to the stamp value 255 (paper §3.2.2).
    With ``spot_weight > 0`` a third term does the same for every spot::

             +spot_weight * mean_spots((1 - max_3x3(p)[centre]) ** 2)

    where the centres are the target's 255 pixels and ``max_3x3`` allows the peak one pixel off the rounded centre
    (what the local-maximum detector and the 3 px matching accept). The pixel-wise BCE gives the few spot pixels of
    an image little weight next to its background, which leaves faint spots well below 255; this term weighs every
    spot equally. With ``background_weight > 0`` a fourth term penalises the pixels that would become false spots::

             +background_weight * mean_offending((p - max(t, ceiling)) ** 2)

    over the pixels more than 2 px (chessboard distance) from every centre whose prediction exceeds both their
    target and ``ceiling`` (170 on the 0–255 scale), again averaged over those pixels rather than over the whole
    image, so that a bright blob costs as much as a missed spot. Both terms assume capped non-spot targets
    (``target_cap`` < 255), else bright background counts as centres.

    Parameters
    ----------
    y_true
        Target images (input with 3×3 stamps at the spots), 0–255.
    y_pred
        Network output, 0–255.
    spot_weight
        Weight of the per-spot peak term (0: the paper's loss).
    background_weight
        Weight of the term on bright pixels away from spots (0: the paper's loss).

    Returns
    -------
    A scalar tensor (Keras 3 backend tensor).
    """
    from keras import ops

    t = ops.cast(y_true, "float32") / 255.0
    p = ops.clip(ops.cast(y_pred, "float32") / 255.0, _EPS, 1.0 - _EPS)
    bce = -ops.mean(t * ops.log(p) + (1.0 - t) * ops.log(1.0 - p))
    axes = tuple(range(1, len(t.shape)))
    max_term = ops.mean(ops.square(ops.max(t, axis=axes) - ops.max(p, axis=axes)))
    loss = bce + max_term
    if not (spot_weight or background_weight):
        return loss
    centres = ops.cast(t >= _CENTRE, "float32")
    if spot_weight:
        peaks = ops.max_pool(p, pool_size=3, strides=1, padding="same")
        spot_term = ops.sum(centres * ops.square(1.0 - peaks)) / ops.maximum(ops.sum(centres), 1.0)
        loss = loss + float(spot_weight) * spot_term
    if background_weight:
        away = 1.0 - ops.max_pool(centres, pool_size=5, strides=1, padding="same")
        excess = away * ops.relu(p - ops.maximum(t, BACKGROUND_CEILING))
        n_offending = ops.sum(ops.cast(excess > 0.0, "float32"))
        loss = loss + float(background_weight) * ops.sum(ops.square(excess)) / ops.maximum(n_offending, 1.0)
    return loss
