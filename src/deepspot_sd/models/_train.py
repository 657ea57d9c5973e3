"""The resumable training loop: Adam on freshly simulated images, per-epoch validation F1 and threshold calibration.

The checkpoint folder it writes is described in :mod:`deepspot_sd.models._train_checkpoint`; the data come from
:mod:`deepspot_sd.models._training_data`, the scores from :mod:`deepspot_sd.models._train_eval`, and
:func:`deepspot_sd.models.export_model` (:mod:`deepspot_sd.models._train_export`) turns a checkpoint into a model
folder.

Epoch ``e`` (0-based) trains on ``training_batches(seed=SeedSequence([seed, e]))`` and seeds Keras with
``seed * 100003 + e``, so a run resumed after epoch ``e`` draws exactly the data an uninterrupted run would have.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspot_sd._logging import logger
from deepspot_sd._model_config import ModelConfig

from ._train_checkpoint import (
    _HISTORY_FIELDS,
    _atomic_json,
    _load_optimizer,
    _load_weights,
    _read_history,
    _save_optimizer,
    _save_weights,
    _weights_path,
    _write_history,
)
from ._train_eval import DEFAULT_THRESHOLDS, calibrate_threshold, evaluate_enhanced, predict_images
from ._training_data import DEFAULT_TARGET_CAP, BatchPool, TrainingSample, training_batches, validation_set

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["train"]


def _prefetch(iterator: Any, size: int) -> Any:
    """Run a batch generator in a background thread (numpy / scipy release the GIL), keeping its order."""
    if size <= 0:
        yield from iterator
        return
    q: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()

    def worker() -> None:
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except Exception as err:  # noqa: BLE001 - re-raised in the consumer thread
            q.put(err)

    thread = threading.Thread(target=worker, name="deepspot-batches", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()


def train(
    config: ModelConfig,
    *,
    output_dir: str | os.PathLike[str],
    steps_per_epoch: int,
    epochs: int,
    batch_size: int = 8,
    seed: int = 0,
    learning_rate: float = 1e-4,
    spot_weight: float = 0.0,
    background_weight: float = 0.0,
    init_weights: str | os.PathLike[str] | None = None,
    validation_images: int | Sequence[TrainingSample] = 24,
    validation_seed: int = 0,
    target_cap: float | None = DEFAULT_TARGET_CAP,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    resume: bool = True,
    prefetch: int = 2,
    backgrounds: Sequence[tuple[np.ndarray, Any]] = (),
    background_names: Sequence[str] = (),
    real_fraction: float = 0.0,
    simulation_overrides: Mapping[str, Any] = MappingProxyType({}),
    run_eagerly: bool = False,
    patch_size: int | None = None,
    workers: int = 0,
    max_seconds: float | None = None,
    show_progress_bar: bool = True,
) -> pd.DataFrame:
    """Train an enhancement network on freshly simulated images, resumably.

    Each epoch runs ``steps_per_epoch`` Adam steps (:func:`deepspot_sd.models.deepspot_loss`) on
    batches from :func:`deepspot_sd.models.training_batches`, then enhances the fixed validation set, detects spots
    with :func:`deepspot_sd.tl.find_spots_local_max` at ``config.threshold`` and scores them with
    :func:`deepspot_sd.metrics.match_kdtree` (radius 3 px), and calibrates the threshold on the same set
    (:func:`calibrate_threshold`). The weights with the best calibrated F1 are kept as ``best.weights.h5`` with
    their threshold in ``best_config.json``. The training loss stays high (background BCE dominates); select on the
    validation F1.

    Parameters
    ----------
    config
        Architecture, normalisation and detection settings.
    output_dir
        Checkpoint folder (layout: :mod:`deepspot_sd.models._train_checkpoint`); created if needed.
    steps_per_epoch
        Optimiser steps per epoch.
    epochs
        Total number of epochs: a resumed run continues until this many epochs are done.
    batch_size
        Images (256² tiles of ``config.tile_size``) per step.
    seed
        Seed of the training data and of Keras; with ``resume`` the folder's stored seed must match.
    learning_rate
        Adam learning rate (paper: 1e-4).
    spot_weight
        Weight of the per-spot peak term of :func:`deepspot_sd.models.deepspot_loss` (0: the paper's loss).
    background_weight
        Weight of its term on bright pixels away from spots (0: the paper's loss). Both weights are kept in
        ``train_args.json``; a resumed run must use the stored values.
    init_weights
        Weights file (``*.weights.h5``) or model folder to start from when the run starts fresh (fine-tuning).
    validation_images
        Number of validation images (seeded, from a stream training never uses), or explicit samples.
    validation_seed
        Seed of the generated validation set.
    target_cap
        Cap of non-spot target pixels on the normalised scale (``None``: background kept as in the paper).
    thresholds
        Threshold grid of the per-epoch calibration.
    resume
        Continue from ``output_dir`` when it holds a checkpoint; with ``False`` an existing checkpoint raises.
    prefetch
        Batches simulated ahead in a background thread (0: none).
    backgrounds
        Spot-free real backgrounds (:func:`deepspot_sd.models.load_real_backgrounds`) for hybrid images.
    background_names
        Names of the real images behind ``backgrounds`` (e.g. file stems), in the same order; recorded in
        ``train_args.json`` and the exported config (``extra["training"]["backgrounds"]``).
    real_fraction
        Fraction of training and validation images made on ``backgrounds``.
    patch_size
        Side of the training images in px (default ``config.tile_size``). The network is fully convolutional:
        smaller patches give more optimiser steps per CPU second at the same spot density; validation always uses
        full ``config.tile_size`` tiles.
    simulation_overrides
        Fixed :func:`deepspot_sd.datasets.simulate_image` arguments for the simulated images (e.g. a calibrated
        microscope from :meth:`~deepspot_sd.models.Calibration.simulation_kwargs`).
    run_eagerly
        Run the Keras train step eagerly instead of as a traced ``tf.function`` (no tracing cost; for tests and
        debugging of tiny models).
    workers
        Simulate the batches in this many worker processes (a GPU outpaces one simulating thread). Batch ``b`` of
        epoch ``e`` is then drawn from child ``b`` of ``SeedSequence([seed, e])``: the data do not depend on the
        number of workers, but differ from those of ``workers=0``. Recorded in ``train_args.json``.
    max_seconds
        Stop after the first epoch that ends more than this many seconds after the call started (at least one epoch
        runs; the checkpoint is complete, call again to continue). ``None``: run until ``epochs``.
    show_progress_bar
        Show a tqdm bar over the steps of each epoch, with the running mean loss.

    Returns
    -------
    The training history as a :class:`pandas.DataFrame` (also in ``output_dir / "history.csv"``).

    Raises
    ------
    ValueError
        If ``output_dir`` holds a checkpoint of a different config or seed, or one exists and ``resume=False``.

    Examples
    --------
    >>> from deepspot_sd.models import ModelConfig, train
    >>> history = train(ModelConfig.compact(), output_dir="ckpt", steps_per_epoch=5, epochs=2)  # doctest: +SKIP
    """
    import keras
    import pandas as pd
    from tqdm.auto import tqdm

    from ._cnn import build_model
    from ._loss import deepspot_loss

    if not isinstance(config, ModelConfig):
        raise TypeError(f"Parameter config should be a ('ModelConfig',). It is a {type(config).__name__!r} instead.")
    for name, value in (("steps_per_epoch", steps_per_epoch), ("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"Parameter {name} should be an integer >= 1, got {value!r}.")
    if background_names and len(background_names) != len(backgrounds):
        raise ValueError(
            f"Parameter background_names should name the {len(backgrounds)} backgrounds, got {background_names!r}."
        )
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "state.json"
    train_args = {
        "seed": int(seed),
        "batch_size": int(batch_size),
        "patch_size": int(patch_size or config.tile_size),
        "steps_per_epoch": int(steps_per_epoch),
        "learning_rate": float(learning_rate),
        "spot_weight": float(spot_weight),
        "background_weight": float(background_weight),
        "target_cap": None if target_cap is None else float(target_cap),
        "validation_images": validation_images if isinstance(validation_images, int) else len(validation_images),
        "validation_seed": int(validation_seed),
        "n_backgrounds": len(backgrounds),
        "backgrounds": [str(name) for name in background_names],
        "real_fraction": float(real_fraction),
        "simulation_overrides": {k: v if np.isscalar(v) else list(v) for k, v in simulation_overrides.items()},
        "parallel_stream": int(workers) > 0,
    }
    started = time.perf_counter()

    keras.utils.set_random_seed(int(seed) % 2**32)  # the initial weights depend on the seed only
    model = build_model(config)
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)

    def loss_fn(y_true: Any, y_pred: Any) -> Any:
        return deepspot_loss(y_true, y_pred, spot_weight=spot_weight, background_weight=background_weight)

    model.compile(optimizer=optimizer, loss=loss_fn, run_eagerly=run_eagerly)
    optimizer.build(model.trainable_variables)

    state: dict[str, Any] = {"epoch": 0, "best_epoch": -1, "best_f1": -1.0, "best_threshold": config.threshold}
    if state_path.exists():
        if not resume:
            raise ValueError(f"{out} already holds a checkpoint; pass resume=True or choose another output_dir.")
        stored = ModelConfig.from_json(out / "config.json")
        if stored.replace(threshold=config.threshold, extra={}) != config.replace(extra={}):
            raise ValueError(f"{out} holds a checkpoint of another config: {stored}; choose another output_dir.")
        stored_args = json.loads((out / "train_args.json").read_text())
        if stored_args["seed"] != int(seed):
            raise ValueError(f"{out} was trained with seed {stored_args['seed']}, not {seed}; resume with that seed.")
        for name, default in (("spot_weight", 0.0), ("background_weight", 0.0), ("parallel_stream", False)):
            if stored_args.get(name, default) != train_args[name]:
                raise ValueError(
                    f"{out} was trained with {name} {stored_args.get(name, default)}, not {train_args[name]}; "
                    "resume with that value."
                )
        state = json.loads(state_path.read_text())
        _load_weights(model, out / "last.weights.h5")
        _load_optimizer(optimizer, out / "last_optimizer.npz")
        optimizer.learning_rate = float(learning_rate)  # the stored state holds the old rate: this call's rate wins
        logger.info(
            "Resuming %s after epoch %d (best F1 %.4f), learning rate %g.",
            out,
            state["epoch"],
            state["best_f1"],
            float(np.asarray(optimizer.learning_rate)),
        )
    else:
        config.to_json(out / "config.json")
        _atomic_json(out / "train_args.json", train_args)
        if init_weights is not None:
            _load_weights(model, _weights_path(init_weights))  # a fresh optimizer from given weights
            logger.info("Initialised weights from %s.", init_weights)

    if isinstance(validation_images, int):
        validation = validation_set(
            validation_images,
            tile_size=config.tile_size,
            seed=validation_seed,
            target_cap=target_cap,
            normalization_kwargs=config.normalization_kwargs,
            backgrounds=backgrounds,
            real_fraction=real_fraction,
            simulation_overrides=simulation_overrides,
        )
    else:
        validation = list(validation_images)
    history = _read_history(out / "history.csv", state["epoch"])
    data_kwargs = {
        "batch_size": batch_size,
        "tile_size": patch_size or config.tile_size,
        "target_cap": target_cap,
        "normalization_kwargs": config.normalization_kwargs,
        "backgrounds": backgrounds,
        "real_fraction": real_fraction,
        "simulation_overrides": simulation_overrides,
    }
    first_epoch = int(state["epoch"])
    pool = BatchPool(workers, **data_kwargs) if workers > 0 and first_epoch < epochs else None
    try:
        for epoch in range(first_epoch, int(epochs)):
            spent = time.perf_counter() - started
            if max_seconds is not None and epoch > first_epoch and spent > max_seconds:
                logger.info("Stopping after epoch %d: the time budget of %.0f s is spent.", epoch, max_seconds)
                break
            t0 = time.perf_counter()
            keras.utils.set_random_seed((int(seed) * 100003 + epoch) % 2**32)
            epoch_seed = np.random.SeedSequence([int(seed), epoch])
            if pool is None:
                batches = _prefetch(
                    training_batches(seed=epoch_seed, n_batches=steps_per_epoch, **data_kwargs), prefetch
                )
            else:
                batches = pool.batches(epoch_seed, steps_per_epoch)
            losses = []
            bar = tqdm(
                batches,
                total=steps_per_epoch,
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="step",
                disable=not show_progress_bar,
            )
            for x, y in bar:
                logs = model.train_on_batch(x, y, return_dict=True)
                losses.append(float(logs["loss"]))
                bar.set_postfix(loss=f"{np.mean(losses):.4f}", refresh=False)
            loss = float(np.mean(losses))  # train_on_batch reports the loss of its batch

            val_loss, scores, best_t, best_f1 = (
                float("nan"),
                dict.fromkeys(("f1", "precision", "recall", "am"), 0.0),
                0,
                0,
            )
            if validation:
                enhanced = predict_images(model, [s.image for s in validation], batch_size=batch_size)
                truths = [s.spots for s in validation]
                targets = np.stack([s.target for s in validation])[..., None]
                val_loss = float(keras.ops.convert_to_numpy(loss_fn(targets, np.stack(enhanced)[..., None])))
                scores = evaluate_enhanced(
                    enhanced, truths, threshold=config.threshold, min_distance=config.min_distance
                )
                best_t, table = calibrate_threshold(
                    enhanced, truths, thresholds=thresholds, min_distance=config.min_distance
                )
                best_f1 = float(table.loc[table["threshold"] == best_t, "f1"].iloc[0])

            row = {
                "epoch": epoch + 1,
                "steps": (epoch + 1) * steps_per_epoch,
                "loss": round(loss, 6),
                "val_loss": round(val_loss, 6),
                "val_f1": round(scores["f1"], 5),
                "val_precision": round(scores["precision"], 5),
                "val_recall": round(scores["recall"], 5),
                "val_am": round(scores["am"], 3),
                "best_threshold": best_t,
                "val_f1_calibrated": round(best_f1, 5),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            history.append(row)
            if validation and best_f1 > state["best_f1"]:
                state.update(best_epoch=epoch + 1, best_f1=best_f1, best_threshold=best_t)
                _save_weights(model, out / "best.weights.h5")
                best_config = config.replace(
                    threshold=float(best_t),
                    extra={
                        **config.extra,
                        "training": {**train_args, "epoch": epoch + 1, "steps": (epoch + 1) * steps_per_epoch},
                        "validation": {**scores, "f1_calibrated": best_f1, "threshold_calibrated": best_t},
                    },
                )
                best_config.to_json(out / "best_config.json")
            _save_weights(model, out / "last.weights.h5")
            _save_optimizer(optimizer, out / "last_optimizer.npz")
            _write_history(out / "history.csv", history)
            state["epoch"] = epoch + 1
            _atomic_json(state_path, state)  # written last: marks the epoch as complete
            logger.info(
                "Epoch %d/%d: loss %.4f, val F1 %.4f at threshold %.0f, calibrated F1 %.4f at %.1f (%.0f s).",
                epoch + 1,
                epochs,
                loss,
                scores["f1"],
                config.threshold,
                best_f1,
                best_t,
                row["seconds"],
            )
    finally:
        if pool is not None:
            pool.close()
    return pd.DataFrame(history, columns=_HISTORY_FIELDS).astype({"epoch": int, "steps": int})
