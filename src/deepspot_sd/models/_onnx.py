"""The enhancement U-Net on ONNX Runtime: export from the Keras weights, and a network object for tiled inference.

On a CPU, ONNX Runtime runs the shipped U-Net faster than TensorFlow (measured in ``benchmarks/speed.py``; see the
Benchmarks page), so :func:`deepspot_sd.tl.enhance` uses it there when the model folder holds ``<name>.onnx`` next to
``<name>.weights.h5``; with a GPU, TensorFlow (the Keras model) runs it. The ONNX graph is written by
:func:`export_onnx` from the Keras weights, layer by layer (no converter package): batch normalisation is folded into
the preceding convolution and the input's ``1 / 255`` scale into the first one, so the outputs agree with the Keras
model up to float32 rounding (checked on export and in ``tests/test_onnx.py``).

Only the ``"unet"`` architecture is exported; other models run on TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspot_sd._model_config import ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    from ._pretrained import EnhancementModel

__all__ = ["OnnxNetwork", "export_onnx", "onnx_available"]

#: ONNX opset of the exported graph (Resize with ``half_pixel`` coordinates, Clip with tensor bounds).
OPSET = 17
#: Largest absolute difference (0–255 scale) from the Keras model accepted by :func:`export_onnx`'s check.
EXPORT_ATOL = 1e-2
#: Inputs are clipped to ``[_EPS, 1 - _EPS]`` before the logit, as in :func:`deepspot_sd.models._cnn._unet`.
_EPS = 1e-3


def onnx_available() -> bool:
    """Return whether ONNX Runtime can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------------------------------
