"""Lowerings of Keras's core layers: Dense, identities, Flatten, Reshape, Permute, RepeatVector."""

import keras
import numpy as np
import onnx

from keras_convx import interop
from keras_convx.exporter.graph import Unsupported, Value, compose, float_array, inverse
from keras_convx.exporter.registry import KERAS_ORDER, SAME, lowering

L = keras.layers


@lowering(L.Dense, layout=SAME, activation=True)
def lower_dense(b, layer, ctx):
    x = ctx.x
    if getattr(layer, "quantization_mode", None) is not None:
        return _quantized_dense(b, layer, ctx)
    kernel = float_array(layer.kernel)
    if x.ndim >= 3 and x.perm[1] == x.ndim - 1 and None not in x.shape[1:]:
        # features at ONNX axis 1 (a channels-first map): a 1x1 Conv, no Transpose
        rank = x.ndim - 2
        weight = kernel.T.reshape(kernel.shape[1], kernel.shape[0], *([1] * rank))
        inputs = [x.name, b.const(weight, "kernel")]
        if layer.use_bias:
            inputs.append(b.const(float_array(layer.bias), "bias"))
        return b.node("Conv", inputs, kernel_shape=[1] * rank)
    x = b.to_perm(x, tuple(range(x.ndim)))
    kernel = b.const(kernel, "kernel")
    if x.ndim == 2 and layer.use_bias:
        y = b.node("Gemm", [x.name, kernel, b.const(float_array(layer.bias), "bias")])
    else:
        y = b.node("MatMul", [x.name, kernel])
        if layer.use_bias:
            y = b.node("Add", [y, b.const(float_array(layer.bias), "bias")])
    return Value(y, ctx.output_shape)


@lowering(L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
          L.GaussianNoise, L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization,
          L.Identity)
def lower_identity(b, layer, ctx):
    return b.node("Identity", [ctx.x.name])


def in_order(b, value, perm):
    """`value` with its elements in the memory order of layout `perm`.

    A Transpose that only moves size-1 axes leaves the memory order unchanged, so the
    value is used as is (a channels-first (N, C, 1, 1) is already (N, 1, 1, C) in memory).
    """
    if interop.only_unit_axes_move(value.shape, value.perm, perm):
        return value
    return b.to_perm(value, perm)


@lowering(L.Flatten)
def lower_flatten(b, layer, ctx):
    x = ctx.x
    if getattr(layer, "data_format", "channels_last") == "channels_first" and x.ndim > 2:
        # Keras flattens channels_first inputs in channels_last order.
        x = in_order(b, x, (0,) + tuple(range(2, x.ndim)) + (1,))
    else:
        x = in_order(b, x, tuple(range(x.ndim)))
    return Value(b.node("Flatten", [x.name], axis=1), ctx.output_shape)


@lowering(L.Reshape)
def lower_reshape(b, layer, ctx):
    x = in_order(b, ctx.x, tuple(range(ctx.x.ndim)))
    shape = b.ints([0] + [int(d) for d in layer.target_shape], "target_shape")
    return Value(b.node("Reshape", [x.name, shape]), ctx.output_shape)


@lowering(L.Permute)
def lower_permute(b, layer, ctx):
    # no data moves: the output is the input seen through one more permutation
    x = ctx.x
    keras_perm = (0,) + tuple(int(d) for d in layer.dims)
    return Value(x.name, ctx.output_shape, compose(inverse(keras_perm), x.perm))


@lowering(L.RepeatVector, layout=KERAS_ORDER)
def lower_repeat_vector(b, layer, ctx):
    x = b.node("Unsqueeze", [ctx.x.name, b.ints([1], "axes")])
    return b.node("Tile", [x, b.ints([1, int(layer.n), 1], "repeats")])




def _quantized_dense(b, layer, ctx):
    """Keras's int8 Dense (`model.quantize("int8")`), its own arithmetic in the same
    float32 order: each input row rounded to int8 with an abs-max scale, multiplied by the
    int8 kernel (exact in float32 below 2**24), divided by kernel_scale * input scale."""
    from keras.src.quantizers.quantizers import AbsMaxQuantizer

    from keras_convx.exporter.lowerings.common import abs_max_round

    mode, quantizer = layer.quantization_mode, getattr(layer, "inputs_quantizer", None)
    if mode != "int8" or getattr(layer, "lora_enabled", False) or not isinstance(
            quantizer, AbsMaxQuantizer) or tuple(quantizer.value_range) != (-127, 127):
        raise Unsupported(f"Dense quantized as {mode!r} with inputs quantizer {quantizer!r}: "
                          f"only Keras's default int8 (abs-max, -127..127, no LoRA) is lowered")
    x = b.to_perm(ctx.x, tuple(range(ctx.x.ndim)))
    q, scale = abs_max_round(b, x.name, -1, getattr(quantizer, "epsilon", 1e-7))
    kernel = np.asarray(keras.ops.convert_to_numpy(layer._kernel), np.int8)
    weight = b.node("Cast", [b.const(kernel, "kernel")], to=onnx.TensorProto.FLOAT)
    y = b.node("Div", [b.node("MatMul", [q, weight]),
                       b.node("Mul", [b.const(float_array(layer.kernel_scale), "kernel_scale"),
                                      scale])])
    if layer.use_bias:
        y = b.node("Add", [y, b.const(float_array(layer.bias), "bias")])
    return Value(y, ctx.output_shape)
