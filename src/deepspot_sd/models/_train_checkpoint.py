"""The checkpoint folder of :func:`deepspot_sd.models.train`: atomic writes of weights, Adam state, history, state.

Checkpoint folder layout (``output_dir``)::

    config.json              the training config (architecture, normalisation, ...)
    train_args.json          seed, batch size, steps per epoch, learning rate, target cap, validation size
    state.json               epochs done, best epoch / F1 / threshold: written last, so it marks a complete epoch
    last.weights.h5          weights after the last complete epoch (Keras 3 ``save_weights``)
    last_optimizer.npz       Adam state (moments and iteration counter) after the last complete epoch (compressed)
    best.weights.h5          weights of the epoch with the best calibrated validation F1
    best_config.json         config of that epoch with ``threshold`` set to its calibrated threshold
    history.csv              one row per epoch: loss, validation loss, F1 / precision / recall, calibrated F1 ...

``last.weights.h5`` may hold the network weights only (as a model folder's weights file does): the Adam state is
read from ``last_optimizer.npz`` in any case.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import keras

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
    np.savez_compressed(tmp, **arrays)
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


def _load_weights(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Load a weights file into a compiled model, with or without the optimizer variables in it."""
    with warnings.catch_warnings():
        # a model's weights file (e.g. a shipped model) holds no optimizer state: Keras warns that it skips the
        # optimizer's variables, which is what loading network weights into a compiled model means
        warnings.filterwarnings("ignore", "Skipping variable loading for optimizer", UserWarning)
        model.load_weights(str(path))


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
