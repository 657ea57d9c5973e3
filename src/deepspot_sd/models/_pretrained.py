"""Loading trained models: shipped ones by name, user-trained ones from a folder.

A model folder holds ``config.json`` (:class:`~deepspot_sd.models.ModelConfig`) and ``<name>.weights.h5`` (Keras 3
``save_weights``), and optionally ``<name>.onnx``, the same network for ONNX Runtime
(:func:`~deepspot_sd.models.export_onnx`), which :func:`deepspot_sd.tl.enhance` uses on a CPU. Shipped models are
such folders inside the ``deepspot_sd.models`` package (e.g. ``deepspot_sd/models/deepspot_v1/``), found with
:func:`importlib.resources.files`; nothing here uses the network.
"""

from __future__ import annotations

import functools
import os
import threading
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspot_sd._model_config import ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["EnhancementModel", "available_models", "load_model", "load_pretrained"]


class EnhancementModel:
    """A trained enhancement network together with its config.

    Parameters
    ----------
    keras_model
        The Keras network (input and output ``(batch, y, x, 1)``, normalised 0–255 scale).
    config
        Its :class:`ModelConfig` (tiling, detection threshold, normalisation settings).
    onnx_path
        The ``.onnx`` export of the same network (:func:`~deepspot_sd.models.export_onnx`), if there is one.

    Attributes
    ----------
    keras_model
        The Keras network.
    config
        The model config.
    onnx_path
        Path of the ONNX export or ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> from deepspot_sd.models import EnhancementModel, ModelConfig
    >>> model = EnhancementModel.from_config(ModelConfig.compact())  # untrained: the identity
    >>> model.predict_tile(np.full((2, 64, 64), 100, np.float32)).shape
    (2, 64, 64)
    """

    def __init__(
        self, keras_model: keras.Model, config: ModelConfig, *, onnx_path: str | os.PathLike[str] | None = None
    ) -> None:
        if not isinstance(config, ModelConfig):
            raise TypeError(
                f"Parameter config should be a ('ModelConfig',). It is a {type(config).__name__!r} instead."
            )
        self.keras_model = keras_model
        self.config = config
        self.onnx_path = None if onnx_path is None else Path(onnx_path)
        self._onnx_network: Any = None
        self._onnx_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # an ONNX Runtime session and a lock cannot be pickled (dask.distributed ships the model to its workers)
        state = self.__dict__.copy()
        state["_onnx_network"] = None
        state.pop("_onnx_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._onnx_lock = threading.Lock()

    def onnx_network(self) -> Any:
        """Return the ONNX Runtime network of :attr:`onnx_path` (:class:`~deepspot_sd.models.OnnxNetwork`), made once.

        Raises
        ------
        FileNotFoundError
            If the model has no ONNX export.
        ImportError
            If ``onnxruntime`` is not installed.
        """
        if self._onnx_network is None:
            with self._onnx_lock:
                if self._onnx_network is None:
                    if self.onnx_path is None or not self.onnx_path.is_file():
                        raise FileNotFoundError(
                            f"Model {self.config.name!r} has no ONNX export; write one with "
                            "`deepspot_sd.models.export_onnx(model, '<model folder>/<name>.onnx')`."
                        )
                    from ._onnx import OnnxNetwork

                    self._onnx_network = OnnxNetwork(self.onnx_path)
        return self._onnx_network

    def __repr__(self) -> str:
        c = self.config
        return f"EnhancementModel(name={c.name!r}, architecture={c.architecture!r}, version={c.version!r})"

    @classmethod
    def from_config(cls, config: ModelConfig) -> EnhancementModel:
        """Build an untrained model from a config (random weights; the compact U-Net starts as the identity)."""
        from ._cnn import build_model

        return cls(build_model(config), config)

    @classmethod
    def from_folder(cls, path: str | os.PathLike[str]) -> EnhancementModel:
        """Load a model folder (``config.json`` + ``<name>.weights.h5``), see :func:`load_model`."""
        from ._cnn import build_model

        folder = Path(path)
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(
                f"No config.json in {folder}; a model folder holds config.json + <name>.weights.h5."
            )
        config = ModelConfig.from_json(config_file)
        weights = folder / f"{config.name}.weights.h5"
        if not weights.is_file():
            found = sorted(p.name for p in folder.glob("*.weights.h5"))
            if len(found) != 1:
                raise FileNotFoundError(f"No {weights.name} in {folder} (weights files found: {found}).")
            weights = folder / found[0]
        model = build_model(config)
        model.load_weights(str(weights))
        onnx_path = weights.parent / f"{weights.name.removesuffix('.weights.h5')}.onnx"
        return cls(model, config, onnx_path=onnx_path if onnx_path.is_file() else None)

    def predict_tile(self, batch: Any, *, batch_size: int = 8) -> np.ndarray:
        """Enhance a batch of normalised tiles whose sides are divisible by ``config.size_multiple``.

        Parameters
        ----------
        batch
            ``(b, y, x)`` or ``(b, y, x, 1)`` float array on the normalised 0–255 scale
            (:func:`deepspot_sd.pp.apply_normalization`).
        batch_size
            Tiles per forward pass (bounds memory).

        Returns
        -------
        ``float32 (b, y, x)`` enhanced tiles, 0–255.

        Raises
        ------
        ValueError
            If the array is not 3D / 4D with one channel, or its sides are not divisible.
        """
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.ndim != 3:
            raise ValueError(f"Expected tiles of shape (b, y, x) or (b, y, x, 1), got {np.shape(batch)}.")
        m = self.config.size_multiple
        if x.shape[1] % m or x.shape[2] % m:
            raise ValueError(
                f"Tile sides should be divisible by {m}, got {x.shape[1:]}; use predict_image, which pads."
            )
        if len(x) == 0:
            return np.zeros(x.shape, np.float32)
        out = [
            np.asarray(self.keras_model.predict_on_batch(x[i : i + batch_size, ..., None]))[..., 0]
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out).astype(np.float32, copy=False)

    def predict_image(self, image: Any) -> np.ndarray:
        """Enhance one whole normalised ``(y, x)`` image, mirror-padding it to a multiple of ``config.size_multiple``.

        Fine for images up to a few thousand pixels on a side; use :func:`deepspot_sd.tl.enhance` for large,
        chunked images.
        """
        img = np.asarray(image, dtype=np.float32)
        if img.ndim != 2:
            raise ValueError(f"`image` should be a 2D array (y, x), got shape {img.shape}.")
        m = self.config.size_multiple
        pad = [(0, (-s) % m) for s in img.shape]
        padded = np.pad(img, pad, mode="symmetric") if any(p[1] for p in pad) else img
        return self.predict_tile(padded[None])[0, : img.shape[0], : img.shape[1]]

    def enhance_array(self, image: Any) -> np.ndarray:
        """Normalise a raw ``(y, x)`` image with this model's settings, then enhance it whole.

        The statistics come from :func:`deepspot_sd.pp.normalization_stats` with ``config.normalization_kwargs``.
        """
        from deepspot_sd.pp import apply_normalization, normalization_stats

        stats = normalization_stats(image, **self.config.normalization_kwargs)
        return self.predict_image(apply_normalization(np.asarray(image), stats))


def _model_root() -> Any:
    return files("deepspot_sd.models")


def available_models() -> list[str]:
    """Return the names of the models shipped in the package (folders with a ``config.json``)."""
    root = _model_root()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file())


