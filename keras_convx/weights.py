"""Weight converters between keras_convx (Keras layout) and PyTorch layouts.

PyTorch layouts: conv `(out, in/groups, *k)`, transposed `(in, out/groups, *k)`,
depthwise `(in*m, 1, *k)`. Separable layers map to a depthwise conv followed by
a 1x..x1 pointwise conv: keys `depthwise.weight`, `pointwise.weight`, `pointwise.bias`.
"""

import keras
import numpy as np

from keras_convx import interop
from keras_convx.layers import BaseConv, BaseConvTranspose, BaseDepthwiseConv, BaseSeparableConv


def _to_numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


# PyTorch's kernel layouts are ONNX's: the conversions live in keras_convx.interop.
_keras_to_torch = interop.kernel_to_onnx
_torch_to_keras = interop.kernel_from_onnx
_depthwise_to_torch = interop.depthwise_to_onnx


def _depthwise_from_torch(weight, like):
    return interop.depthwise_from_onnx(weight, like.shape[-2])


def _entries(layer):
    """(torch key, keras variable, to_torch, from_torch) for each weight of `layer`."""
    if isinstance(layer, BaseSeparableConv):
        entries = [
            ("depthwise.weight", layer.depthwise_kernel, _depthwise_to_torch,
             lambda w: _depthwise_from_torch(w, layer.depthwise_kernel)),
            ("pointwise.weight", layer.pointwise_kernel, _keras_to_torch, _torch_to_keras),
        ]
        bias_key = "pointwise.bias"
    elif isinstance(layer, BaseDepthwiseConv):
        entries = [("weight", layer.kernel, _depthwise_to_torch,
                    lambda w: _depthwise_from_torch(w, layer.kernel))]
        bias_key = "bias"
    elif isinstance(layer, BaseConv):
        entries = [("weight", layer._kernel, _keras_to_torch, _torch_to_keras)]
        bias_key = "bias"
    elif isinstance(layer, BaseConvTranspose):
        entries = [("weight", layer.kernel, _keras_to_torch, _torch_to_keras)]
        bias_key = "bias"
    else:
        raise TypeError(
            f"weights: layer must be a keras_convx conv, depthwise, separable or "
            f"transposed layer, got {type(layer).__name__}"
        )
    if layer.use_bias:
        entries.append((bias_key, layer.bias, lambda b: b, lambda b: b))
    return entries


def to_torch(layer):
    """Returns the layer's weights as a dict of NumPy arrays in PyTorch layout.

    Example:
    >>> torch_conv.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch(layer).items()})
    """
    if not layer.built:
        raise ValueError(f"weights.to_torch: build {layer.name} before converting its weights")
    if getattr(layer, "lora_enabled", False):
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        out = {"weight": _keras_to_torch(kernel)}
        if layer.use_bias:
            out["bias"] = keras.ops.convert_to_numpy(layer.bias)
        return out
    return {key: fn(keras.ops.convert_to_numpy(var)) for key, var, fn, _ in _entries(layer)}


def from_torch(layer, tensors):
    """Sets the layer's weights from PyTorch-layout tensors (a state_dict-like mapping).

    Args:
        layer: a built keras_convx kernel-carrying layer.
        tensors: mapping from the keys of `to_torch` to torch tensors or arrays.
    """
    if not layer.built:
        raise ValueError(f"weights.from_torch: build {layer.name} before loading weights")
    entries = _entries(layer)
    missing = [key for key, *_ in entries if key not in tensors]
    if missing:
        raise ValueError(
            f"weights.from_torch: {layer.name} needs keys {[k for k, *_ in entries]}, "
            f"missing {missing}"
        )
    for key, var, _, convert in entries:
        value = convert(_to_numpy(tensors[key]))
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(
                f"weights.from_torch: {key} of {layer.name} converts to shape "
                f"{tuple(value.shape)}, expected {tuple(var.shape)}"
            )
        var.assign(value.astype(var.dtype))
