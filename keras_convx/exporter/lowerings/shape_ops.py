"""Lowerings of the `keras.ops` nodes that move, cut and join tensors: split, pad,
expand_dims, squeeze, stack, slicing (`x[...]`), take, take_along_axis, cast, where.

They work in the layout the tensor already has (`Value.perm`): a Keras axis `a` is
ONNX axis `x.perm.index(a)`, so a channels-last model split on its channels splits
the channels-first ONNX value on axis 1, with no Transpose.
"""

import keras
import numpy as np
from keras.src.ops import core as C
from keras.src.ops import numpy as K

from keras_convx.exporter.graph import Unsupported, Value
from keras_convx.exporter.lowerings.common import INT_MAX, pad_axes, slice_axis
from keras_convx.exporter.lowerings.core import in_order
from keras_convx.exporter.registry import lowering
from keras_convx.interop import constant_in_layout

KERAS_PAD_MODES = {"constant": "constant", "reflect": "reflect", "symmetric": "symmetric",
                   "edge": "replicate", "wrap": "circular"}


def onnx_axis(value, axis):
    """The ONNX axis holding Keras axis `axis` (negative counts from the end)."""
    return value.perm.index(int(axis) % value.ndim)


def constant(value):
    """A NumPy array of a constant argument (number, array, backend tensor, Variable)."""
    import keras

    if isinstance(value, (int, float, bool, np.ndarray, np.generic, list, tuple)):
        return np.asarray(value)
    return np.asarray(keras.ops.convert_to_numpy(value))


def squeeze(b, value, axes, shape):
    """`value` without its size-1 Keras `axes`, laid out as before (no data moves)."""
    axes = sorted(int(a) % value.ndim for a in axes)
    if not axes:
        return Value(value.name, shape, value.perm)
    y = b.node("Squeeze", [value.name, b.ints(sorted(value.perm.index(a) for a in axes),
                                              "axes")])
    perm = [p - sum(a < p for a in axes) for p in value.perm if p not in axes]
    return Value(y, shape, perm)


def unsqueeze(b, value, axis, shape):
    """`value` with a new size-1 Keras axis `axis` (Unsqueeze, no data moves): the new
    axis goes next to where its Keras neighbour lies in the ONNX layout."""
    ndim = value.ndim + 1
    axis = int(axis) % ndim
    shifted = [p + (p >= axis) for p in value.perm]
    at = shifted.index(axis - 1) + 1 if axis > 0 else 0
    perm = shifted[:at] + [axis] + shifted[at:]
    return Value(b.node("Unsqueeze", [value.name, b.ints([at], "axes")]), shape, perm)


def split(b, x, axis, sizes_of, what):
    """ONNX Split of `x` along Keras `axis` into `sizes_of(length)`; a list of names."""
    axis = int(axis) % x.ndim
    length = x.shape[axis]
    if length is None:
        raise Unsupported(f"{what} along axis {axis} of unknown size")
    sizes = sizes_of(length)
    names = b.node("Split", [x.name, b.ints(sizes, "split")], n_outputs=len(sizes),
                   axis=onnx_axis(x, axis))
    return names if isinstance(names, list) else [names]


