"""Lowerings of Keras's activation layers (the functions themselves: `common.ACTIVATIONS`)."""

import keras
import numpy as np
from keras.src.activations import activations as keras_activations

from keras_convx.exporter.graph import Unsupported, float_array
from keras_convx.exporter.lowerings.common import ACTIVATIONS, const_in_layout
from keras_convx.exporter.registry import lowering

L = keras.layers


def _named(layer):
    fn = layer.activation
    return getattr(fn, "__name__", type(fn).__name__) in ACTIVATIONS


# an Activation of a function of the user's (a lambda) is traced through its call
@lowering(L.Activation, activation=True, when=_named)
def lower_activation(b, layer, ctx):
    return ctx.x.name  # the driver applies `layer.activation`


@lowering(L.ReLU, keras_activations.ReLU)  # the layer, and keras.activations.relu's node
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


@lowering(keras_activations.Mish)
def lower_mish_op(b, layer, ctx):
    return ACTIVATIONS["mish"](b, ctx.x, ctx.x.name)


@lowering(L.LeakyReLU)
def lower_leaky_relu(b, layer, ctx):
    return b.node("LeakyRelu", [ctx.x.name], alpha=float(layer.negative_slope))


@lowering(L.PReLU)
def lower_prelu(b, layer, ctx):
    """ONNX PRelu with the learned slopes (1 on the shared axes) laid out like the input:
    traced, Keras's `-alpha * relu(-x)` is backend code on JAX."""
    slope = float_array(layer.alpha)[None]  # (1, *input_shape[1:]) with 1s where shared
    return b.node("PRelu", [ctx.x.name, b.const(const_in_layout(slope, ctx.x.perm), "alpha")])


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
