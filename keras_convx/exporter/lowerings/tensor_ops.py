"""ONNX lowerings of keras_convx's tensor-operation layers (keras_convx/layers/tensor_ops.py), so an
imported model exports again, also when a fresh process loads it from a .keras file."""

import numpy as np

from keras_convx.exporter.graph import float_array
from keras_convx.exporter.lowerings.common import INT_MAX, INT_MIN, const_in_layout
from keras_convx.exporter.lowerings.operations import reduction
from keras_convx.exporter.registry import lowering
from keras_convx.exporter.registry import KERAS_ORDER
from keras_convx.layers.tensor_ops import (BatchConstant, BroadcastTo, Clip, ConstantOperation, Divide, Einsum,
                                         MatMul, Reduce, Slice, Tile, UnaryOperation, Where)
from keras_convx.interop import elementwise


@lowering(ConstantOperation)
def lower_constant_operation(b, layer, ctx):
    x = ctx.x
    constant = b.const(const_in_layout(float_array(layer.constant), x.perm), "constant")
    inputs = [constant, x.name] if layer.operation.startswith("reverse_") else [x.name, constant]
    return b.node(elementwise.onnx_op(layer.operation), inputs)


@lowering(Divide)
def lower_divide(b, layer, ctx):
    return b.node("Div", [ctx.inputs[0].name, ctx.inputs[1].name])


@lowering(Clip)
def lower_clip(b, layer, ctx):
    bounds = [b.const(np.float32(v), name) if v is not None else ""
              for v, name in ((layer.min_value, "min"), (layer.max_value, "max"))]
    return b.node("Clip", [ctx.x.name] + bounds)


@lowering(Slice)
def lower_slice(b, layer, ctx):
    ends = [e if e is not None else (INT_MAX if s > 0 else INT_MIN)
            for e, s in zip(layer.end, layer.step)]
    # in the input's layout: Keras axis k is the ONNX value's axis perm.index(k)
    axes = [ctx.x.perm.index(k) for k in range(1, len(layer.begin) + 1)]
    return b.node("Slice", [ctx.x.name, b.ints(layer.begin, "starts"), b.ints(ends, "ends"),
                            b.ints(axes, "axes"), b.ints(layer.step, "steps")])


@lowering(UnaryOperation)
def lower_unary_operation(b, layer, ctx):
    return b.node(elementwise.onnx_op(layer.operation), [ctx.x.name])


@lowering(Reduce)
def lower_reduce(b, layer, ctx):
    op = {"mean": "ReduceMean", "sum": "ReduceSum", "max": "ReduceMax", "min": "ReduceMin"}
    return reduction(b, ctx, op[layer.operation], layer.axis, layer.keepdims)


@lowering(Tile)
def lower_tile(b, layer, ctx):
    # repeats in the ONNX value's axis order: value axis j holds Keras axis perm[j]
    multiples = [1] + list(layer.multiples)
    return b.node("Tile", [ctx.x.name, b.ints([multiples[k] for k in ctx.x.perm], "repeats")])


@lowering(BroadcastTo)
def lower_broadcast_to(b, layer, ctx):
    # the target in the ONNX value's axis order (value axis j holds Keras axis perm[j]);
    # 1 for the batch, which Expand keeps
    full = (1,) + tuple(layer.shape)
    return b.node("Expand", [ctx.x.name, b.ints([full[k] for k in ctx.x.perm], "shape")])


@lowering(MatMul, layout=KERAS_ORDER)
def lower_matmul(b, layer, ctx):
    return b.node("MatMul", [v.name for v in ctx.inputs])


@lowering(Einsum, layout=KERAS_ORDER)
def lower_einsum(b, layer, ctx):
    return b.node("Einsum", [v.name for v in ctx.inputs], equation=layer.equation)


@lowering(Where, layout=KERAS_ORDER)
def lower_where(b, layer, ctx):
    computed = iter(ctx.inputs)
    names = []
    for i, (shape, stored) in enumerate(zip(layer.constants, layer.stored)):
        if shape is None:
            names.append(next(computed).name)
        elif i == 0:
            names.append(b.const(float_array(stored) != 0, "condition"))
        else:
            names.append(b.const(float_array(stored), "constant"))
    if layer.constants[0] is None:  # a computed condition may arrive as float (0/1)
        names[0] = b.node("Cast", [names[0]], to=9)
    return b.node("Where", names)


@lowering(BatchConstant, layout=KERAS_ORDER)
def lower_batch_constant(b, layer, ctx):
    # the constant expanded to the input's (dynamic) batch
    shape = b.node("Shape", [ctx.x.name])
    batch = b.node("Slice", [shape, b.ints([0], "starts"), b.ints([1], "ends")])
    dims = b.node("Concat", [batch, b.ints(layer.shape, "dims")], axis=0)
    return b.node("Expand", [b.const(float_array(layer.constant)[None], "constant"), dims])
