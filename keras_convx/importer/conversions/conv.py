"""Conv, ConvTranspose and Pad -> keras_convx ConvND / DepthwiseConvND / ConvNDTranspose /
PaddingND (a Pad feeding only a Conv is fused into it by `passes.fuse_pad_into_conv`)."""

import numpy as np

from keras_convx import interop, weights
from keras_convx.importer.conversions.common import (PAD_MODES, RUNTIME_SAME, float32, ints,
                                                     pad_layer, positive, spatial_layer,
                                                     spatial_pads)
from keras_convx.importer.errors import Unsupported
from keras_convx.importer.registry import SPATIAL, conversion


def _weights(ctx):
    w = float32(ctx.const(1, "W"), "W")
    b = ctx.const(2, "B", optional=True)
    if b is not None:
        b = float32(b, "B")
    rank = ctx.x.ndim - 2
    if w.ndim != rank + 2:
        raise Unsupported(f"W of shape {list(w.shape)} needs {rank + 2} dims for a "
                          f"{rank}-D input")
    kernel = ints(ctx, "kernel_shape", rank, None) if ctx.attr("kernel_shape") else w.shape[2:]
    if tuple(kernel) != tuple(w.shape[2:]):
        raise Unsupported(f"kernel_shape={list(kernel)} disagrees with W's shape "
                          f"{list(w.shape)}")
    return w, b, rank, tuple(int(k) for k in kernel)


def _load(layer, w, b):
    weights.from_torch(layer, {"weight": w, **({"bias": b} if b is not None else {})})


@conversion("Conv", since=1, layout=SPATIAL)
def convert_conv(ctx):
    w, b, rank, kernel = _weights(ctx)
    x = ctx.x
    channels = x.shape[1]
    group = int(ctx.attr("group", 1))
    strides = positive("strides", ints(ctx, "strides", rank, 1))
    dilations = positive("dilations", ints(ctx, "dilations", rank, 1))
    if group < 1 or channels % group or w.shape[0] % group or w.shape[1] * group != channels:
        raise Unsupported(f"group={group} with {channels} input channels and W of shape "
                          f"{list(w.shape)}: W must be (out, in/group, k...) and group must "
                          f"divide both channel counts")
    pairs = spatial_pads(ctx, x.shape[2:], kernel, strides, dilations)
    mode = "zeros"
    fused = ctx.node.extra.get("pad")
    if fused is not None and pairs == RUNTIME_SAME:
        raise Unsupported("a fused Pad and auto_pad=SAME_UPPER over a dynamic length")
    if fused is not None:  # a Pad fused in by passes.fuse_pad_into_conv
        fused_pairs, mode = fused
        pairs = [(a + c, b_ + d) for (a, b_), (c, d) in zip(pairs, fused_pairs)]
    common = dict(kernel_size=kernel, strides=strides,
                  padding=pairs if pairs == RUNTIME_SAME else tuple(pairs),
                  dilation_rate=dilations, data_format=ctx.data_format,
                  use_bias=b is not None, padding_mode=mode)
    if group > 1 and group == channels:
        out = ctx.layer(spatial_layer("DepthwiseConv#", rank),
                        depth_multiplier=w.shape[0] // channels, **common)
    else:
        out = ctx.layer(spatial_layer("Conv#", rank), filters=w.shape[0], groups=group,
                        **common)
    _load(ctx.last_layer, w, b)
    return out


@conversion("ConvTranspose", since=1, layout=SPATIAL)
def convert_conv_transpose(ctx):
    w, b, rank, kernel = _weights(ctx)
    x = ctx.x
    group = int(ctx.attr("group", 1))
    if group < 1 or x.shape[1] != w.shape[0] or w.shape[0] % group:
        raise Unsupported(f"group={group} with {x.shape[1]} input channels and W of shape "
                          f"{list(w.shape)}: W must be (in, out/group, k...)")
    strides = positive("strides", ints(ctx, "strides", rank, 1))
    dilations = positive("dilations", ints(ctx, "dilations", rank, 1))
    output_shape = ctx.attr("output_shape")
    if output_shape is not None and len(output_shape) == rank + 2:
        output_shape = output_shape[2:]
    try:
        pairs, output_padding = interop.conv_transpose_padding(
            x.shape[2:], kernel, strides, dilations, ctx.attr("pads"),
            ctx.attr("output_padding"), output_shape, ctx.attr("auto_pad", "NOTSET"))
    except ValueError as err:
        raise Unsupported(str(err)) from None
    out = ctx.layer(spatial_layer("Conv#Transpose", rank), filters=w.shape[1] * group,
                    kernel_size=kernel, strides=strides, padding=pairs,
                    output_padding=output_padding if any(output_padding) else None,
                    dilation_rate=dilations, groups=group, use_bias=b is not None,
                    data_format=ctx.data_format)
    _load(ctx.last_layer, w, b)
    return out


def pad_arguments(attrs, consts, ndim):
    """(spatial (before, after) pairs, ONNX mode, constant value) of a Pad node.

    Args:
        attrs: the node's attributes.
        consts: its inputs 1.. (pads, constant_value, axes) as arrays or None.
        ndim: rank of the padded tensor.
    """
    mode = attrs.get("mode", "constant")
    if mode not in PAD_MODES:
        raise Unsupported(f"mode={mode!r}: accepted are {tuple(PAD_MODES)}")
    consts = list(consts) + [None] * 3
    if attrs.get("pads") is not None:  # opset < 11
        pads, value = [int(p) for p in attrs["pads"]], float(attrs.get("value", 0.0))
    else:
        if consts[0] is None:
            raise Unsupported("input 1 (pads) must be a constant")
        pads = [int(p) for p in np.asarray(consts[0]).reshape(-1)]
        value = consts[1]
        value = 0.0 if value is None or np.size(value) == 0 else float(
            np.asarray(value).reshape(-1)[0])
        axes = consts[2]
        if axes is not None:
            axes = [int(a) % ndim for a in np.asarray(axes).reshape(-1)]
            if len(pads) != 2 * len(axes):
                raise Unsupported(f"pads={pads} needs 2 entries per axis of axes={axes}")
            full = [0] * (2 * ndim)
            for i, a in enumerate(axes):
                full[a], full[a + ndim] = pads[i], pads[i + len(axes)]
            pads = full
    if len(pads) != 2 * ndim:
        raise Unsupported(f"pads={pads} needs {2 * ndim} entries")
    if any(p < 0 for p in pads):
        raise Unsupported(f"pads={pads}: negative pads (cropping) are not supported")
    if pads[0] or pads[1] or pads[ndim] or pads[ndim + 1]:
        raise Unsupported(f"pads={pads}: only spatial axes (2..) may be padded")
    if not np.isfinite(value):
        raise Unsupported(f"constant_value={value} must be finite")
    return [(pads[i], pads[i + ndim]) for i in range(2, ndim)], mode, value


@conversion("Pad", since=1, layout=SPATIAL)
def convert_pad(ctx):
    consts = [ctx.const(i, name, optional=True) for i, name in
              ((1, "pads"), (2, "constant_value"), (3, "axes")) if i < len(ctx.inputs)]
    pairs, mode, value = pad_arguments(ctx.attrs, consts, ctx.x.ndim)
    return pad_layer(ctx, ctx.x.tensor, pairs, PAD_MODES[mode], value)
