"""Lowerings of the Keras layers that convolutional models use around the conv family."""

import keras
import numpy as np

from keras_convx.exporter.graph import Unsupported, Value, channels_first_perm, float_array
from keras_convx.exporter.lowerings.common import activation, spatial_in
from keras_convx.exporter.lowerings.conv import _window
from keras_convx.exporter.registry import lowering

L = keras.layers


def _same_perm(b, values):
    """All values laid out like the first (elementwise ops need matching layouts)."""
    first = values[0]
    return [first] + [b.to_perm(v, first.perm) if v.ndim == first.ndim else v for v in values[1:]]


def _inputs(ctx):
    (values,) = ctx.args
    return list(values)


@lowering(L.Activation)
def lower_activation(b, layer, ctx):
    return activation(b, layer.activation, ctx.args[0])


@lowering(L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
          L.GaussianNoise, L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization)
def lower_identity(b, layer, ctx):
    x = ctx.args[0]
    return Value(b.node("Identity", [x.name]), x.shape, x.perm)


@lowering(L.ReLU)
def lower_relu(b, layer, ctx):
    x = ctx.args[0]
    if float(layer.threshold) != 0.0:
        raise Unsupported("ReLU with a threshold has no single ONNX op")
    slope = float(layer.negative_slope)
    if not slope and layer.max_value is not None:  # ReLU6 and friends: one Clip
        y = b.node("Clip", [x.name, b.const(np.float32(0.0), "min"),
                            b.const(np.float32(layer.max_value), "max")])
        return Value(y, x.shape, x.perm)
    y = b.node("LeakyRelu", [x.name], alpha=slope) if slope else b.node("Relu", [x.name])
    if layer.max_value is not None:
        y = b.node("Clip", [y, "", b.const(np.float32(layer.max_value), "max")])
    return Value(y, x.shape, x.perm)


@lowering(L.LeakyReLU)
def lower_leaky_relu(b, layer, ctx):
    x = ctx.args[0]
    return Value(b.node("LeakyRelu", [x.name], alpha=float(layer.negative_slope)), x.shape, x.perm)


@lowering(L.ELU)
def lower_elu(b, layer, ctx):
    x = ctx.args[0]
    return Value(b.node("Elu", [x.name], alpha=float(layer.alpha)), x.shape, x.perm)


@lowering(L.Softmax)
def lower_softmax(b, layer, ctx):
    x = ctx.args[0]
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    if len(axes) != 1 or len(ctx.args) > 1 or ctx.kwargs.get("mask") is not None:
        raise Unsupported("Softmax over several axes or with a mask")
    return Value(b.node("Softmax", [x.name], axis=x.perm.index(axes[0] % x.ndim)), x.shape, x.perm)


def _merge(op):
    def lower(b, layer, ctx):
        values = _same_perm(b, _inputs(ctx))
        y = values[0].name
        for v in values[1:]:
            y = b.node(op, [y, v.name])
        return Value(y, ctx.output_shape, values[0].perm)
    return lower


for _cls, _op in ((L.Add, "Add"), (L.Subtract, "Sub"), (L.Multiply, "Mul"),
                  (L.Maximum, "Max"), (L.Minimum, "Min")):
    lowering(_cls)(_merge(_op))


@lowering(L.Average)
def lower_average(b, layer, ctx):
    values = _same_perm(b, _inputs(ctx))
    total = b.node("Sum", [v.name for v in values])
    y = b.node("Mul", [total, b.const(np.float32(1.0 / len(values)), "inv_n")])
    return Value(y, ctx.output_shape, values[0].perm)


@lowering(L.Concatenate)
def lower_concatenate(b, layer, ctx):
    values = _same_perm(b, _inputs(ctx))
    first = values[0]
    axis = first.perm.index(layer.axis % first.ndim)
    return Value(b.node("Concat", [v.name for v in values], axis=axis), ctx.output_shape,
                 first.perm)


