"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool -> Keras pooling layers, with a
keras_convx PaddingND first where ONNX pads (or ceil_mode) need it; ReduceMean/Max/Min/Sum
-> global pooling over every spatial axis, else the importer's Reduce."""

import keras
import numpy as np

from keras_convx.importer.conversions.common import (RUNTIME_SAME, ints, pad_layer, positive,
                                                     spatial_pads)
from keras_convx.importer.errors import Unsupported
from keras_convx.importer.context import Value
from keras_convx.layers.tensor_ops import ConstantOperation, Reduce
from keras_convx.importer.registry import SPATIAL, conversion
from keras_convx.utils import shapes as S

L = keras.layers
# Max pooling pads with the lowest float32: never the maximum of a window that starts
# inside the input, and finite in configs (JSON and YAML).
LOWEST = float(np.finfo(np.float32).min)


def _keras_pool(kind, rank):
    if rank not in (1, 2, 3):
        raise Unsupported(f"{rank} spatial axes: accepted are 1, 2 and 3")
    return getattr(L, f"{kind}{rank}D")


def _window(ctx):
    x = ctx.x
    rank = x.ndim - 2
    kernel = ctx.attr("kernel_shape")
    if kernel is None or len(kernel) != rank:
        raise Unsupported(f"kernel_shape={kernel} needs {rank} entries")
    kernel = positive("kernel_shape", tuple(int(k) for k in kernel))
    strides = positive("strides", ints(ctx, "strides", rank, 1))
    dilations = ints(ctx, "dilations", rank, 1)
    if any(d != 1 for d in dilations):
        raise Unsupported(f"dilations={list(dilations)}: Keras pooling has no dilation")
    lengths = x.shape[2:]
    pairs = spatial_pads(ctx, lengths, kernel, strides, dilations)
    # The output length ONNX's shape inference gives (ceil_mode included), reached by
    # extra padding at the end.
    want = ctx.output_shape()
    extra = [0] * rank
    if pairs == RUNTIME_SAME:
        if ctx.flag("ceil_mode"):
            raise Unsupported("ceil_mode=1 with auto_pad=SAME_UPPER over a dynamic length")
        return rank, kernel, strides, pairs, extra
    if ctx.flag("ceil_mode"):
        wanted = list(want[2:]) if want is not None else [None] * rank
        for i, (n, k, s, (b, a), m) in enumerate(zip(lengths, kernel, strides, pairs, wanted)):
            if n is None:
                # a dynamic length: s - 1 more at the end turns floor into ceil for every
                # length; exact while no window can start in the end padding (a + s <= k)
                if a + s > k:
                    raise Unsupported(f"ceil_mode=1 over a dynamic length with stride {s} and "
                                      f"end pad {a} past kernel {k} (the output length then "
                                      f"depends on the input's)")
                extra[i] = s - 1
                continue
            if m is None:
                raise Unsupported("ceil_mode=1 needs the inferred output shape")
            extra[i] = max((m - 1) * s + k - (n + b + a), 0)
            if S.conv_output_length(n, k, s, 1, (b, a + extra[i])) != m:
                raise Unsupported(f"ceil_mode output length {m} on axis {i} is not reachable")
    return rank, kernel, strides, pairs, extra


@conversion("MaxPool", since=1, layout=SPATIAL)
def convert_max_pool(ctx):
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1] and (
            ctx.consumers(ctx.node.outputs[1]) or ctx.is_graph_output(ctx.node.outputs[1])):
        raise Unsupported("the Indices output is not supported")
    if ctx.flag("storage_order"):
        raise Unsupported("storage_order=1 is not supported")
    rank, kernel, strides, pairs, extra = _window(ctx)
    x = ctx.x.tensor
    same = _same(ctx, kernel, strides)
    if pairs == RUNTIME_SAME or not any(extra) and any(any(p) for p in pairs) and [
            tuple(p) for p in pairs] == same:
        # Keras's "same" max pooling is ONNX's pads filled with -inf: one layer
        return ctx.layer(_keras_pool("MaxPooling", rank), pool_size=kernel, strides=strides,
                         padding="same", data_format=ctx.data_format)
    total = [(b, a + e) for (b, a), e in zip(pairs, extra)]
    if any(b or a for b, a in total):
        x = pad_layer(ctx, x, total, "constant", LOWEST, suffix="pad")
    return ctx.layer(_keras_pool("MaxPooling", rank), pool_size=kernel, strides=strides,
                     padding="valid", data_format=ctx.data_format, inputs=x)