class _Graph:
    """A small builder of ONNX nodes and initialisers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._n = 0

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, base: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], base: str, **attrs: Any) -> str:
        from onnx import helper

        out = self.name(base)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _weights(keras_model: Any, name: str) -> list[np.ndarray]:
    return [np.asarray(w, dtype=np.float32) for w in keras_model.get_layer(name).get_weights()]


def _conv(g: _Graph, x: str, kernel: np.ndarray, bias: np.ndarray | None, name: str, *, stride: int = 1) -> str:
    """Add a ``same``-padded convolution with a Keras ``(kh, kw, cin, cout)`` kernel."""
    kh, kw = kernel.shape[:2]
    w = g.const(f"{name}_w", np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    inputs = [x, w]
    if bias is not None:
        inputs.append(g.const(f"{name}_b", bias.astype(np.float32)))
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    return g.op(
        "Conv",
        inputs,
        name,
        kernel_shape=[kh, kw],
        strides=[stride, stride],
        pads=[ph, pw, kh - 1 - ph, kw - 1 - pw],
    )


def _conv_bn_relu(g: _Graph, x: str, keras_model: Any, name: str, *, input_scale: float = 1.0) -> str:
    """``{name}_conv`` (no bias) + ``{name}_bn`` folded into one convolution, then ReLU."""
    (kernel,) = _weights(keras_model, f"{name}_conv")
    bn = keras_model.get_layer(f"{name}_bn")
    gamma, beta, mean, var = (np.asarray(w, dtype=np.float64) for w in bn.get_weights())
    s = gamma / np.sqrt(var + float(bn.epsilon))
    folded = (kernel.astype(np.float64) * s * input_scale).astype(np.float32)
    bias = (beta - mean * s).astype(np.float32)
    return g.op("Relu", [_conv(g, x, folded, bias, f"{name}_conv")], f"{name}_relu")


def _unet_graph(keras_model: Any, config: ModelConfig) -> Any:
    from onnx import TensorProto, helper

    if config.architecture != "unet":
        raise ValueError(f"Only the 'unet' architecture can be exported to ONNX, got {config.architecture!r}.")
    g = _Graph()
    x_in = "image"
    x = x_in
    skips = []
    scale = 1.0 / 255.0  # the Rescaling layer, folded into the first convolution
    for level in range(len(config.filters)):
        for i in range(config.convs_per_level):
            x = _conv_bn_relu(g, x, keras_model, f"enc{level}_{i}", input_scale=scale)
            scale = 1.0
        skips.append(x)
        x = g.op("MaxPool", [x], f"pool{level}", kernel_shape=[2, 2], strides=[2, 2])
    x = _conv_bn_relu(g, x, keras_model, "bottleneck_a")
    x = _conv_bn_relu(g, x, keras_model, "bottleneck_b")
    for level in reversed(range(len(config.filters))):
        if config.upsampling == "bilinear":
            scales = g.const("scales", np.array([1.0, 1.0, 2.0, 2.0], dtype=np.float32))
            x = g.op(
                "Resize",
                [x, "", scales],
                f"up{level}_resize",
                mode="linear",
                coordinate_transformation_mode="half_pixel",
            )
            kernel, bias = _weights(keras_model, f"up{level}")
            x = _conv(g, x, kernel, bias, f"up{level}")
        else:  # Conv2DTranspose(f, 2, strides=2, padding="same"): Keras kernel (kh, kw, cout, cin)
            kernel, bias = _weights(keras_model, f"up{level}")
            w = g.const(f"up{level}_w", np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
            b = g.const(f"up{level}_b", bias)
            x = g.op("ConvTranspose", [x, w, b], f"up{level}", kernel_shape=[2, 2], strides=[2, 2])
        x = g.op("Concat", [x, skips[level]], f"concat{level}", axis=1)
        for i in range(config.convs_per_level):
            x = _conv_bn_relu(g, x, keras_model, f"dec{level}_{i}")
    kernel, bias = _weights(keras_model, "head")
    head = _conv(g, x, kernel, bias, "head")
    # 255 * sigmoid(logit(clip(x / 255, eps, 1 - eps)) + head)
    p = g.op("Mul", [x_in, g.const("inv255", np.array(1.0 / 255.0, np.float32))], "scale_01")
    p = g.op("Clip", [p, g.const("lo", np.array(_EPS, np.float32)), g.const("hi", np.array(1 - _EPS, np.float32))], "p")
    one_minus = g.op("Sub", [g.const("one", np.array(1.0, np.float32)), p], "one_minus_p")
    logit = g.op("Sub", [g.op("Log", [p], "log_p"), g.op("Log", [one_minus], "log_1mp")], "logit")
    z = g.op("Sigmoid", [g.op("Add", [logit, head], "z")], "sigmoid")
    out = "enhanced"
    g.nodes.append(helper.make_node("Mul", [z, g.const("c255", np.array(255.0, np.float32))], [out], name=out))
    graph = helper.make_graph(
        g.nodes,
        config.name,
        [helper.make_tensor_value_info(x_in, TensorProto.FLOAT, ["batch", 1, "y", "x"])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", 1, "y", "x"])],
        g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="deepspot_sd", ir_version=8
    )
    model.doc_string = f"deepspot_sd {config.name} v{config.version}: input and output (batch, 1, y, x), 0-255 scale"
    return model


def export_onnx(
    model: EnhancementModel, path: str | os.PathLike[str] | None = None, *, check: bool = True
) -> Path | bytes:
    """Write the ONNX graph of a U-Net :class:`~deepspot_sd.models.EnhancementModel` (needs the ``onnx`` package).

    Parameters
    ----------
    model
        The model; its Keras weights are read layer by layer (``"unet"`` architecture only).
    path
        Output file (conventionally ``<model folder>/<name>.onnx``, where :func:`~deepspot_sd.models.load_model`
        finds it); ``None`` returns the serialised model as bytes.
    check
        Compare the ONNX Runtime output with the Keras output on a random 64 x 64 batch and raise a ``RuntimeError``
        if they differ by more than ``EXPORT_ATOL`` (needs ``onnxruntime``).

    Returns
    -------
    The written path, or the serialised bytes if ``path`` is ``None``.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> model = dsd.models.load_pretrained()  # doctest: +SKIP
    >>> dsd.models.export_onnx(model, "deepspot_v1.onnx")  # doctest: +SKIP
    """
    import onnx

    proto = _unet_graph(model.keras_model, model.config)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    if check:
        rng = np.random.default_rng(0)
        x = rng.normal(100.0, 30.0, size=(2, 64, 64)).clip(0, 255).astype(np.float32)
        x[:, 20:23, 30:33] = 220.0
        reference = model.predict_tile(x)
        got = OnnxNetwork(data).predict_tiles(x)
        diff = float(np.max(np.abs(got - reference)))
        if not diff <= EXPORT_ATOL:
            raise RuntimeError(f"The ONNX export differs from the Keras model by {diff:.3g} (> {EXPORT_ATOL}).")
    if path is None:
        return data
    path = Path(path)
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------------------------------
# inference
# --------------------------------------------------------------------------------------------------------------------
def _default_threads() -> int | None:
    for variable in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


class OnnxNetwork:
    """An ONNX Runtime session of an exported network, called like the Keras model in tiled inference.

    Parameters
    ----------
    model
        Path of the ``.onnx`` file or its serialised bytes.
    threads
        ONNX Runtime intra-op threads; ``None``: ``TF_NUM_INTRAOP_THREADS`` or ``OMP_NUM_THREADS`` if set (the
        thread settings that TensorFlow follows), else ONNX Runtime's default (one per physical core).

    Examples
    --------
    >>> import numpy as np
    >>> import deepspot_sd as dsd
    >>> net = dsd.models.load_pretrained().onnx_network()  # doctest: +SKIP
    >>> net.predict_on_batch(np.full((1, 64, 64, 1), 100, np.float32)).shape  # doctest: +SKIP
    (1, 64, 64, 1)
    """

    def __init__(self, model: str | os.PathLike[str] | bytes, *, threads: int | None = None) -> None:
        self.name = "onnx" if isinstance(model, bytes) else Path(model).stem
        self._bytes = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.threads = _default_threads() if threads is None else int(threads)
        self._start()

    def _start(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self._bytes, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __getstate__(self) -> dict[str, Any]:
        # the session cannot be pickled (dask.distributed ships the network to its workers): it is made again
        return {"name": self.name, "_bytes": self._bytes, "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._start()

    def __repr__(self) -> str:
        return f"OnnxNetwork({self.name!r})"

    def predict_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """Enhance ``(b, y, x)`` normalised tiles (sides divisible by the size step); return ``float32 (b, y, x)``."""
        x = np.ascontiguousarray(tiles, dtype=np.float32)
        (out,) = self.session.run(None, {self.input_name: x[:, None]})
        return out[:, 0]

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        """Enhance a ``(b, y, x, 1)`` batch like :meth:`keras.Model.predict_on_batch`; ``float32 (b, y, x, 1)``."""
        x = np.asarray(batch, dtype=np.float32)
        return self.predict_tiles(x[..., 0])[..., None]

    __call__ = predict_on_batch
