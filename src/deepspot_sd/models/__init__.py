"""`deepspot_sd.models`: the enhancement network, its config, loss, training and the shipped weights."""

from deepspot_sd._model_config import ModelConfig

from ._calibrate import Calibration, calibrate_array
from ._cnn import build_model, count_parameters
from ._finetune import calibrate, fine_tune
from ._loss import deepspot_loss
from ._onnx import OnnxNetwork, export_onnx
from ._pretrained import EnhancementModel, available_models, load_model, load_pretrained
from ._train import calibrate_threshold, evaluate_enhanced, export_model, predict_images, train
from ._training_data import (
    TrainingSample,
    load_real_backgrounds,
    real_background_sample,
    simulate_training_sample,
    training_batches,
    validation_set,
)

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
