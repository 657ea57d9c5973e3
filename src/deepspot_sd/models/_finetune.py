"""Adapt the shipped model to a user's microscope: calibrate the simulator on their images, then fine-tune."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepspot_sd._logging import logger
from deepspot_sd._validation import check_positive

from ._calibrate import Calibration, calibrate_array

__all__ = ["calibrate", "fine_tune"]

#: Largest calibration window: calibration looks at a central crop of big images (statistics, not every pixel).
_MAX_CALIBRATION_SIDE = 1024


def calibrate(
    sdata: Any,
    image_key: str,
    *,
    channel: int | str = 0,
    scale: str | None = None,
    min_snr: float = 6.0,
    seed: int = 0,
) -> Calibration:
    """Estimate the simulator's parameters from a user's image element.

    Measures, on a central crop of at most 1024 x 1024 px of one channel: the background level and texture, the
    Poisson–Gaussian noise model, and the size and SNR of confidently detected spots
    (:func:`~deepspot_sd.models.calibrate_array`); keeps the image with its spots removed as a real background for
    hybrid training images.

    Parameters
    ----------
    sdata
        The :class:`spatialdata.SpatialData` object.
    image_key
        Key of a raw image element in ``sdata.images`` (``c, y, x``; not normalised).
    channel
        Channel index or name.
    scale
        Multiscale level to read (default: full resolution).
    min_snr
        SNR above which spots are used to measure spot size and brightness.
    seed
        Seed of the noise that fills the removed spots.

    Returns
    -------
    The :class:`~deepspot_sd.models.Calibration`; pass it to :func:`fine_tune`.

    Raises
    ------
    KeyError
        If ``image_key`` or ``channel`` does not exist.
    ValueError
        For an image smaller than 64 px per side, constant, or containing NaN.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512), cell_spacing_px=150)
    >>> calib = dsd.models.calibrate(sdata, "smfish")
    >>> calib.psf_sigma_range_px  # doctest: +SKIP
    (1.05, 1.7)
    """
    from deepspot_sd._validation import get_image_element

    data, _ = get_image_element(sdata, image_key, scale=scale)
    channels = [str(c) for c in data.coords["c"].values] if "c" in data.coords else []
    if isinstance(channel, str):
        if channel not in channels:
            raise KeyError(f"Channel {channel!r} not found in `sdata.images[{image_key!r}]`. Available: {channels}.")
        channel = channels.index(channel)
    if not 0 <= int(channel) < data.shape[0]:
        raise KeyError(f"Channel {channel} not found: the image has {data.shape[0]} channel(s).")
    plane = data.data[int(channel)]
    height, width = plane.shape
    side_y, side_x = min(height, _MAX_CALIBRATION_SIDE), min(width, _MAX_CALIBRATION_SIDE)
    r0, c0 = (height - side_y) // 2, (width - side_x) // 2
    crop = np.asarray(plane[r0 : r0 + side_y, c0 : c0 + side_x])
    calib = calibrate_array(crop, min_snr=min_snr, seed=seed)
    logger.info(
        "Calibrated on %s (%d x %d crop): PSF sigma %.2f-%.2f px, SNR %.1f-%.1f, %d reference spots.",
        image_key,
        side_y,
        side_x,
        *calib.psf_sigma_range_px,
        *calib.snr_range,
        calib.n_reference_spots,
    )
    return calib


def fine_tune(
    calibration: Calibration | Sequence[Calibration],
    *,
    output_dir: str | os.PathLike[str],
    model: Any = None,
    epochs: int = 5,
    steps_per_epoch: int = 50,
    batch_size: int = 8,
    real_fraction: float = 0.5,
    learning_rate: float = 5e-5,
    validation_images: int = 16,
    seed: int = 0,
    resume: bool = True,
    show_progress_bar: bool = True,
) -> Any:
    """Continue training a model on images simulated to match calibrated microscopes.

    Half of the images (``real_fraction``) put simulated spots on the user's own spot-suppressed backgrounds,
    the rest are fully simulated with the calibrated noise, background, spot size and SNR. The detection
    threshold is recalibrated on a validation set drawn the same way. Resumable: re-running the same call
    continues from the checkpoints in ``output_dir``.

    Parameters
    ----------
    calibration
        One or several :class:`~deepspot_sd.models.Calibration` from :func:`calibrate`.
    output_dir
        Checkpoint folder; the fine-tuned model folder is written to ``{output_dir}/model``.
    model
        Starting model: an :class:`~deepspot_sd.models.EnhancementModel`, a model folder or a shipped model name
        (default: the shipped default model).
    epochs, steps_per_epoch, batch_size
        Training length: ``epochs * steps_per_epoch`` Adam steps of ``batch_size`` images.
    real_fraction
        Fraction of training images on the user's real backgrounds.
    learning_rate
        Adam learning rate (half the training rate: the model is already trained).
    validation_images
        Size of the validation set used to pick the best epoch and the threshold.
    seed
        Seed of the training data.
    resume
        Continue from a checkpoint in ``output_dir`` when there is one.
    show_progress_bar
        Show a tqdm bar over the steps of each epoch.

    Returns
    -------
    The fine-tuned :class:`~deepspot_sd.models.EnhancementModel`; ``dsd.tl.enhance(..., model=...)`` accepts it,
    or its folder ``{output_dir}/model``.
    """
    from ._pretrained import EnhancementModel, load_model, load_pretrained
    from ._train import train
    from ._train_export import export_model

    calibrations = [calibration] if isinstance(calibration, Calibration) else list(calibration)
    if not calibrations:
        raise ValueError("Parameter calibration should hold at least one Calibration; run `dsd.models.calibrate`.")
    check_positive("learning_rate", learning_rate)
    if not 0.0 <= real_fraction <= 1.0:
        raise ValueError(f"Parameter real_fraction should be in [0, 1], got {real_fraction}.")
    if model is None:
        model = load_pretrained()
    elif isinstance(model, str | os.PathLike) and not Path(model).exists():
        model = load_pretrained(str(model))
    elif not isinstance(model, EnhancementModel):
        model = load_model(model)

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    init = out / "init.weights.h5"
    if not init.exists():
        model.keras_model.save_weights(str(init))
    backgrounds = [(bg, c.noise) for c in calibrations for bg in c.backgrounds]
    # the simulated images follow the first calibration; its noise and spot statistics replace the random draws
    overrides = calibrations[0].simulation_kwargs()
    for key in ("shape", "n_spots", "family"):
        overrides.pop(key)
    recipe = model.config.extra.get("training", {})
    train(
        model.config,
        output_dir=out / "checkpoints",
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        learning_rate=learning_rate,
        # the loss the model was trained with: its recipe is kept in the exported config
        spot_weight=float(recipe.get("spot_weight", 0.0)),
        background_weight=float(recipe.get("background_weight", 0.0)),
        init_weights=init,
        validation_images=validation_images,
        resume=resume,
        backgrounds=backgrounds,
        real_fraction=real_fraction if backgrounds else 0.0,
        simulation_overrides=overrides,
        show_progress_bar=show_progress_bar,
    )
    folder = export_model(out / "checkpoints", out / "model", name=f"{model.config.name}_finetuned")
    return load_model(folder)
