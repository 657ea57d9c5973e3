"""Resumable training on freshly simulated images, validation F1, threshold calibration and model export.

Checkpoint folder layout (``output_dir``)::

    config.json              the training config (architecture, normalisation, ...)
    train_args.json          seed, batch size, steps per epoch, learning rate, target cap, validation size
    state.json               epochs done, best epoch / F1 / threshold: written last, so it marks a complete epoch
    last.weights.h5          weights after the last complete epoch (Keras 3 ``save_weights``)
    last_optimizer.npz       Adam state (moments and iteration counter) after the last complete epoch
    best.weights.h5          weights of the epoch with the best calibrated validation F1
    best_config.json         config of that epoch with ``threshold`` set to its calibrated threshold
    history.csv              one row per epoch: loss, validation loss, F1 / precision / recall, calibrated F1 ...

Epoch ``e`` (0-based) trains on ``training_batches(seed=SeedSequence([seed, e]))`` and seeds Keras with
``seed * 100003 + e``, so a run resumed after epoch ``e`` draws exactly the data an uninterrupted run would have.
"""

from __future__ import annotations

import csv
import json
import os
import queue
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspot_sd._logging import logger
from deepspot_sd._model_config import ModelConfig

from ._training_data import DEFAULT_TARGET_CAP, BatchPool, TrainingSample, training_batches, validation_set

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import pandas as pd

__all__ = [
    "calibrate_threshold",
    "evaluate_enhanced",
    "export_model",
    "predict_images",
    "train",
]

_HISTORY_FIELDS = [
    "epoch",
    "steps",
    "loss",
    "val_loss",
    "val_f1",
    "val_precision",
    "val_recall",
    "val_am",
    "best_threshold",
    "val_f1_calibrated",
    "seconds",
]

#: Default threshold grid of the calibration, on the enhanced 0–255 scale.
DEFAULT_THRESHOLDS = tuple(float(t) for t in np.arange(120.0, 252.5, 5.0))


# ---------------------------------------------------------------------------------------------------- evaluation
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


# ---------------------------------------------------------------------------------------------------- checkpoints
def _atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _save_weights(model: keras.Model, path: Path) -> None:
    tmp = path.with_name(path.name.replace(".weights.h5", ".tmp.weights.h5"))
    model.save_weights(str(tmp))
    os.replace(tmp, path)


def _save_optimizer(optimizer: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    arrays = {f"v{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load_optimizer(optimizer: Any, path: Path) -> None:
    with np.load(path) as data:
        arrays = [data[k] for k in sorted(data.files)]
    variables = optimizer.variables
    if len(arrays) != len(variables):
        raise ValueError(
            f"The optimizer state in {path} has {len(arrays)} variables, the optimizer {len(variables)}; "
            "was it written for another architecture?"
        )
    for var, arr in zip(variables, arrays, strict=True):
        var.assign(arr)


def _read_history(path: Path, max_epoch: int) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return [row for row in csv.DictReader(fh) if int(row["epoch"]) <= max_epoch]


def _write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=_HISTORY_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in _HISTORY_FIELDS})
    os.replace(tmp, path)


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


# ---------------------------------------------------------------------------------------------------- training
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
        Checkpoint folder (layout in the module docstring); created if needed.
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
        model.load_weights(str(out / "last.weights.h5"))
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
            with warnings.catch_warnings():
                # a model's weights file (e.g. a shipped model) holds no optimizer state: Keras warns that it skips
                # the optimizer's variables, which is what starting a fresh optimizer from given weights means
                warnings.filterwarnings("ignore", "Skipping variable loading for optimizer", UserWarning)
                model.load_weights(str(_weights_path(init_weights)))
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


def _weights_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if p.is_dir():
        candidates = sorted(p.glob("*.weights.h5"))
        preferred = [c for c in candidates if c.name == "best.weights.h5"]
        if preferred:
            return preferred[0]
        if len(candidates) != 1:
            raise ValueError(f"Expected exactly one *.weights.h5 file in {p}, found {[c.name for c in candidates]}.")
        return candidates[0]
    if not p.exists():
        raise FileNotFoundError(f"Weights file {p} does not exist.")
    return p


def export_model(
    checkpoint_dir: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    name: str | None = None,
    which: str = "best",
) -> Path:
    """Write a model folder (``config.json`` + ``<name>.weights.h5``) from a training checkpoint folder.

    Parameters
    ----------
    checkpoint_dir
        The ``output_dir`` of :func:`train`.
    destination
        Model folder to create or overwrite, e.g. ``src/deepspot_sd/models/deepspot_v1``.
    name
        Model name (file stem of the weights); default: the destination folder's name.
    which
        ``"best"`` (best calibrated validation F1, with its threshold) or ``"last"``.

    Returns
    -------
    The destination folder, loadable with :func:`deepspot_sd.models.load_model`.
    """
    from ._cnn import build_model

    src = Path(checkpoint_dir)
    dst = Path(destination)
    name = name or dst.name
    if which not in ("best", "last"):
        raise ValueError(f"Parameter which should be 'best' or 'last', got {which!r}.")
    config_file = src / ("best_config.json" if which == "best" else "config.json")
    weights = src / f"{which}.weights.h5"
    if not weights.exists() or not config_file.exists():
        raise FileNotFoundError(f"No {which} checkpoint in {src}. Please run `dsd.models.train(...)` first.")
    state = json.loads((src / "state.json").read_text()) if (src / "state.json").exists() else {}
    config = ModelConfig.from_json(config_file)
    extra = {**config.extra, "exported_from": str(src), "state": state}
    if which == "last" and (src / "train_args.json").exists() and (src / "history.csv").exists():
        # best_config.json carries these records; for the last epoch they come from the run's own files
        last = _read_history(src / "history.csv", int(state.get("epoch", 0)))[-1]
        extra["training"] = {
            **json.loads((src / "train_args.json").read_text()),
            "epoch": int(last["epoch"]),
            "steps": int(last["steps"]),
        }
        extra["validation"] = {
            "f1": float(last["val_f1"]),
            "precision": float(last["val_precision"]),
            "recall": float(last["val_recall"]),
            "am": float(last["val_am"]),
            "f1_calibrated": float(last["val_f1_calibrated"]),
            "threshold_calibrated": float(last["best_threshold"]),
        }
    config = config.replace(name=name, extra=extra)
    dst.mkdir(parents=True, exist_ok=True)
    # rebuild and save, so the file holds the network weights only (the checkpoint also holds the Adam state)
    model = build_model(config)
    model.load_weights(str(weights))
    config.to_json(dst / "config.json")
    _save_weights(model, dst / f"{name}.weights.h5")
    logger.info("Exported the %s checkpoint of %s to %s.", which, src, dst)
    return dst
