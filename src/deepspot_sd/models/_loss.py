"""The DeepSpot training loss (paper §3.2.2): pixel-wise BCE plus a squared error on the image maxima."""

from __future__ import annotations

from typing import Any

__all__ = ["deepspot_loss"]

_EPS = 1e-7


def deepspot_loss(y_true: Any, y_pred: Any) -> Any:
    """Return the DeepSpot loss of a batch, both images on the 0–255 scale.

    With ``t = y_true / 255`` and ``p = clip(y_pred / 255, 1e-7, 1 - 1e-7)`` (shape ``(batch, y, x, 1)``)::

        loss = mean_pixels_and_batch(-(t log p + (1 - t) log(1 - p)))
             + mean_batch((max_pixels(t) - max_pixels(p)) ** 2)

    The second term drives the brightest pixel of every enhanced image to the stamp value 255 (paper §3.2.2).

    Parameters
    ----------
    y_true
        Target images (input with 3×3 stamps at the spots), 0–255.
    y_pred
        Network output, 0–255.

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
    return bce + max_term