@conversion("AveragePool", since=1, layout=SPATIAL)
def convert_average_pool(ctx):
    rank, kernel, strides, pairs, extra = _window(ctx)
    include = int(ctx.flag("count_include_pad", 0))
    x = ctx.x.tensor
    cls = _keras_pool("AveragePooling", rank)
    if pairs != RUNTIME_SAME and not any(extra) and not any(b or a for b, a in pairs):
        return ctx.layer(cls, pool_size=kernel, strides=strides, padding="valid",
                         data_format=ctx.data_format)
    same = _same(ctx, kernel, strides)
    if pairs == RUNTIME_SAME and include:
        raise Unsupported("count_include_pad=1 with auto_pad=SAME_UPPER over a dynamic length")
    if pairs == RUNTIME_SAME or not include and not any(extra) and [
            tuple(p) for p in pairs] == same:
        # Keras's "same" averages over the valid pixels only: count_include_pad=0.
        return ctx.layer(cls, pool_size=kernel, strides=strides, padding="same",
                         data_format=ctx.data_format)
    if include and any(extra):
        raise Unsupported(f"count_include_pad=1 with a ceil_mode overhang (pads={pairs}): "
                          f"runtimes disagree on its divisor")
    total = [(b, a + e) for (b, a), e in zip(pairs, extra)]
    x = pad_layer(ctx, x, total, "zeros", suffix="pad")
    y = ctx.layer(cls, pool_size=kernel, strides=strides, padding="valid",
                  data_format=ctx.data_format, inputs=x, suffix=None if include else "sum")
    if include:
        return y
    # count_include_pad=0: rescale each window's mean by window size / pixels inside
    if None in ctx.x.shape[2:]:
        raise Unsupported(f"count_include_pad=0 with pads={total} over a dynamic length (the "
                          f"divisor at the edges depends on the size)")
    scale = _window_size_over_count(ctx.x.shape[2:], kernel, strides, total)
    shape = (1,) + scale.shape + (1,) if ctx.data_format == "channels_last" else (1, 1) + scale.shape
    out = ctx.layer(ConstantOperation, "multiply", shape=shape, inputs=y)
    ctx.last_layer.constant.assign(scale.reshape(shape))
    return out


def _same(ctx, kernel, strides):
    """Keras's "same" pads over the static lengths (None over a dynamic one)."""
    pads = [S.same_pads(n, k, s, 1) for n, k, s in zip(ctx.x.shape[2:], kernel, strides)]
    return None if None in pads else [tuple(p) for p in pads]


def _window_size_over_count(lengths, kernel, strides, pads):
    """Per output position: kernel size / number of input pixels its window covers."""
    inside = np.pad(np.ones(lengths, np.float64), pads)
    windows = np.lib.stride_tricks.sliding_window_view(inside, kernel)
    windows = windows[tuple(slice(None, None, s) for s in strides)]
    counts = windows.sum(axis=tuple(range(-len(kernel), 0)))
    if np.any(counts == 0):
        raise Unsupported(f"pads={pads} leave windows without input pixels")
    return (np.prod(kernel) / counts).astype(np.float32)


@conversion("GlobalAveragePool", since=1, layout=SPATIAL)
def convert_global_average_pool(ctx):
    return ctx.layer(_keras_pool("GlobalAveragePooling", ctx.x.ndim - 2),
                     data_format=ctx.data_format, keepdims=True)


@conversion("GlobalMaxPool", since=1, layout=SPATIAL)
def convert_global_max_pool(ctx):
    return ctx.layer(_keras_pool("GlobalMaxPooling", ctx.x.ndim - 2),
                     data_format=ctx.data_format, keepdims=True)


def _reduce(ctx, kind, operation):
    """ReduceMean/Max/Min/Sum. Over every spatial axis it is global pooling (PyTorch's
    `x.mean((2, 3))`, where Keras has the layer); over other axes the importer's Reduce.
    The batch axis is refused."""
    x = ctx.x
    if ctx.attr("axes") is not None:  # before opset 13 (ReduceSum) / 18 (the others)
        axes = ctx.attr("axes")
    elif len(ctx.inputs) > 1 and ctx.inputs[1] is not None:
        axes = np.asarray(ctx.const(1, "axes")).reshape(-1)
    else:
        axes = []
    if len(axes) == 0:
        if ctx.flag("noop_with_empty_axes", 0):
            return x
        axes = range(x.ndim)
    axes = sorted({int(a) % x.ndim for a in axes})
    keepdims = ctx.flag("keepdims", 1)
    if kind is not None and axes == list(range(2, x.ndim)) and x.ndim in (3, 4, 5):
        x = ctx.move(x, ctx.standard_perm(x.ndim), "to_" + ctx.data_format)
        tensor = ctx.layer(_keras_pool(kind, x.ndim - 2), data_format=ctx.data_format,
                           keepdims=keepdims, inputs=x.tensor)
        return Value(tensor, x.perm if keepdims else (0, 1))
    if 0 in axes:
        raise Unsupported(f"axes={axes}: reducing over the batch axis is not supported")
    tensor = ctx.layer(Reduce, operation, [x.keras_axis(a) for a in axes], keepdims=keepdims)
    if keepdims:
        return Value(tensor, x.perm)
    rest = [a for a in range(x.ndim) if a not in axes]
    return Value(tensor, tuple(rest.index(p) for p in x.perm if p in rest))


@conversion("ReduceMean", since=1)
def convert_reduce_mean(ctx):
    return _reduce(ctx, "GlobalAveragePooling", "mean")


@conversion("ReduceMax", since=1)
def convert_reduce_max(ctx):
    return _reduce(ctx, "GlobalMaxPooling", "max")


@conversion("ReduceMin", since=1)
def convert_reduce_min(ctx):
    return _reduce(ctx, None, "min")


@conversion("ReduceSum", since=1)
def convert_reduce_sum(ctx):
    return _reduce(ctx, None, "sum")
