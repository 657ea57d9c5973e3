"""Keras 3 networks: the paper's CASO + ResNet network and a compact identity-initialised U-Net.

TensorFlow / Keras are imported inside the functions so that ``import deepspot_sd`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepspot_sd._model_config import ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["build_model", "count_parameters"]

#: Inputs are clipped to ``[_EPS, 1 - _EPS]`` on the 0–1 scale before the logit of the U-Net's identity path.
_EPS = 1e-3

#: Batch-norm momentum of the U-Net: 0.9 so the inference statistics follow within a few dozen steps (short CPU
#: runs validate meaningfully early); the paper network keeps the Keras default 0.99.
_UNET_BN_MOMENTUM = 0.9


def build_model(config: ModelConfig | None = None) -> keras.Model:
    """Build the (untrained) enhancement network described by ``config``.

    Parameters
    ----------
    config
        Architecture and sizes; defaults to :meth:`ModelConfig.compact`.

    Returns
    -------
    A fully convolutional :class:`keras.Model` with input shape ``(batch, y, x, 1)`` float32 on the normalised
    0–255 scale (see :func:`deepspot_sd.pp.apply_normalization`) and output of the same shape on the enhanced
    0–255 scale. ``y`` and ``x`` must be divisible by ``config.size_multiple`` (8 for the shipped configs);
    :class:`deepspot_sd.models.EnhancementModel` pads other sizes.

    Notes
    -----
    ``"unet"`` computes ``255 * sigmoid(logit(clip(x / 255)) + h(x))`` with the head ``h`` initialised to zero, so
    the untrained network returns its input (up to the clipping at 0.26 and 254.7) and learns only the change:
    lift spots to the 255 stamp, cap bright non-spot structures, keep the background.

    ``"caso_resnet"`` follows §3.2.1 of the paper: three CASO paths of 3 blocks each (conv + BN + ReLU + 3×3 max
    pool stride 2; conv stride 2 + BN + ReLU; dilated conv + BN + ReLU + max pool), concatenated, one projection
    residual block, ``n_res_blocks`` full pre-activation bottleneck residual blocks (3 × [BN, ReLU, conv 1×1/3×3/1×1],
    spatial dropout, identity add), three UpResBlocks (3 × [transposed conv, BN, ReLU], spatial dropout, transposed
    conv shortcut), and a 1×1 convolution with a sigmoid, times 255.

    Examples
    --------
    >>> import numpy as np
    >>> from deepspot_sd.models import ModelConfig, build_model
    >>> model = build_model(ModelConfig.compact())
    >>> model.predict(np.full((1, 64, 64, 1), 100, np.float32), verbose=0).shape
    (1, 64, 64, 1)
    """
    import keras

    config = ModelConfig() if config is None else config
    if not isinstance(config, ModelConfig):
        raise TypeError(f"Parameter config should be a ('ModelConfig',). It is a {type(config).__name__!r} instead.")
    inputs = keras.Input(shape=(None, None, 1), dtype="float32", name="image")
    if config.architecture == "unet":
        outputs = _unet(inputs, config)
    else:
        outputs = _caso_resnet(inputs, config)
    return keras.Model(inputs, outputs, name=config.name)


def count_parameters(model: keras.Model) -> int:
    """Return the number of trainable and non-trainable weights of ``model``."""
    import numpy as np

    return int(sum(np.prod(w.shape) for w in model.weights))


# ---------------------------------------------------------------------------------------------------- U-Net
def _conv_bn_relu(
    x: Any, filters: int, *, strides: int = 1, dilation: int = 1, bn_momentum: float = 0.99, name: str
) -> Any:
    from keras import layers

    x = layers.Conv2D(
        filters, 3, strides=strides, dilation_rate=dilation, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _unet(inputs: Any, config: ModelConfig) -> Any:
    from keras import layers, ops

    from ._layers import BilinearUpsampling2x

    x01 = layers.Rescaling(1.0 / 255.0, name="scale_01")(inputs)
    x = x01
    skips = []
    for level, f in enumerate(config.filters):
        for i in range(config.convs_per_level):
            x = _conv_bn_relu(x, f, bn_momentum=_UNET_BN_MOMENTUM, name=f"enc{level}_{i}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _conv_bn_relu(x, config.bottleneck_filters, bn_momentum=_UNET_BN_MOMENTUM, name="bottleneck_a")
    if config.dropout > 0:
        x = layers.SpatialDropout2D(config.dropout, name="bottleneck_dropout")(x)
    x = _conv_bn_relu(x, config.bottleneck_filters, bn_momentum=_UNET_BN_MOMENTUM, name="bottleneck_b")
    for level in reversed(range(len(config.filters))):
        f = config.filters[level]
        if config.upsampling == "bilinear":
            x = BilinearUpsampling2x(name=f"up{level}_resize")(x)
            x = layers.Conv2D(f, 3, padding="same", name=f"up{level}")(x)
        else:
            x = layers.Conv2DTranspose(f, 2, strides=2, padding="same", name=f"up{level}")(x)
        x = layers.Concatenate(name=f"concat{level}")([x, skips[level]])
        for i in range(config.convs_per_level):
            x = _conv_bn_relu(x, f, bn_momentum=_UNET_BN_MOMENTUM, name=f"dec{level}_{i}")
    head = layers.Conv2D(1, 1, kernel_initializer="zeros", bias_initializer="zeros", name="head")(x)
    p = ops.clip(x01, _EPS, 1.0 - _EPS)
    logit = ops.log(p) - ops.log1p(-p)
    return ops.sigmoid(logit + head) * 255.0


# ---------------------------------------------------------------------------------------------------- paper
def _preact_bottleneck(x: Any, filters: int, *, dropout: float, projection: bool, name: str) -> Any:
    from keras import layers

    shortcut = x
    for i, k in enumerate((1, 3, 1)):
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
        x = layers.Conv2D(filters, k, padding="same", name=f"{name}_conv{i}")(x)
    if dropout > 0:
        x = layers.SpatialDropout2D(dropout, name=f"{name}_dropout")(x)
    if projection:
        shortcut = layers.Conv2D(filters, 1, name=f"{name}_proj")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    return layers.Add(name=f"{name}_add")([x, shortcut])


def _up_res_block(x: Any, filters: int, *, dropout: float, name: str) -> Any:
    from keras import layers

    shortcut = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name=f"{name}_short")(x)
    shortcut = layers.BatchNormalization(name=f"{name}_short_bn")(shortcut)
    for i, (f, s) in enumerate(((2 * filters, 2), (filters, 1), (filters, 1))):
        x = layers.Conv2DTranspose(
            f, 3, strides=s, padding="same", kernel_initializer="he_normal", name=f"{name}_tconv{i}"
        )(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        if i < 2:
            x = layers.ReLU(name=f"{name}_relu{i}")(x)
    if dropout > 0:
        x = layers.SpatialDropout2D(dropout, name=f"{name}_dropout")(x)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_out")(x)


def _caso_resnet(inputs: Any, config: ModelConfig) -> Any:
    from keras import layers

    x01 = layers.Rescaling(1.0 / 255.0, name="scale_01")(inputs)
    strided, pooled, atrous = x01, x01, x01
    for i, f in enumerate(config.filters):
        strided = _conv_bn_relu(strided, f, strides=2, name=f"caso_strided{i}")
        pooled = _conv_bn_relu(pooled, f, name=f"caso_pool{i}")
        pooled = layers.MaxPooling2D(3, strides=2, padding="same", name=f"caso_pool{i}_mp")(pooled)
        atrous = _conv_bn_relu(atrous, f, dilation=2, name=f"caso_atrous{i}")
        atrous = layers.MaxPooling2D(3, strides=2, padding="same", name=f"caso_atrous{i}_mp")(atrous)
    x = layers.Concatenate(name="caso_concat")([strided, pooled, atrous])
    x = _preact_bottleneck(x, config.bottleneck_filters, dropout=config.dropout, projection=True, name="res_in")
    for i in range(config.n_res_blocks):
        x = _preact_bottleneck(x, config.bottleneck_filters, dropout=config.dropout, projection=False, name=f"res{i}")
    for i, f in enumerate(reversed(config.filters)):
        x = _up_res_block(x, f, dropout=config.dropout, name=f"upres{i}")
    x = layers.Conv2D(1, 1, activation="sigmoid", name="head")(x)
    return layers.Rescaling(255.0, name="scale_255")(x)
