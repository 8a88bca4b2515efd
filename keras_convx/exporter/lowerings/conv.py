"""Lowerings of the convolution family (keras_convx's and Keras's own layers)."""

import keras
import numpy as np

from keras_convx import layers as kcl
from keras_convx import interop
from keras_convx import ops as cops
from keras_convx.exporter.graph import Unsupported, float_array
from keras_convx.exporter.lowerings.common import abs_max_round, pad_spatial, spatial_lengths
from keras_convx.exporter.registry import CHANNELS_FIRST, lowering
from keras_convx.utils import args as A
from keras_convx.utils import shapes as S

L = keras.layers


def _int8(layer):
    return getattr(layer, "_int8", False)


def _int8_input(b, layer, name):
    """An int8 layer's input quantization (`Int8Mixin`): rounded per position over the
    channels (axis 1 here), then divided by the scale again."""
    from keras_convx.layers.int8 import EPSILON, RANGE

    q, scale = abs_max_round(b, name, 1, EPSILON, RANGE)
    return b.node("Div", [q, scale], suffix="input_quantized")


def _kernel(b, layer, attr, to_onnx, axis, suffix):
    """A kernel in ONNX layout: an int8 layer's as DequantizeLinear of its int8 values
    with its own per-channel scales (1 / `<attr>_scale`) on output axis `axis`."""
    if not _int8(layer) or attr not in layer._int8_kernels:
        return b.const(to_onnx(float_array(getattr(layer, attr))), suffix)
    q = np.asarray(keras.ops.convert_to_numpy(getattr(layer, attr)), np.int8)
    from keras_convx.layers.int8 import scale_attr

    scale = np.divide(np.float32(1), float_array(getattr(layer, scale_attr(attr))),
                      dtype=np.float32)
    inverse = np.ascontiguousarray(to_onnx(scale)).ravel()
    return b.node("DequantizeLinear", [
        b.const(np.ascontiguousarray(to_onnx(q)), suffix),
        b.const(inverse, suffix + "_scale"),
        b.const(np.zeros(inverse.shape, np.int8), suffix + "_zero_point")],
        suffix=suffix + "_dequantized", axis=axis)


def _window(b, layer, x):
    """Explicit padding (with the layer's mode) ahead of a window op on the channels-first
    value `x`; returns (input name, conv pads, kernel size, strides, dilation)."""
    rank = x.ndim - 2
    padding = layer.padding
    if isinstance(padding, str):
        padding = A.normalize_padding(padding, rank, type(layer).__name__)
    lengths = spatial_lengths(x.shape, layer.data_format)
    strides = tuple(layer.strides)
    dilation = tuple(getattr(layer, "dilation_rate", (1,) * rank))
    kernel_size = tuple(getattr(layer, "kernel_size", getattr(layer, "pool_size", None)))
    pads = S.resolve_pads(padding, lengths, kernel_size, strides, dilation)
    mode = getattr(layer, "padding_mode", "zeros")
    if any(p is None for p in pads) and padding == "same" and mode == "zeros":
        # a strided 'same' over an unknown length: ONNX's SAME_UPPER pads as Keras does
        # (total from the output length ceil(L / stride), the extra pixel at the end),
        # computed by the runtime from the input's shape
        return x.name, SAME_UPPER, kernel_size, strides, dilation
    if any(p is None for p in pads):
        raise Unsupported(
            f"padding={padding!r} with strides={strides} needs static spatial sizes, got "
            f"{lengths} (export with static spatial dims)"
        )
    if mode != "zeros":
        return pad_spatial(b, x.name, pads, mode), [0] * (2 * rank), kernel_size, strides, dilation
    flat = [p[0] for p in pads] + [p[1] for p in pads]
    return x.name, flat, kernel_size, strides, dilation


def _bias(b, layer):
    return [b.const(float_array(layer.bias), "bias")] if layer.use_bias else []


SAME_UPPER = "SAME_UPPER"


def pad_attrs(pads):
    """`pads=...`, or `auto_pad="SAME_UPPER"` where `_window` left them to the runtime."""
    return {"auto_pad": SAME_UPPER} if pads == SAME_UPPER else {"pads": pads}


