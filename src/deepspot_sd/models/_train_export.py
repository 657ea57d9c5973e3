"""Turning a training checkpoint folder into a model folder (``config.json`` + ``<name>.weights.h5``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from deepspot_sd._logging import logger
from deepspot_sd._model_config import ModelConfig

from ._train_checkpoint import _read_history, _save_weights

__all__ = ["export_model"]


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
        The ``output_dir`` of :func:`~deepspot_sd.models.train`.
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
