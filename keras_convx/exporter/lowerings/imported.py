"""ONNX lowerings of the importer's own layers (keras_convx/importer/layers.py), so an
imported model exports again, also when a fresh process loads it from a .keras file."""

import numpy as np

from keras_convx.exporter.graph import float_array
from keras_convx.exporter.lowerings.common import INT_MAX, INT_MIN, const_in_layout
from keras_convx.exporter.lowerings.operations import reduction
from keras_convx.exporter.registry import lowering
from keras_convx.importer.layers import (Clip, ConstantOperation, Divide, Reduce, Slice, Tile,
                                         UnaryOperation)

_ONNX_OPS = {"add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div",
             "reverse_subtract": "Sub", "reverse_divide": "Div", "maximum": "Max",
             "minimum": "Min", "power": "Pow"}


@lowering(ConstantOperation)
def lower_constant_operation(b, layer, ctx):
    x = ctx.x
    constant = b.const(const_in_layout(float_array(layer.constant), x.perm), "constant")
    inputs = [constant, x.name] if layer.operation.startswith("reverse_") else [x.name, constant]
    return b.node(_ONNX_OPS[layer.operation], inputs)


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


_UNARY_OPS = {"abs": "Abs", "negative": "Neg", "sqrt": "Sqrt", "erf": "Erf",
              "reciprocal": "Reciprocal", "log": "Log"}


@lowering(UnaryOperation)
def lower_unary_operation(b, layer, ctx):
    return b.node(_UNARY_OPS[layer.operation], [ctx.x.name])


@lowering(Reduce)
def lower_reduce(b, layer, ctx):
    op = {"mean": "ReduceMean", "sum": "ReduceSum", "max": "ReduceMax", "min": "ReduceMin"}
    return reduction(b, ctx, op[layer.operation], layer.axis, layer.keepdims)


@lowering(Tile)
def lower_tile(b, layer, ctx):
    # repeats in the ONNX value's axis order: value axis j holds Keras axis perm[j]
    multiples = [1] + list(layer.multiples)
    return b.node("Tile", [ctx.x.name, b.ints([multiples[k] for k in ctx.x.perm], "repeats")])
