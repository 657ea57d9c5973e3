"""The model configuration: architecture, tiling, detection and normalisation settings in one frozen dataclass.

A low-level module (no Keras, no SpatialData): :mod:`deepspot_sd.pp`, :mod:`deepspot_sd.models` and
:mod:`deepspot_sd.tl` all read it; the public name is :class:`deepspot_sd.models.ModelConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["ModelConfig", "default_model_config"]

Architecture = Literal["unet", "caso_resnet"]
_ARCHITECTURES = ("unet", "caso_resnet")
_UPSAMPLINGS = ("bilinear", "transpose")


@dataclass(frozen=True)
class ModelConfig:
    """Configuration of a DeepSpot enhancement network.

    Everything needed to rebuild the network, normalise its input, tile an image for it and detect spots on
    its output. Stored as ``config.json`` next to the weights of every model folder.

    Parameters
    ----------
    architecture
        ``"unet"``: compact U-Net with ``len(filters)`` levels and a ``bottleneck_filters`` bottleneck whose
        output is ``sigmoid(logit(input / 255) + head)``, the head initialised to zero so the untrained network is
        the identity on the 0–255 scale. ``"caso_resnet"``: the paper's network (§3.2.1), a CASO module of three
        paths (max pooling, strided convolution, dilated convolution + max pooling) with ``filters`` per block,
        ``n_res_blocks`` full pre-activation residual blocks of ``bottleneck_filters``, three UpResBlocks and a
        sigmoid output.
    filters
        Filters per resolution level, one entry per factor-2 downsampling: exactly 3 levels for
        ``"caso_resnet"`` (one per block of each CASO path), 1–5 for the U-Net.
    bottleneck_filters
        Filters of the U-Net bottleneck, or of the residual blocks of ``"caso_resnet"``.
    n_res_blocks
        Number of pre-activation residual blocks (``"caso_resnet"`` only; ignored by the U-Net).
    convs_per_level
        3×3 convolutions per U-Net level in the encoder and in the decoder (``"unet"`` only; the bottleneck always
        has 2). 1 makes the network about 1.7 times faster at the cost of capacity.
    upsampling
        How the U-Net decoder doubles the resolution: ``"bilinear"`` (bilinear upsampling then a 3×3 convolution)
        or ``"transpose"`` (a 2×2 transposed convolution of stride 2). Transposed convolutions leave an 8-px
        checkerboard of bright dots on large bright uniform regions (hazy embryos, nuclei), which a fixed threshold
        reads as a grid of spots; the paper network keeps its transposed convolutions.
    dropout
        Spatial dropout rate in ``[0, 1)`` (paper: 0.2).
    tile_size
        Side in px of the square training images and of the fixed inference tiles (block + 2 ``overlap``) of
        ``dsd.tl.enhance(..., tile_size=config.tile_size)``; by default inference sizes its tiles to the image
        (up to 1024 px, the same result). Divisible by ``2 ** len(filters)``.
    overlap
        Halo in px added on each side of a block at tiled inference and cropped afterwards. Must exceed the
        distance over which a pixel's output effectively depends on its input (about 44 px for the shipped network).
    threshold
        Absolute threshold of the local-maximum detector on the enhanced 0–255 image.
    min_distance
        Minimal distance in px between two detected local maxima.
    norm_percentile
        Percentile of the white top-hat image (over the whole image) that defines the spot scale of the input
        normalisation, see :func:`deepspot_sd.pp.normalization_stats`.
    norm_noise_floor
        Smallest spot scale in units of the pixel noise standard deviation.
    norm_tophat_size
        Side in px of the square structuring element of the top-hat.
    norm_background_level
        Value the image background (median) is mapped to.
    norm_spot_level
        Value the spot scale (background + scale) is mapped to.
    norm_ceiling_percentile, norm_background_ceiling
        Dynamic-range guard: this percentile of the image's grey opening maps at most to this value.
    version
        Version string of the trained weights.
    name
        Model name (also the weights file stem, ``<name>.weights.h5``).
    extra
        Free-form JSON-serialisable metadata (training recipe, calibration results); not used to build anything.
    """

    architecture: Architecture = "unet"
    filters: tuple[int, ...] = (16, 32, 64)
    bottleneck_filters: int = 128
    n_res_blocks: int = 0
    convs_per_level: int = 2
    upsampling: Literal["bilinear", "transpose"] = "bilinear"
    dropout: float = 0.0
    tile_size: int = 256
    overlap: int = 32
    threshold: float = 200.0
    min_distance: int = 1
    norm_percentile: float = 99.9
    norm_noise_floor: float = 8.0
    norm_tophat_size: int = 15
    norm_background_level: float = 100.0
    norm_spot_level: float = 200.0
    norm_ceiling_percentile: float = 99.0
    norm_background_ceiling: float = 180.0
    version: str = "0.1.0"
    name: str = "deepspot_compact"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.architecture not in _ARCHITECTURES:
            raise ValueError(f"architecture should be one of {list(_ARCHITECTURES)}, got {self.architecture!r}.")
        filters = tuple(int(f) for f in self.filters)
        object.__setattr__(self, "filters", filters)
        object.__setattr__(self, "extra", dict(self.extra))
        if not 1 <= len(filters) <= 5 or any(f < 1 for f in filters):
            raise ValueError(f"filters should hold 1 to 5 positive integers, got {self.filters}.")
        if self.architecture == "caso_resnet" and len(filters) != 3:
            raise ValueError(f"The 'caso_resnet' architecture needs exactly 3 filter levels, got {filters}.")
        if self.upsampling not in _UPSAMPLINGS:
            raise ValueError(f"upsampling should be one of {list(_UPSAMPLINGS)}, got {self.upsampling!r}.")
        _positive_int("bottleneck_filters", self.bottleneck_filters)
        _positive_int("n_res_blocks", self.n_res_blocks, allow_zero=True)
        _positive_int("convs_per_level", self.convs_per_level)
        if self.convs_per_level > 4:
            raise ValueError(f"convs_per_level should lie in 1..4, got {self.convs_per_level}.")
        _positive_int("tile_size", self.tile_size)
        _positive_int("overlap", self.overlap, allow_zero=True)
        _positive_int("min_distance", self.min_distance)
        _positive_int("norm_tophat_size", self.norm_tophat_size)
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout should lie in [0, 1), got {self.dropout}.")
        if self.tile_size % self.size_multiple:
            raise ValueError(
                f"tile_size should be divisible by {self.size_multiple} (2 ** number of levels), got {self.tile_size}."
            )
        if 2 * self.overlap >= self.tile_size:
            raise ValueError(f"2 * overlap should be smaller than tile_size, got overlap={self.overlap}.")
        if not 0.0 < float(self.threshold) < 255.0:
            raise ValueError(f"threshold should lie in (0, 255) on the enhanced scale, got {self.threshold}.")
        if not 50.0 <= float(self.norm_percentile) < 100.0:
            raise ValueError(f"norm_percentile should lie in [50, 100), got {self.norm_percentile}.")
        if not float(self.norm_noise_floor) > 0:
            raise ValueError(f"norm_noise_floor should be > 0, got {self.norm_noise_floor}.")
        if not 0.0 <= float(self.norm_background_level) < float(self.norm_spot_level) <= 255.0:
            raise ValueError(
                "Expected 0 <= norm_background_level < norm_spot_level <= 255, got "
                f"{self.norm_background_level} and {self.norm_spot_level}."
            )
        if not float(self.norm_background_level) < float(self.norm_background_ceiling) <= 255.0:
            raise ValueError(
                "norm_background_ceiling should lie in (norm_background_level, 255], "
                f"got {self.norm_background_ceiling}."
            )
        if not 50.0 <= float(self.norm_ceiling_percentile) <= 100.0:
            raise ValueError(f"norm_ceiling_percentile should lie in [50, 100], got {self.norm_ceiling_percentile}.")
        if not isinstance(self.name, str) or not self.name or os.sep in self.name:
            raise ValueError(f"name should be a non-empty file-name-safe string, got {self.name!r}.")

    # ------------------------------------------------------------------ presets
    @classmethod
    def compact(cls, **overrides: Any) -> ModelConfig:
        """Return the compact default: U-Net 16/32/64, 128-filter bottleneck, about 0.5 M parameters."""
        return cls(**overrides)

    @classmethod
    def paper(cls, **overrides: Any) -> ModelConfig:
        """Return the paper's network (§3.2.1): CASO 32/64/128, 10 residual blocks of 128, dropout 0.2 (~4 M)."""
        params: dict[str, Any] = {
            "architecture": "caso_resnet",
            "filters": (32, 64, 128),
            "bottleneck_filters": 128,
            "n_res_blocks": 10,
            "dropout": 0.2,
            "name": "deepspot_paper",
        }
        params.update(overrides)
        return cls(**params)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """Return the preset called ``name`` (``"compact"`` or ``"paper"``)."""
        presets = {"compact": cls.compact, "paper": cls.paper}
        if name not in presets:
            raise KeyError(f"Unknown config preset {name!r}. Available presets: {sorted(presets)}.")
        return presets[name](**overrides)

    # ------------------------------------------------------------------ derived
    @property
    def size_multiple(self) -> int:
        """Image sides must be divisible by this number (``2 ** len(filters)``); tiled inference pads."""
        return 2 ** len(self.filters)

    @property
    def normalization_kwargs(self) -> dict[str, float]:
        """Keyword arguments for :func:`deepspot_sd.pp.normalization_stats`."""
        return {
            "percentile": float(self.norm_percentile),
            "noise_floor": float(self.norm_noise_floor),
            "tophat_size": int(self.norm_tophat_size),
            "background_level": float(self.norm_background_level),
            "spot_level": float(self.norm_spot_level),
            "ceiling_percentile": float(self.norm_ceiling_percentile),
            "background_ceiling": float(self.norm_background_ceiling),
        }

    def replace(self, **changes: Any) -> ModelConfig:
        """Return a copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary."""
        d = dataclasses.asdict(self)
        d["filters"] = list(self.filters)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build a config from a dictionary, e.g. one written by :meth:`to_dict`.

        Raises
        ------
        ValueError
            If the dictionary has keys that are not config fields, or invalid values.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"Unknown config keys {unknown}. Valid keys: {sorted(names)}.")
        d = dict(d)
        if "filters" in d:
            d["filters"] = tuple(d["filters"])
        return cls(**d)

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """Return the config as a JSON string, and write it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike[str]) -> ModelConfig:
        """Read a config from a JSON string or from a path to a JSON file (e.g. a model's ``config.json``)."""
        if isinstance(source, str) and source.lstrip().startswith("{"):
            text = source
        else:
            text = Path(source).read_text()
        return cls.from_dict(json.loads(text))


def _positive_int(name: str, value: Any, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} should be an integer, got {value!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} should be {'>= 0' if allow_zero else '> 0'}, got {value}.")


def default_model_config() -> ModelConfig:
    """Return the config of the default shipped model, or the default :class:`ModelConfig` if none is shipped.

    Reads the package data file ``deepspot_sd/models/deepspot_v1/config.json`` without importing
    :mod:`deepspot_sd.models`, so that the layers below it (:mod:`deepspot_sd.pp`) can use the shipped settings.
    """
    from importlib.resources import files

    path = files("deepspot_sd").joinpath("models", "deepspot_v1", "config.json")
    if path.is_file():
        return ModelConfig.from_json(path.read_text())
    return ModelConfig()
