"""Lowerings of the convolution family (keras_convx's and Keras's own layers)."""

import keras

import keras_convx as kc
from keras_convx import interop
from keras_convx import ops as cops
from keras_convx.exporter.graph import Unsupported, float_array
from keras_convx.exporter.lowerings.common import pad_spatial, spatial_lengths
from keras_convx.exporter.registry import CHANNELS_FIRST, lowering
from keras_convx.utils import args as A
from keras_convx.utils import shapes as S

L = keras.layers


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
    if any(p is None for p in pads):
        raise Unsupported(
            f"padding={padding!r} with strides={strides} needs static spatial sizes, got "
            f"{lengths} (export with static spatial dims)"
        )
    mode = getattr(layer, "padding_mode", "zeros")
    if mode != "zeros":
        return pad_spatial(b, x.name, pads, mode), [0] * (2 * rank), kernel_size, strides, dilation
    flat = [p[0] for p in pads] + [p[1] for p in pads]
    return x.name, flat, kernel_size, strides, dilation


def _bias(b, layer):
    return [b.const(float_array(layer.bias), "bias")] if layer.use_bias else []


def _conv_node(b, name, weight, bias, kernel_size, strides, dilation, pads, group, suffix="Conv"):
    return b.node("Conv", [name, weight] + bias, suffix=suffix, kernel_shape=list(kernel_size),
                  strides=list(strides), dilations=list(dilation), pads=pads, group=group)


@lowering(kc.Conv1D, kc.Conv2D, kc.Conv3D, L.Conv1D, L.Conv2D, L.Conv3D,
          layout=CHANNELS_FIRST, activation=True)
def lower_conv(b, layer, ctx):
    name, pads, k, s, d = _window(b, layer, ctx.x)
    kernel = float_array(layer.kernel)
    channels = ctx.x.shape[-1 if layer.data_format == "channels_last" else 1]
    return _conv_node(b, name, b.const(interop.kernel_to_onnx(kernel), "kernel"), _bias(b, layer), k, s,
                      d, pads, channels // kernel.shape[-2])


@lowering(kc.DepthwiseConv1D, kc.DepthwiseConv2D, kc.DepthwiseConv3D, L.DepthwiseConv1D,
          L.DepthwiseConv2D, layout=CHANNELS_FIRST, activation=True)
def lower_depthwise(b, layer, ctx):
    name, pads, k, s, d = _window(b, layer, ctx.x)
    kernel = float_array(layer.kernel)
    return _conv_node(b, name, b.const(interop.depthwise_to_onnx(kernel), "kernel"), _bias(b, layer), k,
                      s, d, pads, kernel.shape[-2])


@lowering(kc.SeparableConv1D, kc.SeparableConv2D, kc.SeparableConv3D, L.SeparableConv1D,
          L.SeparableConv2D, layout=CHANNELS_FIRST, activation=True)
def lower_separable(b, layer, ctx):
    name, pads, k, s, d = _window(b, layer, ctx.x)
    dw = float_array(layer.depthwise_kernel)
    h = _conv_node(b, name, b.const(interop.depthwise_to_onnx(dw), "depthwise_kernel"), [], k, s, d,
                   pads, dw.shape[-2], suffix="DepthwiseConv")
    pw = float_array(layer.pointwise_kernel)
    rank = layer.rank
    return _conv_node(b, h, b.const(interop.kernel_to_onnx(pw), "pointwise_kernel"), _bias(b, layer),
                      (1,) * rank, (1,) * rank, (1,) * rank, [0] * (2 * rank), 1,
                      suffix="PointwiseConv")


@lowering(kc.Conv1DTranspose, kc.Conv2DTranspose, kc.Conv3DTranspose, L.Conv1DTranspose,
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
    kernel = float_array(layer.kernel)
    pads, output_padding = interop.crops_to_onnx(crops)
    return b.node(
        "ConvTranspose", [x.name, b.const(interop.kernel_to_onnx(kernel), "kernel")] + _bias(b, layer),
        kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
        dilations=list(layer.dilation_rate), group=getattr(layer, "groups", 1),
        pads=pads, output_padding=output_padding,
    )