@lowering(L.BatchNormalization)
def lower_batch_norm(b, layer, ctx):
    x = ctx.args[0]
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    if len(axes) != 1:
        raise Unsupported("BatchNormalization over several axes")
    axis = axes[0] % x.ndim
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


@lowering(L.Dense)
def lower_dense(b, layer, ctx):
    x = b.to_perm(ctx.args[0], tuple(range(ctx.args[0].ndim)))
    kernel = b.const(float_array(layer.kernel), "kernel")
    if x.ndim == 2 and layer.use_bias:
        y = b.node("Gemm", [x.name, kernel, b.const(float_array(layer.bias), "bias")])
    else:
        y = b.node("MatMul", [x.name, kernel])
        if layer.use_bias:
            y = b.node("Add", [y, b.const(float_array(layer.bias), "bias")])
    return activation(b, layer.activation, Value(y, ctx.output_shape))


def _in_order(b, value, perm):
    """`value` with its elements in the memory order of layout `perm`.

    A Transpose that only moves size-1 axes leaves the memory order unchanged, so the
    value is used as is (a channels-first (N, C, 1, 1) is already (N, 1, 1, C) in memory).
    """
    def order(p):
        return [a for a in p if value.shape[a] != 1]

    if order(value.perm) == order(perm):
        return value
    return b.to_perm(value, perm)


@lowering(L.Flatten)
def lower_flatten(b, layer, ctx):
    x = ctx.args[0]
    if getattr(layer, "data_format", "channels_last") == "channels_first" and x.ndim > 2:
        # Keras flattens channels_first inputs in channels_last order.
        x = _in_order(b, x, (0,) + tuple(range(2, x.ndim)) + (1,))
    else:
        x = _in_order(b, x, tuple(range(x.ndim)))
    return Value(b.node("Flatten", [x.name], axis=1), ctx.output_shape)


@lowering(L.Reshape)
def lower_reshape(b, layer, ctx):
    x = _in_order(b, ctx.args[0], tuple(range(ctx.args[0].ndim)))
    shape = b.ints([0] + [int(d) for d in layer.target_shape], "target_shape")
    return Value(b.node("Reshape", [x.name, shape]), ctx.output_shape)


POOLS = [(L.MaxPooling1D, "MaxPool"), (L.MaxPooling2D, "MaxPool"), (L.MaxPooling3D, "MaxPool"),
         (L.AveragePooling1D, "AveragePool"), (L.AveragePooling2D, "AveragePool"),
         (L.AveragePooling3D, "AveragePool")]


def _pool(op):
    def lower(b, layer, ctx):
        (x,) = ctx.args
        name, pads, perm, k, s, d = _window(b, layer, x, ctx.output_shape)
        attrs = dict(kernel_shape=list(k), strides=list(s), pads=pads)
        if op == "AveragePool":
            attrs["count_include_pad"] = 0  # Keras averages over the valid positions only
        return Value(b.node(op, [name], **attrs), ctx.output_shape, perm)
    return lower


for _cls, _op in POOLS:
    lowering(_cls)(_pool(_op))


def _global(op):
    def lower(b, layer, ctx):
        (x,) = ctx.args
        xc, perm = spatial_in(b, x, layer.data_format)
        axes = list(range(2, x.ndim))
        keep = int(bool(layer.keepdims))
        if b.opset >= 18:
            y = b.node(op, [xc.name, b.ints(axes, "axes")], keepdims=keep)
        else:
            y = b.node(op, [xc.name], axes=axes, keepdims=keep)
        return Value(y, ctx.output_shape, perm if keep else None)
    return lower


for _cls, _op in ((L.GlobalAveragePooling1D, "ReduceMean"), (L.GlobalAveragePooling2D, "ReduceMean"),
                  (L.GlobalAveragePooling3D, "ReduceMean"), (L.GlobalMaxPooling1D, "ReduceMax"),
                  (L.GlobalMaxPooling2D, "ReduceMax"), (L.GlobalMaxPooling3D, "ReduceMax")):
    lowering(_cls)(_global(_op))
