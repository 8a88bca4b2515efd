"""Add, Sub, Mul, Div, Pow, Max, Min, Sum, Mean and Concat (Max, Min, Sum of any number
of inputs). Two tensors -> keras.layers.Add / Subtract /
Multiply / Concatenate (Divide: the importer's); a tensor and a constant -> the importer's
ConstantOperation, the constant moved to the tensor's layout once."""

import keras
import numpy as np

from keras_convx import interop
from keras_convx.importer.conversions.common import float32
from keras_convx.importer.context import Value
from keras_convx.importer.errors import Unsupported
from keras_convx.layers.tensor_ops import BatchConstant, ConstantOperation, Divide
from keras_convx.importer.registry import conversion

L = keras.layers
# op -> (Keras merge layer for tensor-tensor, ConstantOperation op, op with the constant first)
BINARY = {
    "Add": (L.Add, "add", "add"),
    "Sub": (L.Subtract, "subtract", "reverse_subtract"),
    "Mul": (L.Multiply, "multiply", "multiply"),
    "Div": (Divide, "divide", "reverse_divide"),
    "Pow": (None, "power", None),
    "Max": (L.Maximum, "maximum", "maximum"),
    "Min": (L.Minimum, "minimum", "minimum"),
    "Sum": (L.Add, "add", "add"),
}


def _binary(op):
    merge, with_const, const_first = BINARY[op]

    def convert(ctx):
        if op in VARIADIC and len(ctx.inputs) != 2:
            return _variadic(ctx, op)
        if len(ctx.inputs) != 2:
            raise Unsupported(f"{len(ctx.inputs)} inputs: only 2 are supported")
        a, b = ctx.inputs
        if isinstance(a, Value) and isinstance(b, Value):
            if merge is None:
                raise Unsupported("both inputs computed: only a constant exponent is supported")
            if a.ndim != b.ndim:
                raise Unsupported(f"inputs of rank {a.ndim} and {b.ndim}: broadcasting between "
                                  f"computed tensors needs equal ranks (both have a batch axis)")
            if b.perm != a.perm:
                b = ctx.move(b, a.perm)
            return ctx.layer(merge, inputs=[a.tensor, b.tensor])
        tensor, constant, first = (a, b, False) if isinstance(a, Value) else (b, a, True)
        constant = float32(constant, f"input {1 - first} (constant)")
        if constant.ndim > tensor.ndim:
            raise Unsupported(f"constant of shape {list(constant.shape)} has more dims than the "
                              f"tensor ({tensor.ndim})")
        if constant.ndim == tensor.ndim and constant.shape[0] != 1:
            raise Unsupported(f"constant of shape {list(constant.shape)} varies along the batch "
                              f"axis")
        operation = const_first if first else with_const
        if operation is None:
            raise Unsupported("a computed exponent of a constant base is not supported")
        moved = interop.constant_in_layout(constant, tensor.perm)
        out = ctx.layer(ConstantOperation, operation, shape=moved.shape)
        ctx.last_layer.constant.assign(moved)
        return out
    convert.__name__ = f"convert_{op.lower()}"
    return convert


for _op in BINARY:
    conversion(_op, since=1)(_binary(_op))

# ONNX's variadic ops -> (Keras merge layer, NumPy reduction of the constants among them)
VARIADIC = {"Max": (L.Maximum, np.maximum), "Min": (L.Minimum, np.minimum),
            "Sum": (L.Add, np.add)}


def _variadic(ctx, op):
    """Max/Min/Sum of 1 or 3+ inputs: the computed ones merged by one Keras layer, the
    constants reduced to one and applied after (the ops are associative)."""
    merge, reduce = VARIADIC[op]
    tensors = ctx.tensor_inputs()
    constants = [v for v in ctx.inputs if v is not None and not isinstance(v, Value)]
    if len({v.ndim for v in tensors}) != 1:
        raise Unsupported("computed inputs of different ranks: broadcasting between them "
                          "needs equal ranks")
    first = tensors[0]
    moved = [v if v.perm == first.perm else ctx.move(v, first.perm) for v in tensors]
    out = first.tensor if len(moved) == 1 else ctx.layer(merge, inputs=[v.tensor for v in moved])
    if constants:
        constant = float32(constants[0], "a constant input")
        for c in constants[1:]:
            constant = reduce(constant, float32(c, "a constant input"))
        if constant.ndim > first.ndim or constant.ndim == first.ndim and constant.shape[0] != 1:
            raise Unsupported(f"constant of shape {list(constant.shape)} varies along the "
                              f"batch axis")
        operation = BINARY[op][1] if op != "Sum" else "add"
        array = interop.constant_in_layout(constant, first.perm)
        out = ctx.layer(ConstantOperation, operation, shape=array.shape, inputs=out,
                        suffix="constant")
        ctx.last_layer.constant.assign(array)
    return Value(out, first.perm)


@conversion("Mean", since=1)
def convert_mean(ctx):
    tensors = ctx.tensor_inputs()
    if len(tensors) != len(ctx.inputs) or len({v.ndim for v in tensors}) != 1:
        raise Unsupported("computed inputs of one rank only")
    if len(tensors) == 1:
        return tensors[0]
    moved = [v if v.perm == tensors[0].perm else ctx.move(v, tensors[0].perm) for v in tensors]
    return Value(ctx.layer(L.Average, inputs=[v.tensor for v in moved]), tensors[0].perm)


def _batch_constant(ctx, value, like):
    """A constant input of a Concat, the same for every sample (a class token expanded to
    the batch), as a BatchConstant laid out like `like`."""
    array = float32(value, "a constant input")
    if array.ndim != like.ndim:
        raise Unsupported(f"constant input of shape {list(array.shape)} next to a tensor of "
                          f"rank {like.ndim}")
    if array.shape[0] != 1 and not np.all(array == array[:1]):
        raise Unsupported(f"constant input of shape {list(array.shape)} differs between "
                          f"samples of the batch")
    moved = interop.constant_in_layout(array[:1], like.perm)[0]
    out = ctx.layer(BatchConstant, moved.shape, inputs=like.tensor, suffix="constant")
    ctx.last_layer.constant.assign(moved)
    return Value(out, like.perm)


@conversion("Concat", since=1)
def convert_concat(ctx):
    like = ctx.x
    tensors = [v if isinstance(v, Value) else _batch_constant(ctx, v, like)
               for v in ctx.inputs]
    first = tensors[0]
    axis = int(ctx.attr("axis")) % first.ndim
    if axis == 0:
        raise Unsupported("concatenating along the batch axis is not supported")
    moved = [v if v.perm == first.perm else ctx.move(v, first.perm) for v in tensors]
    if len(moved) == 1:
        return first
    return ctx.layer(L.Concatenate, axis=first.keras_axis(axis), inputs=[v.tensor for v in moved])