def load_model(path: str | os.PathLike[str]) -> EnhancementModel:
    """Load a user-trained model folder (e.g. written by ``scripts/train.py --export``).

    Parameters
    ----------
    path
        Folder with ``config.json`` and ``<name>.weights.h5``.

    Returns
    -------
    The :class:`EnhancementModel` (``.keras_model``, ``.config``).
    """
    return EnhancementModel.from_folder(path)


def load_pretrained(name: str = "deepspot_v1", *, cache: bool = True) -> EnhancementModel:
    """Load a model shipped with the package.

    Parameters
    ----------
    name
        Model name, one of :func:`available_models`.
    cache
        Return the same object for repeated calls in one process (so tiled inference loads it once per worker).

    Returns
    -------
    The :class:`EnhancementModel`; its ``config`` carries the tile size, overlap and detection threshold.

    Raises
    ------
    KeyError
        If no shipped model has this name; the message lists the available ones.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> model = dsd.models.load_pretrained("deepspot_v1")  # doctest: +SKIP
    """
    available = available_models()
    if name not in available:
        raise KeyError(f"Model {name!r} not found among the shipped models. Available models: {available}.")
    if cache:
        return _load_pretrained_cached(name)
    return _load_pretrained(name)


def _load_pretrained(name: str) -> EnhancementModel:
    # the package is installed as files (not a zip), so the folder stays valid after the context
    with as_file(_model_root() / name) as folder:
        return EnhancementModel.from_folder(folder)


@functools.lru_cache(maxsize=4)
def _load_pretrained_cached(name: str) -> EnhancementModel:
    return _load_pretrained(name)