@lowering(K.Split)
def lower_split(b, layer, ctx):
    sections = layer.indices_or_sections

    def sizes(length):
        if isinstance(sections, int):
            return [length // sections] * sections
        bounds = [0] + [min(int(i), length) for i in sections] + [length]
        return [max(e - s, 0) for s, e in zip(bounds, bounds[1:])]
    return split(b, ctx.x, layer.axis, sizes, "split")


@lowering(C.Unstack)
def lower_unstack(b, layer, ctx):
    x, axis = ctx.x, int(layer.axis) % ctx.x.ndim
    parts = split(b, x, axis, lambda n: [1] * n, "unstack")
    shape = [d for i, d in enumerate(x.shape) if i != axis]
    return [squeeze(b, Value(p, x.shape, x.perm), [axis], shape) for p in parts]


@lowering(K.Roll)
def lower_roll(b, layer, ctx):
    x = ctx.x
    if layer.axis is None:
        raise Unsupported("roll without an axis (of the flattened tensor)")
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    shifts = layer.shift if isinstance(layer.shift, (list, tuple)) else [layer.shift] * len(axes)
    name = x.name
    for axis, shift in zip(axes, shifts):
        axis = int(axis) % x.ndim
        n = x.shape[axis]
        if n is None:
            raise Unsupported(f"roll along axis {axis} of unknown size")
        shift = int(shift) % n
        if shift:  # the last `shift` elements first
            at = onnx_axis(x, axis)
            name = b.node("Concat", [slice_axis(b, name, at, n - shift, n),
                                     slice_axis(b, name, at, 0, n - shift)], axis=at)
    return name if name != x.name else b.node("Identity", [x.name])


@lowering(K.Pad)
def lower_pad(b, layer, ctx):
    x = ctx.x
    if layer.mode not in KERAS_PAD_MODES:
        raise Unsupported(f"pad(mode={layer.mode!r}): the modes with an exact lowering are "
                          f"{sorted(KERAS_PAD_MODES)}")
    widths = layer.pad_width if len(layer.pad_width) > 1 else layer.pad_width * x.ndim
    widths = [tuple(int(w) for w in pair) for pair in widths]
    value = ctx.args[1] if len(ctx.args) > 1 else ctx.kwargs.get("constant_values")
    if isinstance(value, Value):
        raise Unsupported("pad with a tensor constant_values")
    value = 0.0 if value is None else float(constant(value))
    onnx_widths = [widths[p] for p in x.perm]
    mode = KERAS_PAD_MODES[layer.mode]
    if keras.backend.backend() == "torch" and mode in ("symmetric", "circular"):
        if mode == "circular":
            raise Unsupported("pad(mode='wrap') on torch: Keras hands torch a mode it reads "
                              "differently from NumPy's wrap")
        mode = "replicate"  # what Keras's torch backend computes for "symmetric"
    return pad_axes(b, x.name, onnx_widths, mode, value,
                    dtype=_np_dtype(ctx.node.input_tensors[0].dtype))


@lowering(K.ExpandDims)
def lower_expand_dims(b, layer, ctx):
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    value, ndim = ctx.x, ctx.x.ndim + len(axes)
    for axis in sorted(int(a) % ndim for a in axes):
        shape = list(value.shape)
        shape.insert(axis, 1)
        value = unsqueeze(b, value, axis, shape)
    return Value(value.name, ctx.output_shape, value.perm)


@lowering(K.Squeeze)
def lower_squeeze(b, layer, ctx):
    x = ctx.x
    if layer.axis is None:
        axes = [a for a, d in enumerate(x.shape) if d == 1]
    else:
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    return squeeze(b, x, axes, ctx.output_shape)


@lowering(K.Stack)
def lower_stack(b, layer, ctx):
    axis = int(layer.axis) % (ctx.x.ndim + 1)
    shape = list(ctx.x.shape)
    shape.insert(axis, 1)
    parts = [unsqueeze(b, v, axis, shape) for v in ctx.inputs]
    y = b.node("Concat", [p.name for p in parts], axis=parts[0].perm.index(axis))
    return Value(y, ctx.output_shape, parts[0].perm)


@lowering(K.GetItem)
def lower_get_item(b, layer, ctx):
    x = ctx.x
    key = ctx.args[1] if len(ctx.args) > 1 else ctx.kwargs["key"]
    key = list(key) if isinstance(key, (tuple, list)) else [key]
    if any(isinstance(k, Value) for k in key) or any(
            not isinstance(k, (int, np.integer, slice, type(None), type(Ellipsis)))
            for k in key):
        raise Unsupported(f"indexing with {key!r}: only ints, slices, None and ... have a "
                          f"lowering (tensor indices vary with the data)")
    if key.count(Ellipsis) > 1:
        raise Unsupported("indexing with more than one ...")
    if Ellipsis not in key:
        key.append(Ellipsis)
    at = key.index(Ellipsis)
    used = sum(1 for k in key if k is not None and k is not Ellipsis)
    key[at:at + 1] = [slice(None)] * (x.ndim - used)
    starts, ends, axes, steps, dropped, new = [], [], [], [], [], []
    axis = position = 0  # in the input, in the output
    for k in key:
        if k is None:
            new.append(position)
            position += 1
            continue
        length = x.shape[axis]
        if isinstance(k, (int, np.integer)):
            k = int(k)
            if length is not None and not -length <= k < length:
                raise Unsupported(f"index {k} out of range for axis {axis} of size {length}")
            start = k if k >= 0 or length is None else k + length
            starts.append(start)
            ends.append(start + 1 if start != -1 else INT_MAX)
            axes.append(onnx_axis(x, axis))
            steps.append(1)
            dropped.append(axis)
        elif k != slice(None):
            step = 1 if k.step is None else int(k.step)
            starts.append(int(k.start) if k.start is not None else (0 if step > 0 else -1))
            ends.append(int(k.stop) if k.stop is not None else
                        (INT_MAX if step > 0 else -INT_MAX))
            axes.append(onnx_axis(x, axis))
            steps.append(step)
        position += not isinstance(k, (int, np.integer))
        axis += 1
    value = x
    if axes:
        y = b.node("Slice", [x.name, b.ints(starts, "starts"), b.ints(ends, "ends"),
                             b.ints(axes, "axes"), b.ints(steps, "steps")])
        shape = [None] * x.ndim
        value = Value(y, shape, x.perm)
    if dropped:
        value = squeeze(b, value, dropped, [None] * (x.ndim - len(dropped)))
    for axis in new:
        value = unsqueeze(b, value, axis, [None] * (value.ndim + 1))
    return Value(value.name if value is not x else b.node("Identity", [x.name]),
                 ctx.output_shape, value.perm)


@lowering(K.Take)
def lower_take(b, layer, ctx):
    x, indices = ctx.x, ctx.args[1] if len(ctx.args) > 1 else ctx.kwargs["indices"]
    if isinstance(indices, Value):
        raise Unsupported("take with tensor indices (only constant indices have a lowering)")
    indices = constant(indices).astype(np.int64)
    if layer.axis is None:  # NumPy's take on the flattened tensor
        x = in_order(b, x, tuple(range(x.ndim)))
        flat = b.node("Reshape", [x.name, b.ints([-1], "shape")])
        return _gather_keras(b, flat, indices, 0, ctx.output_shape)
    axis = int(layer.axis) % x.ndim
    if indices.ndim == 0:
        y = b.node("Gather", [x.name, b.const(indices, "indices")], axis=onnx_axis(x, axis))
        perm = [p - (p > axis) for p in x.perm if p != axis]
        return Value(y, ctx.output_shape, perm)
    if indices.ndim == 1:
        y = b.node("Gather", [x.name, b.const(indices, "indices")], axis=onnx_axis(x, axis))
        return Value(y, ctx.output_shape, x.perm)
    x = b.to_perm(x, tuple(range(x.ndim)))
    return _gather_keras(b, x.name, indices, axis, ctx.output_shape)


def _gather_keras(b, name, indices, axis, shape):
    return Value(b.node("Gather", [name, b.const(indices, "indices")], axis=axis), shape)


@lowering(K.TakeAlongAxis)
def lower_take_along_axis(b, layer, ctx):
    x, indices = ctx.x, ctx.args[1] if len(ctx.args) > 1 else ctx.kwargs["indices"]
    if isinstance(indices, Value) or layer.axis is None:
        raise Unsupported("take_along_axis with tensor indices or axis=None")
    indices = constant(indices).astype(np.int64)
    axis = int(layer.axis) % x.ndim
    x = b.to_perm(x, tuple(range(x.ndim)))
    if indices.ndim != x.ndim:
        raise Unsupported("take_along_axis with indices of another rank")
    target = [d if i == axis else (x.shape[i] if x.shape[i] is not None else None)
              for i, d in enumerate(indices.shape)]
    idx = b.const(indices, "indices")
    if any(t is None for t in target) or list(indices.shape) != target:
        # broadcast the indices to x's shape on every other axis (batch included)
        shape_x = b.node("Shape", [x.name])
        dims = [b.ints([indices.shape[i]], "dim") if i == axis else
                b.node("Slice", [shape_x, b.ints([i], "s"), b.ints([i + 1], "e")])
                for i in range(x.ndim)]
        idx = b.node("Expand", [idx, b.node("Concat", dims, axis=0)])
    return Value(b.node("GatherElements", [x.name, idx], axis=axis), ctx.output_shape)


def onnx_dtype(dtype):
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _np_dtype(dtype):
    return np.dtype("float32" if dtype in (None, "float16", "bfloat16", "float64") else dtype)


@lowering(C.Cast)
def lower_cast(b, layer, ctx):
    return cast_to(b, ctx, str(layer.dtype))


def cast_to(b, ctx, to):
    """ctx.x as Keras dtype `to`: float32 inside the graph for every float dtype."""
    if to.startswith("float") or to.startswith("bfloat"):
        # the graph computes in float32 (float16 export converts it as a whole)
        source = str(ctx.node.input_tensors[0].dtype)
        if source.startswith("float") or source.startswith("bfloat"):
            return b.node("Identity", [ctx.x.name])
        return b.node("Cast", [ctx.x.name], to=onnx_dtype("float32"))
    return b.node("Cast", [ctx.x.name], to=onnx_dtype(to))


@lowering(C.ConvertToTensor)
def lower_convert_to_tensor(b, layer, ctx):
    dtype = getattr(layer, "dtype", None)
    if dtype is not None and str(dtype) != str(ctx.node.input_tensors[0].dtype):
        return cast_to(b, ctx, str(dtype))
    return b.node("Identity", [ctx.x.name])


@lowering(K.Where)
def lower_where(b, layer, ctx):
    args = list(ctx.args)
    if len(args) < 3 or args[1] is None:
        raise Unsupported("where with one argument (indices vary with the data)")
    values = [a for a in args if isinstance(a, Value)]
    like = max(values, key=lambda v: v.ndim)
    moved = [b.to_perm(a, like.perm) if isinstance(a, Value) and a.ndim == like.ndim
             else a for a in args]
    names = []
    for i, a in enumerate(moved):
        if isinstance(a, Value):
            name = a.name
            if i == 0 and str(ctx.node.arguments.args[0].dtype) != "bool":
                name = b.node("Cast", [name], to=onnx_dtype("bool"))
            if a.ndim != like.ndim:
                raise Unsupported("where between tensors of different ranks")
            names.append(name)
        else:
            array = constant(a)
            array = array.astype(bool) if i == 0 else array.astype(np.float32)
            names.append(b.const(constant_in_layout(array, like.perm), "const"))
    return Value(b.node("Where", names), ctx.output_shape, like.perm)