def _conv_node(b, name, weight, bias, kernel_size, strides, dilation, pads, group, suffix="Conv"):
    return b.node("Conv", [name, weight] + bias, suffix=suffix, kernel_shape=list(kernel_size),
                  strides=list(strides), dilations=list(dilation), group=group,
                  **pad_attrs(pads))


@lowering(kcl.Conv1D, kcl.Conv2D, kcl.Conv3D, L.Conv1D, L.Conv2D, L.Conv3D,
          layout=CHANNELS_FIRST, activation=True)
def lower_conv(b, layer, ctx):
    name, pads, k, s, d = _window(b, layer, ctx.x)
    if _int8(layer):
        name = _int8_input(b, layer, name)
    shape = tuple(layer.kernel.shape)
    weight = _kernel(b, layer, "_kernel" if _int8(layer) else "kernel", interop.kernel_to_onnx,
                     0, "kernel")
    channels = ctx.x.shape[-1 if layer.data_format == "channels_last" else 1]
    return _conv_node(b, name, weight, _bias(b, layer), k, s, d, pads, channels // shape[-2])


@lowering(kcl.DepthwiseConv1D, kcl.DepthwiseConv2D, kcl.DepthwiseConv3D, L.DepthwiseConv1D,
          L.DepthwiseConv2D, layout=CHANNELS_FIRST, activation=True)
def lower_depthwise(b, layer, ctx):
    name, pads, k, s, d = _window(b, layer, ctx.x)
    if _int8(layer):
        name = _int8_input(b, layer, name)
    weight = _kernel(b, layer, "kernel", interop.depthwise_to_onnx, 0, "kernel")
    return _conv_node(b, name, weight, _bias(b, layer), k, s, d, pads, layer.kernel.shape[-2])


@lowering(kcl.SeparableConv1D, kcl.SeparableConv2D, kcl.SeparableConv3D, L.SeparableConv1D,
          L.SeparableConv2D, layout=CHANNELS_FIRST, activation=True)
def lower_separable(b, layer, ctx):
    name, pads, k, s, d = _window(b, layer, ctx.x)
    if _int8(layer):
        name = _int8_input(b, layer, name)
    dw = _kernel(b, layer, "depthwise_kernel", interop.depthwise_to_onnx, 0, "depthwise_kernel")
    h = _conv_node(b, name, dw, [], k, s, d, pads, layer.depthwise_kernel.shape[-2],
                   suffix="DepthwiseConv")
    pw = _kernel(b, layer, "pointwise_kernel", interop.kernel_to_onnx, 0, "pointwise_kernel")
    rank = layer.rank
    return _conv_node(b, h, pw, _bias(b, layer),
                      (1,) * rank, (1,) * rank, (1,) * rank, [0] * (2 * rank), 1,
                      suffix="PointwiseConv")


@lowering(kcl.Conv1DTranspose, kcl.Conv2DTranspose, kcl.Conv3DTranspose, L.Conv1DTranspose,
          L.Conv2DTranspose, L.Conv3DTranspose, layout=CHANNELS_FIRST, activation=True)
def lower_conv_transpose(b, layer, ctx):
    x = ctx.x
    rank = layer.rank
    padding = layer.padding
    if isinstance(padding, str):
        padding = A.normalize_padding(padding, rank, type(layer).__name__, allow_causal=False)
    size = ctx.kwargs.get("output_size") or getattr(layer, "output_size", None)
    lengths = spatial_lengths(x.shape, layer.data_format)
    crops = cops.transpose_crops(type(layer).__name__, lengths, layer.kernel_size,
                                 layer.strides, layer.dilation_rate, padding,
                                 layer.output_padding, size)
    pads, output_padding = interop.crops_to_onnx(crops)
    name = _int8_input(b, layer, x.name) if _int8(layer) else x.name
    weight = _kernel(b, layer, "kernel", interop.kernel_to_onnx, 1, "kernel")
    return b.node(
        "ConvTranspose", [name, weight] + _bias(b, layer),
        kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
        dilations=list(layer.dilation_rate), group=getattr(layer, "groups", 1),
        pads=pads, output_padding=output_padding,
    )
