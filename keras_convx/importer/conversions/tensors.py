"""Split, Expand, MatMul and Einsum of two computed tensors, Where and comparisons with a
constant: the tensor plumbing of CSP blocks (`torch.chunk`), ECA (`expand_as`) and
attention (scores, masks)."""

import math

import numpy as np

from keras_convx import interop
from keras_convx.importer.conversions.common import float32
from keras_convx.importer.context import Value
from keras_convx.importer.errors import Unsupported
from keras_convx.layers.tensor_ops import BroadcastTo, ConstantOperation, Einsum, MatMul, Slice, Where
from keras_convx.importer.registry import ANY, conversion

# ONNX comparison -> (ConstantOperation with the constant second, with the constant first)
COMPARISONS = {op: (name, interop.elementwise.SWAPPED[name])
               for name, op in interop.elementwise.COMPARISONS.items()}


def _split_sizes(ctx, length, count):
    """Output lengths along the split axis: from `split` (attribute before opset 13, input
    after), `num_outputs` (opset 18: the last chunk may be smaller) or equal parts."""
    if ctx.attr("split") is not None:
        sizes = [int(v) for v in ctx.attr("split")]
    elif len(ctx.inputs) > 1 and ctx.inputs[1] is not None:
        sizes = [int(v) for v in np.asarray(ctx.const(1, "split")).reshape(-1)]
    elif ctx.attr("num_outputs") is not None:
        chunk = math.ceil(length / int(ctx.attr("num_outputs")))
        sizes = [min(chunk, length - i * chunk) for i in range(count)]
    else:
        if length % count:
            raise Unsupported(f"{count} equal parts of length {length}: not divisible")
        sizes = [length // count] * count
    if len(sizes) != count or sum(sizes) != length or any(n < 1 for n in sizes):
        raise Unsupported(f"split={sizes} must give {count} positive lengths summing to "
                          f"{length}")
    return sizes


@conversion("Split", since=1)
def convert_split(ctx):
    """One Slice per output, along the split axis wherever the layout put it."""
    x = ctx.x
    if ctx.inputs[0] is not x:
        raise Unsupported("only a computed tensor can be split")
    if x.flat is not None:
        raise Unsupported("splitting a flattened tensor in Keras order")
    axis = int(ctx.attr("axis", 0)) % x.ndim
    if axis == 0:
        raise Unsupported("splitting the batch axis is not supported")
    sizes = _split_sizes(ctx, x.shape[axis], len(ctx.node.outputs))
    k = x.keras_axis(axis) - 1
    outputs, start = [], 0
    for i, size in enumerate(sizes):
        begin, end = [0] * (x.ndim - 1), [None] * (x.ndim - 1)
        begin[k], end[k] = start, start + size
        start += size
        if not ctx.node.outputs[i]:
            outputs.append(None)
            continue
        outputs.append(Value(ctx.layer(Slice, begin=begin, end=end, suffix=str(i)), x.perm))
    return outputs


@conversion("Expand", since=8)
def convert_expand(ctx):
    """A computed tensor broadcast to a constant shape whose first entry is 1, the static
    batch or (computed from Shape) the dynamic batch: `expand_as`."""
    x = ctx.x
    if ctx.inputs[0] is not x:
        raise Unsupported("only a computed tensor expanded to a constant shape")
    shape = [int(v) for v in np.asarray(ctx.const(1, "shape", batch_ok=True)).reshape(-1)]
    if len(shape) > x.ndim:
        raise Unsupported(f"shape={shape} adds axes before the batch axis (input rank "
                          f"{x.ndim})")
    full = [1] * (x.ndim - len(shape)) + shape
    batch = (ctx.walk.graph.shapes.get(ctx.node.inputs[0]) or (None,))[0]
    if not (full[0] == 1 or full[0] == batch or len(shape) == x.ndim and ctx.keeps_batch(1)):
        raise Unsupported(f"shape={shape} changes the batch axis")
    try:
        out = (None,) + tuple(int(n) for n in np.broadcast_shapes(tuple(x.shape[1:]),
                                                                   tuple(full[1:])))
    except ValueError:
        raise Unsupported(f"shape={shape} does not broadcast with the input "
                          f"{list(x.shape)}") from None
    if out[1:] == tuple(x.shape[1:]):
        return x
    want = ctx.standard_perm(x.ndim)
    if x.perm != want and interop.only_unit_axes_move(x.shape, x.perm, want):
        # a gate (N, C, 1, 1) broadcast to the feature map: laid out like the map first
        # (only size-1 axes move: a Reshape), so the product needs no Permute
        x = ctx.move(x, want, "to_" + ctx.data_format)
    return Value(ctx.layer(BroadcastTo, [out[p] for p in x.perm[1:]], inputs=x.tensor), x.perm)


def _einsum_in_layout(ctx, operands, subscripts, out):
    """`einsum` of computed tensors in their own Keras layouts: each operand's subscripts
    are read in its Keras axis order, and the result's axes are ordered after the first
    operand's (a contracted axis's place taken by the axes the others bring), so attention
    on channels-last maps needs no Permute."""
    first = [subscripts[0][p] for p in operands[0].perm]
    new = [c for c in out if c not in subscripts[0]]
    order = []
    for c in first:
        if c in out:
            order.append(c)
        elif new:
            order += new
            new = []
    order += [c for c in out if c not in order]
    lhs = ",".join("".join(sub[p] for p in v.perm) for v, sub in zip(operands, subscripts))
    equation = f"{lhs}->{''.join(order)}"
    result = ctx.layer(Einsum, equation, inputs=[v.tensor for v in operands])
    return Value(result, tuple(out.index(c) for c in order))


def matmul_of_tensors(ctx):
    """MatMul of two computed tensors (batch first, same rank): an einsum in their layouts
    where the leading axes agree, else the product in ONNX order."""
    a, b = ctx.inputs
    if a.ndim != b.ndim or a.ndim < 3:
        raise Unsupported(f"computed inputs of rank {a.ndim} and {b.ndim}: both need the "
                          f"batch axis and the same rank >= 3")
    if a.flat is not None or b.flat is not None:
        raise Unsupported("a flattened tensor in Keras order")
    lead = "zyxwvu"[:a.ndim - 2][::-1]
    if a.shape[1:-2] == b.shape[1:-2]:
        return _einsum_in_layout(ctx, [a, b], [lead + "ij", lead + "jk"], lead + "ik")
    a, b = (ctx.move(v, tuple(range(v.ndim)), "to_onnx_order") for v in (a, b))
    return Value(ctx.layer(MatMul, inputs=[a.tensor, b.tensor]), tuple(range(a.ndim)))


@conversion("Einsum", since=12, layout=ANY)
def convert_einsum(ctx):
    if not all(isinstance(v, Value) for v in ctx.inputs):
        raise Unsupported("constant operands are not supported (computed tensors only)")
    equation = str(ctx.attr("equation", "")).replace(" ", "")
    lhs, arrow, out = equation.partition("->")
    operands = lhs.split(",")
    if not arrow or "." in equation or len(operands) != len(ctx.inputs) or not out or any(
            not op or op[0] != out[0] or len(op) != v.ndim or len(set(op)) != len(op)
            for op, v in zip(operands, ctx.inputs)):
        raise Unsupported(f"equation={equation!r}: accepted are explicit equations ('->'), "
                          f"no '...', one distinct subscript per axis, the batch letter "
                          f"first in every operand and the output")
    if any(v.flat is not None for v in ctx.inputs):
        raise Unsupported("a flattened tensor in Keras order")
    return _einsum_in_layout(ctx, ctx.inputs, operands, out)


def _constant_operand(value, like, what):
    """A constant operand moved into the layout of the computed tensor `like`."""
    array = np.asarray(value)
    if array.ndim > like.ndim or array.ndim == like.ndim and array.shape[0] != 1:
        raise Unsupported(f"{what} of shape {list(array.shape)} varies along the batch axis "
                          f"or has more axes than the tensor ({like.ndim})")
    return interop.constant_in_layout(array, like.perm)


@conversion("Where", since=9)
def convert_where(ctx):
    tensors = ctx.tensor_inputs()
    if len({v.ndim for v in tensors}) != 1:
        raise Unsupported("computed inputs of different ranks")
    like = tensors[0]
    shapes, stored = [], []
    for i, (value, what) in enumerate(zip(ctx.inputs, ("condition", "X", "Y"))):
        if isinstance(value, Value):
            shapes.append(None)
            continue
        array = _constant_operand(value, like, what)
        array = array.astype(np.float32) if i == 0 else float32(array, what)
        shapes.append(array.shape)
        stored.append((i, array))
    out = ctx.layer(Where, constants=shapes, inputs=[v.tensor for v in tensors])
    layer = ctx.last_layer
    for i, array in stored:
        layer.stored[i].assign(array)
    return Value(out, like.perm)


def _comparison(op):
    second, first = COMPARISONS[op]

    def convert(ctx):
        a, b = ctx.inputs
        if isinstance(a, Value) == isinstance(b, Value):
            raise Unsupported("one computed tensor and one constant are supported")
        tensor, constant, constant_first = (a, b, False) if isinstance(a, Value) else (b, a, True)
        moved = float32(_constant_operand(constant, tensor, "the constant"), "the constant")
        out = ctx.layer(ConstantOperation, first if constant_first else second, shape=moved.shape)
        ctx.last_layer.constant.assign(moved)
        return Value(out, tensor.perm)
    convert.__name__ = f"convert_{op.lower()}"
    return convert


for _op in COMPARISONS:
    conversion(_op, since=7)(_comparison(_op))
