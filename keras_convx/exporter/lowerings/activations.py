"""Lowerings of Keras's activation layers (the functions themselves: `common.ACTIVATIONS`)."""

import keras
import numpy as np

from keras_convx.exporter.graph import Unsupported
from keras_convx.exporter.lowerings.common import ACTIVATIONS
from keras_convx.exporter.registry import lowering

L = keras.layers


@lowering(L.Activation, activation=True)
def lower_activation(b, layer, ctx):
    return ctx.x.name  # the driver applies `layer.activation`


@lowering(L.ReLU)
def lower_relu(b, layer, ctx):
    x = ctx.x
    if float(layer.threshold) != 0.0:
        raise Unsupported("ReLU with a threshold has no single ONNX op")
    slope = float(layer.negative_slope)
    if not slope and layer.max_value is not None:  # ReLU6 and friends: one Clip
        return b.node("Clip", [x.name, b.const(np.float32(0.0), "min"),
                               b.const(np.float32(layer.max_value), "max")])
    y = b.node("LeakyRelu", [x.name], alpha=slope) if slope else b.node("Relu", [x.name])
    if layer.max_value is not None:
        y = b.node("Clip", [y, "", b.const(np.float32(layer.max_value), "max")])
    return y


@lowering(L.LeakyReLU)
def lower_leaky_relu(b, layer, ctx):
    return b.node("LeakyRelu", [ctx.x.name], alpha=float(layer.negative_slope))


@lowering(L.ELU)
def lower_elu(b, layer, ctx):
    return b.node("Elu", [ctx.x.name], alpha=float(layer.alpha))


@lowering(L.Softmax)
def lower_softmax(b, layer, ctx):
    x = ctx.x
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    if len(axes) != 1 or len(ctx.args) > 1 or ctx.kwargs.get("mask") is not None:
        raise Unsupported("Softmax over several axes or with a mask")
    return b.node("Softmax", [x.name], axis=x.perm.index(axes[0] % x.ndim))


__all__ = ["ACTIVATIONS"]
