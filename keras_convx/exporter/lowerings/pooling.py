"""Lowerings of Keras's pooling layers, and of `keras.ops.max_pool`/`average_pool` nodes."""

import types

import keras
from keras.src.ops import nn as N

from keras_convx.exporter.lowerings.conv import _window, pad_attrs
from keras_convx.exporter.registry import CHANNELS_FIRST, lowering
from keras_convx.utils import args as A

L = keras.layers


def _pool(op):
    def lower(b, layer, ctx):
        name, pads, k, s, _ = _window(b, layer, ctx.x)
        attrs = dict(kernel_shape=list(k), strides=list(s), **pad_attrs(pads))
        if op == "AveragePool":
            attrs["count_include_pad"] = 0  # Keras averages over the valid positions only
        return b.node(op, [name], **attrs)
    lower.__name__ = f"lower_{op.lower()}"
    return lower


for _cls, _op in ((L.MaxPooling1D, "MaxPool"), (L.MaxPooling2D, "MaxPool"),
                  (L.MaxPooling3D, "MaxPool"), (L.AveragePooling1D, "AveragePool"),
                  (L.AveragePooling2D, "AveragePool"), (L.AveragePooling3D, "AveragePool")):
    lowering(_cls, layout=CHANNELS_FIRST)(_pool(_op))


def _pool_op(op):
    pool = _pool(op)

    def lower(b, layer, ctx):
        # the op's arguments as the layer holds them (tuples, a data format)
        rank, owner = ctx.x.ndim - 2, type(layer).__name__
        size = A.normalize_tuple(layer.pool_size, rank, "pool_size", owner)
        as_layer = types.SimpleNamespace(
            pool_size=size, padding=layer.padding,
            strides=A.normalize_tuple(layer.strides or size, rank, "strides", owner),
            data_format=layer.data_format or keras.config.image_data_format())
        return pool(b, as_layer, ctx)
    lower.__name__ = f"lower_op_{op.lower()}"
    return lower


lowering(N.MaxPool, layout=CHANNELS_FIRST)(_pool_op("MaxPool"))
lowering(N.AveragePool, layout=CHANNELS_FIRST)(_pool_op("AveragePool"))


def _global(op):
    def lower(b, layer, ctx):
        axes = list(range(2, ctx.x.ndim))
        keep = int(bool(layer.keepdims))
        if b.opset >= 18:
            return b.node(op, [ctx.x.name, b.ints(axes, "axes")], keepdims=keep)
        return b.node(op, [ctx.x.name], axes=axes, keepdims=keep)
    lower.__name__ = f"lower_global_{op.lower()}"
    return lower


for _cls, _op in ((L.GlobalAveragePooling1D, "ReduceMean"),
                  (L.GlobalAveragePooling2D, "ReduceMean"),
                  (L.GlobalAveragePooling3D, "ReduceMean"), (L.GlobalMaxPooling1D, "ReduceMax"),
                  (L.GlobalMaxPooling2D, "ReduceMax"), (L.GlobalMaxPooling3D, "ReduceMax")):
    lowering(_cls, layout=CHANNELS_FIRST)(_global(_op))
