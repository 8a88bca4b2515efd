"""Lowerings of Keras's normalization layers."""

import keras
import numpy as np

from keras_convx.exporter.graph import Unsupported, Value, channels_first_perm, float_array
from keras_convx.exporter.lowerings.common import const_in_layout, reduce
from keras_convx.exporter.registry import lowering

L = keras.layers


def _axes(layer, ndim):
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    return sorted(int(a) % ndim for a in axes)


@lowering(L.BatchNormalization)
def lower_batch_norm(b, layer, ctx):
    x = ctx.x
    axes = _axes(layer, x.ndim)
    if len(axes) != 1:
        raise Unsupported("BatchNormalization over several axes")
    axis = axes[0]
    if x.ndim > 1 and x.perm[1] != axis:
        if axis == x.ndim - 1:
            x = b.to_perm(x, channels_first_perm(x.ndim, "channels_last"))
        elif axis == 1:
            x = b.to_perm(x, tuple(range(x.ndim)))
        else:
            raise Unsupported(f"BatchNormalization on axis {axis} of a rank-{x.ndim} tensor")
    n = int(x.shape[axis])
    gamma = float_array(layer.gamma) if layer.scale else np.ones(n, np.float32)
    beta = float_array(layer.beta) if layer.center else np.zeros(n, np.float32)
    y = b.node("BatchNormalization", [
        x.name, b.const(gamma, "gamma"), b.const(beta, "beta"),
        b.const(float_array(layer.moving_mean), "moving_mean"),
        b.const(float_array(layer.moving_variance), "moving_variance"),
    ], epsilon=float(layer.epsilon))
    return Value(y, x.shape, x.perm)


def _param(b, layer, weight, x, axes, suffix):
    """gamma/beta (shaped like the normalized axes) broadcast in the layout of `x`."""
    shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
    return b.const(const_in_layout(float_array(weight).reshape(shape), x.perm), suffix)


@lowering(L.LayerNormalization)
def lower_layer_norm(b, layer, ctx):
    x = ctx.x
    if getattr(layer, "rms_scaling", False):
        raise Unsupported("LayerNormalization(rms_scaling=True)")
    axes = _axes(layer, x.ndim)
    onnx_axes = sorted(x.perm.index(a) for a in axes)
    eps = float(layer.epsilon)
    if onnx_axes == list(range(x.ndim - len(axes), x.ndim)) and layer.scale:
        # the normalized axes are trailing in this layout: the opset-17 op
        order = [axes.index(x.perm[k]) for k in onnx_axes]  # Keras axes in ONNX order

        def param(weight, suffix):
            array = float_array(weight).reshape([x.shape[a] for a in axes])
            return b.const(np.ascontiguousarray(np.transpose(array, order)), suffix)
        inputs = [x.name, param(layer.gamma, "gamma")]
        if layer.center:
            inputs.append(param(layer.beta, "beta"))
        return b.node("LayerNormalization", inputs, axis=onnx_axes[0], epsilon=eps)
    # elsewhere (e.g. channels of a channels-first map): Keras's own formula, no Transpose
    mean = reduce(b, "ReduceMean", x.name, onnx_axes)
    centered = b.node("Sub", [x.name, mean])
    var = reduce(b, "ReduceMean", b.node("Mul", [centered, centered]), onnx_axes)
    inv = b.node("Reciprocal", [b.node("Sqrt", [b.node("Add", [var, b.const(
        np.float32(eps), "epsilon")])])])
    y = b.node("Mul", [centered, inv])
    if layer.scale:
        y = b.node("Mul", [y, _param(b, layer, layer.gamma, x, axes, "gamma")])
    if layer.center:
        y = b.node("Add", [y, _param(b, layer, layer.beta, x, axes, "beta")])
    return y


@lowering(L.UnitNormalization)
def lower_unit_norm(b, layer, ctx):
    x = ctx.x
    onnx_axes = sorted(x.perm.index(a) for a in _axes(layer, x.ndim))
    squares = reduce(b, "ReduceSum", b.node("Mul", [x.name, x.name]), onnx_axes)
    # ops.normalize: x / max(||x||, 1e-12) = x * rsqrt(max(sum(x^2), 1e-24))
    floor = b.node("Max", [squares, b.const(np.float32(1e-24), "epsilon")])
    return b.node("Mul", [x.name, b.node("Reciprocal", [b.node("Sqrt", [floor])])])


@lowering(L.GroupNormalization)
def lower_group_norm(b, layer, ctx):
    x = ctx.x
    axis = int(layer.axis) % x.ndim
    if x.perm[1] != axis or None in x.shape[1:]:
        x = b.to_perm(x, channels_first_perm(x.ndim, "channels_last" if axis == x.ndim - 1
                                             else "channels_first"))
        if x.perm[1] != axis:
            raise Unsupported(f"GroupNormalization on axis {axis} of a rank-{x.ndim} tensor")
    channels, groups = int(x.shape[axis]), int(layer.groups)
    spatial = [int(x.shape[p]) for p in x.perm[2:]]
    # (N, C, S...) -> (N, G, C/G * S...): normalize over the last axis, Keras's formula
    grouped = b.node("Reshape", [x.name, b.ints([0, groups, -1], "grouped")])
    mean = reduce(b, "ReduceMean", grouped, [2])
    centered = b.node("Sub", [grouped, mean])
    var = reduce(b, "ReduceMean", b.node("Mul", [centered, centered]), [2])
    inv = b.node("Reciprocal", [b.node("Sqrt", [b.node("Add", [var, b.const(
        np.float32(layer.epsilon), "epsilon")])])])
    y = b.node("Reshape", [b.node("Mul", [centered, inv]),
                           b.ints([0, channels] + spatial, "shape")])
    shape = [1, channels] + [1] * len(spatial)
    if layer.scale:
        y = b.node("Mul", [y, b.const(float_array(layer.gamma).reshape(shape), "gamma")])
    if layer.center:
        y = b.node("Add", [y, b.const(float_array(layer.beta).reshape(shape), "beta")])
    return Value(y, ctx.output_shape, x.perm)
