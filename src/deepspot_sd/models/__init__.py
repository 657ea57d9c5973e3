"""`deepspot_sd.models`: the enhancement network, its config and the shipped weights; training on demand.

Loading and running a model (:func:`load_pretrained`, :class:`EnhancementModel`, ONNX Runtime) is imported with the
package. The training machinery (:func:`train`, :func:`fine_tune`, :func:`calibrate`, :func:`export_model`, the
training data and loss) is imported on first use of one of its names, so that ``import deepspot_sd`` and inference
never load it.
"""

from __future__ import annotations

import importlib
from typing import Any

from deepspot_sd._model_config import ModelConfig

from ._cnn import build_model, count_parameters
from ._onnx import OnnxNetwork, export_onnx
from ._pretrained import EnhancementModel, available_models, load_model, load_pretrained

#: Training names, imported from their module on first access (module ``__getattr__``, PEP 562).
_LAZY = {
    "Calibration": "._calibrate",
    "calibrate_array": "._calibrate",
    "calibrate": "._finetune",
    "fine_tune": "._finetune",
    "deepspot_loss": "._loss",
    "train": "._train",
    "calibrate_threshold": "._train_eval",
    "evaluate_enhanced": "._train_eval",
    "predict_images": "._train_eval",
    "export_model": "._train_export",
    "TrainingSample": "._training_data",
    "load_real_backgrounds": "._training_data",
    "real_background_sample": "._training_data",
    "simulate_training_sample": "._training_data",
    "training_batches": "._training_data",
    "validation_set": "._training_data",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Calibration",
    "EnhancementModel",
    "ModelConfig",
    "OnnxNetwork",
    "TrainingSample",
    "available_models",
    "build_model",
    "calibrate",
    "calibrate_array",
    "calibrate_threshold",
    "count_parameters",
    "deepspot_loss",
    "evaluate_enhanced",
    "export_model",
    "export_onnx",
    "fine_tune",
    "load_model",
    "load_pretrained",
    "load_real_backgrounds",
    "predict_images",
    "real_background_sample",
    "simulate_training_sample",
    "train",
    "training_batches",
    "validation_set",
]
