"""Kernel layouts. Keras: conv `(k..., in/g, out)`, transposed `(k..., out/g, in)`,
depthwise `(k..., in, multiplier)`. ONNX and PyTorch share one layout: conv
`(out, in/g, k...)`, transposed `(in, out/g, k...)`, depthwise `(in*multiplier, 1, k...)`
with output channel `c * multiplier + j` reading input channel `c`."""

import numpy as np


def kernel_to_onnx(kernel):
    """(k..., a, b) -> (b, a, k...): conv and transposed-conv kernels alike (a view)."""
    kernel = np.asarray(kernel)
    rank = kernel.ndim - 2
    return np.transpose(kernel, (rank + 1, rank) + tuple(range(rank)))


def kernel_from_onnx(weight):
    """(b, a, k...) -> (k..., a, b): the inverse of `kernel_to_onnx`."""
    weight = np.asarray(weight)
    rank = weight.ndim - 2
    return np.transpose(weight, tuple(range(2, rank + 2)) + (1, 0))


def depthwise_to_onnx(kernel):
    """Keras depthwise `(k..., in, m)` -> `(in*m, 1, k...)`."""
    kernel = np.asarray(kernel)
    shape = kernel.shape
    return kernel_to_onnx(kernel.reshape(shape[:-2] + (1, shape[-2] * shape[-1])))


def depthwise_from_onnx(weight, channels):
    """`(in*m, 1, k...)` -> Keras depthwise `(k..., in, m)` for `channels` input channels."""
    weight = np.asarray(weight)
    if weight.ndim < 3 or weight.shape[1] != 1 or weight.shape[0] % channels:
        raise ValueError(
            f"depthwise_from_onnx: weight must be (channels * multiplier, 1, k...) with "
            f"channels={channels}, got shape {weight.shape}")
    kernel = kernel_from_onnx(weight)
    return kernel.reshape(kernel.shape[:-2] + (channels, weight.shape[0] // channels))
