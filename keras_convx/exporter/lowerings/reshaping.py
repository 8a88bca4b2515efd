"""Lowerings of cropping, padding and up-sampling layers."""

import keras
import numpy as np

from keras_convx import layers as kcl
from keras_convx import interop
from keras_convx.exporter.graph import Unsupported
from keras_convx.exporter.lowerings.common import INT_MAX, pad_spatial
from keras_convx.exporter.registry import CHANNELS_FIRST, lowering
from keras_convx.utils import args as A

L = keras.layers


def _pairs(layer, attr, ndim):
    rank = ndim - 2
    return A.normalize_pairs(getattr(layer, attr), rank, attr, type(layer).__name__)


def _crop(b, name, crops):
    rank = len(crops)
    starts = [c[0] for c in crops]
    ends = [-c[1] if c[1] else INT_MAX for c in crops]
    return b.node("Slice", [name, b.ints(starts, "starts"), b.ints(ends, "ends"),
                            b.ints(range(2, 2 + rank), "axes")])


@lowering(kcl.Cropping1D, kcl.Cropping2D, kcl.Cropping3D, L.Cropping1D, L.Cropping2D, L.Cropping3D,
          layout=CHANNELS_FIRST)
def lower_cropping(b, layer, ctx):
    return _crop(b, ctx.x.name, _pairs(layer, "cropping", ctx.x.ndim))


@lowering(kcl.ZeroPadding1D, kcl.ZeroPadding2D, kcl.ZeroPadding3D, kcl.Padding1D, kcl.Padding2D,
          kcl.Padding3D, L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D, layout=CHANNELS_FIRST)
def lower_padding(b, layer, ctx):
    y = pad_spatial(b, ctx.x.name, _pairs(layer, "padding", ctx.x.ndim),
                    getattr(layer, "mode", "zeros"), getattr(layer, "constant_value", 0.0))
    return y if y != ctx.x.name else b.node("Identity", [y])


@lowering(kcl.UpSampling1D, kcl.UpSampling2D, kcl.UpSampling3D, L.UpSampling1D, L.UpSampling2D,
          L.UpSampling3D, layout=CHANNELS_FIRST)
def lower_upsampling(b, layer, ctx):
    x = ctx.x
    rank = x.ndim - 2
    size = A.normalize_scale(layer.size, rank, type(layer).__name__)
    interpolation = getattr(layer, "interpolation", "nearest")
    align = getattr(layer, "align_corners", False)
    try:
        attrs = interop.resize_attributes(interpolation, align,
                                          getattr(layer, "exclude_outside", False))
    except ValueError as err:
        raise Unsupported(str(err)) from None
    scales = b.const(np.asarray((1.0, 1.0) + tuple(float(s) for s in size), np.float32), "scales")
    return b.node("Resize", [x.name, "", scales], **attrs)


@lowering(kcl.CropToMatch, layout=CHANNELS_FIRST)
def lower_crop_to_match(b, layer, ctx):
    x, ref = ctx.x, ctx.args[0][1]  # the reference only lends its shape
    crops = layer._crops(x.shape, ref.shape)
    if all(c is not None for c in crops):
        return _crop(b, x.name, crops)
    # unknown sizes (dynamic height/width): the crops from both shapes, in the graph
    rank = len(crops)
    ref_value = ctx.inputs[1] if ctx.inputs and len(ctx.inputs) > 1 else None
    if ref_value is None:
        raise Unsupported("CropToMatch with unknown sizes needs its reference as a graph value")
    size = b.node("Shape", [x.name], start=2, end=2 + rank)
    want = b.node("Shape", [ref_value.name], start=2, end=2 + rank)
    extra = b.node("Sub", [size, want])
    before = {"center": lambda: b.node("Div", [extra, b.ints([2] * rank, "two")]),
              "start": lambda: b.ints([0] * rank, "zero"),
              "end": lambda: extra}[layer.anchor]()
    return b.node("Slice", [x.name, before, b.node("Add", [before, want]),
                            b.ints(range(2, 2 + rank), "axes")])

